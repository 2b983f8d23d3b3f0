"""Writes or checks a recognisable set of znodes, for the data-directory exchange between
Apache ZooKeeper and zk-server (scripts/interop.sh): one server writes them into its data
directory, the other is started on that directory and must serve exactly the same tree.

    python exchange.py HOST:PORT write NAME COUNT
    python exchange.py HOST:PORT check NAME COUNT

`write` creates /exchange/NAME with COUNT children of several kinds (plain data, empty and
null data, a digest ACL, sequential names), updates some and deletes others, so that both the
snapshots and the log tail carry every txn type the check relies on.
"""

import sys

from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

USER, PASSWORD = "exchange", "secret"


def expected(name, count):
    """The children of /exchange/NAME after `write`: {child: (data, version)}."""
    nodes = {}
    for i in range(count):
        if i % 10 == 3:
            continue  # deleted
        data = f"{name}-{i}".encode()
        version = 0
        if i % 7 == 0:
            data, version = data + b"-updated", 1
        if i % 11 == 5:
            data = b""
        nodes[f"n{i:05d}"] = (data, version)
    return nodes


def write(zk, name, count):
    base = f"/exchange/{name}"
    zk.ensure_path(base)
    for i in range(count):
        data = b"" if i % 11 == 5 else f"{name}-{i}".encode()
        zk.create(f"{base}/n{i:05d}", data)
    for i in range(0, count, 7):
        if i % 11 != 5:
            zk.set(f"{base}/n{i:05d}", f"{name}-{i}-updated".encode())
        else:
            zk.set(f"{base}/n{i:05d}", b"")
    for i in range(3, count, 10):
        zk.delete(f"{base}/n{i:05d}")
    acl = make_digest_acl(USER, PASSWORD, all=True)
    zk.create(f"{base}-guarded", b"private", acl=[acl])
    for _ in range(3):
        zk.create(f"{base}-seq/s-", b"", makepath=True, sequence=True)


def check(zk, name, count):
    base = f"/exchange/{name}"
    want = expected(name, count)
    got = sorted(zk.get_children(base))
    assert got == sorted(want), f"{base}: {len(got)} children, expected {len(want)}"
    for child, (data, version) in want.items():
        value, stat = zk.get(f"{base}/{child}")
        assert (value, stat.version) == (data, version), (child, value, stat.version)
    zk.add_auth("digest", f"{USER}:{PASSWORD}")
    acl, _ = zk.get_acls(f"{base}-guarded")
    assert [(a.id.scheme, a.id.id, a.perms) for a in acl] == [
        ("digest", make_digest_acl(USER, PASSWORD, all=True).id.id, 31)
    ], acl
    assert zk.get(f"{base}-guarded")[0] == b"private"
    seq = sorted(zk.get_children(f"{base}-seq"))
    assert seq == ["s-0000000000", "s-0000000001", "s-0000000002"], seq


def main():
    host, mode, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    zk = KazooClient(hosts=host, timeout=15)
    zk.start(timeout=15)
    try:
        if mode == "write":
            write(zk, name, count)
        else:
            check(zk, name, count)
    finally:
        zk.stop()
        zk.close()
    print(f"{mode} {name}: ok")


if __name__ == "__main__":
    main()
