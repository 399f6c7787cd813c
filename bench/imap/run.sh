#!/usr/bin/env bash
# IMAP benchmark: Rampart beside Dovecot, on the same machine and the same
# data, driven by the same client (crates/bench, `imap-load`).
#
#   bench/imap/run.sh [MESSAGES] [IDLE_CONNECTIONS] [MIXED_CLIENTS] [MIXED_SECONDS] [BULK_MESSAGES]
#
# For each server: APPEND MESSAGES messages of a realistic size mix (2 KB to
# 200 KB, one in ten with an attachment) to one INBOX; wait until the server
# is idle again (Rampart builds its full-text index then); then time SELECT,
# `UID FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)` (twice: cold and cached),
# the full `BODY.PEEK[]` download, `SEARCH TEXT`, and a mixed workload of
# MIXED_CLIENTS concurrent clients (body fetches, header fetches, flag
# changes, NOOP, STATUS); finally restart the server, hold IDLE_CONNECTIONS
# connections in IDLE on a small INBOX of another account and measure the
# server's memory (proportional set size, summed over its processes) before
# and with them. The restart (and four logins before measuring) keeps what
# an allocator retained from the earlier steps out of the per-connection
# figure.
# Besides: one client's APPEND latency (200 small messages, each with a
# synchronising literal: command, `+`, message, tagged OK; p50 and p99);
# and on a mailbox of BULK_MESSAGES small (1 KB) messages (default 100,000;
# 0 skips; fewer for a CI-size run) the times of `STORE 1:* +FLAGS (\Seen)`,
# `UID COPY 1:* Other`, and `STORE 1:* +FLAGS (\Deleted)` with EXPUNGE.
# The end is a table of the figures, Rampart beside Dovecot with the ratio.
# Dovecot runs only when installed (apt-get install dovecot-imapd), as a
# private instance under a temporary directory, with its default
# one-process-per-connection layout and limits raised for the idle test.
set -euo pipefail
[ -n "${BENCH_TRACE:-}" ] && set -x
cd "$(dirname "$0")/../.."
source bench/imap/common.sh
MESSAGES=${1:-10000}
IDLE=${2:-5000}
CLIENTS=${3:-16}
SECONDS_MIXED=${4:-20}
BULK=${5:-100000}
WORK=$(mktemp -d /tmp/rampart-imap-bench.XXXXXX)
chmod 755 "$WORK"
# Everything printed also goes to a file the final table reads.
exec > >(tee "$WORK/all.out")
trap 'cleanup' EXIT
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${DOVECOT_CONF:-}" ]; then doveadm -c "$DOVECOT_CONF" stop >/dev/null 2>&1 || true; fi
    sleep 0.5
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}

pss_kb() { for p in "$@"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '/^Pss:/ {s += $2} END {print s + 0}'; }
ulimit -n "$(ulimit -Hn)"
# BENCH_NO_BUILD=1 skips the build (then RAMPART_BIN and LOAD_BIN may name
# the binaries, e.g. debug builds for a quick check of the script).
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release -q -p rampart -p rampart-bench
# RAMPART_BIN runs another build (an A/B comparison).
RAMPART=${RAMPART_BIN:-target/release/rampart}
LOAD=${LOAD_BIN:-target/release/imap-load}
PASSWORD="benchpassword12345"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "data: $MESSAGES messages; mixed workload: $CLIENTS clients for ${SECONDS_MIXED}s; idle: $IDLE connections; bulk: $BULK small messages"

# Runs the whole sequence against one server; $1 = name, $2 = port, $3 and
# $4 = the two users, $5 = how to list the server's processes, $6 = how to
# restart it (commands).
run_suite() {
    local name=$1 port=$2 big=$3 small=$4 pids_cmd=$5 restart_cmd=$6
    $LOAD --server "127.0.0.1:$port" --user "$big" --password "$PASSWORD" load --messages "$MESSAGES" | sed "s/^/$name: /"
    $LOAD --server "127.0.0.1:$port" --user "$small" --password "$PASSWORD" load --messages 20 --connections 1 >/dev/null
    if [ "$BULK" -gt 0 ]; then
        $LOAD --server "127.0.0.1:$port" --user "$big" --password "$PASSWORD" load --messages "$BULK" --mailbox Bulk --small | sed -E "s/([a-z_]+=)/bulk_\1/g; s/^/$name: /"
    fi
    settle "$pids_cmd" | sed "s/^/$name: /"
    $LOAD --server "127.0.0.1:$port" --user "$big" --password "$PASSWORD" append-latency --messages 200 | sed "s/^/$name: /"
    # The same two as Python's imaplib sees them (the client of the issue
    # that found the 44 ms APPEND): 50 uploads, then the INBOX download.
    python3 bench/imap/imaplib_client.py 127.0.0.1 "$port" "$big" "$PASSWORD" INBOX 50 | sed "s/^/$name: /"
    $LOAD --server "127.0.0.1:$port" --user "$big" --password "$PASSWORD" measure --clients "$CLIENTS" --seconds "$SECONDS_MIXED" | sed "s/^/$name: /"
    if [ "$BULK" -gt 0 ]; then
        $LOAD --server "127.0.0.1:$port" --user "$big" --password "$PASSWORD" bulk | sed "s/^/$name: /"
    fi
    $restart_cmd
    # A few logins at once first, so that working memory every login path
    # allocates once (Rampart's argon2 threads: 19 MiB each) is in "before".
    local warm=()
    for _ in 1 2 3 4; do
        $LOAD --server "127.0.0.1:$port" --user "$small" --password "$PASSWORD" mixed --clients 1 --seconds 1 --only noop >/dev/null &
        warm+=($!)
    done
    wait "${warm[@]}"
    sleep 1
    local before with fifo
    before=$(pss_kb $($pids_cmd))
    fifo="$WORK/$name.idle"
    mkfifo "$fifo"
    $LOAD --server "127.0.0.1:$port" --user "$small" --password "$PASSWORD" idle --connections "$IDLE" < "$fifo" > "$WORK/$name.idle.out" &
    local load_pid=$!
    exec 7>"$fifo"
    for _ in $(seq 1 600); do grep -q ready "$WORK/$name.idle.out" 2>/dev/null && break; sleep 0.5; done
    grep ready "$WORK/$name.idle.out" | sed "s/^/$name: idle /"
    sleep 2
    with=$(pss_kb $($pids_cmd))
    exec 7>&-
    wait "$load_pid" || true
    echo "$name: idle_pss_before_kb=$before idle_pss_with_kb=$with per_idle_connection_kb=$(( (with - before) / IDLE ))"
}

# BENCH_SERVERS="rampart dovecot" (the default) picks which to run.
SERVERS=${BENCH_SERVERS:-rampart dovecot}

# --- Rampart -------------------------------------------------------------
if [[ " $SERVERS " == *" rampart "* ]]; then
R_PORT=$(free_port)
rampart_config "$R_PORT"
R="$RAMPART --config $WORK/rampart.toml --data $WORK/rampart-data"
$R init --domain bench.example >/dev/null
echo "$PASSWORD" | $R user add bench@bench.example --password-stdin --quota 0 >/dev/null
echo "$PASSWORD" | $R user add idle@bench.example --password-stdin --quota 0 >/dev/null
$R serve >/dev/null 2>"$WORK/rampart.log" &
R_PID=$!
PIDS+=("$R_PID")
wait_port "$R_PORT"
rampart_pids() { echo "$R_PID"; }
restart_rampart() {
    kill "$R_PID"; wait "$R_PID" || true
    $R serve >/dev/null 2>>"$WORK/rampart.log" &
    R_PID=$!
    PIDS+=("$R_PID")
    wait_port "$R_PORT"
}
run_suite rampart "$R_PORT" bench@bench.example idle@bench.example rampart_pids restart_rampart
echo "rampart: database_mb=$(du -cm "$WORK"/rampart-data/rampart.db* | tail -1 | cut -f1) message_files_mb=$(du -sm "$WORK/rampart-data/blobs" | cut -f1)"
kill "$R_PID"; wait "$R_PID" || true
fi

if [[ " $SERVERS " == *" dovecot "* ]]; then
# --- Dovecot -------------------------------------------------------------
if ! have_dovecot; then
    echo "dovecot: not installed (apt-get install dovecot-imapd); no comparison"
else
D_PORT=$(free_port)
start_dovecot "$D_PORT"
dovecot_pids() { descendants "$(cat "$WORK/dovecot/run/master.pid")"; }
echo "dovecot: $(dovecot --version)"
restart_dovecot() {
    doveadm -c "$DOVECOT_CONF" stop
    for _ in $(seq 1 50); do [ -e "$WORK/dovecot/run/master.pid" ] || break; sleep 0.1; done
    dovecot -c "$DOVECOT_CONF"
    wait_port "$D_PORT"
}
run_suite dovecot "$D_PORT" bench idle dovecot_pids restart_dovecot
fi
fi

# --- The table -----------------------------------------------------------
sleep 0.5
# The last value of KEY a server's lines gave; $1 = server, $2 = key.
figure() { grep "^$1: " "$WORK/all.out" | grep -oE "(^| )$2=[0-9.]+" | tail -1 | cut -d= -f2 || true; }
# One row: label, key, scale (1000 makes seconds milliseconds), unit, better.
row() {
    local r d
    r=$(figure rampart "$2"); d=$(figure dovecot "$2")
    [ -n "$r$d" ] || return 0
    awk -v label="$1" -v r="$r" -v d="$d" -v scale="$3" -v unit="$4" -v better="$5" 'BEGIN {
        rs = (r == "") ? "-" : show(r * scale) " " unit
        ds = (d == "") ? "-" : show(d * scale) " " unit
        ratio = (r == "" || d == "" || d == 0) ? "-" : sprintf("**%.2f**", r / d)
        printf "| %s | %s | %s | %s | %s |\n", label, rs, ds, ratio, better
    }
    function show(v) { return sprintf(v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v) }'
}
echo
echo "| figure | Rampart | Dovecot | ratio (Rampart/Dovecot) | better is |"
echo "|---|---|---|---|---|"
row "APPEND $MESSAGES messages (4 connections)" appends_per_sec 1 msgs/s higher
row "APPEND latency, one client, synchronising literal, p50" append_latency_p50_ms 1 ms lower
row "APPEND latency, p99" append_latency_p99_ms 1 ms lower
row "APPEND latency, Python imaplib, p50" imaplib_append_p50_ms 1 ms lower
row 'full download, Python imaplib, one client' imaplib_download_mb_per_sec 1 MB/s higher
row "SELECT INBOX" select_seconds 1000 ms lower
row '`UID FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)`, first time' fetch_envelope_bodystructure_seconds 1000 ms lower
row "the same, second time" fetch_envelope_bodystructure_again_seconds 1000 ms lower
row 'full `UID FETCH 1:* BODY.PEEK[]` download, one client' download_mb_per_sec 1 MB/s higher
row '`SEARCH TEXT "message 4242"`' search_text_seconds 1000 ms lower
row '`SEARCH BODY "thursday"`' search_body_common_seconds 1000 ms lower
row "mixed workload, $CLIENTS clients" mixed_ops_per_sec 1 ops/s higher
row "APPEND $BULK small messages (4 connections)" bulk_appends_per_sec 1 msgs/s higher
row "SELECT of the $BULK" bulk_select_seconds 1000 ms lower
row "\`STORE 1:* +FLAGS (\\Seen)\` on $BULK" bulk_store_seen_seconds 1000 ms lower
row "\`UID COPY 1:* Other\` of $BULK" bulk_uid_copy_seconds 1000 ms lower
row "\`STORE 1:* +FLAGS (\\Deleted)\` + \`EXPUNGE\` of $BULK" bulk_delete_expunge_seconds 1000 ms lower
row "memory per idle IDLE connection" per_idle_connection_kb 1 KB lower
row "memory with $IDLE idle connections (PSS)" idle_pss_with_kb 0.001 MB lower
