//! One connector's settings: the keys every kind shares (id, target, schedule,
//! filters, policies), the keys of each kind and which kinds a key belongs to
//! ([`KIND_KEYS`]), then the SMB and SharePoint sources.

use super::*;

pub(super) fn connector(
    cx: &mut Ctx,
    path: &str,
    rc: &raw::RawConnector,
) -> Option<ConnectorConfig> {
    let before = cx.errors.len();
    let id_ok = !rc.id.is_empty()
        && rc.id.len() <= 64
        && rc
            .id
            .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && rc
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !id_ok {
        cx.error(
            format!("{path}.id"),
            format!("invalid connector id `{}`: expected 1-64 lowercase letters, digits, `-` or `_`, starting with a letter or digit", rc.id),
        );
    }
    let target = match &rc.target {
        None => format!("/{}", rc.id),
        Some(t) => {
            let norm = t.trim_end_matches('/').to_string();
            if !t.starts_with('/') {
                cx.error(
                    format!("{path}.target"),
                    format!("expected an absolute path starting with `/`, got `{t}`"),
                );
            } else if norm.split('/').any(|s| s == "." || s == "..") || norm.contains("//") {
                cx.error(
                    format!("{path}.target"),
                    format!("`{t}` must not contain empty, `.` or `..` segments"),
                );
            }
            norm
        }
    };
    let mut schedule = rc
        .schedule
        .as_deref()
        .and_then(|s| match parse_schedule(s) {
            Ok(s) => Some(s),
            Err(m) => {
                cx.error(format!("{path}.schedule"), m);
                None
            }
        });
    if let Some(tz) = &rc.timezone {
        let zone = parse_offset(tz).map(crate::Zone::Fixed).or_else(|| {
            tz.trim()
                .parse::<chrono_tz::Tz>()
                .ok()
                .map(crate::Zone::Named)
        });
        match zone {
            Some(z) => {
                if let Some(s) = schedule.as_mut() {
                    s.zone = z;
                }
            }
            None => cx.error(
                format!("{path}.timezone"),
                format!("unknown time zone `{tz}`: expected an IANA name like `Europe/Paris`, `UTC` or a fixed offset like `+02:00`"),
            ),
        }
    }
    let ci = rc.glob_case_insensitive.unwrap_or(false);
    for (key, globs) in [("include", &rc.include), ("exclude", &rc.exclude)] {
        for (j, g) in globs.iter().enumerate() {
            if let Err(e) = globset::GlobBuilder::new(g)
                .literal_separator(true)
                .case_insensitive(ci)
                .build()
            {
                cx.error(
                    format!("{path}.{key}[{j}]"),
                    format!("invalid glob `{g}`: {}", e.kind()),
                );
            }
        }
    }
    let max_file_size = cx.size(&format!("{path}.max_file_size"), &rc.max_file_size);
    let max_delete_percent = rc.max_delete_percent.unwrap_or(50.0);
    if !(0.0..=100.0).contains(&max_delete_percent) {
        cx.error(
            format!("{path}.max_delete_percent"),
            format!("expected a percentage from 0 to 100, got {max_delete_percent}"),
        );
    }
    let quota = Quota {
        max_bytes: rc
            .quota
            .as_ref()
            .and_then(|q| cx.size(&format!("{path}.quota.max_bytes"), &q.max_bytes)),
        max_files: rc.quota.as_ref().and_then(|q| q.max_files),
    };
    for (key, kinds) in foreign_keys(rc) {
        cx.error(
            format!("{path}.{key}"),
            foreign_key_message(key, rc.kind, kinds),
        );
    }
    let source = match rc.kind {
        ConnectorKind::Local => match &rc.path {
            Some(p) => Some(SourceConfig::Local {
                path: cx.resolve(p),
                follow_symlinks: rc.follow_symlinks.unwrap_or(false),
                one_file_system: rc.one_file_system.unwrap_or(true),
            }),
            None => {
                cx.error(
                    format!("{path}.path"),
                    "missing: `kind: local` needs `path`, the folder to ingest",
                );
                None
            }
        },
        ConnectorKind::Smb => smb(cx, path, rc).map(SourceConfig::Smb),
        ConnectorKind::Sharepoint => sharepoint(cx, path, rc).map(SourceConfig::SharePoint),
    };
    if rc.watch == Some(true) && rc.kind != ConnectorKind::Local {
        cx.error(
            format!("{path}.watch"),
            "`watch` needs file-system events: only `kind: local` has them (use `schedule`)",
        );
    }
    let instances = rc.instances.clone().unwrap_or_default();
    for (i, id) in instances.iter().enumerate() {
        if !crate::validate::valid_instance_id(id) {
            cx.error(
                format!("{path}.instances[{i}]"),
                format!(
                    "`{id}`: expected an instance id (1 to 64 letters, digits, `.`, `_` or `-`)"
                ),
            );
        }
    }
    if rc.instances.as_ref().is_some_and(|v| v.is_empty()) {
        cx.error(
            format!("{path}.instances"),
            "empty: no instance could run the connector (leave `instances` out for any)",
        );
    }
    if cx.errors.len() > before {
        return None;
    }
    let mut exclude = rc.exclude.clone();
    if rc.kind == ConnectorKind::Smb {
        // Office lock files and Windows/macOS folder metadata are never documents
        for d in SMB_DEFAULT_EXCLUDES {
            if !exclude.iter().any(|e| e == d) {
                exclude.push(d.to_string());
            }
        }
    }
    Some(ConnectorConfig {
        id: rc.id.clone(),
        kind: rc.kind,
        target,
        schedule,
        include: rc.include.clone(),
        exclude,
        glob_case_insensitive: ci,
        max_file_size,
        max_delete_percent,
        quota,
        conflict_policy: rc.conflict_policy.unwrap_or_default(),
        case_sensitive: rc
            .case_sensitive
            .unwrap_or(matches!(rc.kind, ConnectorKind::Local)),
        watch: rc.watch.unwrap_or(false),
        vectorize: rc.vectorize.unwrap_or(false),
        instances,
        source: source?,
        origin: crate::Origin::File,
        spec: crate::api_connector::spec_of(rc),
    })
}

use ConnectorKind::{Local, Sharepoint, Smb};

/// A kind-specific connector key: its name, the kinds it belongs to, whether it is set.
type KindKey = (
    &'static str,
    &'static [ConnectorKind],
    fn(&raw::RawConnector) -> bool,
);

/// The keys of a connector that belong to some kinds only. Keys not listed (id, kind,
/// target, schedule, filters, policies, vectorize) apply to every kind; `watch` has its
/// own message.
const KIND_KEYS: &[KindKey] = &[
    ("path", &[Local, Smb], |rc| rc.path.is_some()),
    ("follow_symlinks", &[Local], |rc| {
        rc.follow_symlinks.is_some()
    }),
    ("one_file_system", &[Local], |rc| {
        rc.one_file_system.is_some()
    }),
    ("server", &[Smb], |rc| rc.server.is_some()),
    ("port", &[Smb], |rc| rc.port.is_some()),
    ("share", &[Smb], |rc| rc.share.is_some()),
    ("domain", &[Smb], |rc| rc.domain.is_some()),
    ("username", &[Smb], |rc| rc.username.is_some()),
    ("password", &[Smb], |rc| rc.password.is_some()),
    ("password_file", &[Smb], |rc| rc.password_file.is_some()),
    ("protocol", &[Smb], |rc| rc.protocol.is_some()),
    ("directory_timeout", &[Smb], |rc| {
        rc.directory_timeout.is_some()
    }),
    ("workers", &[Smb], |rc| rc.workers.is_some()),
    ("tenant_id", &[Sharepoint], |rc| rc.tenant_id.is_some()),
    ("client_id", &[Sharepoint], |rc| rc.client_id.is_some()),
    ("client_secret", &[Sharepoint], |rc| {
        rc.client_secret.is_some()
    }),
    ("client_secret_file", &[Sharepoint], |rc| {
        rc.client_secret_file.is_some()
    }),
    ("certificate_file", &[Sharepoint], |rc| {
        rc.certificate_file.is_some()
    }),
    ("private_key_file", &[Sharepoint], |rc| {
        rc.private_key_file.is_some()
    }),
    ("site", &[Sharepoint], |rc| rc.site.is_some()),
    ("drives", &[Sharepoint], |rc| !rc.drives.is_empty()),
    ("graph_url", &[Sharepoint], |rc| rc.graph_url.is_some()),
    ("token_url", &[Sharepoint], |rc| rc.token_url.is_some()),
    ("permissions", &[Sharepoint], |rc| rc.permissions.is_some()),
    ("permissions_rescan", &[Sharepoint], |rc| {
        rc.permissions_rescan.is_some()
    }),
    ("read_timeout", &[Sharepoint], |rc| {
        rc.read_timeout.is_some()
    }),
];

/// The keys set in `rc` that do not belong to its kind, each with the kinds it does
/// belong to.
fn foreign_keys(rc: &raw::RawConnector) -> Vec<(&'static str, &'static [ConnectorKind])> {
    KIND_KEYS
        .iter()
        .filter(|(_, kinds, is_set)| !kinds.contains(&rc.kind) && is_set(rc))
        .map(|&(key, kinds, _)| (key, kinds))
        .collect()
}

fn kind_name(k: ConnectorKind) -> &'static str {
    match k {
        Local => "local",
        Smb => "smb",
        Sharepoint => "sharepoint",
    }
}

fn foreign_key_message(key: &str, kind: ConnectorKind, kinds: &[ConnectorKind]) -> String {
    let owners: Vec<String> = kinds
        .iter()
        .map(|k| format!("`kind: {}`", kind_name(*k)))
        .collect();
    format!(
        "`{key}` does not apply to `kind: {}`: it is a key of {}",
        kind_name(kind),
        owners.join(" and ")
    )
}

/// A non-empty string setting a connector kind needs; reports it missing otherwise.
fn required(
    cx: &mut Ctx,
    path: &str,
    kind: &str,
    key: &str,
    v: &Option<String>,
    what: &str,
) -> String {
    match v {
        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            cx.error(
                format!("{path}.{key}"),
                format!("missing: `kind: {kind}` needs `{key}`, {what}"),
            );
            String::new()
        }
    }
}

fn sharepoint(cx: &mut Ctx, path: &str, rc: &raw::RawConnector) -> Option<crate::SharePointSource> {
    let before = cx.errors.len();
    let need = |cx: &mut Ctx, key: &str, v: &Option<String>, what: &str| {
        required(cx, path, "sharepoint", key, v, what)
    };
    let tenant_id = need(cx, "tenant_id", &rc.tenant_id, "the Entra ID tenant");
    let client_id = need(cx, "client_id", &rc.client_id, "the app registration's id");
    let site = need(cx, "site", &rc.site, "a site id or `host:/sites/name`");
    let certificate = match (&rc.certificate_file, &rc.private_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let read = |cx: &mut Ctx, key_name: &str, file: &str, marker: &str| {
                let p = cx.resolve(file);
                match std::fs::read_to_string(&p) {
                    Ok(text) if text.contains(marker) => Some(text),
                    Ok(_) => {
                        cx.error(
                            format!("{path}.{key_name}"),
                            format!(
                                "`{}` is not a PEM file with a `{marker}` block",
                                p.display()
                            ),
                        );
                        None
                    }
                    Err(e) => {
                        cx.error(
                            format!("{path}.{key_name}"),
                            format!("cannot read `{}`: {e}", p.display()),
                        );
                        None
                    }
                }
            };
            let cert_pem = read(cx, "certificate_file", cert, "-----BEGIN CERTIFICATE-----");
            let key_pem = read(cx, "private_key_file", key, "PRIVATE KEY-----");
            if let Ok(p) = std::fs::canonicalize(cx.resolve(key)) {
                warn_if_world_readable(&p, &mut cx.warnings);
            }
            match (cert_pem, key_pem) {
                (Some(c), Some(k)) => Some((c, Secret::new(k))),
                _ => None,
            }
        }
        (Some(_), None) => {
            cx.error(
                format!("{path}.certificate_file"),
                "`certificate_file` needs `private_key_file` (the certificate's RSA key, PEM)",
            );
            None
        }
        (None, Some(_)) => {
            cx.error(
                format!("{path}.private_key_file"),
                "`private_key_file` needs `certificate_file` (the certificate registered with the app, PEM)",
            );
            None
        }
    };
    let secret = cx.secret(
        path,
        "client_secret",
        &rc.client_secret,
        &rc.client_secret_file,
    );
    let has_secret = rc.client_secret.is_some() || rc.client_secret_file.is_some();
    let has_cert = rc.certificate_file.is_some() || rc.private_key_file.is_some();
    if has_secret && has_cert {
        cx.error(
            format!("{path}.certificate_file"),
            "give either a client secret or a certificate, not both",
        );
    } else if !has_secret && !has_cert {
        cx.error(
            format!("{path}.client_secret"),
            "missing: `kind: sharepoint` needs `client_secret`/`client_secret_file` or `certificate_file` + `private_key_file`",
        );
    }
    let credential = match (secret, certificate) {
        (Some(s), None) => Some(crate::SharePointCredential::Secret(s)),
        (None, Some((cert_pem, key_pem))) => {
            Some(crate::SharePointCredential::Certificate { cert_pem, key_pem })
        }
        _ => None,
    };
    let url = |cx: &mut Ctx, key: &str, v: &Option<String>, default: String| {
        let u = v.clone().unwrap_or(default);
        if !https_or_loopback(&u) {
            cx.error(
                format!("{path}.{key}"),
                format!("`{u}`: expected an https URL (http only on loopback, for tests)"),
            );
        }
        u
    };
    let graph_url = url(
        cx,
        "graph_url",
        &rc.graph_url,
        "https://graph.microsoft.com/v1.0".into(),
    );
    let token_url = url(
        cx,
        "token_url",
        &rc.token_url,
        format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"),
    );
    let permissions_rescan = cx.positive_duration(
        &format!("{path}.permissions_rescan"),
        &rc.permissions_rescan,
        Duration::from_secs(7 * 86400),
    );
    let read_timeout = cx.positive_duration(
        &format!("{path}.read_timeout"),
        &rc.read_timeout,
        Duration::from_secs(60),
    );
    if cx.errors.len() > before {
        return None;
    }
    Some(crate::SharePointSource {
        tenant_id,
        client_id,
        credential: credential?,
        site,
        drives: rc.drives.clone(),
        graph_url,
        token_url,
        permissions: rc.permissions.unwrap_or(false),
        permissions_rescan,
        read_timeout,
    })
}

/// Always excluded from SMB shares, in addition to the connector's own `exclude`.
pub const SMB_DEFAULT_EXCLUDES: [&str; 4] = ["~$*", "Thumbs.db", "desktop.ini", ".DS_Store"];

fn smb(cx: &mut Ctx, path: &str, rc: &raw::RawConnector) -> Option<crate::SmbSource> {
    let before = cx.errors.len();
    let need = |cx: &mut Ctx, key: &str, v: &Option<String>, what: &str| {
        required(cx, path, "smb", key, v, what)
    };
    let server = need(cx, "server", &rc.server, "the file server's host name");
    let share = need(cx, "share", &rc.share, "the share name");
    let username = need(cx, "username", &rc.username, "the account to log in with");
    if share.contains(['/', '\\']) {
        cx.error(
            format!("{path}.share"),
            format!("`{share}` is a share name, not a path: put the folder inside it in `path`"),
        );
    }
    let password = cx.secret(path, "password", &rc.password, &rc.password_file);
    if password.is_none() && rc.password.is_none() && rc.password_file.is_none() {
        cx.error(
            format!("{path}.password"),
            "missing: `kind: smb` needs `password` or `password_file`",
        );
    }
    let timeout = match &rc.directory_timeout {
        None => std::time::Duration::from_secs(60),
        Some(v) => match v.duration() {
            Ok(d) if d >= std::time::Duration::from_secs(1) => d,
            Ok(_) => {
                cx.error(format!("{path}.directory_timeout"), "expected at least 1s");
                std::time::Duration::from_secs(60)
            }
            Err(m) => {
                cx.error(format!("{path}.directory_timeout"), m);
                std::time::Duration::from_secs(60)
            }
        },
    };
    let workers = rc.workers.unwrap_or(1);
    if !(1..=16).contains(&workers) {
        cx.error(
            format!("{path}.workers"),
            format!("expected 1 to 16 worker processes, got {workers}"),
        );
    }
    if cx.errors.len() > before {
        return None;
    }
    Some(crate::SmbSource {
        server,
        port: rc.port.unwrap_or(445),
        share,
        path: rc
            .path
            .as_deref()
            .unwrap_or("")
            .trim_matches(['/', '\\'])
            .replace('\\', "/"),
        domain: rc.domain.clone().unwrap_or_else(|| "WORKGROUP".into()),
        username,
        password: password?,
        protocol: rc.protocol.unwrap_or(crate::SmbProtocol::Smb2),
        timeout,
        workers: workers as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(yaml: &str) -> raw::RawConnector {
        serde_yaml::from_str(yaml).unwrap()
    }

    /// Keys every kind has.
    const COMMON: &[&str] = &[
        "id",
        "kind",
        "target",
        "schedule",
        "timezone",
        "include",
        "exclude",
        "glob_case_insensitive",
        "max_file_size",
        "max_delete_percent",
        "quota",
        "conflict_policy",
        "case_sensitive",
        "watch",
        "vectorize",
        "instances",
    ];

    #[test]
    fn every_connector_key_is_common_or_listed_with_its_kinds() {
        let schema = serde_json::to_value(schemars::schema_for!(raw::RawConnector)).unwrap();
        let props = schema["properties"].as_object().unwrap();
        for key in props.keys() {
            let listed = KIND_KEYS.iter().any(|(k, _, _)| k == key);
            assert!(
                listed != COMMON.contains(&key.as_str()),
                "`{key}` must be either common or in KIND_KEYS (exactly one)"
            );
        }
        assert_eq!(props.len(), COMMON.len() + KIND_KEYS.len());
    }

    #[test]
    fn keys_of_another_kind_are_named_with_the_kinds_they_belong_to() {
        for (yaml, want) in [
            ("{id: a, kind: local, path: /x}", vec![]),
            (
                "{id: a, kind: sharepoint, site: s, server: f, password: p, workers: 2, path: /x}",
                vec!["path", "server", "password", "workers"],
            ),
            (
                "{id: a, kind: smb, server: f, tenant_id: t, site: s, drives: [d], follow_symlinks: true}",
                vec!["follow_symlinks", "tenant_id", "site", "drives"],
            ),
            (
                "{id: a, kind: local, path: /x, password_file: /p, read_timeout: 1s}",
                vec!["password_file", "read_timeout"],
            ),
        ] {
            let got: Vec<&str> = foreign_keys(&connector(yaml))
                .iter()
                .map(|(k, _)| *k)
                .collect();
            assert_eq!(got, want, "{yaml}");
        }
        let (_, kinds) = foreign_keys(&connector("{id: a, kind: sharepoint, path: /x}"))[0];
        assert_eq!(
            foreign_key_message("path", ConnectorKind::Sharepoint, kinds),
            "`path` does not apply to `kind: sharepoint`: it is a key of `kind: local` and `kind: smb`"
        );
    }
}
