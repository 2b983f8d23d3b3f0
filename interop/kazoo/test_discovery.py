"""A service instance registered by our Rust discovery, read by kazoo: the znode layout and
the JSON are what Java Curator's ServiceDiscovery writes (CURATOR.md §3), so Java, Python and
Rust services can share a base path.

scripts/interop.sh builds examples/discovery.rs and passes its path in DISCOVERY_EXAMPLE; the
test runs it as a provider process against ZK_CONNECT, reads its node, then stops it with
SIGINT (it unregisters) and checks the node is gone.
"""

import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from kazoo.client import KazooClient

CONNECT = os.environ.get("ZK_CONNECT", "127.0.0.1:2181")
EXAMPLE = os.environ.get("DISCOVERY_EXAMPLE")
WAIT = 15

CURATOR_FIELD_ORDER = [
    "name",
    "id",
    "address",
    "port",
    "sslPort",
    "payload",
    "registrationTimeUTC",
    "serviceType",
    "uriSpec",
]


def wait_for(predicate, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(EXAMPLE is None, reason="DISCOVERY_EXAMPLE not set (run scripts/interop.sh)")
def test_kazoo_reads_the_instance_curator_would_write():
    service = "svc-" + uuid.uuid4().hex[:8]
    instance_id = "interop-1"
    path = f"/services/{service}/{instance_id}"
    started = int(time.time() * 1000)
    provider = subprocess.Popen(
        [EXAMPLE, "--connect", CONNECT, "--role", "provider", "--service", service,
         "--id", instance_id, "--port", "8081"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    zk = KazooClient(hosts=CONNECT, timeout=10)
    zk.start(timeout=WAIT)
    try:
        assert wait_for(lambda: zk.exists(path) is not None), "the provider never registered"
        data, stat = zk.get(path)
        assert stat.ephemeralOwner != 0, "a DYNAMIC instance is an ephemeral node"
        raw = data.decode("utf-8")

        # Jackson's compact form, Curator's field order, nulls written, no `enabled`
        # (Curator's default compatible serializer).
        pairs = json.loads(raw, object_pairs_hook=lambda kv: kv)
        assert [k for k, _ in pairs] == CURATOR_FIELD_ORDER
        instance = dict(pairs)
        assert json.dumps(json.loads(raw), separators=(",", ":")) == raw
        assert instance["name"] == service
        assert instance["id"] == instance_id
        assert isinstance(instance["address"], str) and instance["address"]
        assert instance["port"] == 8081
        assert instance["sslPort"] is None
        assert instance["payload"] == f"version 1.0 of {instance_id}"
        assert started - 60_000 <= instance["registrationTimeUTC"] <= int(time.time() * 1000)
        assert instance["serviceType"] == "DYNAMIC"
        parts = [dict(p) for p in dict(instance["uriSpec"])["parts"]]
        assert parts == [
            {"value": "scheme", "variable": True},
            {"value": "://", "variable": False},
            {"value": "address", "variable": True},
            {"value": ":", "variable": False},
            {"value": "port", "variable": True},
        ]
        assert zk.get_children(f"/services/{service}") == [instance_id]

        # Ctrl-C: the provider unregisters before exiting.
        provider.send_signal(signal.SIGINT)
        out, _ = provider.communicate(timeout=WAIT)
        assert provider.returncode == 0, out
        assert zk.exists(path) is None
    finally:
        if provider.poll() is None:
            provider.kill()
            provider.wait()
        zk.stop()
        zk.close()
