//! Configuration fixtures: every malformed file gives exactly the expected messages
//! (snapshots in `fixtures/*.expected`; `UPDATE_EXPECT=1` rewrites them), and a valid
//! file gives the expected typed values.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tributary_config::{ObjectStoreConfig, SourceConfig, SseKind, load};

fn env() -> HashMap<String, String> {
    HashMap::from([("TRIBUTARY_TEST_KEY".to_string(), "AKIDFROMENV".to_string())])
}

#[test]
fn malformed_fixtures_give_the_expected_messages() {
    let dir = Path::new("tests/fixtures");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("valid.yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 8);
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut mismatches = Vec::new();
    for yaml in names {
        let got = match load(&yaml, &env()) {
            Ok(_) => panic!("{} should not load", yaml.display()),
            Err(e) => format!("{e}\n"),
        };
        let expected_path = yaml.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                yaml.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn valid_fixture_gives_typed_values_and_never_prints_secrets() {
    let loaded = load(Path::new("tests/fixtures/valid.yaml"), &env()).unwrap();
    let c = loaded.config;
    assert_eq!(c.state_dir, Path::new("/var/lib/tributary"));
    let ObjectStoreConfig::S3(s3) = &c.object_store else {
        panic!("s3 expected")
    };
    assert_eq!(s3.prefix, "ingest/");
    assert!(s3.path_style);
    assert_eq!(s3.sse, Some(SseKind::Aes256));
    assert_eq!(s3.request_timeout, Duration::from_secs(90));
    let (key, secret) = s3.credentials.as_ref().unwrap();
    assert_eq!(key, "AKIDFROMENV");
    assert_eq!(
        secret.expose(),
        "secret-from-file",
        "trailing newline stripped"
    );
    assert!(
        !format!("{c:?}").contains("secret-from-file"),
        "Debug redacts secrets"
    );
    assert_eq!(c.pipeline.chunk_avg_size, 512 << 10);
    assert_eq!(c.pipeline.max_bytes_in_flight, 32 << 20);
    assert_eq!(c.pipeline.pack_size, 16 << 20);
    let d = &c.connectors[0];
    assert_eq!(d.target, "/docs");
    assert_eq!(d.max_file_size, Some(64 << 20));
    assert_eq!(d.max_delete_percent, 50.0);
    assert_eq!(
        d.schedule.as_ref().unwrap().cron.to_string(),
        "0 */15 * * * *"
    );
    let SourceConfig::Local {
        follow_symlinks, ..
    } = &d.source
    else {
        panic!("a local connector")
    };
    assert!(!follow_symlinks);
}

#[test]
fn smb_connectors_get_their_defaults_and_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("smb.yaml");
    std::fs::write(dir.path().join("pw"), "hunter2-secret\n").unwrap();
    std::fs::write(
        &cfg,
        "version: 1\nconnectors:\n  - id: fin\n    kind: smb\n    server: files.corp\n    share: finance\n    path: /reports/2026/\n    username: svc\n    password_file: pw\n    exclude: [\"*.tmp\"]\n",
    )
    .unwrap();
    let c = tributary_config::load(&cfg, &Default::default())
        .unwrap()
        .config;
    let fin = &c.connectors[0];
    let SourceConfig::Smb(s) = &fin.source else {
        panic!("an smb connector")
    };
    assert_eq!(
        (s.port, s.path.as_str(), s.domain.as_str()),
        (445, "reports/2026", "WORKGROUP")
    );
    assert_eq!(s.password.expose(), "hunter2-secret");
    assert_eq!(
        s.protocol,
        tributary_config::SmbProtocol::Smb2,
        "never SMB1 unless asked"
    );
    assert_eq!(s.workers, 1);
    assert!(
        !fin.case_sensitive,
        "SMB shares are case-insensitive by default"
    );
    for d in ["*.tmp", "~$*", "Thumbs.db", "desktop.ini", ".DS_Store"] {
        assert!(fin.exclude.iter().any(|e| e == d), "{d} excluded");
    }
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "Debug redacts the password"
    );
    // a reload with a new password is a changed connector, although Debug looks the same
    std::fs::write(dir.path().join("pw"), "rotated-secret\n").unwrap();
    let again = tributary_config::load(&cfg, &Default::default())
        .unwrap()
        .config;
    assert_eq!(format!("{:?}", again.connectors[0]), format!("{fin:?}"));
    assert!(!fin.same_settings(&again.connectors[0]));
    assert!(fin.same_settings(&c.connectors[0].clone()));
}

#[test]
fn world_readable_secret_files_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "version: 1\nobject_store:\n  kind: s3\n  bucket: b-1\n  access_key_id: k\n  secret_access_key_file: secret\n",
    )
    .unwrap();
    let loaded = load(&cfg, &HashMap::new()).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains("readable by every user"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn inline_secrets_in_a_world_readable_file_and_a_plain_http_listener_off_loopback_are_warned_about()
{
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    let warnings = |mode: u32, listen: &str, tls: &str| {
        std::fs::write(
            &cfg,
            format!("version: 1\napi:\n  listen: {listen}\n{tls}  tokens:\n    - {{ name: a, role: admin, token: an-inline-token-of-some-length }}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(mode)).unwrap();
        load(&cfg, &HashMap::new()).unwrap().warnings
    };
    let w = warnings(0o644, "0.0.0.0:8080", "");
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("`api.listen` is 0.0.0.0:8080") && w[0].contains("without `api.tls`"),
        "{w:?}"
    );
    assert!(
        w[1].contains("`api.tokens[0].token` is written inline")
            && w[1].contains("readable by every user"),
        "{w:?}"
    );
    assert!(
        !w.iter().any(|x| x.contains("an-inline-token")),
        "a warning never shows the secret"
    );
    assert_eq!(warnings(0o600, "127.0.0.1:8080", ""), Vec::<String>::new());
    assert_eq!(warnings(0o600, "\"[::1]:8080\"", ""), Vec::<String>::new());
    let pem = dir.path().join("x.pem");
    std::fs::write(&pem, "").unwrap();
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600)).unwrap();
    let tls = format!(
        "  tls: {{ cert_file: {0}, key_file: {0} }}\n",
        pem.display()
    );
    assert_eq!(warnings(0o600, "0.0.0.0:8443", &tls), Vec::<String>::new());
}

#[test]
fn api_limits_are_validated_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "version: 1\napi:\n  max_connections: 0\n  header_read_timeout: 0s\n  rate_limits:\n    client: 10/fortnight\n    failed_auth: off\n    read: 5/s\n",
    )
    .unwrap();
    let errs = load(&cfg, &HashMap::new()).unwrap_err().to_string();
    assert!(
        errs.contains("c.yaml:3:20: api.max_connections: must be at least 1"),
        "{errs}"
    );
    assert!(
        errs.contains("c.yaml:4:24: api.header_read_timeout: must be more than 0"),
        "{errs}"
    );
    assert!(
        errs.contains("c.yaml:6:13: api.rate_limits.client: expected a rate like"),
        "{errs}"
    );
    std::fs::write(
        &cfg,
        "version: 1\napi:\n  max_connections_per_client: 4\n  rate_limits:\n    failed_auth: off\n    read: 5/s\n",
    )
    .unwrap();
    let api = load(&cfg, &HashMap::new()).unwrap().config.api;
    assert_eq!(api.max_connections_per_client, 4);
    assert_eq!(api.max_connections, 1024);
    assert_eq!(api.rate_limits.failed_auth, None);
    assert_eq!(api.rate_limits.read.unwrap().count, 5);
    assert_eq!(api.rate_limits.write.unwrap().count, 600);
}

#[test]
fn openid_connect_settings_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "version: 1\napi:\n  oidc:\n    issuer: http://idp.example.com/t\n    audience: []\n    roles_claim: a..b\n    allowed_clients: []\n",
    )
    .unwrap();
    let errs = load(&cfg, &HashMap::new()).unwrap_err().to_string();
    assert!(
        errs.contains(
            "c.yaml:4:13: api.oidc.issuer: expected an https URL (http only on loopback)"
        ),
        "{errs}"
    );
    assert!(
        errs.contains("api.oidc.audience: expected a non-empty audience"),
        "{errs}"
    );
    assert!(
        errs.contains("api.oidc.roles_claim: expected a claim name or dotted path"),
        "{errs}"
    );
    assert!(
        errs.contains("api.oidc.allowed_clients: an empty list would refuse every token"),
        "{errs}"
    );
    std::fs::write(
        &cfg,
        "version: 1\napi:\n  oidc:\n    issuer: https://login.microsoftonline.com/tenant/v2.0/\n    audience: api://tributary\n    role_map: { Tributary.Admin: admin, Tributary.Read: viewer }\n",
    )
    .unwrap();
    let o = load(&cfg, &HashMap::new())
        .unwrap()
        .config
        .api
        .oidc
        .unwrap();
    assert_eq!(o.issuer, "https://login.microsoftonline.com/tenant/v2.0");
    assert_eq!(o.audiences, ["api://tributary"]);
    assert_eq!(o.roles_claim, "roles");
    assert_eq!(o.role_map["Tributary.Admin"], tributary_config::Role::Admin);
    assert!(o.allowed_clients.is_empty());
    assert!(o.sign_in.is_none());

    // the dashboard's sign-in through the provider
    std::fs::write(
        &cfg,
        "version: 1\napi:\n  oidc:\n    issuer: https://idp.example\n    audience: api://tributary\n    sign_in:\n      client_id: ''\n      client_secret: a\n      client_secret_file: b\n      scopes: ['two words']\n      redirect_url: http://tributary.example/callback\n",
    )
    .unwrap();
    let errs = load(&cfg, &HashMap::new()).unwrap_err().to_string();
    for e in [
        "api.oidc.sign_in.client_id: expected the client id registered at the provider",
        "api.oidc.sign_in.client_secret_file: give either `client_secret` or `client_secret_file`, not both",
        "api.oidc.sign_in.scopes: `two words` is not a scope",
        "api.oidc.sign_in.redirect_url: expected this API's https URL ending in /api/v1/session/oidc/callback",
    ] {
        assert!(errs.contains(e), "{e} in {errs}");
    }
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    std::fs::write(
        &cfg,
        "version: 1\napi:\n  oidc:\n    issuer: https://idp.example\n    audience: api://tributary\n    sign_in:\n      client_id: dash\n      client_secret_file: secret\n      scopes: [api://tributary/.default, openid]\n",
    )
    .unwrap();
    let si = load(&cfg, &HashMap::new())
        .unwrap()
        .config
        .api
        .oidc
        .unwrap()
        .sign_in
        .unwrap();
    assert_eq!(si.client_id, "dash");
    assert_eq!(si.client_secret.unwrap().expose(), "s3cret");
    assert_eq!(
        si.scopes,
        ["openid", "api://tributary/.default"],
        "openid first, once"
    );
    assert!(si.resource.is_none() && si.redirect_url.is_none());
}

#[test]
fn schema_names_every_top_level_key() {
    let s = tributary_config::json_schema();
    let props = s["properties"].as_object().unwrap();
    for k in [
        "version",
        "state_dir",
        "catalog",
        "object_store",
        "pipeline",
        "connectors",
    ] {
        assert!(props.contains_key(k), "schema lacks {k}");
    }
    assert_eq!(s["additionalProperties"], serde_json::json!(false));
}

#[test]
fn schedules_run_in_their_time_zone() {
    use chrono::{TimeZone, Utc};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    let write = |tz: &str| {
        std::fs::write(
            &cfg,
            format!("version: 1\nconnectors:\n  - id: a\n    kind: local\n    path: /x\n    schedule: \"0 3 * * *\"\n    timezone: {tz}\n"),
        )
        .unwrap();
        load(&cfg, &HashMap::new())
    };
    let s = write("Europe/Paris").unwrap().config.connectors[0]
        .schedule
        .clone()
        .unwrap();
    // 03:00 in Paris is 01:00 UTC in summer and 02:00 UTC in winter
    assert_eq!(
        s.next_after(Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap()),
        Some(Utc.with_ymd_and_hms(2026, 7, 1, 1, 0, 0).unwrap())
    );
    assert_eq!(
        s.next_after(Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap()),
        Some(Utc.with_ymd_and_hms(2026, 1, 10, 2, 0, 0).unwrap())
    );
    assert_eq!(s.zone.name(), "Europe/Paris");
    let f = write("\"-05:30\"").unwrap().config.connectors[0]
        .schedule
        .clone()
        .unwrap();
    assert_eq!(
        f.next_after(Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap()),
        Some(Utc.with_ymd_and_hms(2026, 1, 10, 8, 30, 0).unwrap())
    );
    let e = write("Mars/Olympus").unwrap_err().to_string();
    assert!(
        e.contains("c.yaml:7:15: connectors[0].timezone: unknown time zone `Mars/Olympus`"),
        "{e}"
    );
}

#[test]
fn token_hashes_must_be_64_hex_digits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    // 64 bytes, but not hex (multi-byte characters must not trip the parser)
    let bad = "é".repeat(32);
    std::fs::write(&cfg, format!("version: 1\napi:\n  tokens:\n    - {{ name: t, role: viewer, token_sha256: \"{bad}\" }}\n")).unwrap();
    let e = load(&cfg, &HashMap::new()).unwrap_err().to_string();
    assert!(
        e.contains("api.tokens[0].token_sha256: expected 64 hex digits"),
        "{e}"
    );
    let good = "ab".repeat(32);
    std::fs::write(&cfg, format!("version: 1\napi:\n  tokens:\n    - {{ name: t, role: viewer, token_sha256: \"{good}\" }}\n")).unwrap();
    let c = load(&cfg, &HashMap::new()).unwrap().config;
    assert_eq!(c.api.tokens[0].sha256, [0xab; 32]);
}

#[test]
fn a_postgres_catalog_gets_its_settings_and_never_shows_its_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pg-pw"), "pg-secret-from-file\n").unwrap();
    let from_file = dir.path().join("file.yaml");
    std::fs::write(
        &from_file,
        "version: 1\ncatalog:\n  url: postgres://tributary@db.corp:5432/tributary?sslmode=require\n  password_file: pg-pw\n  pool_size: 20\n  statement_timeout: 30s\nconnectors: []\n",
    )
    .unwrap();
    let c = load(&from_file, &env()).unwrap().config;
    let tributary_config::CatalogConfig::Postgres(pg) = &c.catalog else {
        panic!("a postgres catalog")
    };
    assert_eq!(
        pg.url,
        "postgres://tributary@db.corp:5432/tributary?sslmode=require"
    );
    assert_eq!(
        pg.password.as_ref().unwrap().expose(),
        "pg-secret-from-file"
    );
    assert_eq!(
        (pg.pool_size, pg.statement_timeout, pg.connect_timeout),
        (20, Some(Duration::from_secs(30)), Duration::from_secs(10))
    );
    assert!(!format!("{c:?}").contains("pg-secret"), "Debug redacts it");

    // a password written into the URL is moved out of it
    let in_url = dir.path().join("url.yaml");
    std::fs::write(
        &in_url,
        "version: 1\ncatalog:\n  url: postgresql://app:url%2Fsecret@db.corp/trib\nconnectors: []\n",
    )
    .unwrap();
    let c = load(&in_url, &env()).unwrap().config;
    let tributary_config::CatalogConfig::Postgres(pg) = &c.catalog else {
        panic!("a postgres catalog")
    };
    assert_eq!(pg.url, "postgresql://app@db.corp/trib");
    assert_eq!(pg.password.as_ref().unwrap().expose(), "url/secret");
    assert_eq!(pg.pool_size, 8);
    let shown = format!("{c:?}");
    assert!(!shown.contains("url/secret") && !shown.contains("url%2Fsecret"));
}

#[test]
fn fleet_settings_reach_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("fleet.yaml");
    std::fs::write(
        &cfg,
        "version: 1\ndaemon:\n  lease_ttl: 12s\nconnectors:\n  - id: share\n    kind: local\n    path: /mnt/share\n    instances: [host-a, host-b]\n  - id: any\n    kind: local\n    path: /srv/any\n",
    )
    .unwrap();
    let c = tributary_config::load(&cfg, &Default::default())
        .unwrap()
        .config;
    assert_eq!(c.daemon.lease_ttl, Duration::from_secs(12));
    let pinned = c.connector("share").unwrap();
    assert!(pinned.runs_on("host-a") && pinned.runs_on("host-b"));
    assert!(!pinned.runs_on("host-c"));
    assert!(c.connector("any").unwrap().runs_on("host-c"));
    assert_eq!(
        tributary_config::DaemonConfig::default().lease_ttl,
        Duration::from_secs(30)
    );
}

#[test]
fn the_configuration_reference_in_docs_is_up_to_date() {
    let committed = include_str!("../../docs/configuration.md");
    assert!(
        committed == tributary_config::reference::markdown(),
        "docs/configuration.md is out of date: run `tributary config reference > docs/configuration.md`"
    );
}
