#!/usr/bin/env bash
# What the access ledger costs: Rampart with the ledger on and with it off
# (`[ledger] enabled = false`, a switch meant for this measurement only),
# same machine, same load, alternating runs.
#
#   bench/ledger/run.sh [MESSAGES] [ROUNDS] [PAIRS]
#
# Each run: SMTP delivery of MESSAGES messages (2 KB to 200 KB) over 16
# connections (crates/bench smtp-load; every delivery is recorded, and its
# 250 waits for its ledger entry), then ROUNDS full-mailbox downloads
# (`UID FETCH 1:* (BODY.PEEK[])`) by 4 concurrent IMAP clients (every batch
# of messages read is recorded before it is sent). PAIRS pairs of runs, on
# then off. Finally the ledger alone: a million typical IMAP entries from 16
# concurrent appenders, the ledger's size per million entries, and how long
# `verify` takes over them (crates/bench ledger-load).
set -euo pipefail
cd "$(dirname "$0")/../.."
MESSAGES=${1:-4000}
ROUNDS=${2:-5}
PAIRS=${3:-2}
WORK=$(mktemp -d /tmp/rampart-ledger-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

cargo build --release -q -p rampart -p rampart-bench
RAMPART=target/release/rampart
PASSWORD="benchpassword12345"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "load: $MESSAGES messages by SMTP over 16 connections; $ROUNDS downloads of the mailbox by 4 IMAP clients; $PAIRS pairs of runs"

run() {
    local ledger=$1 n=$2 dir="$WORK/$1-$2"
    local smtp imap
    smtp=$(free_port)
    imap=$(free_port)
    mkdir -p "$dir"
    cat > "$dir/rampart.toml" <<CONF
[server]
hostname = "bench.localhost"
[listen]
smtp = ["127.0.0.1:$smtp"]
submission = []
submissions = []
imap = ["127.0.0.1:$imap"]
imaps = []
https = []
admin = []
[imap]
auth_without_tls_on_loopback = true
[ledger]
enabled = $ledger
[dns]
source = "static"
[log]
level = "error"
CONF
    local R="$RAMPART --config $dir/rampart.toml --data $dir/data"
    $R init --domain bench.example >/dev/null
    echo "$PASSWORD" | $R user add bench@bench.example --password-stdin --quota 0 >/dev/null
    $R serve >/dev/null 2>"$dir/log" &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$imap"
    local s d
    s=$(target/release/smtp-load --server "127.0.0.1:$smtp" --messages "$MESSAGES" --connections 16 --rcpt bench@bench.example)
    d=$(target/release/imap-load --server "127.0.0.1:$imap" --user bench@bench.example --password "$PASSWORD" download --connections 4 --rounds "$ROUNDS")
    kill "$pid"; wait "$pid" || true
    local entries=0
    if [ "$ledger" = true ]; then
        entries=$($R ledger verify | sed -n 's/.*: \([0-9]*\) entries.*/\1/p')
    fi
    echo "ledger=$ledger run=$n $s $d ledger_entries=$entries"
}

for n in $(seq 1 "$PAIRS"); do
    run true "$n"
    run false "$n"
done

echo "--- the ledger alone"
target/release/ledger-load --dir "$WORK/ledger-alone" --entries 1000000 --tasks 16
