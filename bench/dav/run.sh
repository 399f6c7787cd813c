#!/usr/bin/env bash
# CalDAV benchmark: Rampart beside Radicale (and Cyrus IMAP's CalDAV with
# BENCH_CYRUS=1, see below), on the same machine, driven by the same client
# (crates/bench, `dav-load`) over keep-alive connections: TLS to Rampart
# and Radicale, plain HTTP on loopback to Cyrus (as its set-up serves it).
#
#   bench/dav/run.sh [EVENTS] [CLIENTS]
#
# For each server: MKCALENDAR; PUT EVENTS events (one in ten a weekly
# series) from CLIENTS connections at once; a calendar-query for one month
# with calendar-data; the initial sync-collection; 10 changes then the
# delta sync-collection; a calendar-multiget of 100 with calendar-data
# (each read the median of 7); and the server's memory (proportional set
# size over its processes) at the end. Radicale runs when installed
# (apt-get install radicale), as a private instance under a temporary
# directory with the same certificate and an htpasswd user; its PUT slows
# as the collection grows (about 11 PUT/s after 4,000 events here), so
# BENCH_SKIP_RADICALE=1 runs Rampart alone for the larger sizes.
set -euo pipefail
[ -n "${BENCH_TRACE:-}" ] && set -x
cd "$(dirname "$0")/../.."
EVENTS=${1:-10000}
CLIENTS=${2:-8}
WORK=$(mktemp -d /tmp/rampart-dav-bench.XXXXXX)
chmod 755 "$WORK"
exec > >(tee "$WORK/all.out")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
pss_kb() { for p in "$@"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '/^Pss:/ {s += $2} END {print s + 0}'; }
descendants() { ps -e -o pid=,ppid= | awk -v root="$1" '{ parent[$1] = $2 } END { for (p in parent) { q = p; while (q != "" && q != 0 && q != 1) { if (q == root) { print p; break } q = parent[q] } } }' | tr '\n' ' '; }

[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release -q -p rampart -p rampart-bench
RAMPART=${RAMPART_BIN:-target/release/rampart}
LOAD=${LOAD_BIN:-target/release/dav-load}
USER_ADDR="bench@bench.example"
PASSWORD="benchpassword12345"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "data: $EVENTS events in one calendar, PUT from $CLIENTS connections"

# Rampart: CalDAV only, on a free port, with its own certificate.
R_PORT=$(free_port)
cat > "$WORK/rampart.toml" <<EOC
[server]
hostname = "localhost"
[listen]
smtp = []
submission = []
submissions = []
imap = []
imaps = []
https = ["127.0.0.1:$R_PORT"]
admin = []
[dns]
source = "static"
[log]
level = "warn"
EOC
if [ -n "${BENCH_STORE_URL:-}" ]; then
    printf '[store]\nbackend = "postgres"\nurl = "%s"\n' "$BENCH_STORE_URL" >> "$WORK/rampart.toml"
fi
R="$RAMPART --config $WORK/rampart.toml --data $WORK/rampart-data"
$R init --domain bench.example >/dev/null
echo "$PASSWORD" | $R user add "$USER_ADDR" --password-stdin --quota 0 >/dev/null
$R serve >/dev/null 2>"$WORK/rampart.log" &
R_PID=$!
PIDS+=("$R_PID")
wait_port "$R_PORT"
CA="$WORK/rampart-data/tls/ca.pem"
$LOAD --server "127.0.0.1:$R_PORT" --calendar "/dav/calendars/$USER_ADDR/bench/" \
    --user "$USER_ADDR" --password "$PASSWORD" --ca "$CA" --events "$EVENTS" --clients "$CLIENTS" |
    sed "s/^/rampart: /"
echo "rampart: memory_kb=$(pss_kb "$R_PID")"
kill "$R_PID"; wait "$R_PID" 2>/dev/null || true

if [ -n "${BENCH_SKIP_RADICALE:-}" ]; then
    echo "radicale: skipped (BENCH_SKIP_RADICALE)"
elif command -v radicale >/dev/null 2>&1 || python3 -c 'import radicale' 2>/dev/null; then
    RAD_PORT=$(free_port)
    mkdir -p "$WORK/radicale/collections"
    printf '%s:%s\n' "$USER_ADDR" "$PASSWORD" > "$WORK/radicale/users"
    cat > "$WORK/radicale/config" <<EOC
[server]
hosts = 127.0.0.1:$RAD_PORT
ssl = True
certificate = $WORK/rampart-data/tls/cert.pem
key = $WORK/rampart-data/tls/key.pem
max_connections = 64
[auth]
type = htpasswd
htpasswd_filename = $WORK/radicale/users
htpasswd_encryption = plain
[storage]
filesystem_folder = $WORK/radicale/collections
[logging]
level = warning
EOC
    if command -v radicale >/dev/null 2>&1; then RADICALE=(radicale); else RADICALE=(python3 -m radicale); fi
    "${RADICALE[@]}" --config "$WORK/radicale/config" >"$WORK/radicale.log" 2>&1 &
    RAD_PID=$!
    PIDS+=("$RAD_PID")
    wait_port "$RAD_PORT"
    $LOAD --server "127.0.0.1:$RAD_PORT" --calendar "/$USER_ADDR/bench/" \
        --user "$USER_ADDR" --password "$PASSWORD" --ca "$CA" --events "$EVENTS" --clients "$CLIENTS" |
        sed "s/^/radicale: /"
    echo "radicale: memory_kb=$(pss_kb "$RAD_PID" $(descendants "$RAD_PID"))"
else
    echo "radicale: not installed (apt-get install radicale)"
fi

# Cyrus IMAP's CalDAV (BENCH_CYRUS=1): set up on loopback by
# ../shared/peers/cyrus.sh (HTTP on 127.0.0.1:18080, user evala), wiped
# first so that the calendar is new. Debian's cyrus-imapd conflicts with
# dovecot-imapd: reinstall that afterwards for the IMAP benchmark.
if [ -n "${BENCH_CYRUS:-}" ]; then
    CYRUS_SH=${CYRUS_SH:-../shared/peers/cyrus.sh}
    bash "$CYRUS_SH" wipe >/dev/null
    bash "$CYRUS_SH" >/dev/null
    CYRUS_PID=$(cat /run/cyrus/eval-master.pid)
    $LOAD --server "127.0.0.1:${CYRUS_HTTP_PORT:-18080}" --plain --calendar "/dav/calendars/user/evala/bench/" \
        --user evala --password Eval-pass-1 --events "$EVENTS" --clients "$CLIENTS" |
        sed "s/^/cyrus: /"
    echo "cyrus: memory_kb=$(pss_kb "$CYRUS_PID" $(descendants "$CYRUS_PID"))"
    bash "$CYRUS_SH" stop >/dev/null
fi

echo
echo "| figure | Rampart | Radicale | Radicale / Rampart | Cyrus | Cyrus / Rampart |"
echo "|---|---|---|---|---|---|"
ratio() { python3 -c "import sys; r, d = sys.argv[1:]; print(f'{float(d) / float(r):.2f}' if r and d and float(r) else '-')" "${1:-}" "${2:-}" 2>/dev/null || echo -; }
for key in put_per_s put_p50_ms month_query_ms month_query_events initial_sync_ms initial_sync_resources delta_sync_ms delta_sync_resources multiget_100_ms multiget_100_events memory_kb; do
    r=$(sed -n "s/^rampart: $key=//p" "$WORK/all.out" | tail -n 1)
    d=$(sed -n "s/^radicale: $key=//p" "$WORK/all.out" | tail -n 1)
    c=$(sed -n "s/^cyrus: $key=//p" "$WORK/all.out" | tail -n 1)
    echo "| $key | ${r:--} | ${d:--} | $(ratio "$r" "$d") | ${c:--} | $(ratio "$r" "$c") |"
done
