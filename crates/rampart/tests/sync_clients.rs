//! Real synchronising IMAP clients against the real server: isync (mbsync)
//! mirrors a 1,000-message mailbox both ways with flags, moves and deletes;
//! offlineimap does the same on a smaller one.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

const PASSWORD: &str = "alice long password 42";

/// An mbox of `n` messages of varied size and shape.
fn mbox(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("From sender@example.net Mon Jan  5 10:00:00 2026\n");
        out.push_str(&format!(
            "From: Sender {i} <sender{i}@example.net>\nTo: alice@example.org\nSubject: message {i}\n\
             Date: Mon, 5 Jan 2026 10:{:02}:00 +0000\nMessage-ID: <m{i}@example.net>\n",
            i % 60
        ));
        if i % 10 == 0 {
            out.push_str(
                "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\
                 Content-Type: text/plain\n\nsee attachment\n--b\n\
                 Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n",
            );
            out.push_str(&"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n".repeat(i % 50 + 1));
            out.push_str("--b--\n");
        } else {
            out.push('\n');
            out.push_str(&format!("Body of message {i}.\n").repeat(i % 20 + 1));
        }
    }
    out
}

fn maildir_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(entries) = fs::read_dir(dir.join(sub)) {
            out.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

/// Runs a client to the end; returns what it printed, failing on an error exit.
fn run_client(cmd: &mut Command, what: &str) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn mbsync(config: &Path, verbose: bool) -> String {
    let (ok, text) = run_client(
        Command::new("mbsync")
            .args(if verbose { &["-Dn"][..] } else { &[][..] })
            .arg("-c")
            .arg(config)
            .arg("-a"),
        "mbsync",
    );
    assert!(ok, "mbsync failed:\n{text}");
    text
}

/// Runs a Python imaplib snippet as alice over TLS; `conn` is logged in.
fn imap_python(sb: &Sandbox, server: &Server, body: &str) -> String {
    let script = format!(
        "import imaplib, ssl\nctx = ssl.create_default_context(cafile={cert:?})\n\
         conn = imaplib.IMAP4_SSL('localhost', {port}, ssl_context=ctx)\n\
         conn.login('alice@example.org', {PASSWORD:?})\n{body}\nconn.logout()\n",
        cert = sb.data().join("tls/cert.pem").display().to_string(),
        port = server.addr("imaps").port(),
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imaplib snippet failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(
    not(rampart_test_mbsync),
    ignore = "skipped: needs isync (mbsync) and python3 as IMAP clients"
)]
fn mbsync_mirrors_a_thousand_messages_both_ways() {
    let sb = Sandbox::new();
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    sb.ok(&["mail", "import", "alice@example.org"], &mbox(1000));

    let local = sb.dir.path().join("mail");
    fs::create_dir_all(&local).unwrap();
    let config = sb.dir.path().join("mbsyncrc");
    fs::write(
        &config,
        format!(
            "IMAPAccount rampart\nHost localhost\nPort {port}\nUser alice@example.org\n\
             Pass \"{PASSWORD}\"\nSSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore remote\nAccount rampart\n\n\
             MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\n\
             SyncState *\nSync All\n",
            port = server.addr("imaps").port(),
            cert = sb.data().join("tls/cert.pem").display(),
            local = local.display(),
        ),
    )
    .unwrap();

    // First run: everything comes down, folders included.
    let first = mbsync(&config, false);
    println!("first run:\n{first}");
    let inbox = local.join("INBOX");
    let files = maildir_files(&inbox);
    assert_eq!(files.len(), 1000, "messages in the local INBOX");
    for folder in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(
            local.join(folder).join("cur").is_dir(),
            "{folder} not mirrored"
        );
    }
    // The content arrives whole (mbsync stores it with LF line ends).
    let sample = fs::read_to_string(
        files
            .iter()
            .find(|f| {
                fs::read_to_string(f)
                    .unwrap()
                    .contains("Subject: message 501\n")
            })
            .expect("message 501 mirrored"),
    )
    .unwrap();
    assert!(sample.contains("Body of message 501.\n"), "{sample}");

    // Local changes: 10 marked seen, 5 deleted, 5 moved to Archive.
    let files = maildir_files(&inbox);
    for (i, f) in files.iter().enumerate().take(20) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let base = name.split(":2,").next().unwrap().to_owned();
        let (dir, flags) = match i {
            0..10 => (inbox.join("cur"), "S"),
            10..15 => (inbox.join("cur"), "ST"),
            _ => (local.join("Archive").join("cur"), "S"),
        };
        // A file moved to another folder loses mbsync's ",U=" (as its manual says).
        let base = match (i, base.find(",U=")) {
            (15.., Some(at)) => base[..at].to_owned(),
            _ => base,
        };
        fs::rename(f, dir.join(format!("{base}:2,{flags}"))).unwrap();
    }
    // Server-side changes: 3 new messages, 7 flagged.
    sb.ok(&["mail", "import", "alice@example.org"], &mbox(3));
    imap_python(
        &sb,
        &server,
        "conn.select('INBOX')\nconn.store('990:996', '+FLAGS', '(\\\\Flagged)')",
    );

    let second = mbsync(&config, false);
    println!("second run:\n{second}");
    // Server: 1000 - 5 deleted - 5 moved + 3 new; Archive holds the moved 5;
    // 15 seen (10 kept, 5 moved).
    let counts = imap_python(
        &sb,
        &server,
        "for box in ['INBOX', 'Archive']:\n    conn.select(box)\n    \
         n = len(conn.search(None, 'ALL')[1][0].split())\n    \
         seen = len(conn.search(None, 'SEEN')[1][0].split())\n    \
         flagged = len(conn.search(None, 'FLAGGED')[1][0].split())\n    \
         print(box, n, seen, flagged)",
    );
    assert_eq!(
        counts, "INBOX 993 10 7\nArchive 5 5 0\n",
        "server state after sync"
    );
    // Local: the same, with the server's flags.
    let files = maildir_files(&inbox);
    assert_eq!(files.len(), 993, "local INBOX after sync");
    let flagged = files
        .iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            name.split(":2,").nth(1).is_some_and(|fl| fl.contains('F'))
        })
        .count();
    assert_eq!(flagged, 7, "flags pulled from the server");
    assert_eq!(maildir_files(&local.join("Archive")).len(), 5);

    // Third run: nothing left to do in either direction.
    let third = mbsync(&config, true);
    println!("third run:\n{third}");
    // mbsync -Dn shows every command it sends (lines starting ">>> ").
    let sent: Vec<&str> = third.lines().filter(|l| l.contains(">>> ")).collect();
    assert!(
        sent.iter().any(|l| l.contains("UID FETCH")),
        "no commands logged:\n{third}"
    );
    for line in &sent {
        for verb in [
            "APPEND",
            "STORE",
            "EXPUNGE",
            "BODY.PEEK[]",
            "BODY[]",
            "MOVE",
            "COPY",
        ] {
            assert!(!line.contains(verb), "third run still transfers: {line}");
        }
    }
    server.stop();
}

fn offlineimap(config: &Path) -> String {
    let (ok, text) = run_client(
        Command::new("offlineimap")
            .arg("-c")
            .arg(config)
            .args(["-o", "-u", "basic"]),
        "offlineimap",
    );
    assert!(ok && !text.contains("ERROR"), "offlineimap failed:\n{text}");
    text
}

#[test]
#[cfg_attr(
    not(rampart_test_offlineimap),
    ignore = "skipped: needs offlineimap and python3 as IMAP clients"
)]
fn offlineimap_syncs_flags_and_new_mail_both_ways() {
    let sb = Sandbox::new();
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    sb.ok(&["mail", "import", "alice@example.org"], &mbox(200));
    let root = sb.dir.path();
    let local = root.join("oi-mail");
    let config = root.join("offlineimaprc");
    fs::write(
        &config,
        format!(
            "[general]\naccounts = rampart\nmetadata = {meta}\n\n\
             [Account rampart]\nlocalrepository = local\nremoterepository = remote\n\n\
             [Repository local]\ntype = Maildir\nlocalfolders = {local}\n\n\
             [Repository remote]\ntype = IMAP\nremotehost = localhost\nremoteport = {port}\n\
             ssl = yes\nsslcacertfile = {cert}\nremoteuser = alice@example.org\nremotepass = {PASSWORD}\n",
            meta = root.join("oi-meta").display(),
            local = local.display(),
            port = server.addr("imaps").port(),
            cert = sb.data().join("tls/cert.pem").display(),
        ),
    )
    .unwrap();
    let first = offlineimap(&config);
    println!("first run:\n{first}");
    let inbox = local.join("INBOX");
    let files = maildir_files(&inbox);
    assert_eq!(files.len(), 200, "messages in the local INBOX");
    // Locally: 4 flagged. Remotely: 2 new messages.
    for f in files.iter().take(4) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let base = name.split(":2,").next().unwrap().to_owned();
        fs::rename(f, inbox.join("cur").join(format!("{base}:2,F"))).unwrap();
    }
    sb.ok(&["mail", "import", "alice@example.org"], &mbox(2));
    let second = offlineimap(&config);
    println!("second run:\n{second}");
    assert_eq!(maildir_files(&inbox).len(), 202, "new mail pulled");
    let counts = imap_python(
        &sb,
        &server,
        "conn.select('INBOX')\nprint(len(conn.search(None, 'ALL')[1][0].split()), \
         len(conn.search(None, 'FLAGGED')[1][0].split()))",
    );
    assert_eq!(counts, "202 4\n", "flags pushed to the server");
    server.stop();
}
