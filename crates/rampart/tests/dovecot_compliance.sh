#!/usr/bin/env bash
# Runs the scenarios of tests/python/imap_compliance.py against a private
# Dovecot instance, to check that what they expect (derived from the RFCs)
# holds on a reference server. Prints one line per scenario, "pass" or
# "FAIL" with the reason, and exits non-zero when any failed.
# Usage: dovecot_compliance.sh [SCENARIO...]   (default: all but sent_dedup,
# which needs Rampart's submission service saving to Sent)
# Needs dovecot-imapd (apt-get install dovecot-imapd) and root (the mail is
# owned by user "mail"). Each scenario logs in as its own fresh user.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SCRIPT="$HERE/python/imap_compliance.py"
if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ]; then
    echo "dovecot: not installed (apt-get install dovecot-imapd)" >&2
    exit 2
fi
WORK=$(mktemp -d)
chmod 755 "$WORK"
CONF="$WORK/dovecot.conf"
trap 'doveadm -c "$CONF" stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/run" "$WORK/state" "$WORK/mail"
chown mail:mail "$WORK/mail"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PASSWORD="compliance-password"
cat > "$CONF" <<CONF
base_dir = $WORK/run
state_dir = $WORK/state
log_path = $WORK/log
protocols = imap
ssl = no
disable_plaintext_auth = no
listen = 127.0.0.1
mail_location = maildir:$WORK/mail/%n:LAYOUT=fs
mail_max_userip_connections = 100
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = static
  args = password=$PASSWORD
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$WORK/mail/%n
}
first_valid_uid = 1
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
}
CONF
dovecot -c "$CONF"
for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null && break
    sleep 0.1
done
echo "dovecot $(dovecot --version) on port $PORT"
if [ $# -gt 0 ]; then
    SCENARIOS=("$@")
else
    SCENARIOS=(keywords thread_sort sort_addresses sent_dates recent names_dates subscriptions condstore append_literal)
fi
failed=0
for s in "${SCENARIOS[@]}"; do
    if out=$(env -u COMPLIANCE_CAFILE python3 "$SCRIPT" "$s" 127.0.0.1 "$PORT" "user-$s" "$PASSWORD" 2>&1); then
        echo "pass $s $(echo "$out" | grep '^skipped' | tr '\n' ' ')"
    else
        echo "FAIL $s"
        if echo "$out" | grep -q '^FAILED '; then
            echo "$out" | grep '^FAILED ' | cut -c 1-400 | sed 's/^/    /'
        else
            echo "$out" | tail -n 1 | sed 's/^/    /'
        fi
        failed=1
    fi
done
exit $failed
