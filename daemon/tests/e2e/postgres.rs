//! A PostgreSQL catalog through the `tributary` binary: `check --connect` reports the
//! server and the migration state, `migrate [--dry-run]` applies or lists them, a run
//! ingests into it and a rerun finds nothing to do; an unreachable server, a refused
//! password, a missing database and a newer schema are one clear message each that
//! names the server, database and user and never shows the password.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tributary_testkit::{postgres, tree};

use crate::common::BIN;

fn config(dir: &Path, catalog: &str) -> PathBuf {
    let cfg = dir.join("tributary.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nstate_dir: state\n{catalog}connectors:\n  - id: docs\n    kind: local\n    path: src\n    target: /docs\n"
        ),
    )
    .unwrap();
    cfg
}

fn run(cfg: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("-c")
        .arg(cfg)
        .env_remove("RUST_LOG")
        .env_remove("PGPASSWORD");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(cfg: &Path, args: &[&str]) -> String {
    let out = run(cfg, args, &[]);
    assert!(out.status.success(), "tributary {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `postgres://user@host:port/db` of a URL (what messages name).
fn shown(url: &str) -> String {
    url.split('?').next().unwrap().to_string()
}

#[test]
fn a_postgres_catalog_is_checked_migrated_ingested_into_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    tree::generate(&dir.path().join("src"), 30, 2 << 20);
    let url = postgres::fresh_database();
    let cfg = config(
        dir.path(),
        &format!("catalog:\n  url: {url}\n  pool_size: 4\n  statement_timeout: 60s\n"),
    );

    let check = ok(&cfg, &["check", "--connect"]);
    assert!(
        check.contains(&format!("catalog {}: ok (PostgreSQL", shown(&url))),
        "{check}"
    );
    assert!(
        check.contains("schema version 0; "),
        "an empty database: {check}"
    );
    assert!(
        check.contains("to apply at start or with `tributary migrate`"),
        "{check}"
    );

    let dry = ok(&cfg, &["migrate", "--dry-run"]);
    assert!(
        dry.contains("at schema version 0; would apply 1, 2,"),
        "{dry}"
    );
    assert!(
        ok(&cfg, &["check", "--connect"]).contains("schema version 0; "),
        "a dry run applies nothing"
    );
    let applied = ok(&cfg, &["migrate"]);
    assert!(applied.contains("applied"), "{applied}");
    let again = ok(&cfg, &["migrate"]);
    assert!(again.contains("nothing to apply"), "{again}");
    let check = ok(&cfg, &["check", "--connect"]);
    assert!(!check.contains("to apply"), "{check}");

    let first: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["once", "docs", "--json"])).unwrap();
    assert_eq!(first["status"], "succeeded", "{first}");
    assert!(
        first["stats"]["versions_committed"].as_u64().unwrap() >= 30,
        "{first}"
    );
    let rerun: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["once", "docs", "--json"])).unwrap();
    assert_eq!(
        rerun["stats"]["versions_committed"], 0,
        "nothing changed: {rerun}"
    );
    let verify: serde_json::Value = serde_json::from_str(&ok(&cfg, &["verify", "--json"])).unwrap();
    assert_eq!(
        (&verify["missing"], &verify["corrupt"]),
        (&serde_json::json!([]), &serde_json::json!([])),
        "{verify}"
    );
    let out = dir.path().join("restored");
    ok(&cfg, &["restore", "/docs", out.to_str().unwrap()]);
    assert!(
        tree::snapshot(&dir.path().join("src")) == tree::snapshot(&out.join("docs")),
        "restored bytes differ from the source"
    );
    assert!(
        !dir.path().join("state/catalog.db").exists(),
        "no SQLite catalog beside it"
    );

    // a catalog written by a newer binary is refused, before anything is written
    let psql = std::env::var_os("TRIBUTARY_PG_BIN")
        .map(|b| PathBuf::from(b).join("psql"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "psql".into());
    let st = Command::new(psql)
        .args([
            url.as_str(),
            "-q",
            "-c",
            "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    for args in [&["check", "--connect"][..], &["migrate"], &["once", "docs"]] {
        let out = run(&cfg, args, &[]);
        assert!(!out.status.success(), "{args:?}");
        let t = text(&out);
        assert!(
            t.contains("at schema version 9999, newer than this binary's"),
            "{args:?}: {t}"
        );
        assert!(t.contains(&shown(&url)), "names the catalog: {t}");
    }

    // the catalog lost: rebuilt from the bucket alone into another database, after
    // which a run finds nothing to store and a restore is byte-identical
    let again = postgres::fresh_database();
    let cfg = config(dir.path(), &format!("catalog:\n  url: {again}\n"));
    let rebuilt: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["rebuild-catalog", "--json"])).unwrap();
    assert!(
        rebuilt["versions"].as_u64().unwrap() >= 30
            && rebuilt["unreadable_packs"] == serde_json::json!([]),
        "{rebuilt}"
    );
    let rerun: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["once", "docs", "--json"])).unwrap();
    assert_eq!(rerun["stats"]["versions_committed"], 0, "{rerun}");
    let out = dir.path().join("restored-again");
    ok(&cfg, &["restore", "/docs", out.to_str().unwrap()]);
    assert!(
        tree::snapshot(&dir.path().join("src")) == tree::snapshot(&out.join("docs")),
        "restored bytes differ from the source after the rebuild"
    );
}

#[test]
fn catalog_connection_failures_are_one_clear_message_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let server = postgres::shared();
    let url = server.database_with_password("right-horse-battery");
    let host = format!("127.0.0.1:{}", server.port);

    // the right password, from a file or from PGPASSWORD
    std::fs::write(dir.path().join("pg-pw"), "right-horse-battery\n").unwrap();
    let cfg = config(
        dir.path(),
        &format!("catalog:\n  url: {url}\n  password_file: pg-pw\n"),
    );
    assert!(ok(&cfg, &["check", "--connect"]).contains("ok (PostgreSQL"));
    let cfg = config(dir.path(), &format!("catalog:\n  url: {url}\n"));
    let out = run(
        &cfg,
        &["check", "--connect"],
        &[("PGPASSWORD", "right-horse-battery")],
    );
    assert!(out.status.success(), "PGPASSWORD: {}", text(&out));

    // a wrong one, in a file or in the URL
    std::fs::write(dir.path().join("pg-pw"), "wrong-zebra-staple\n").unwrap();
    let in_url = url.replace("tributary_pw@", "tributary_pw:wrong-zebra-staple@");
    for catalog in [
        format!("catalog:\n  url: {url}\n  password_file: pg-pw\n"),
        format!("catalog:\n  url: {in_url}\n"),
    ] {
        let cfg = config(dir.path(), &catalog);
        for args in [&["check", "--connect"][..], &["migrate"], &["once", "docs"]] {
            let out = run(&cfg, args, &[]);
            assert!(!out.status.success(), "{args:?}");
            let t = text(&out);
            assert!(
                t.contains(&shown(&url)),
                "{args:?} names host, database and user: {t}"
            );
            assert!(t.contains("refused the log-on"), "{args:?}: {t}");
            assert!(
                !t.contains("wrong-zebra") && !t.contains("right-horse"),
                "{args:?} shows a password: {t}"
            );
        }
    }

    // nothing listening
    let port = crate::common::free_port();
    let gone = format!("postgres://tributary@127.0.0.1:{port}/tributary");
    let cfg = config(
        dir.path(),
        &format!("catalog:\n  url: {gone}\n  connect_timeout: 3s\n"),
    );
    let out = run(&cfg, &["check", "--connect"], &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains(&gone) && t.contains("cannot reach the server"),
        "{t}"
    );

    // no such database
    let missing = format!("postgres://postgres@{host}/no_such_catalog");
    let cfg = config(dir.path(), &format!("catalog:\n  url: {missing}\n"));
    let out = run(&cfg, &["check", "--connect"], &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains(&missing) && t.contains("does not exist"), "{t}");
}
