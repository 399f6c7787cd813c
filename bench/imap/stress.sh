#!/usr/bin/env bash
# IMAP protocol stress: CLIENTS concurrent clients on one INBOX for SECONDS
# seconds (random FETCH, STORE of flags and keywords, EXPUNGE, APPEND, NOOP),
# each checking every response against its model of the mailbox
# (crates/bench, `imap-stress`). Runs against a private Rampart and, when
# installed (apt-get install dovecot-imapd), a private Dovecot, the same
# seed for both.
#
#   bench/imap/stress.sh [CLIENTS] [SECONDS] [SEED]
#
# RAMPART_BIN runs another Rampart build; BENCH_NO_BUILD=1 skips the release
# build (then RAMPART_BIN and STRESS_BIN name the binaries);
# BENCH_SERVERS="rampart dovecot" (the default) picks the servers;
# STRESS_ARGS adds options (e.g. "--trace /tmp/dir --show 20").
# Exits 1 when a server run reported protocol errors.
set -uo pipefail
[ -n "${BENCH_TRACE:-}" ] && set -x
cd "$(dirname "$0")/../.."
source bench/imap/common.sh
CLIENTS=${1:-10}
SECONDS_RUN=${2:-20}
SEED=${3:-1}
WORK=$(mktemp -d /tmp/rampart-imap-stress.XXXXXX)
chmod 755 "$WORK"
PASSWORD="stresspassword12345"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${DOVECOT_CONF:-}" ]; then doveadm -c "$DOVECOT_CONF" stop >/dev/null 2>&1 || true; fi
    sleep 0.5
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)"
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release -q -p rampart -p rampart-bench || exit 2
fi
RAMPART=${RAMPART_BIN:-$TARGET/release/rampart}
STRESS=${STRESS_BIN:-$TARGET/release/imap-stress}
SERVERS=${BENCH_SERVERS:-rampart dovecot}
echo "imap stress: $CLIENTS clients, ${SECONDS_RUN}s, seed $SEED"
FAILED=0
RESULTS=()

# Runs the client against port $2 as user $3; $1 names the server.
stress() {
    local name=$1 port=$2 user=$3 out rc
    out="$WORK/$name.stress"
    "$STRESS" --port "$port" --user "$user" --password "$PASSWORD" \
        --clients "$CLIENTS" --seconds "$SECONDS_RUN" --seed "$SEED" ${STRESS_ARGS:-} > "$out" 2>&1
    rc=$?
    sed "s/^/$name: /" "$out"
    RESULTS+=("$name: $(tail -1 "$out") exit=$rc")
    [ "$rc" -eq 0 ] || FAILED=1
}

if [[ " $SERVERS " == *" rampart "* ]]; then
    start_rampart stress@bench.example
    stress rampart "$R_PORT" stress@bench.example
    kill "$R_PID"; wait "$R_PID" 2>/dev/null
    if [ -s "$WORK/rampart.log" ]; then
        echo "rampart: server log (last 20 lines):"
        tail -20 "$WORK/rampart.log" | sed 's/^/rampart: | /'
    fi
fi

if [[ " $SERVERS " == *" dovecot "* ]]; then
    if have_dovecot; then
        D_PORT=$(free_port)
        start_dovecot "$D_PORT"
        echo "dovecot: $(dovecot --version)"
        stress dovecot "$D_PORT" stress
    else
        echo "dovecot: not installed (apt-get install dovecot-imapd); no comparison"
    fi
fi

echo "--- summary"
for r in "${RESULTS[@]}"; do echo "$r"; done
exit "$FAILED"
