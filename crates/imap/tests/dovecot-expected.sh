#!/usr/bin/env bash
# Records what Dovecot answers for ENVELOPE and BODYSTRUCTURE of every
# message in tests/corpus, as tests/corpus/NAME.dovecot (two lines:
# envelope, bodystructure), followed by one line per section fetch that
# tests/corpus/sections.txt lists for the message (`NAME: ITEM ITEM ...`),
# in the form tests/corpus-record.py prints. tests/corpus.rs compares
# Rampart with these. Messages that contain NUL are appended over IMAP as
# literal8 (RFC 3516 §4.4), as a client with binary content would.
# Needs dovecot-imapd (apt-get install dovecot-imapd) and root (a private
# Dovecot instance under a temporary directory, mail owned by user "mail").
set -euo pipefail
cd "$(dirname "$0")/corpus"
WORK=$(mktemp -d)
chmod 755 "$WORK"
CONF="$WORK/dovecot.conf"
trap 'doveadm -c "$CONF" stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RECORD="$(cd .. && pwd)/corpus-record.py"
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
    port = $PORT
  }
}
CONF
dovecot -c "$CONF"
for f in *.eml; do
    if python3 -c 'import sys; sys.exit(0 if b"\0" in open(sys.argv[1], "rb").read() else 1)' "$f"; then
        python3 "$RECORD" "$PORT" append "$f"
    else
        doveadm -c "$CONF" save -u corpus -m INBOX < "$f"
    fi
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
    items=$(sed -n "s/^${f%.eml}: //p" sections.txt)
    if [ -n "$items" ]; then
        # One argument per item: the list is split on white space.
        # shellcheck disable=SC2086
        python3 "$RECORD" "$PORT" fetch "$i" $items >> "${f%.eml}.dovecot"
    fi
done
echo "recorded $i messages with $(cat dovecot-version.txt)"
