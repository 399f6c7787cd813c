# Shared by bench/imap/run.sh and bench/imap/stress.sh (sourced, not run):
# starting a private Rampart and a private Dovecot under $WORK.
# Expects WORK, PASSWORD and PIDS (an array) to be set by the caller.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# Writes $WORK/rampart.toml for an IMAP-only Rampart on port $1.
rampart_config() {
cat > "$WORK/rampart.toml" <<EOC
[server]
hostname = "bench.localhost"
[listen]
smtp = []
submission = []
submissions = []
imap = ["127.0.0.1:$1"]
imaps = []
https = []
admin = []
[imap]
auth_without_tls_on_loopback = true
max_connections_per_user = 100000
max_connections_per_address = 100000
[dns]
source = "static"
[log]
level = "warn"
EOC
# BENCH_STORE_URL=postgres://... runs Rampart on PostgreSQL (a database of its own).
if [ -n "${BENCH_STORE_URL:-}" ]; then
    printf '[store]\nbackend = "postgres"\nurl = "%s"\n' "$BENCH_STORE_URL" >> "$WORK/rampart.toml"
fi
}

# Whether a Dovecot to compare with is installed.
have_dovecot() { command -v dovecot >/dev/null && [ -x /usr/lib/dovecot/imap ]; }

# Writes and starts a private Dovecot on port $1 (Maildir under $WORK,
# any user with $PASSWORD); sets DOVECOT_CONF.
start_dovecot() {
DOVECOT_CONF="$WORK/dovecot/dovecot.conf"
mkdir -p "$WORK/dovecot/run" "$WORK/dovecot/state" "$WORK/maildir"
chown mail:mail "$WORK/maildir"
cat > "$DOVECOT_CONF" <<EOC
base_dir = $WORK/dovecot/run
state_dir = $WORK/dovecot/state
log_path = $WORK/dovecot/log
protocols = imap
ssl = no
disable_plaintext_auth = no
listen = 127.0.0.1
mail_location = maildir:$WORK/maildir/%n
mail_fsync = optimized
mail_max_userip_connections = 100000
default_process_limit = 10000
default_client_limit = 20000
default_vsz_limit = 0
passdb {
  driver = static
  args = password=$PASSWORD
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$WORK/maildir/%n
}
first_valid_uid = 1
service anvil {
  client_limit = 30000
}
service imap {
  process_limit = 10000
}
service imap-login {
  process_limit = 10000
  inet_listener imap {
    address = 127.0.0.1
    port = $1
  }
}
EOC
dovecot -c "$DOVECOT_CONF"
wait_port "$1"
}

# CPU time (clock ticks) used so far by the given processes.
cpu_ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
# Waits until the server's processes use under 5% of a core over a second
# (Rampart indexes the loaded messages' text once the loading pauses), at
# most five minutes; prints how long that took.
settle() {
    local started=$SECONDS before after
    for _ in $(seq 1 300); do
        before=$(cpu_ticks $($1)); sleep 1; after=$(cpu_ticks $($1))
        [ $((after - before)) -lt 5 ] && break
    done
    echo "settled_seconds=$((SECONDS - started))"
}
# A process and all its descendants, from one process table listing.
descendants() { ps -e -o pid=,ppid= | awk -v root="$1" '{ parent[$1] = $2 } END { for (p in parent) { q = p; while (q != "" && q != 0 && q != 1) { if (q == root) { print p; break } q = parent[q] } } }' | tr '\n' ' '; }

# Starts a private Rampart for IMAP on a free port with one user $1
# (password $PASSWORD); sets R (the command), R_PORT and R_PID.
start_rampart() {
    R_PORT=$(free_port)
    rampart_config "$R_PORT"
    R="$RAMPART --config $WORK/rampart.toml --data $WORK/rampart-data"
    $R init --domain bench.example >/dev/null
    echo "$PASSWORD" | $R user add "$1" --password-stdin --quota 0 >/dev/null
    $R serve >/dev/null 2>"$WORK/rampart.log" &
    R_PID=$!
    PIDS+=("$R_PID")
    wait_port "$R_PORT"
}
