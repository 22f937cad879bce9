//! The `api` section: listen address, TLS, tokens and their roles, rate limits,
//! connection and body limits, OpenID Connect.

use super::*;

pub(super) fn api(cx: &mut Ctx, raw: Option<&raw::RawApi>) -> ApiConfig {
    use sha2::Digest;
    let p = "api";
    let mut out = ApiConfig {
        listen: "127.0.0.1:8080".parse().expect("valid default"),
        tokens: Vec::new(),
        open_metrics: false,
        max_body_size: 1 << 20,
        tls: None,
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(30),
        max_connections: 1024,
        max_connections_per_client: 128,
        max_event_connections: 100,
        max_event_connections_per_principal: 20,
        rate_limits: RateLimits::default(),
        oidc: None,
        audit_retention: Duration::from_secs(365 * 86400),
        session_ttl: Duration::from_secs(12 * 3600),
        connector_roots: Vec::new(),
        allow_endpoint_overrides: false,
    };
    let Some(raw) = raw else { return out };
    out.allow_endpoint_overrides = raw.allow_endpoint_overrides.unwrap_or(false);
    for (i, r) in raw.connector_roots.iter().enumerate() {
        let root = cx.resolve(r);
        if root == Path::new("/") {
            cx.error(
                format!("{p}.connector_roots[{i}]"),
                "`/` would let API callers read every file of the host: name the folders that hold the data",
            );
        } else {
            out.connector_roots.push(root);
        }
    }
    if let Some(o) = &raw.oidc {
        out.oidc = oidc(cx, o);
    }
    out.header_read_timeout = cx.positive_duration(
        &format!("{p}.header_read_timeout"),
        &raw.header_read_timeout,
        out.header_read_timeout,
    );
    out.body_read_timeout = cx.positive_duration(
        &format!("{p}.body_read_timeout"),
        &raw.body_read_timeout,
        out.body_read_timeout,
    );
    out.session_ttl = cx.positive_duration(
        &format!("{p}.session_ttl"),
        &raw.session_ttl,
        out.session_ttl,
    );
    out.audit_retention = cx.positive_duration(
        &format!("{p}.audit_retention"),
        &raw.audit_retention,
        out.audit_retention,
    );
    for (key, v, slot) in [
        (
            "max_connections",
            raw.max_connections,
            &mut out.max_connections,
        ),
        (
            "max_connections_per_client",
            raw.max_connections_per_client,
            &mut out.max_connections_per_client,
        ),
        (
            "max_event_connections",
            raw.max_event_connections,
            &mut out.max_event_connections,
        ),
        (
            "max_event_connections_per_principal",
            raw.max_event_connections_per_principal,
            &mut out.max_event_connections_per_principal,
        ),
    ] {
        match v {
            None => {}
            Some(0) => cx.error(format!("{p}.{key}"), "must be at least 1"),
            Some(n) => *slot = n as usize,
        }
    }
    if let Some(rl) = &raw.rate_limits {
        for (key, v, slot) in [
            ("client", &rl.client, &mut out.rate_limits.client),
            ("read", &rl.read, &mut out.rate_limits.read),
            ("write", &rl.write, &mut out.rate_limits.write),
            (
                "failed_auth",
                &rl.failed_auth,
                &mut out.rate_limits.failed_auth,
            ),
        ] {
            if let Some(v) = v {
                match crate::units::parse_rate(v) {
                    Ok(r) => *slot = r,
                    Err(m) => cx.error(format!("{p}.rate_limits.{key}"), m),
                }
            }
        }
    }
    if let Some(tls) = &raw.tls {
        let (cert, key) = (cx.resolve(&tls.cert_file), cx.resolve(&tls.key_file));
        for (k, path) in [("cert_file", &cert), ("key_file", &key)] {
            if let Err(e) = std::fs::File::open(path) {
                cx.error(
                    format!("{p}.tls.{k}"),
                    format!("cannot read `{}`: {e}", path.display()),
                );
            }
        }
        warn_if_world_readable(&key, &mut cx.warnings);
        out.tls = Some((cert, key));
    }
    if let Some(l) = &raw.listen {
        match l.parse::<std::net::SocketAddr>() {
            Ok(a) => {
                if !a.ip().is_loopback() && raw.tls.is_none() {
                    cx.warnings.push(format!(
                        "`{p}.listen` is {a}, reachable from other machines, without `{p}.tls`: bearer tokens and content cross the network in clear text"
                    ));
                }
                out.listen = a
            }
            Err(_) => cx.error(
                format!("{p}.listen"),
                format!("expected an address like `127.0.0.1:8080` or `[::1]:8080`, got `{l}`"),
            ),
        }
    }
    out.open_metrics = raw.open_metrics.unwrap_or(false);
    if let Some(b) = cx.size(&format!("{p}.max_body_size"), &raw.max_body_size) {
        out.max_body_size = b;
    }
    let mut names = std::collections::HashSet::new();
    for (i, t) in raw.tokens.iter().enumerate() {
        let tp = format!("{p}.tokens[{i}]");
        if !names.insert(t.name.clone()) {
            cx.error(
                format!("{tp}.name"),
                format!("duplicate token name `{}`", t.name),
            );
        }
        let given = [
            t.token_sha256.is_some(),
            t.token_file.is_some(),
            t.token.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if given != 1 {
            cx.error(
                tp.clone(),
                "give exactly one of `token_sha256`, `token_file` or `token`",
            );
            continue;
        }
        let sha = if let Some(h) = &t.token_sha256 {
            match <[u8; 32] as hex::FromHex>::from_hex(h.trim()).ok() {
                Some(b) => Some(b),
                None => {
                    cx.error(
                        format!("{tp}.token_sha256"),
                        "expected 64 hex digits (the SHA-256 of the token)",
                    );
                    None
                }
            }
        } else {
            cx.secret(&tp, "token", &t.token, &t.token_file)
                .and_then(|s| {
                    if s.expose().len() < 16 {
                        cx.error(
                            format!("{tp}.token"),
                            "a token must be at least 16 characters long",
                        );
                        return None;
                    }
                    Some(sha2::Sha256::digest(s.expose().as_bytes()).into())
                })
        };
        if let Some(sha256) = sha {
            out.tokens.push(ApiToken {
                name: t.name.clone(),
                role: t.role,
                sha256,
            });
        }
    }
    out
}

/// Whether `url` is https, or http on a loopback host (for tests and local providers).
pub(crate) fn https_or_loopback(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn oidc(cx: &mut Ctx, raw: &raw::RawOidc) -> Option<crate::OidcConfig> {
    let p = "api.oidc";
    let mut ok = true;
    let issuer = raw.issuer.trim_end_matches('/').to_string();
    if !https_or_loopback(&issuer) {
        cx.error(
            format!("{p}.issuer"),
            format!(
                "expected an https URL (http only on loopback), got `{}`",
                raw.issuer
            ),
        );
        ok = false;
    }
    let audiences = match &raw.audience {
        raw::OneOrMany::One(a) => vec![a.clone()],
        raw::OneOrMany::Many(v) => v.clone(),
    };
    if audiences.is_empty() || audiences.iter().any(|a| a.trim().is_empty()) {
        cx.error(
            format!("{p}.audience"),
            "expected a non-empty audience or list of them",
        );
        ok = false;
    }
    let roles_claim = raw.roles_claim.clone().unwrap_or_else(|| "roles".into());
    if roles_claim.is_empty() || roles_claim.split('.').any(str::is_empty) {
        cx.error(
            format!("{p}.roles_claim"),
            format!("expected a claim name or dotted path like `realm_access.roles`, got `{roles_claim}`"),
        );
        ok = false;
    }
    let allowed_clients = raw.allowed_clients.clone().unwrap_or_default();
    if raw.allowed_clients.as_ref().is_some_and(Vec::is_empty) {
        cx.error(
            format!("{p}.allowed_clients"),
            "an empty list would refuse every token; leave it out to allow any client",
        );
        ok = false;
    }
    let sign_in = raw.sign_in.as_ref().and_then(|s| {
        let si = oidc_sign_in(cx, s);
        ok &= si.is_some();
        si
    });
    ok.then(|| crate::OidcConfig {
        issuer,
        audiences,
        roles_claim,
        role_map: raw.role_map.clone().unwrap_or_default(),
        allowed_clients,
        sign_in,
    })
}

fn oidc_sign_in(cx: &mut Ctx, raw: &raw::RawOidcSignIn) -> Option<crate::OidcSignIn> {
    let p = "api.oidc.sign_in";
    let mut ok = true;
    if raw.client_id.trim().is_empty() {
        cx.error(
            format!("{p}.client_id"),
            "expected the client id registered at the provider",
        );
        ok = false;
    }
    let client_secret = if raw.client_secret.is_some() || raw.client_secret_file.is_some() {
        let s = cx.secret(
            p,
            "client_secret",
            &raw.client_secret,
            &raw.client_secret_file,
        );
        ok &= s.is_some();
        s
    } else {
        None
    };
    let mut scopes = vec!["openid".to_string()];
    for s in raw.scopes.clone().unwrap_or_else(|| vec!["profile".into()]) {
        if s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\')
        {
            cx.error(format!("{p}.scopes"), format!("`{s}` is not a scope"));
            ok = false;
        } else if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    if let Some(u) = &raw.redirect_url
        && !(https_or_loopback(u) && u.ends_with("/api/v1/session/oidc/callback"))
    {
        cx.error(
            format!("{p}.redirect_url"),
            format!("expected this API's https URL ending in /api/v1/session/oidc/callback (http only on loopback), got `{u}`"),
        );
        ok = false;
    }
    ok.then(|| crate::OidcSignIn {
        client_id: raw.client_id.trim().to_string(),
        client_secret,
        scopes,
        resource: raw.resource.clone().filter(|r| !r.is_empty()),
        redirect_url: raw.redirect_url.clone(),
    })
}
