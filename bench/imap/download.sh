#!/usr/bin/env bash
# The single-client full download as Python's imaplib sees it, Rampart and
# Dovecot side by side: both run at once on the same data, and the rounds
# alternate between them (A B, B A, ...), so that what the machine does
# meanwhile (a 2-core VM's neighbours, CPU clocks) falls on both alike.
#
#   bench/imap/download.sh [MESSAGES] [ROUNDS]
#
# Each round runs bench/imap/imaplib_client.py once per server (a login,
# three timed `UID FETCH 1:* (BODY.PEEK[])` of INBOX, their median). The end
# is each server's median over the rounds, and the median of the per-round
# ratios. Dovecot must be installed (apt-get install dovecot-imapd).
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

R_PORT=$(free_port)
rampart_config "$R_PORT"
R="$RAMPART --config $WORK/rampart.toml --data $WORK/rampart-data"
$R init --domain bench.example >/dev/null
echo "$PASSWORD" | $R user add bench@bench.example --password-stdin --quota 0 >/dev/null
$R serve >/dev/null 2>"$WORK/rampart.log" &
R_PID=$!
PIDS+=("$R_PID")
wait_port "$R_PORT"
D_PORT=$(free_port)
start_dovecot "$D_PORT"

$LOAD --server "127.0.0.1:$R_PORT" --user bench@bench.example --password "$PASSWORD" load --messages "$MESSAGES" >/dev/null
$LOAD --server "127.0.0.1:$D_PORT" --user bench --password "$PASSWORD" load --messages "$MESSAGES" >/dev/null
settle "echo $R_PID" >/dev/null
settle "descendants $(cat "$WORK/dovecot/run/master.pid")" >/dev/null

# One timed client run; prints its median MB/s.
download() { python3 bench/imap/imaplib_client.py 127.0.0.1 "$1" "$2" "$PASSWORD" INBOX 0 3 | grep -oE 'imaplib_download_mb_per_sec=[0-9.]+' | cut -d= -f2; }
: >"$WORK/rounds"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        r=$(download "$R_PORT" bench@bench.example); d=$(download "$D_PORT" bench)
    else
        d=$(download "$D_PORT" bench); r=$(download "$R_PORT" bench@bench.example)
    fi
    echo "round $round: rampart $r MB/s, dovecot $d MB/s"
    echo "$r $d" >>"$WORK/rounds"
done
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
r_med=$(cut -d' ' -f1 "$WORK/rounds" | median)
d_med=$(cut -d' ' -f2 "$WORK/rounds" | median)
ratio_med=$(awk '{printf "%.3f\n", $1 / $2}' "$WORK/rounds" | median)
echo "imaplib_download_rampart_mb_per_sec=$r_med imaplib_download_dovecot_mb_per_sec=$d_med ratio_of_medians=$(awk -v r="$r_med" -v d="$d_med" 'BEGIN {printf "%.2f", r / d}') median_of_round_ratios=$ratio_med"
