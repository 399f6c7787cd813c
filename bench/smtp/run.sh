#!/usr/bin/env bash
# SMTP delivery benchmark: Rampart beside Postfix delivering through Dovecot
# LMTP to Maildir, on the same machine, with the same load.
#
#   bench/smtp/run.sh [MESSAGES] [CONNECTIONS]
#
# The load (crates/bench, `smtp-load`) sends MESSAGES messages of a realistic
# size mix (2 KB to 200 KB, one in ten with an attachment) over CONNECTIONS
# concurrent connections and measures the time from the end of DATA to the
# server's final 250. For Rampart that 250 means "in the mailbox, synced";
# for Postfix it means "in the queue, synced", so Postfix's throughput is
# counted to the moment the last message is in Dovecot's Maildir.
# Postfix and Dovecot run only when installed (apt-get install postfix
# dovecot-lmtpd); they run as private instances under a temporary directory.
set -euo pipefail
[ -n "${BENCH_TRACE:-}" ] && set -x
cd "$(dirname "$0")/../.."
MESSAGES=${1:-2000}
CONNECTIONS=${2:-16}
WORK=$(mktemp -d /tmp/rampart-bench.XXXXXX)
chmod 755 "$WORK"
trap 'cleanup' EXIT
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${POSTFIX_DIR:-}" ]; then postfix -c "$POSTFIX_DIR" stop >/dev/null 2>&1 || true; fi
    if [ -n "${DOVECOT_CONF:-}" ]; then doveadm -c "$DOVECOT_CONF" stop >/dev/null 2>&1 || true; fi
    sleep 0.5
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
peak_rss_kb() { awk '/VmHWM/ {s += $2} END {print s + 0}' "$@" 2>/dev/null || echo 0; }
# Proportional set size: shared pages split between the processes that share them,
# so a sum over many processes (Postfix, Dovecot) is not inflated by shared libraries.
pss_kb() { for p in "$@"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '/^Pss:/ {s += $2} END {print s + 0}'; }

cargo build --release -q -p rampart -p rampart-bench
# RAMPART_BIN runs another build (an A/B comparison).
RAMPART=${RAMPART_BIN:-target/release/rampart}
LOAD=target/release/smtp-load
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "load: $MESSAGES messages over $CONNECTIONS connections"

# --- Rampart -------------------------------------------------------------
R_PORT=$(free_port)
cat > "$WORK/rampart.toml" <<EOF
[server]
hostname = "bench.localhost"
[listen]
smtp = ["127.0.0.1:$R_PORT"]
submission = []
submissions = []
imap = []
imaps = []
https = []
admin = []
[dns]
source = "static"
[log]
level = "warn"
EOF
# BENCH_STORE_URL=postgres://... runs Rampart on PostgreSQL (a database of its own).
if [ -n "${BENCH_STORE_URL:-}" ]; then
    printf '[store]\nbackend = "postgres"\nurl = "%s"\n' "$BENCH_STORE_URL" >> "$WORK/rampart.toml"
fi
$RAMPART --config "$WORK/rampart.toml" --data "$WORK/rampart-data" init --domain bench.example >/dev/null
$RAMPART --config "$WORK/rampart.toml" --data "$WORK/rampart-data" user add rcpt@bench.example --generate-password --quota 0 >/dev/null
$RAMPART --config "$WORK/rampart.toml" --data "$WORK/rampart-data" serve >/dev/null 2>"$WORK/rampart.log" &
R_PID=$!
PIDS+=("$R_PID")
wait_port "$R_PORT"
R_OUT=$($LOAD --server "127.0.0.1:$R_PORT" --messages "$MESSAGES" --connections "$CONNECTIONS" --rcpt rcpt@bench.example)
R_RSS=$(peak_rss_kb "/proc/$R_PID/status")
R_PSS=$(pss_kb "$R_PID")
kill "$R_PID"; wait "$R_PID" || true
echo "rampart: $R_OUT peak_rss_kb=$R_RSS pss_after_kb=$R_PSS"

# --- Postfix + Dovecot LMTP -> Maildir ----------------------------------
if ! command -v postfix >/dev/null || ! command -v dovecot >/dev/null; then
    echo "postfix+dovecot: not installed (apt-get install postfix dovecot-lmtpd); no comparison"
    exit 0
fi
P_PORT=$(free_port)
L_PORT=$(free_port)
POSTFIX_DIR="$WORK/postfix"
DOVECOT_CONF="$WORK/dovecot/dovecot.conf"
MAILDIR="$WORK/maildir"
mkdir -p "$POSTFIX_DIR/queue" "$POSTFIX_DIR/data" "$WORK/dovecot/run" "$WORK/dovecot/state" "$MAILDIR"
chown postfix "$POSTFIX_DIR/data"
chown mail:mail "$MAILDIR"
cat > "$DOVECOT_CONF" <<EOF
base_dir = $WORK/dovecot/run
state_dir = $WORK/dovecot/state
log_path = $WORK/dovecot/log
protocols = lmtp
ssl = no
listen = 127.0.0.1
mail_location = maildir:$MAILDIR/%n
mail_fsync = optimized
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$MAILDIR/%n
}
first_valid_uid = 1
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $L_PORT
  }
}
EOF
dovecot -c "$DOVECOT_CONF"
wait_port "$L_PORT"
cat > "$POSTFIX_DIR/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $POSTFIX_DIR/queue
data_directory = $POSTFIX_DIR/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localhost
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = bench.example
virtual_transport = lmtp:inet:127.0.0.1:$L_PORT
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = $POSTFIX_DIR/maillog
maillog_file_prefixes = $WORK
default_process_limit = 100
EOF
cat > "$POSTFIX_DIR/master.cf" <<EOF
127.0.0.1:$P_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
postfix -c "$POSTFIX_DIR" set-permissions >/dev/null 2>&1 || true
postfix -c "$POSTFIX_DIR" start >"$WORK/postfix-start.log" 2>&1 || { cat "$WORK/postfix-start.log" >&2; exit 1; }
wait_port "$P_PORT"
START=$(date +%s.%N)
P_OUT=$($LOAD --server "127.0.0.1:$P_PORT" --messages "$MESSAGES" --connections "$CONNECTIONS" --rcpt rcpt@bench.example)
# Delivered means in Dovecot's Maildir.
for _ in $(seq 1 600); do
    DELIVERED=$(find "$MAILDIR" -path '*/new/*' -type f 2>/dev/null | wc -l)
    [ "$DELIVERED" -ge "$MESSAGES" ] && break
    sleep 0.1
done
END=$(date +%s.%N)
# Every process of both instances: the two masters and all their descendants.
descendants() { local p; for p in "$@"; do echo "$p"; descendants $(pgrep -P "$p" || true); done; }
P_PIDS=$(descendants "$(cat "$POSTFIX_DIR/queue/pid/master.pid" | tr -d ' ')" "$(cat "$WORK/dovecot/run/master.pid")")
P_PSS=$(pss_kb $P_PIDS)
P_PROCS=$(echo $P_PIDS | wc -w)
P_RATE=$(echo "$MESSAGES $START $END" | awk '{printf "%.1f", $1 / ($3 - $2)}')
echo "postfix+dovecot: $P_OUT delivered=$DELIVERED delivered_msgs_per_sec=$P_RATE processes=$P_PROCS pss_after_kb=$P_PSS"

R_RATE=$(echo "$R_OUT" | sed -E 's/.*msgs_per_sec=([0-9.]+).*/\1/')
R_P99=$(echo "$R_OUT" | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')
P_P99=$(echo "$P_OUT" | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')
echo "ratio: rampart/postfix+dovecot delivered msgs/s = $(echo "$R_RATE $P_RATE" | awk '{printf "%.2f", $1/$2}'), p99 of the final 250 = $(echo "$R_P99 $P_P99" | awk '{printf "%.2f", $1/$2}') (lower is better), memory (PSS after the run) = $(echo "$R_PSS $P_PSS" | awk '{printf "%.2f", $1/$2}')"
