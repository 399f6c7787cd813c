#!/usr/bin/env bash
# The two single-client figures of issue #11 as Python's imaplib sees them
# (APPEND latency with a synchronising literal, and the full download), Rampart and
# Dovecot side by side: both run at once on the same data, and the rounds
# alternate between them (A B, B A, ...), so that what the machine does
# meanwhile (a 2-core VM's neighbours, CPU clocks) falls on both alike.
#
#   bench/imap/download.sh [MESSAGES] [ROUNDS]
#
# Each round runs bench/imap/imaplib_client.py once per server (a login, 20
# timed APPENDs, three timed `UID FETCH 1:* (BODY.PEEK[])` of INBOX, their
# median). The end is each server's median over the rounds, and the median
# of the per-round ratios. Dovecot must be installed (apt-get install dovecot-imapd).
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/imap/common.sh
MESSAGES=${1:-1000}
ROUNDS=${2:-9}
ulimit -n "$(ulimit -Hn)"
have_dovecot || { echo "dovecot is not installed (apt-get install dovecot-imapd)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rampart-download-bench.XXXXXX)
chmod 755 "$WORK"
PASSWORD="benchpassword12345"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${DOVECOT_CONF:-}" ] && doveadm -c "$DOVECOT_CONF" stop >/dev/null 2>&1 || true
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release -q -p rampart -p rampart-bench
RAMPART=${RAMPART_BIN:-target/release/rampart}
LOAD=${LOAD_BIN:-target/release/imap-load}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(dovecot --version | sed 's/^/dovecot /')"

start_rampart bench@bench.example
D_PORT=$(free_port)
start_dovecot "$D_PORT"

$LOAD --server "127.0.0.1:$R_PORT" --user bench@bench.example --password "$PASSWORD" load --messages "$MESSAGES" >/dev/null
$LOAD --server "127.0.0.1:$D_PORT" --user bench --password "$PASSWORD" load --messages "$MESSAGES" >/dev/null
settle "echo $R_PID" >/dev/null
settle "descendants $(cat "$WORK/dovecot/run/master.pid")" >/dev/null

# One timed client run; prints its median MB/s and APPEND p50 in ms.
client() {
    python3 bench/imap/imaplib_client.py 127.0.0.1 "$1" "$2" "$PASSWORD" INBOX 20 3 |
        awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}} END {print v["imaplib_download_mb_per_sec"], v["imaplib_append_p50_ms"]}'
}
: >"$WORK/rounds"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        r=$(client "$R_PORT" bench@bench.example); d=$(client "$D_PORT" bench)
    else
        d=$(client "$D_PORT" bench); r=$(client "$R_PORT" bench@bench.example)
    fi
    echo "round $round: rampart ${r% *} MB/s, APPEND p50 ${r#* } ms; dovecot ${d% *} MB/s, APPEND p50 ${d#* } ms"
    echo "$r $d" >>"$WORK/rounds"
done
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# Columns: Rampart MB/s, Rampart ms, Dovecot MB/s, Dovecot ms.
col() { cut -d' ' -f"$1" "$WORK/rounds" | median; }
ratios() { awk -v a="$1" -v b="$2" '{printf "%.3f\n", $a / $b}' "$WORK/rounds" | median; }
echo "imaplib_download_rampart_mb_per_sec=$(col 1) imaplib_download_dovecot_mb_per_sec=$(col 3) download_median_of_round_ratios=$(ratios 1 3)"
echo "imaplib_append_p50_rampart_ms=$(col 2) imaplib_append_p50_dovecot_ms=$(col 4) append_median_of_round_ratios=$(ratios 2 4)"
