#!/usr/bin/env bash
# Apache's Java CLI (zkCli.sh) and C client (cli_mt) against a running server:
#   interop/cli_checks.sh PORT
# Fails (non-zero) on the first check whose output is not what Apache ZooKeeper gives.
set -euo pipefail
PORT=$1
SERVER=127.0.0.1:$PORT
ZKCLI=/usr/share/zookeeper/bin/zkCli.sh
CLI_MT=/usr/lib/zookeeper/bin/cli_mt
ROOT=/cli-$$-$RANDOM

fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs zkCli commands (one per line on stdin) in one session; prints the output without the
# JVM's logging noise.
zkcli() { timeout 60 "$ZKCLI" -server "$SERVER" 2>&1 | grep -v -E 'log4j|SLF4J|^\s*$' || true; }

expect() { # expect OUTPUT PATTERN DESCRIPTION
  grep -q -E -- "$2" <<<"$1" || { echo "$1" >&2; fail "$3: no line matching /$2/"; }
}

out=$(zkcli <<EOF2
create $ROOT top
create -s -e $ROOT/seq- eph
ls -s $ROOT
get -s $ROOT
set $ROOT changed
stat $ROOT
getEphemerals $ROOT
create $ROOT/child c
delete $ROOT/child
ls $ROOT
quit
EOF2
)
expect "$out" "^Created $ROOT\$" "create"
expect "$out" "^Created $ROOT/seq-0000000000\$" "create -s -e"
expect "$out" "^\[seq-0000000000\]\$" "ls -s lists the child"
expect "$out" "^numChildren = 1\$" "ls -s/get -s print the stat"
expect "$out" "^top\$" "get prints the data"
expect "$out" "^dataVersion = 1\$" "set bumps the version"
expect "$out" "^\[$ROOT/seq-0000000000\]\$" "getEphemerals"
echo "ok: zkCli create -s -e, ls -s, get -s, set, stat, getEphemerals, delete"

out=$(zkcli <<EOF2
addauth digest alice:secret
create $ROOT/secret s
setAcl $ROOT/secret auth:alice:secret:cdrwa
getAcl $ROOT/secret
get $ROOT/secret
quit
EOF2
)
expect "$out" "^'digest,'alice:" "getAcl shows the digest id"
expect "$out" "^: cdrwa\$" "getAcl shows the perms"
expect "$out" "^s\$" "the owner reads its node"
out=$(zkcli <<EOF2
get $ROOT/secret
quit
EOF2
)
expect "$out" "Insufficient permission|NoAuth" "a stranger may not read"
echo "ok: zkCli addauth digest, setAcl, getAcl, NoAuth"

out=$(zkcli <<EOF2
create $ROOT/w v
get -w $ROOT/w
set $ROOT/w v2
quit
EOF2
)
expect "$out" "type:NodeDataChanged path:$ROOT/w" "get -w fires on set"
echo "ok: zkCli get -w"


out=$(zkcli <<EOF2
addauth digest alice:secret
deleteall $ROOT
ls $ROOT
quit
EOF2
)
expect "$out" "Node does not exist|NoNode" "deleteall removes the tree"
echo "ok: zkCli deleteall"

# The C client reads exactly 41 bytes of handshake and expects Apache's framing.
cmt() { timeout 20 "$CLI_MT" "$SERVER" "cmd:$1" 2>&1 | grep -v -E 'ZOO_(INFO|DEBUG)|^\s*$' || true; }
out=$(cmt "create $ROOT")
expect "$out" "^\[$ROOT\]: rc = 0" "cli_mt create"
out=$(cmt "ls /")
expect "$out" "^/: rc = 0" "cli_mt ls"
expect "$out" "${ROOT#/}" "cli_mt ls lists the node"
out=$(cmt "get $ROOT")
expect "$out" "$ROOT: rc = 0" "cli_mt get"
out=$(cmt "delete $ROOT")
expect "$out" "$ROOT: rc = 0" "cli_mt delete"
echo "ok: cli_mt create, ls, get, delete"
