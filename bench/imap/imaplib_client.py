"""The issue's own client: Python's imaplib, as a user's script or a
migration tool drives a server. Measures, on one connection, the APPEND
latency with a synchronising literal (imaplib waits for the "+" before
sending the message) and the full-mailbox download.

    python3 imaplib_client.py HOST PORT USER PASSWORD MAILBOX APPENDS [DOWNLOADS]

APPENDS may be 0 (no latency figures); DOWNLOADS (default 5) full downloads
are timed and their median reported. Prints one line of key=value figures.
"""

import imaplib
import statistics
import sys
import time

host, port, user, password, mailbox, appends = sys.argv[1:7]
downloads = int(sys.argv[7]) if len(sys.argv) > 7 else 5
conn = imaplib.IMAP4(host, int(port))
conn.login(user, password)
typ, _ = conn.create("imaplib-append")
message = (
    b"From: Load <load@example.org>\r\nTo: You <you@example.org>\r\n"
    b"Subject: small upload\r\nMessage-ID: <%d@imaplib>\r\n\r\n" + b"A short line of text.\r\n" * 40
)
latencies = []
for i in range(int(appends)):
    started = time.perf_counter()
    typ, data = conn.append("imaplib-append", None, None, message % i)
    latencies.append((time.perf_counter() - started) * 1000)
    assert typ == "OK", data
latencies.sort()
typ, data = conn.select(mailbox, readonly=True)
assert typ == "OK", data
runs = []
for _ in range(downloads):
    started = time.perf_counter()
    typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[])")
    seconds = time.perf_counter() - started
    assert typ == "OK", data
    size = sum(len(part[1]) for part in data if isinstance(part, tuple))
    runs.append(size / seconds / 1e6)
conn.logout()
if latencies:
    print(
        f"imaplib_append_p50_ms={statistics.median(latencies):.2f} "
        f"imaplib_append_p99_ms={latencies[max(int(len(latencies) * 0.99) - 1, 0)]:.2f} ",
        end="",
    )
print(
    f"imaplib_download_mb={size / 1e6:.1f} "
    f"imaplib_download_mb_per_sec={statistics.median(runs):.0f} "
    f"imaplib_download_runs={','.join(f'{r:.0f}' for r in runs)}"
)
