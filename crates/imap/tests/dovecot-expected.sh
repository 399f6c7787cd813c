#!/usr/bin/env bash
# Records what Dovecot answers for ENVELOPE and BODYSTRUCTURE of every
# message in tests/corpus, as tests/corpus/NAME.dovecot (two lines:
# envelope, bodystructure). tests/corpus.rs compares Rampart with these.
# Needs dovecot-imapd (apt-get install dovecot-imapd) and root (a private
# Dovecot instance under a temporary directory, mail owned by user "mail").
set -euo pipefail
cd "$(dirname "$0")/corpus"
WORK=$(mktemp -d)
chmod 755 "$WORK"
CONF="$WORK/dovecot.conf"
trap 'doveadm -c "$CONF" stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/run" "$WORK/state" "$WORK/mail"
chown mail:mail "$WORK/mail"
cat > "$CONF" <<CONF
base_dir = $WORK/run
state_dir = $WORK/state
log_path = $WORK/log
protocols = imap
ssl = no
listen = 127.0.0.1
mail_location = maildir:$WORK/mail/%n
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$WORK/mail/%n
}
first_valid_uid = 1
service imap-login {
  inet_listener imap {
    port = 0
  }
}
CONF
dovecot -c "$CONF"
for f in *.eml; do
    doveadm -c "$CONF" save -u corpus -m INBOX < "$f"
done
dovecot --version > dovecot-version.txt
i=0
for f in *.eml; do
    i=$((i + 1))
    doveadm -c "$CONF" -f flow fetch -u corpus "imap.envelope imap.bodystructure" mailbox INBOX uid "$i" |
        python3 -c '
import re, sys
text = sys.stdin.read()
env = re.search(r"imap\.envelope=(.*?) imap\.bodystructure=", text, re.S).group(1)
body = re.search(r"imap\.bodystructure=(.*)$", text, re.S).group(1).rstrip("\n")
print(env.replace("\r\n", "\\n").replace("\n", "\\n"))
print(body.replace("\r\n", "\\n").replace("\n", "\\n"))
' > "${f%.eml}.dovecot"
done
echo "recorded $i messages with $(cat dovecot-version.txt)"
