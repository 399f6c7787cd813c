//! Account administration from the command line, with and without a running server.

mod common;

use common::*;

#[test]
fn domains_users_aliases_groups_lifecycle() {
    let sb = Sandbox::new();
    let init = sb.ok(&["init", "--domain", "example.org"], "");
    assert!(
        init.contains("admin@example.org") && init.contains("password:"),
        "{init}"
    );
    assert!(sb.ok(&["init"], "").contains("nothing changed"));

    // Domains.
    assert!(
        sb.ok(&["domain", "add", "Town.Example"], "")
            .contains("added domain town.example")
    );
    let err = sb.fails(&["domain", "add", "town.example"], "");
    assert!(err.contains("already exists"), "{err}");
    let err = sb.fails(&["domain", "add", "bad_domain!"], "");
    assert!(err.contains("invalid label"), "{err}");
    assert_eq!(
        sb.ok(&["domain", "list"], ""),
        "example.org\ntown.example\n"
    );

    // Users: password from stdin, never from the command line.
    let out = sb.ok(
        &[
            "user",
            "add",
            "Alice@Town.Example",
            "--name",
            "Alice Martin",
            "--quota",
            "500M",
            "--password-stdin",
        ],
        "a long enough password\n",
    );
    assert!(
        out.contains("added user alice@town.example (Alice Martin)"),
        "{out}"
    );
    let err = sb.fails(
        &["user", "add", "bob@town.example", "--password-stdin"],
        "short\n",
    );
    assert!(err.contains("too short"), "{err}");
    let err = sb.fails(
        &["user", "add", "bob@nowhere.example", "--password-stdin"],
        "a long enough password\n",
    );
    assert!(
        err.contains("nowhere.example") && err.contains("rampart domain add"),
        "{err}"
    );
    let err = sb.fails(&["user", "add", "bob@town.example"], "");
    assert!(err.contains("--password-stdin"), "{err}");
    let out = sb.ok(
        &["user", "add", "bob@town.example", "--generate-password"],
        "",
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("password: ") && l.len() > 30),
        "{out}"
    );
    let err = sb.fails(
        &["user", "add", "alice@town.example", "--generate-password"],
        "",
    );
    assert!(err.contains("already exists"), "{err}");

    let list = sb.ok(&["user", "list", "--domain", "town.example"], "");
    let alice = list
        .lines()
        .find(|l| l.starts_with("alice@town.example"))
        .expect(&list);
    assert!(
        alice.contains("Alice Martin") && alice.contains("500.0 MiB") && alice.contains("active"),
        "{alice}"
    );
    assert!(!list.contains("admin@example.org"));

    sb.ok(&["user", "quota", "alice@town.example", "1G"], "");
    sb.ok(
        &["user", "passwd", "alice@town.example", "--password-stdin"],
        "another long password\n",
    );
    sb.ok(&["user", "disable", "alice@town.example"], "");
    let list = sb.ok(&["user", "list"], "");
    let alice = list
        .lines()
        .find(|l| l.starts_with("alice@town.example"))
        .unwrap();
    assert!(
        alice.contains("disabled") && alice.contains("1.0 GiB"),
        "{alice}"
    );
    sb.ok(&["user", "enable", "alice@town.example"], "");

    // Aliases.
    sb.ok(
        &["alias", "add", "info@town.example", "alice@town.example"],
        "",
    );
    let err = sb.fails(
        &["alias", "add", "bob@town.example", "alice@town.example"],
        "",
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        sb.ok(&["alias", "list"], ""),
        "info@town.example -> alice@town.example\n"
    );
    let err = sb.fails(&["user", "remove", "info@town.example", "--yes"], "");
    assert!(err.contains("alias"), "{err}");

    // Groups.
    sb.ok(
        &[
            "group",
            "add",
            "council@town.example",
            "--name",
            "Town council",
        ],
        "",
    );
    let members = sb.ok(
        &[
            "group",
            "members",
            "council@town.example",
            "--add",
            "alice@town.example",
            "--add",
            "bob@town.example",
        ],
        "",
    );
    assert_eq!(members, "alice@town.example\nbob@town.example\n");
    let err = sb.fails(
        &[
            "group",
            "members",
            "council@town.example",
            "--add",
            "ghost@town.example",
        ],
        "",
    );
    assert!(err.contains("ghost@town.example"), "{err}");
    assert_eq!(
        sb.ok(&["group", "members", "council@town.example"], ""),
        "alice@town.example\nbob@town.example\n",
        "a failed change must change nothing"
    );
    let members = sb.ok(
        &[
            "group",
            "members",
            "council@town.example",
            "--remove",
            "bob@town.example",
        ],
        "",
    );
    assert_eq!(members, "alice@town.example\n");
    let err = sb.fails(
        &[
            "user",
            "passwd",
            "council@town.example",
            "--generate-password",
        ],
        "",
    );
    assert!(err.contains("is a group"), "{err}");

    // Removal.
    let err = sb.fails(&["domain", "remove", "town.example"], "");
    assert!(err.contains("remove them first"), "{err}");
    let err = sb.fails(&["user", "remove", "bob@town.example"], "");
    assert!(err.contains("--yes"), "{err}");
    for who in [
        "bob@town.example",
        "alice@town.example",
        "council@town.example",
    ] {
        sb.ok(&["user", "remove", who, "--yes"], "");
    }
    assert_eq!(
        sb.ok(&["alias", "list"], ""),
        "",
        "aliases go with their target"
    );
    sb.ok(&["domain", "remove", "town.example"], "");
    assert_eq!(sb.ok(&["domain", "list"], ""), "example.org\n");
}

#[test]
fn cli_works_while_the_server_runs() {
    let sb = Sandbox::new();
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "carol@example.org", "--password-stdin"],
        "carol's long password\n",
    );
    let mbox = "From x Mon Jan  1 00:00:00 2026\nSubject: hello\n\nbody\n";
    let out = sb.ok(
        &["mail", "import", "carol@example.org", "--print-uids"],
        mbox,
    );
    assert!(out.starts_with("uid 1\n"), "{out}");
    let list = sb.ok(&["user", "list"], "");
    assert!(list.contains("carol@example.org"), "{list}");
    assert!(server.stop().success());
    // And the server sees it after a restart.
    let server = sb.serve(&[]);
    drop(server);
    let out = sb.ok(
        &["mail", "import", "carol@example.org", "--print-uids"],
        mbox,
    );
    assert!(out.starts_with("uid 2\n"), "{out}");
}

#[test]
fn import_refuses_bad_input_and_keeps_what_was_stored() {
    let sb = Sandbox::custom("", "[limits]\nmax_message_bytes = 2048\n");
    sb.ok(&["init", "--domain", "example.org"], "");
    let err = sb.fails(
        &["mail", "import", "admin@example.org"],
        "Subject: not mbox\n\nx\n",
    );
    assert!(err.contains("not an mbox file"), "{err}");
    let big = format!(
        "From a Mon Jan  1 00:00:00 2026\nSubject: small\n\nok\n\nFrom b Mon Jan  1 00:00:00 2026\nSubject: big\n\n{}\n",
        "x".repeat(4096)
    );
    let out = sb.run(
        &["mail", "import", "admin@example.org", "--print-uids"],
        &big,
    );
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "uid 1\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_message_bytes"));
    let err = sb.fails(
        &["mail", "import", "admin@example.org", "--mailbox", "Nope"],
        "",
    );
    assert!(err.contains("Nope"), "{err}");
}

/// The same administration against the PostgreSQL backend, selected in the config.
#[test]
#[cfg_attr(
    not(rampart_test_postgres),
    ignore = "skipped: set RAMPART_TEST_POSTGRES_URL to run against PostgreSQL"
)]
fn administration_on_postgres() {
    let url = std::env::var("RAMPART_TEST_POSTGRES_URL").unwrap();
    let sb = Sandbox::custom(
        "",
        &format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
    );
    // The test database is shared by test runs: work in a domain of our own.
    let domain = format!("pg{:x}.example", std::process::id() as u64 * 7919 + 17);
    // No `init`: with PostgreSQL the schema is created on first use by any command.
    assert!(sb.ok(&["domain", "add", &domain], "").contains("added"));
    let alice = format!("alice@{domain}");
    sb.ok(
        &["user", "add", &alice, "--password-stdin"],
        "a long enough password\n",
    );
    let mbox = "From x Mon Jan  1 00:00:00 2026\nSubject: on postgres\n\nbody\n";
    assert_eq!(
        sb.ok(&["mail", "import", &alice, "--print-uids"], mbox)
            .lines()
            .next(),
        Some("uid 1")
    );
    assert!(
        sb.ok(&["user", "list", "--domain", &domain], "")
            .contains(&alice)
    );
    assert!(
        !sb.data().join("rampart.db").exists(),
        "postgres backend wrote a SQLite file"
    );
    sb.ok(&["user", "remove", &alice, "--yes"], "");
    sb.ok(&["domain", "remove", &domain], "");
}
