"""kazoo (a real third-party client, pinned in requirements.txt) against a ZooKeeper server.

The server's address comes from ZK_CONNECT (host:port). scripts/interop.sh runs this suite
against our zk-server binary; it passes against Apache ZooKeeper 3.8 as well.
"""

import os
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.security import make_digest_acl

CONNECT = os.environ.get("ZK_CONNECT", "127.0.0.1:2181")
WAIT = 10


def client(**kwargs):
    zk = KazooClient(hosts=CONNECT, timeout=10, **kwargs)
    zk.start(timeout=WAIT)
    return zk


@pytest.fixture
def zk():
    zk = client()
    yield zk
    zk.stop()
    zk.close()


@pytest.fixture
def root(zk):
    path = "/kazoo-" + uuid.uuid4().hex
    zk.ensure_path(path)
    yield path


def wait_for(predicate, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_crud(zk, root):
    path = zk.create(root + "/node", b"v1")
    assert path == root + "/node"
    data, stat = zk.get(path)
    assert data == b"v1" and stat.version == 0 and stat.numChildren == 0
    stat = zk.set(path, b"v2")
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        zk.set(path, b"v3", version=0)
    with pytest.raises(NodeExistsError):
        zk.create(path)
    zk.create(path + "/child")
    with pytest.raises(NotEmptyError):
        zk.delete(path)
    assert zk.get_children(path) == ["child"]
    zk.delete(path, recursive=True)
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.get(path)
    seq = zk.create(root + "/s-", sequence=True)
    assert seq == root + "/s-0000000001"  # the root's first child was /node
    none_data = zk.create(root + "/null", None)
    assert zk.get(none_data)[0] in (b"", None)


def test_data_and_children_watch(zk, root):
    seen_data = []
    seen_children = []
    changed = threading.Event()
    kids = threading.Event()
    zk.create(root + "/w", b"0")

    @zk.DataWatch(root + "/w")
    def on_data(data, stat):
        seen_data.append(data)
        if data == b"2":
            changed.set()

    @zk.ChildrenWatch(root + "/w")
    def on_children(children):
        seen_children.append(sorted(children))
        if sorted(children) == ["a", "b"]:
            kids.set()

    zk.set(root + "/w", b"1")
    zk.set(root + "/w", b"2")
    zk.create(root + "/w/a")
    zk.create(root + "/w/b")
    assert changed.wait(WAIT), seen_data
    assert kids.wait(WAIT), seen_children
    assert seen_data[0] == b"0"


def test_ephemerals_go_with_the_session(zk, root):
    other = client()
    other.create(root + "/eph", b"", ephemeral=True)
    other.create(root + "/eph-seq-", b"", ephemeral=True, sequence=True)
    assert len(zk.get_children(root)) == 2
    gone = threading.Event()
    zk.exists(root + "/eph", watch=lambda event: gone.set())
    other.stop()
    other.close()
    assert gone.wait(WAIT)
    assert zk.get_children(root) == []


def test_a_client_that_accepts_read_only_servers_is_told_the_server_is_read_write(root):
    from kazoo.protocol.states import KeeperState

    zk = client(read_only=True)
    try:
        assert zk.client_state == KeeperState.CONNECTED
        zk.create(root + "/written", b"x")
        assert zk.get(root + "/written")[0] == b"x"
    finally:
        zk.stop()
        zk.close()


def test_lock(zk, root):
    counter = {"value": 0, "inside": 0, "max_inside": 0}
    clients = [client() for _ in range(3)]

    def worker(c):
        lock = c.Lock(root + "/lock", "worker")
        for _ in range(10):
            with lock:
                counter["inside"] += 1
                counter["max_inside"] = max(counter["max_inside"], counter["inside"])
                value = counter["value"]
                time.sleep(0.001)
                counter["value"] = value + 1
                counter["inside"] -= 1

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in clients:
        c.stop()
        c.close()
    assert counter == {"value": 30, "inside": 0, "max_inside": 1}


def test_election(zk, root):
    leaders = []
    elected = threading.Event()
    first = client()
    second = client()
    e1 = first.Election(root + "/election", "first")
    e2 = second.Election(root + "/election", "second")

    def run(election, name):
        def lead():
            leaders.append(name)
            elected.set()
            time.sleep(0.5)

        election.run(lead)

    t1 = threading.Thread(target=run, args=(e1, "first"))
    t1.start()
    assert elected.wait(WAIT)
    elected.clear()
    t2 = threading.Thread(target=run, args=(e2, "second"))
    t2.start()
    t1.join(WAIT)
    assert elected.wait(WAIT)
    t2.join(WAIT)
    assert leaders == ["first", "second"]
    first.stop()
    second.stop()


def test_queue_and_locking_queue(zk, root):
    queue = zk.Queue(root + "/queue")
    for item in (b"one", b"two", b"three"):
        queue.put(item)
    assert len(queue) == 3
    assert [queue.get(), queue.get(), queue.get()] == [b"one", b"two", b"three"]
    assert queue.get() is None

    lq = zk.LockingQueue(root + "/lqueue")
    lq.put(b"job-1")
    lq.put(b"job-2", priority=200)  # lower priority than the default 100
    assert lq.get(timeout=WAIT) == b"job-1"
    assert lq.consume()
    assert lq.get(timeout=WAIT) == b"job-2"
    assert lq.holds_lock()
    assert lq.release()
    assert lq.get(timeout=WAIT) == b"job-2"  # released, so available again
    assert lq.consume()
    assert len(lq) == 0


def test_counter(zk, root):
    counter = zk.Counter(root + "/counter")
    threads = []
    clients = [client() for _ in range(3)]
    for c in clients:
        def add(c=c):
            mine = c.Counter(root + "/counter")
            for _ in range(20):
                mine += 1
        threads.append(threading.Thread(target=add))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in clients:
        c.stop()
    assert counter.value == 60


def test_barrier_and_double_barrier(zk, root):
    barrier = zk.Barrier(root + "/barrier")
    barrier.create()
    passed = threading.Event()
    threading.Thread(target=lambda: barrier.wait(WAIT) and passed.set()).start()
    time.sleep(0.2)
    assert not passed.is_set()
    barrier.remove()
    assert passed.wait(WAIT)

    members = [client() for _ in range(3)]
    entered = []

    def member(c, name):
        b = c.DoubleBarrier(root + "/double", 3, identifier=name)
        b.enter()
        entered.append(name)
        b.leave()

    threads = [threading.Thread(target=member, args=(c, f"m{i}")) for i, c in enumerate(members)]
    for t in threads[:2]:
        t.start()
    time.sleep(0.3)
    assert entered == []  # two of three may not enter
    threads[2].start()
    for t in threads:
        t.join(WAIT)
    assert sorted(entered) == ["m0", "m1", "m2"]
    for c in members:
        c.stop()


def test_transactions(zk, root):
    zk.create(root + "/t", b"0")
    tx = zk.transaction()
    tx.create(root + "/t/a", b"a")
    tx.set_data(root + "/t", b"1")
    tx.check(root + "/t", 1)
    tx.delete(root + "/t/a")
    results = tx.commit()
    assert results[0] == root + "/t/a"
    assert results[1].version == 1
    assert results[2] is True and results[3] is True

    tx = zk.transaction()
    tx.create(root + "/t/b", b"b")
    tx.check(root + "/t", 7)
    results = tx.commit()
    assert type(results[1]).__name__ == "BadVersionError"
    assert zk.exists(root + "/t/b") is None


def test_digest_auth_and_acls(root):
    owner = client(auth_data=[("digest", "owner:secret")])
    acl = make_digest_acl("owner", "secret", all=True)
    owner.create(root + "/private", b"mine", acl=[acl])
    stranger = client()
    with pytest.raises(NoAuthError):
        stranger.get(root + "/private")
    with pytest.raises(NoAuthError):
        stranger.set(root + "/private", b"x")
    acls, _ = owner.get_acls(root + "/private")
    assert acls[0].id.id == acl.id.id
    stranger.add_auth("digest", "owner:secret")
    assert stranger.get(root + "/private")[0] == b"mine"
    owner.stop()
    stranger.stop()


def test_server_version_and_four_letter_words(zk):
    assert zk.server_version()[:2] == (3, 8)
    assert zk.command(b"ruok") == "imok"


def test_server_semantics_match_apache(zk, root):
    """Facts a client can observe that our server must reproduce exactly as Apache does."""
    from kazoo.exceptions import BadArgumentsError, NoChildrenForEphemeralsError

    q = root + "/q"
    zk.create(q)
    assert zk.create(q + "/n-", sequence=True) == q + "/n-0000000000"
    zk.create(q + "/plain")
    assert zk.create(q + "/n-", sequence=True) == q + "/n-0000000002"
    zk.delete(q + "/plain")
    assert zk.create(q + "/", sequence=True) == q + "/0000000003"  # deletes do not reuse numbers
    s = root + "/s"
    zk.create(s)
    zk.create(s + "/a")
    zk.create(s + "/b")
    zk.delete(s + "/a")
    stat = zk.exists(s)
    assert (stat.cversion, stat.numChildren) == (3, 1)  # 2 x creates - children
    for special in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        with pytest.raises(BadArgumentsError):
            zk.delete(special)
    with pytest.raises(NodeExistsError):
        zk.create("/")
    zk.create(root + "/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(root + "/eph/child")
    acl, config_stat = zk.get_acls("/zookeeper/config")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(1, "world", "anyone")]
    assert config_stat.aversion == -1  # Apache's addConfigNode: setACL(..., -1)
    for builtin in ("/", "/zookeeper", "/zookeeper/quota"):
        assert zk.get(builtin)[0] == b""  # empty data, not null (kazoo's None)
    assert "zookeeper" in zk.get_children("/")
