#!/usr/bin/env bash
# Interop checks against Apache ZooKeeper 3.8 (Debian package), as ../shared/INTEROP.md describes,
# 3.9 (Debian trixie's jars, see install_zookeeper_39) and 3.5, 3.6 and 3.7 (jars published on
# PyPI inside Apache Flink's and Apache Spark's Python packages, see install_zookeeper_from_pypi).
#
#   scripts/interop.sh            everything below, in order:
#     1. Apache ZooKeeper 3.8 (installed if needed) on a free loopback port: the zk-client test
#        suite (with tests/recipes_*.rs and discovery_*.rs), then the kazoo suite and the zkCli /
#        cli_mt checks (which proves those checks describe Apache's behaviour); then
#        tests/large_nodes.rs against it with jute.maxbuffer raised to 4 MiB; then one
#        member of a 3-member Apache ensemble alone in read-only mode: the client connects
#        read-only, and moves when the test starts the quorum; then the client suite and the
#        read-only test again against Apache 3.9, 3.7, 3.6 and 3.5 (there, operations newer
#        than the server must fail with the client's Unimplemented error);
#     2. our zk-server binary on a free loopback port: the same kazoo suite and CLI checks;
#     3. one data directory written in turn by Apache ZooKeeper, zk-server and Apache again,
#        each serving exactly what the others wrote (snapshots and txn logs in both directions);
#     4. three zk-server processes as an ensemble: kazoo and zkCli on every member see the same
#        data, and a kazoo Lock is held through a SIGKILL of the leader.
#   scripts/interop.sh install    only install the Debian packages, the 3.5-3.7 and 3.9 jars and
#                                 the kazoo venv
#   scripts/interop.sh read-only [3.5|3.6|3.7|3.8|3.9]
#                                 only the read-only part of step 1
#   scripts/interop.sh data-dir   only step 3
#   scripts/interop.sh ensemble   only step 4
#   scripts/interop.sh bench [ROUNDS]
#                                 figures, not a test: create/set/get of one zk-server next to
#                                 one Apache ZooKeeper, alternating for ROUNDS (default 3), medians;
#                                 then the footprint below
#   scripts/interop.sh footprint  figures: our server's start-to-serving time and its RSS with
#                                 100k znodes of 100 bytes
#   scripts/interop.sh bench-clients [ROUNDS]
#                                 figures, not a test: our client next to the zookeeper-client
#                                 crate (bench-compare/) against one zk-server, 1, 4 and 16
#                                 sessions, medians
#   scripts/interop.sh bench-ensemble
#                                 figures, not a test: create/set throughput and failover of a
#                                 3-member zk-server ensemble next to an Apache one
#   scripts/interop.sh clients [3.5|3.6|3.7|3.8|3.9]
#                                 only the zk-client test suite against that Apache version
#   scripts/interop.sh serve [3.5|3.6|3.7|3.8|3.9]
#                                 start Apache ZooKeeper (default 3.8) and print its
#                                 ZK_TEST_CONNECT; runs until killed
#
# Each step is a function, so later steps (kazoo, zkCli against our server) can be added the same
# way. Servers are started on 127.0.0.1 only and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

# The last command that failed, for the message when the script fails: set -e ends it
# without one (seen once in CI, during an Apache start, with no clue left).
FAILED_AT=""
set -E
trap 'FAILED_AT="line $LINENO: $BASH_COMMAND (exit $?)"' ERR

ZK_JAR=/usr/share/java/zookeeper.jar
ZK39_DIR=$PWD/target/apache-zookeeper-3.9
ZK_VERSION=3.8
ZK_CLASSPATH=$ZK_JAR
# Where the jar puts Apache's classes: Flink's jars relocate them under a prefix of theirs.
ZK_CLASS_PREFIX=""
WORK_DIR=""
ZK_PID=""
ZK_PORT=""
OURS_DIR=""
OURS_PID=""
OURS_PORT=""
ENSEMBLE_DIR=""
ENSEMBLE_MEMBERS=""
ENSEMBLE_PIDS=()
ENSEMBLE_CLIENT_PORTS=()
APACHE_MEMBER_ARGS=()
EXCHANGE_DIR=""
VENV=${KAZOO_VENV:-target/interop-venv}

log() { echo "== $*" >&2; }

install_zookeeper() {
  if [[ -f "$ZK_JAR" ]] && dpkg -s zookeeper >/dev/null 2>&1; then
    log "Apache ZooKeeper already installed ($(dpkg-query -W -f='${Version}' zookeeper))"
    return
  fi
  log "installing Apache ZooKeeper (Debian packages zookeeper, zookeeper-bin)"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends zookeeper zookeeper-bin
}

# install_zookeeper_39: Apache ZooKeeper 3.9 from Debian trixie's libzookeeper-java, as bookworm
# has only 3.8. apt downloads it with a package list of its own (checked against trixie's
# signed Release file with the host's keyring, which trusts trixie's keys) and installs
# nothing: its two jars (main and jute) are unpacked under target/ and run with the dependency
# jars 3.8's package installed (install_zookeeper first).
install_zookeeper_39() {
  if [[ -f "$ZK39_DIR/zookeeper.jar" && -f "$ZK39_DIR/zookeeper-jute.jar" ]]; then
    return
  fi
  log "downloading Apache ZooKeeper 3.9 (Debian trixie's libzookeeper-java)"
  local apt_dir
  apt_dir=$(mktemp -d /tmp/zk-apt-trixie.XXXXXX)
  # shellcheck disable=SC2064 # expand now: apt_dir is local
  trap "rm -rf '$apt_dir'; trap - RETURN" RETURN
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/jars"
  echo "deb http://deb.debian.org/debian trixie main" >"$apt_dir/sources.list"
  local apt_options=(-q -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
  apt-get "${apt_options[@]}" update >/dev/null
  (cd "$apt_dir" && apt-get "${apt_options[@]}" download libzookeeper-java)
  dpkg-deb -x "$apt_dir"/libzookeeper-java_*.deb "$apt_dir/unpacked"
  # zookeeper.jar and zookeeper-jute.jar are links to the versioned jars; copy what they name.
  cp -L "$apt_dir/unpacked/usr/share/java/zookeeper.jar" \
    "$apt_dir/unpacked/usr/share/java/zookeeper-jute.jar" "$apt_dir/jars/"
  mkdir -p "$(dirname "$ZK39_DIR")"
  rm -rf "$ZK39_DIR"
  mv "$apt_dir/jars" "$ZK39_DIR"
}

# Older Apache ZooKeeper releases, as jars inside Python packages on PyPI (Debian has only 3.8
# and 3.9, and Maven Central is out of reach here): URL, its sha256, and the jars to take.
#   3.5.9: Apache Flink 1.15's flink-shaded-zookeeper (classes relocated under FLINK_SHADED);
#   3.6.3: Apache Spark 3.5's own zookeeper and zookeeper-jute jars;
#   3.7.1: relocated inside Apache Flink 1.17's flink-dist jar; only its ZooKeeper classes are kept.
PYPI_FILES=https://files.pythonhosted.org/packages
FLINK_SHADED=org.apache.flink.shaded.zookeeper3.
declare -A ZK_PYPI_URL=(
  [3.5]=$PYPI_FILES/fa/0f/7d770f2a9e49abbbfc0d79f3608d8d2e19e2e9ef1203122f6fbc41eb887c/apache-flink-libraries-1.15.4.tar.gz
  [3.6]=$PYPI_FILES/73/e5/c9eb78cc982dafb7b5834bc5c368fe596216c8b9f7c4b4ffa104c4d2ab8f/pyspark-3.5.1.tar.gz
  [3.7]=$PYPI_FILES/80/e4/d8fa72779d8393ac896687613c71c8b312259f3422831eb6291d6e368cb1/apache-flink-libraries-1.17.2.tar.gz
)
declare -A ZK_PYPI_SHA256=(
  [3.5]=f4f622f55198073ee1be7db14ae2efe89af1a6fc9e4da8bc6e4759d7fa84f58a
  [3.6]=dd6569e547365eadc4f887bf57f153e4d582a68c4b490de475d55b9981664910
  [3.7]=1d7f7de6d3288610d0fecb7b45235343e31d644d0eacbe5e560560ed9124dcdb
)
declare -A ZK_PYPI_JARS=(
  [3.5]=apache-flink-libraries-1.15.4/deps/lib/flink-shaded-zookeeper-3.5.9.jar
  [3.6]="pyspark-3.5.1/deps/jars/zookeeper-3.6.3.jar pyspark-3.5.1/deps/jars/zookeeper-jute-3.6.3.jar"
  [3.7]=apache-flink-libraries-1.17.2/deps/lib/flink-dist-1.17.2.jar
)

# zookeeper_dir VERSION: where that version's jars are kept.
zookeeper_dir() { echo "$PWD/target/apache-zookeeper-$1"; }

# install_zookeeper_from_pypi 3.5|3.6|3.7: downloads the package (checked against its pinned
# sha256) and keeps only the ZooKeeper jars under target/. They run with the dependency jars
# 3.8's Debian package installed (install_zookeeper first).
install_zookeeper_from_pypi() {
  local version=$1 dir
  dir=$(zookeeper_dir "$version")
  if compgen -G "$dir/*.jar" >/dev/null; then
    return
  fi
  log "downloading Apache ZooKeeper $version (inside ${ZK_PYPI_URL[$version]##*/}, from PyPI)"
  local tmp
  tmp=$(mktemp -d /tmp/zk-pypi.XXXXXX)
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'; trap - RETURN" RETURN
  command -v curl >/dev/null || apt-get install -y --no-install-recommends curl
  curl -fsSL --retry 3 -o "$tmp/package.tar.gz" "${ZK_PYPI_URL[$version]}"
  echo "${ZK_PYPI_SHA256[$version]}  $tmp/package.tar.gz" | sha256sum --check --quiet
  # shellcheck disable=SC2086 # the list of jars is split on purpose
  tar -xzf "$tmp/package.tar.gz" -C "$tmp" ${ZK_PYPI_JARS[$version]}
  mkdir -p "$tmp/jars"
  if [[ $version == 3.7 ]]; then
    # flink-dist bundles all of Flink; its relocated ZooKeeper is the only part needed.
    python3 - "$tmp/${ZK_PYPI_JARS[$version]}" "$tmp/jars/zookeeper-3.7.1.jar" <<'PY'
import sys, zipfile
prefix = "org/apache/flink/shaded/zookeeper3/"
with zipfile.ZipFile(sys.argv[1]) as src, zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if item.filename.startswith(prefix):
            dst.writestr(item, src.read(item))
PY
  else
    # shellcheck disable=SC2086
    for jar in ${ZK_PYPI_JARS[$version]}; do cp "$tmp/$jar" "$tmp/jars/"; done
  fi
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir"
  mv "$tmp/jars" "$dir"
}

# debian_zookeeper_dependencies: the jars Debian's 3.8 names in its manifest, but its jute.
debian_zookeeper_dependencies() {
  python3 - "$ZK_JAR" <<'PY'
import sys, zipfile
manifest = zipfile.ZipFile(sys.argv[1]).read("META-INF/MANIFEST.MF").decode()
for line in manifest.replace("\r\n", "\n").replace("\n ", "").splitlines():
    if line.startswith("Class-Path:"):
        print(":".join(jar for jar in line.split()[1:] if "zookeeper-jute" not in jar))
PY
}

# use_zookeeper 3.5|3.6|3.7|3.8|3.9: the Apache version start_zookeeper and the ensemble
# steps run.
use_zookeeper() {
  ZK_VERSION=$1
  ZK_CLASS_PREFIX=""
  case $1 in
    3.8) ZK_CLASSPATH=$ZK_JAR ;;
    3.9)
      install_zookeeper_39
      # Its own jute jar first: the main jar's manifest names bookworm's (3.8) one.
      ZK_CLASSPATH=$ZK39_DIR/zookeeper-jute.jar:$ZK39_DIR/zookeeper.jar
      ;;
    3.5 | 3.6 | 3.7)
      install_zookeeper_from_pypi "$1"
      local jars
      jars=$(printf '%s:' "$(zookeeper_dir "$1")"/*.jar)
      ZK_CLASSPATH=$jars$(debian_zookeeper_dependencies)
      if [[ $1 != 3.6 ]]; then
        ZK_CLASS_PREFIX=$FLINK_SHADED
      fi
      ;;
    *)
      echo "unknown Apache ZooKeeper version $1 (3.5, 3.6, 3.7, 3.8 or 3.9)" >&2
      return 2
      ;;
  esac
}

# write_log4j_config FILE LEVEL: a log4j 1.2 configuration logging LEVEL and above to stdout
# (Apache ZooKeeper's own layout).
write_log4j_config() {
  cat >"$1" <<EOF
log4j.rootLogger=$2, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
EOF
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

four_letter_word() { # four_letter_word PORT WORD -> prints the reply
  local port=$1 word=$2 reply=""
  if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
    printf '%s' "$word" >&3
    reply=$(timeout 2 cat <&3 || true)
    exec 3<&- 3>&-
  fi
  printf '%s' "$reply"
}

# srvr_matches PORT REGEX: whether the server's srvr reply matches. The reply is captured
# first: `four_letter_word | grep -q` (or `| head`) can kill the writer with SIGPIPE when the
# reader stops early, which pipefail reports as the pipe failing (it ended a CI run).
srvr_matches() { [[ "$(four_letter_word "$1" srvr)" =~ $2 ]]; }

stop_pid() { # stop_pid PID NAME: SIGTERM, up to 5 s, then SIGKILL
  local pid=$1
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    log "stopping $2 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}

cleanup() {
  local rc=$?
  if ((rc != 0)); then
    echo "interop.sh: failed (exit $rc)${FAILED_AT:+ at $FAILED_AT}" >&2
    if [[ -n "$WORK_DIR" && -f "$WORK_DIR/zookeeper.log" ]]; then
      tail -n 20 "$WORK_DIR/zookeeper.log" >&2 || true
    fi
  fi
  stop_zookeeper
  stop_our_server
  stop_ensemble
  if [[ -n "$EXCHANGE_DIR" && -d "$EXCHANGE_DIR" ]]; then
    rm -rf "$EXCHANGE_DIR"
  fi
}

install_kazoo() {
  if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import kazoo, pytest' 2>/dev/null; then
    return
  fi
  log "installing kazoo and pytest into $VENV (pinned in interop/kazoo/requirements.txt)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r interop/kazoo/requirements.txt
}

# start_our_server [BINARY [DATA_DIR [CFG_LINE]]]: the debug build unless a binary is given; a
# data directory of its own unless one is given; CFG_LINE is added to its zoo.cfg.
start_our_server() {
  local bin=${1:-} data_dir=${2:-} extra=${3:-}
  if [[ -z "$bin" ]]; then
    log "building zk-server"
    cargo build --quiet -p zk-server --bin zk-server
    bin=target/debug/zk-server
  fi
  OURS_DIR=$(mktemp -d /tmp/zk-ours.XXXXXX)
  OURS_PORT=$(free_port)
  cat >"$OURS_DIR/zoo.cfg" <<EOF
tickTime=2000
dataDir=${data_dir:-$OURS_DIR/data}
clientPort=$OURS_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
extendedTypesEnabled=true
$extra
EOF
  log "starting zk-server on 127.0.0.1:$OURS_PORT"
  "$bin" --config "$OURS_DIR/zoo.cfg" >"$OURS_DIR/zk-server.log" 2>&1 &
  OURS_PID=$!
  for _ in $(seq 1 100); do
    if [[ "$(four_letter_word "$OURS_PORT" ruok)" == "imok" ]]; then
      log "zk-server is up (pid $OURS_PID)"
      return
    fi
    sleep 0.05
  done
  tail -n 40 "$OURS_DIR/zk-server.log" >&2 || true
  echo "zk-server did not answer ruok within 5 s" >&2
  return 1
}

stop_our_server() {
  stop_pid "$OURS_PID" zk-server
  OURS_PID=""
  if [[ -n "$OURS_DIR" && -d "$OURS_DIR" ]]; then
    rm -rf "$OURS_DIR"
  fi
  OURS_DIR=""
}

start_our_ensemble() {
  cargo build --quiet -p zk-server --bin zk-server
  start_ensemble ours
}

# write_ensemble_configs [CFG_LINES]: ENSEMBLE_DIR/{1,2,3}/zoo.cfg (and myid) of three members
# on loopback, tickTime 200 ms, with CFG_LINES added; sets ENSEMBLE_MEMBERS and
# ENSEMBLE_CLIENT_PORTS.
write_ensemble_configs() {
  local extra=${1:-}
  ENSEMBLE_DIR=$(mktemp -d /tmp/zk-ensemble.XXXXXX)
  local servers="" i
  local secret="interop-ensemble-secret-$RANDOM$RANDOM"
  ENSEMBLE_CLIENT_PORTS=()
  for i in 1 2 3; do
    servers+="server.$i=127.0.0.1:$(free_port):$(free_port)"$'\n'
    ENSEMBLE_CLIENT_PORTS+=("$(free_port)")
  done
  for i in 1 2 3; do
    mkdir -p "$ENSEMBLE_DIR/$i"
    echo "$i" >"$ENSEMBLE_DIR/$i/myid"
    cat >"$ENSEMBLE_DIR/$i/zoo.cfg" <<EOF
tickTime=200
initLimit=10
syncLimit=5
dataDir=$ENSEMBLE_DIR/$i
clientPort=${ENSEMBLE_CLIENT_PORTS[$((i - 1))]}
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
quorum.auth.secret=$secret
$extra
$servers
EOF
    ENSEMBLE_MEMBERS+="${ENSEMBLE_MEMBERS:+,}127.0.0.1:${ENSEMBLE_CLIENT_PORTS[$((i - 1))]}"
  done
  # For Apache members (warnings and errors): 3.9's jar, unlike Debian's 3.8 one, brings no
  # log4j configuration.
  write_log4j_config "$ENSEMBLE_DIR/log4j.properties" WARN
}

# apache_member_args I [JAVA_OPTION...]: sets APACHE_MEMBER_ARGS to the command line of Apache
# member I of ENSEMBLE_DIR.
apache_member_args() {
  local i=$1
  shift
  APACHE_MEMBER_ARGS=(java -Dlog4j.configuration="file:$ENSEMBLE_DIR/log4j.properties" "$@"
    -cp "$ZK_CLASSPATH:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
    "${ZK_CLASS_PREFIX}org.apache.zookeeper.server.quorum.QuorumPeerMain" "$ENSEMBLE_DIR/$i/zoo.cfg")
}

# start_ensemble ours|apache [zk-server binary]: three members on loopback, tickTime 200 ms.
start_ensemble() {
  local kind=$1 bin=${2:-target/debug/zk-server} i
  write_ensemble_configs
  log "starting a 3-member $kind ensemble: $ENSEMBLE_MEMBERS"
  for i in 1 2 3; do
    if [[ $kind == apache ]]; then
      apache_member_args "$i"
      "${APACHE_MEMBER_ARGS[@]}" >"$ENSEMBLE_DIR/$i/server.log" 2>&1 &
    else
      "$bin" --config "$ENSEMBLE_DIR/$i/zoo.cfg" >"$ENSEMBLE_DIR/$i/server.log" 2>&1 &
    fi
    ENSEMBLE_PIDS+=($!)
  done
  local serving port
  for _ in $(seq 1 600); do
    serving=0
    for port in "${ENSEMBLE_CLIENT_PORTS[@]}"; do
      if srvr_matches "$port" "Mode: (leader|follower)"; then
        serving=$((serving + 1))
      fi
    done
    if [[ $serving == 3 ]]; then
      log "the ensemble serves (pids ${ENSEMBLE_PIDS[*]})"
      return
    fi
    sleep 0.05
  done
  tail -n 20 "$ENSEMBLE_DIR"/*/server.log >&2 || true
  echo "the ensemble did not elect a leader within 30 s" >&2
  return 1
}

# run_read_only_client_test: member 1 of a 3-member Apache ensemble alone, in read-only mode
# (readonlymode.enabled); the client test against it, which starts members 2 and 3 itself with
# the script written here (their pids land in ENSEMBLE_DIR/pids, which stop_ensemble reads).
# A read-only member refuses to create global sessions (ReadOnlyRequestProcessor), so read-only
# clients need localSessionsEnabled, as in any Apache deployment that uses read-only mode. The
# test asks for 20 s sessions (tickTime 200 caps them at 4 s by default), so that a slow
# election on a loaded machine is not a session loss.
run_read_only_client_test() {
  local attempt
  for attempt in 1 2; do
    start_lone_read_only_member && break
    # Setup, not the test: once more on fresh ports, after showing why.
    tail -n 40 "$ENSEMBLE_DIR/1/server.log" >&2
    echo "the lone member did not enter read-only mode within 30 s (attempt $attempt)" >&2
    stop_ensemble
    if ((attempt == 2)); then
      return 1
    fi
  done
  log "client read-only test against $ENSEMBLE_MEMBERS"
  ZK_TEST_READ_ONLY_CONNECT="$ENSEMBLE_MEMBERS" \
    ZK_TEST_READ_ONLY_QUORUM_UP="bash $(printf %q "$ENSEMBLE_DIR/quorum-up.sh")" \
    cargo test --test client_read_only -- --ignored
  stop_ensemble
}

# start_lone_read_only_member: member 1 of a new 3-member Apache ensemble alone, with
# ENSEMBLE_DIR/quorum-up.sh starting the other two; fails unless member 1 serves read-only
# within 30 s.
start_lone_read_only_member() {
  write_ensemble_configs $'localSessionsEnabled=true\nmaxSessionTimeout=30000'
  local ro=-Dreadonlymode.enabled=true up="$ENSEMBLE_DIR/quorum-up.sh" i started=$SECONDS
  apache_member_args 1 "$ro"
  "${APACHE_MEMBER_ARGS[@]}" >"$ENSEMBLE_DIR/1/server.log" 2>&1 &
  ENSEMBLE_PIDS+=($!)
  log "Apache $ZK_VERSION member 1 of 3 alone, in read-only mode (pid $!)"
  for i in 2 3; do
    apache_member_args "$i" "$ro"
    printf '%q ' "${APACHE_MEMBER_ARGS[@]}" >>"$up"
    printf '>%q 2>&1 &\necho $! >>%q\n' "$ENSEMBLE_DIR/$i/server.log" "$ENSEMBLE_DIR/pids" >>"$up"
  done
  for _ in $(seq 1 300); do
    if srvr_matches "${ENSEMBLE_CLIENT_PORTS[0]}" "Mode: read-only"; then
      log "member 1 serves read-only after $((SECONDS - started)) s"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

run_ensemble_kazoo_tests() {
  log "kazoo and zkCli against the ensemble"
  ZK_ENSEMBLE="$ENSEMBLE_MEMBERS" ZK_ENSEMBLE_PIDS="$(IFS=,; echo "${ENSEMBLE_PIDS[*]}")" \
    timeout 600 "$VENV/bin/python" -m pytest -q interop/kazoo/test_ensemble.py
}

# stop_ensemble: stops the members started (ENSEMBLE_PIDS, and those listed in ENSEMBLE_DIR/pids)
# and removes their directory.
stop_ensemble() {
  local pid
  if [[ -n "$ENSEMBLE_DIR" && -f "$ENSEMBLE_DIR/pids" ]]; then
    mapfile -t -O "${#ENSEMBLE_PIDS[@]}" ENSEMBLE_PIDS <"$ENSEMBLE_DIR/pids"
  fi
  for pid in "${ENSEMBLE_PIDS[@]}"; do
    stop_pid "$pid" "ensemble member"
  done
  ENSEMBLE_PIDS=()
  if [[ -n "$ENSEMBLE_DIR" && -d "$ENSEMBLE_DIR" ]]; then
    rm -rf "$ENSEMBLE_DIR"
  fi
  ENSEMBLE_DIR=""
  ENSEMBLE_MEMBERS=""
}

# bench_ensembles: create and set throughput, then failover, of a 3-member zk-server ensemble
# and a 3-member Apache ZooKeeper ensemble on this machine (same load generator, tickTime).
bench_ensembles() {
  cargo build --quiet --release -p zk-server --bin zk-server
  cargo build --quiet --release --example bench --example failover
  local kind op
  for kind in ours apache; do
    start_ensemble "$kind" target/release/zk-server
    for op in create set; do
      log "bench $op against the $kind ensemble"
      target/release/examples/bench --connect "$ENSEMBLE_MEMBERS" --op "$op" \
        --clients 8 --depth 64 --size 100 --ops 200000 --duration 20 | tail -n 1 |
        sed "s/^RESULT/RESULT ensemble=$kind/"
    done
    stop_ensemble
  done
  log "failover, zk-server ensemble"
  target/release/examples/failover --rounds 10 | tail -n 1
  log "failover, Apache ZooKeeper ensemble"
  target/release/examples/failover --rounds 10 --apache | tail -n 1
}

stop_zookeeper() {
  stop_pid "$ZK_PID" "Apache ZooKeeper"
  ZK_PID=""
  if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
    rm -rf "$WORK_DIR"
  fi
  WORK_DIR=""
}

# run_data_dir_exchange: Apache ZooKeeper and zk-server take turns on one data directory
# (Apache -> zk-server -> Apache), each checking what the others wrote and adding its own
# nodes; snapCount=50 so that snapshots and log files of both kinds are read.
run_data_dir_exchange() {
  log "data-directory exchange between Apache ZooKeeper and zk-server"
  EXCHANGE_DIR=$(mktemp -d /tmp/zk-exchange.XXXXXX)
  local py=("$VENV/bin/python" interop/data_dir/exchange.py) data="$EXCHANGE_DIR/data"
  start_zookeeper "$data" snapCount=50
  "${py[@]}" "127.0.0.1:$ZK_PORT" write apache 400
  stop_zookeeper
  start_our_server "" "$data" snapCount=50
  "${py[@]}" "127.0.0.1:$OURS_PORT" check apache 400
  "${py[@]}" "127.0.0.1:$OURS_PORT" write ours 400
  stop_our_server
  start_zookeeper "$data" snapCount=50
  "${py[@]}" "127.0.0.1:$ZK_PORT" check apache 400
  "${py[@]}" "127.0.0.1:$ZK_PORT" check ours 400
  stop_zookeeper
  rm -rf "$EXCHANGE_DIR"
  EXCHANGE_DIR=""
}

# bench_clients [ROUNDS]: create/set/get (100 B; 1 session x 256 in flight, 4 x 64 and 16 x 16)
# with our client (examples/bench.rs) and with the same driver on the zookeeper-client crate
# (bench-compare/), alternating against one release zk-server; then medians and our ratios.
bench_clients() {
  local rounds=${1:-3} round driver op shape
  # Sessions x requests in flight per session, 256 in flight in all: one session (one
  # process's client, as most applications have), the default 4, and many small ones.
  local shapes=(1x256 4x64 16x16)
  cargo build --quiet --release -p zk-server --bin zk-server
  cargo build --quiet --release --example bench
  log "building bench-compare (the zookeeper-client driver)"
  (cd bench-compare && CARGO_TARGET_DIR=../target/bench-compare cargo build --quiet --release)
  local -A bin=([ours]=target/release/examples/bench
    [kezhuw]=target/bench-compare/release/bench-kezhuw)
  start_our_server target/release/zk-server
  local results
  results=$(mktemp /tmp/zk-bench.XXXXXX)
  local out cpu server_before server_after server_cpu ops=300000
  out=$(mktemp /tmp/zk-bench-out.XXXXXX)
  local order
  for round in $(seq 1 "$rounds"); do
    # Each driver goes first in every other round: the server's state (snapshots after the
    # previous run's writes, its allocator) favours neither.
    order=(kezhuw ours)
    if ((round % 2 == 0)); then
      order=(ours kezhuw)
    fi
    for driver in "${order[@]}"; do
      for shape in "${shapes[@]}"; do
        for op in create set get; do
          # The driver's own CPU time (user + system), from bash's `time`: what the client
          # library costs per operation, whatever the server's speed. And what the server
          # spent meanwhile (its work depends on how the client batches requests).
          server_before=$(process_cpu_ticks "$OURS_PID")
          cpu=$( { TIMEFORMAT='%U %S'; time "${bin[$driver]}" --connect "127.0.0.1:$OURS_PORT" \
            --op "$op" --clients "${shape%x*}" --depth "${shape#*x}" --size 100 --ops "$ops" \
            >"$out" 2>/dev/null; } 2>&1)
          cpu=$(awk -v ops="$ops" '{printf "%.2f", ($1 + $2) * 1e6 / ops}' <<<"$cpu")
          server_after=$(process_cpu_ticks "$OURS_PID")
          server_cpu=$(awk -v ops="$ops" -v before="$server_before" -v after="$server_after" \
            -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (after - before) / hz * 1e6 / ops}')
          tail -n 1 "$out" | sed "s/^RESULT/RESULT client=$driver round=$round shape=$shape/;
            s/\$/ cpu_us_per_op=$cpu server_cpu_us_per_op=$server_cpu/" | tee -a "$results"
        done
      done
    done
  done
  rm -f "$out"
  for driver in kezhuw ours; do
    "${bin[$driver]}" --connect "127.0.0.1:$OURS_PORT" --op get --clients 1 --depth 1 \
      --size 100 --ops 20000 2>/dev/null | tail -n 1 |
      sed "s/^RESULT/RESULT client=$driver sequential=1/" | tee -a "$results"
  done
  stop_our_server
  summarize_bench "$results" client kezhuw ours
  rm -f "$results"
}

# process_cpu_ticks PID: the user + system CPU time a process has used, in clock ticks.
process_cpu_ticks() {
  # Fields 14 and 15 of /proc/PID/stat, counted after the command name (which may hold
  # spaces) and its closing parenthesis.
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# summarize_bench FILE KEY BASELINE OURS: median throughput and p99 per op of the RESULT lines
# tagged KEY=BASELINE and KEY=OURS (sequential runs left out), and our ratios.
summarize_bench() {
  python3 - "$@" <<'PY'
import statistics, sys
path, key, base, ours = sys.argv[1:5]
runs = {}
for line in open(path):
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    if "sequential" not in f:
        runs.setdefault((f[key], f.get("shape", ""), f["op"]), []).append(f)
def median(fs, field):
    return statistics.median(float(f[field]) for f in fs)
cpu = all("cpu_us_per_op" in f for fs in runs.values() for f in fs)
server_cpu = all("server_cpu_us_per_op" in f for fs in runs.values() for f in fs)
print(f"{'op':13} {base + ' ops/s':>14} {'ours ops/s':>11} {'ratio':>6} {base + ' p99':>12} {'ours p99':>9} {'ratio':>6}"
      + (f" {base + ' cpu/op':>13} {'ours cpu/op':>11}" if cpu else "")
      + (f" {'server cpu/op (' + base + ', ours)':>28}" if server_cpu else ""))
shapes = sorted({shape for (_, shape, _) in runs}, key=lambda s: [int(n) for n in s.split("x") if n])
for shape, op in ((shape, op) for shape in shapes for op in ("create", "set", "get")):
    a, o = runs.get((base, shape, op)), runs.get((ours, shape, op))
    if not a or not o:
        continue
    at, ot = median(a, "ops_per_s"), median(o, "ops_per_s")
    ap, op99 = median(a, "p99_us"), median(o, "p99_us")
    line = f"{(op + ' ' + shape).strip():13} {at:14.0f} {ot:11.0f} {ot / at:5.2f}x {ap:10.0f}us {op99:7.0f}us {op99 / ap:5.2f}x"
    if cpu:
        # The driver's CPU time over the whole run (setup and cleanup too) per timed op.
        line += f" {median(a, 'cpu_us_per_op'):11.2f}us {median(o, 'cpu_us_per_op'):9.2f}us"
    if server_cpu:
        line += f" {median(a, 'server_cpu_us_per_op'):17.2f}us, {median(o, 'server_cpu_us_per_op'):.2f}us"
    print(line)
PY
}

# bench_standalone [ROUNDS]: create/set/get (4 clients x 64 in flight, 100 B, fsync on) against
# one zk-server and one Apache ZooKeeper on this machine, each started afresh every round and
# warmed up with a mixed run, alternating; then the median figures per server and our ratios.
bench_standalone() {
  local rounds=${1:-3} round kind op port
  cargo build --quiet --release -p zk-server --bin zk-server
  cargo build --quiet --release --example bench
  local results
  results=$(mktemp /tmp/zk-bench.XXXXXX)
  for round in $(seq 1 "$rounds"); do
    for kind in apache ours; do
      if [[ $kind == apache ]]; then
        start_zookeeper
        port=$ZK_PORT
      else
        start_our_server target/release/zk-server
        port=$OURS_PORT
      fi
      # Warm up (the JVM's JIT above all), then measure.
      target/release/examples/bench --connect "127.0.0.1:$port" --op mixed --clients 4 \
        --depth 64 --size 100 --ops 200000 >/dev/null 2>&1
      for op in create set get; do
        target/release/examples/bench --connect "127.0.0.1:$port" --op "$op" --clients 4 \
          --depth 64 --size 100 --ops 200000 2>/dev/null | tail -n 1 |
          sed "s/^RESULT/RESULT server=$kind round=$round/" | tee -a "$results"
      done
      if [[ $kind == apache ]]; then
        stop_zookeeper
        rm -rf "$WORK_DIR"
        WORK_DIR=""
      else
        stop_our_server
      fi
    done
  done
  summarize_bench "$results" server apache ours
  rm -f "$results"
  bench_footprint
}

# bench_footprint: our release server's start-to-serving time (exec to the first answer to
# `srvr`, on an empty data dir) and its resident memory (MB, 10^6 bytes) holding 100k znodes of
# 100 bytes, right after creating them and 10 s later.
bench_footprint() {
  local dir
  dir=$(mktemp -d /tmp/zk-footprint.XXXXXX)
  OURS_PORT=$(free_port)
  python3 - target/release/zk-server "$dir" "$OURS_PORT" <<'PY' &
import socket, subprocess, sys, time
binary, data_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.monotonic()
server = subprocess.Popen([binary, "--port", str(port), "--address", "127.0.0.1", "--data-dir", data_dir],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while server.poll() is None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"srvr")  # whitelisted by default, unlike ruok
            if s.recv(64).startswith(b"Zookeeper version"):
                break
    except OSError:
        time.sleep(0.0005)
print(f"FOOTPRINT start_to_serving_ms={(time.monotonic() - start) * 1000:.1f}", flush=True)
server.wait()
PY
  local launcher=$!
  sleep 1
  OURS_PID=$(pgrep -f -- "--data-dir $dir" | head -n 1)
  target/release/examples/bench --connect "127.0.0.1:$OURS_PORT" --op create --clients 4 \
    --depth 64 --size 100 --ops 100000 --keep >/dev/null 2>&1
  local rss_loaded rss_settled
  rss_loaded=$(awk '/VmRSS/ {printf "%.1f", $2 * 1.024 / 1000}' "/proc/$OURS_PID/status")
  sleep 10 # the allocator returns freed pages (snapshot copies, buffers) within ~10 s
  rss_settled=$(awk '/VmRSS/ {printf "%.1f", $2 * 1.024 / 1000}' "/proc/$OURS_PID/status")
  echo "FOOTPRINT znodes=100000 size=100 rss_mb_right_after_load=$rss_loaded rss_mb_settled=$rss_settled"
  stop_pid "$OURS_PID" zk-server
  wait "$launcher" 2>/dev/null || true
  OURS_PID=""
  rm -rf "$dir"
}

build_discovery_example() {
  log "building examples/discovery.rs (the provider the kazoo discovery test reads)"
  cargo build --quiet --example discovery
}

run_kazoo_suite() { # run_kazoo_suite PORT NAME
  log "kazoo suite against $2 (127.0.0.1:$1)"
  ZK_CONNECT="127.0.0.1:$1" DISCOVERY_EXAMPLE="$PWD/target/debug/examples/discovery" \
    timeout 600 "$VENV/bin/python" -m pytest -q interop/kazoo
}

run_cli_checks() { # run_cli_checks PORT NAME
  log "zkCli and cli_mt checks against $2 (127.0.0.1:$1)"
  bash interop/cli_checks.sh "$1"
}

# start_zookeeper [DATA_DIR [CFG_LINE]]: a data directory of its own unless one is given;
# CFG_LINE is added to its zoo.cfg; $ZK_JVM_FLAGS, if set, are added to the JVM's flags.
start_zookeeper() {
  local data_dir=${1:-} extra=${2:-}
  WORK_DIR=$(mktemp -d /tmp/zk-interop.XXXXXX)
  ZK_PORT=$(free_port)
  data_dir=${data_dir:-$WORK_DIR/data}
  mkdir -p "$data_dir"
  cat >"$WORK_DIR/zoo.cfg" <<EOF
tickTime=2000
dataDir=$data_dir
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
$extra
EOF
  write_log4j_config "$WORK_DIR/log4j.properties" INFO
  local cp="$WORK_DIR:$ZK_CLASSPATH:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
  log "starting Apache ZooKeeper $ZK_VERSION on 127.0.0.1:$ZK_PORT (log: $WORK_DIR/zookeeper.log)"
  java -Dzookeeper.root.logger=INFO,CONSOLE \
    -Dlog4j.configuration="file:$WORK_DIR/log4j.properties" \
    -Dzookeeper.extendedTypesEnabled=true \
    ${ZK_JVM_FLAGS:-} \
    -cp "$cp" "${ZK_CLASS_PREFIX}org.apache.zookeeper.server.quorum.QuorumPeerMain" \
    "$WORK_DIR/zoo.cfg" >"$WORK_DIR/zookeeper.log" 2>&1 &
  ZK_PID=$!
  for _ in $(seq 1 150); do
    if [[ "$(four_letter_word "$ZK_PORT" ruok)" == "imok" ]] &&
      ! srvr_matches "$ZK_PORT" "not currently serving"; then
      local version
      version=$(four_letter_word "$ZK_PORT" srvr)
      version=${version%%$'\n'*}
      log "Apache ZooKeeper is up (pid $ZK_PID): $version"
      if [[ "$version" != "Zookeeper version: $ZK_VERSION."* ]]; then
        echo "expected Apache ZooKeeper $ZK_VERSION, got: $version" >&2
        return 1
      fi
      return
    fi
    if ! kill -0 "$ZK_PID" 2>/dev/null; then
      tail -n 40 "$WORK_DIR/zookeeper.log" >&2 || true
      echo "Apache ZooKeeper exited during startup" >&2
      return 1
    fi
    sleep 0.1
  done
  tail -n 40 "$WORK_DIR/zookeeper.log" >&2 || true
  echo "Apache ZooKeeper did not answer ruok within 15 s" >&2
  return 1
}

# run_client_tests: the client suites and the recipes' and discovery's tests that run against
# any server (tests/client_*.rs, recipes_*.rs, discovery_*.rs) against the last Apache started.
run_client_tests() {
  log "client test suite against Apache ZooKeeper $ZK_VERSION 127.0.0.1:$ZK_PORT"
  local tests=()
  for f in tests/client_*.rs tests/recipes_*.rs tests/discovery_*.rs; do
    tests+=(--test "$(basename "$f" .rs)")
  done
  ZK_TEST_CONNECT="127.0.0.1:$ZK_PORT" cargo test "${tests[@]}" -- --test-threads=4
}

# run_large_node_tests: tests/large_nodes.rs against Apache ZooKeeper started with a 4 MiB
# jute.maxbuffer (the limit those tests expect).
run_large_node_tests() {
  ZK_JVM_FLAGS=-Djute.maxbuffer=4194304 start_zookeeper
  log "large-node tests against Apache ZooKeeper $ZK_VERSION with jute.maxbuffer=4194304"
  ZK_TEST_LARGE_CONNECT="127.0.0.1:$ZK_PORT" cargo test --test large_nodes
  stop_zookeeper
}

main() {
  local cmd=${1:-all}
  case "$cmd" in
    install)
      install_zookeeper
      install_zookeeper_39
      for version in 3.5 3.6 3.7; do install_zookeeper_from_pypi "$version"; done
      install_kazoo
      ;;
    serve)
      trap cleanup EXIT INT TERM
      install_zookeeper
      use_zookeeper "${2:-3.8}"
      start_zookeeper
      echo "ZK_TEST_CONNECT=127.0.0.1:$ZK_PORT"
      wait "$ZK_PID"
      ;;
    all)
      trap cleanup EXIT INT TERM
      install_zookeeper
      install_kazoo
      build_discovery_example
      start_zookeeper
      run_client_tests
      run_kazoo_suite "$ZK_PORT" "Apache ZooKeeper"
      run_cli_checks "$ZK_PORT" "Apache ZooKeeper"
      stop_zookeeper
      run_large_node_tests
      run_read_only_client_test
      use_zookeeper 3.9
      start_zookeeper
      run_client_tests
      stop_zookeeper
      run_read_only_client_test
      for version in 3.7 3.6 3.5; do
        use_zookeeper "$version"
        start_zookeeper
        run_client_tests
        stop_zookeeper
        run_read_only_client_test
      done
      use_zookeeper 3.8
      start_our_server
      run_kazoo_suite "$OURS_PORT" "zk-server"
      run_cli_checks "$OURS_PORT" "zk-server"
      stop_our_server
      run_data_dir_exchange
      start_our_ensemble
      run_ensemble_kazoo_tests
      stop_ensemble
      log "interop: all steps passed"
      ;;
    bench)
      trap cleanup EXIT INT TERM
      install_zookeeper
      bench_standalone "${2:-3}"
      ;;
    footprint)
      trap cleanup EXIT INT TERM
      cargo build --quiet --release -p zk-server --bin zk-server
      cargo build --quiet --release --example bench
      bench_footprint
      ;;
    clients)
      trap cleanup EXIT INT TERM
      install_zookeeper
      use_zookeeper "${2:-3.8}"
      start_zookeeper
      run_client_tests
      stop_zookeeper
      ;;
    bench-clients)
      trap cleanup EXIT INT TERM
      bench_clients "${2:-3}"
      ;;
    bench-ensemble)
      trap cleanup EXIT INT TERM
      install_zookeeper
      bench_ensembles
      ;;
    read-only)
      trap cleanup EXIT INT TERM
      install_zookeeper
      use_zookeeper "${2:-3.8}"
      run_read_only_client_test
      ;;
    data-dir)
      trap cleanup EXIT INT TERM
      install_zookeeper
      install_kazoo
      run_data_dir_exchange
      ;;
    ensemble)
      trap cleanup EXIT INT TERM
      install_zookeeper
      install_kazoo
      start_our_ensemble
      run_ensemble_kazoo_tests
      stop_ensemble
      ;;
    *)
      echo "usage: $0 [all|install|serve [3.5-3.9]|clients [3.5-3.9]|read-only [3.5-3.9]|data-dir|ensemble|bench [ROUNDS]|bench-clients [ROUNDS]|footprint|bench-ensemble]" >&2
      exit 2
      ;;
  esac
}

main "$@"
