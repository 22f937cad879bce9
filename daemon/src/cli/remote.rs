//! Commands that talk to a running daemon over its API: `health`, `search`, `ctl`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use super::args::{CtlAction, TokenArgs};

pub(super) async fn health(path: PathBuf, ready: bool) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let (client, base) = api_client(&cfg)?;
    let url = format!("{base}/health{}", if ready { "/ready" } else { "" });
    let resp = client
        .get(&url)
        .timeout(Duration::from_secs(4))
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => {
            println!("ok: {url}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(r) => {
            println!(
                "unhealthy: {url}: HTTP {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            println!("unreachable: {url}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// A client for the daemon's own API: the listen address (loopback when it listens on
/// every address), HTTPS trusting the configured certificate when TLS is on.
pub(super) fn api_client(
    cfg: &tributary_config::Config,
) -> anyhow::Result<(reqwest::Client, String)> {
    let mut addr = cfg.api.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let mut b = reqwest::Client::builder();
    let scheme = match &cfg.api.tls {
        None => "http",
        Some((cert, _)) => {
            let pem = std::fs::read(cert).with_context(|| format!("read {}", cert.display()))?;
            for c in
                reqwest::Certificate::from_pem_bundle(&pem).context("parse the API certificate")?
            {
                b = b.add_root_certificate(c);
            }
            "https"
        }
    };
    let host = if addr.ip().is_loopback() && addr.is_ipv4() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    Ok((b.build()?, format!("{scheme}://{host}/api/v1")))
}

pub(super) fn token_of(auth: TokenArgs) -> anyhow::Result<String> {
    Ok(match (auth.token, auth.token_file) {
        (Some(t), _) => t,
        (None, Some(f)) => std::fs::read_to_string(&f)
            .with_context(|| format!("read token file {}", f.display()))?
            .trim_end()
            .to_string(),
        (None, None) => bail!("a token is needed: --token, --token-file or TRIBUTARY_TOKEN"),
    })
}

/// What `tributary search` asks.
pub(super) struct SearchArgs {
    pub k: usize,
    pub connector: Option<String>,
    pub path_prefix: Option<String>,
    pub principals: Vec<String>,
    pub json: bool,
    pub query: String,
}

/// `tributary search`: through the running daemon's API when a token is given, else
/// directly on the catalog and the vector store (daemon running or not).
pub(super) async fn search(
    path: PathBuf,
    auth: TokenArgs,
    a: SearchArgs,
) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let text = if auth.token.is_some() || auth.token_file.is_some() {
        match search_remote(&cfg, auth, &a).await? {
            Ok(text) => text,
            Err(code) => return Ok(code),
        }
    } else {
        match search_local(&cfg, &a).await {
            Ok(hits) => serde_json::json!({ "items": hits }).to_string(),
            Err(e) => {
                eprintln!("tributary: search: {}", super::shown(format!("{e:#}")));
                return Ok(ExitCode::from(1));
            }
        }
    };
    if a.json {
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let v: serde_json::Value = serde_json::from_str(&text).context("the search's answer")?;
    print_hits(v["items"].as_array().map(Vec::as_slice).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

/// The search through the daemon: its JSON, or the exit code of a refusal (printed).
async fn search_remote(
    cfg: &tributary_config::Config,
    auth: TokenArgs,
    a: &SearchArgs,
) -> anyhow::Result<Result<String, ExitCode>> {
    let token = token_of(auth)?;
    let (client, base) = api_client(cfg)?;
    let mut params = vec![("q", a.query.clone()), ("k", a.k.to_string())];
    if let Some(c) = &a.connector {
        params.push(("connector", c.clone()));
    }
    if let Some(p) = &a.path_prefix {
        params.push(("path_prefix", p.clone()));
    }
    if !a.principals.is_empty() {
        params.push(("principal", a.principals.join(",")));
    }
    let resp = client
        .get(format!("{base}/search"))
        .query(&params)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| {
            format!("reach the daemon at {base} (is `tributary run` running? without a token, search reads the catalog directly)")
        })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        println!("{text}");
        explain_refusal(&text);
        return Ok(Err(ExitCode::from(1)));
    }
    Ok(Ok(text))
}

/// The search on the catalog and the vector store, with the configured embedder.
async fn search_local(
    cfg: &tributary_config::Config,
    a: &SearchArgs,
) -> anyhow::Result<Vec<tributary_vectorize::Hit>> {
    let connectors = cfg.vectorized_connectors();
    if connectors.is_empty() {
        anyhow::bail!("no connector has `vectorize: true`: nothing is searchable");
    }
    let catalog = crate::wiring::open_catalog(cfg).await?;
    let (store, _) = crate::wiring::open_bucket(cfg).await?;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tributary"));
    let v = tributary_vectorize::Vectorizer::new(
        catalog,
        store,
        cfg.vectorize.clone(),
        Box::new(crate::wiring::VectorBackends(cfg.vectorize.clone())),
        connectors,
        exe,
    );
    v.open_for_search().await.map_err(anyhow::Error::msg)?;
    v.search(
        &a.query,
        a.k,
        a.connector.as_deref(),
        a.path_prefix.as_deref(),
        &a.principals,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn print_hits(items: &[serde_json::Value]) {
    if items.is_empty() {
        println!("no match");
    }
    for (n, h) in items.iter().enumerate() {
        let location = h["location"]
            .as_str()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        println!(
            "{}. {:.3}  {}{location}  [item {}, version {}]",
            n + 1,
            h["score"].as_f64().unwrap_or(0.0),
            h["path"].as_str().unwrap_or(""),
            h["item_id"],
            h["version_id"],
        );
        let text: String = h["text"]
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let short: String = text.chars().take(240).collect();
        println!(
            "   {short}{}",
            if short.len() < text.len() { "…" } else { "" }
        );
    }
}

pub(super) async fn ctl(
    path: PathBuf,
    auth: TokenArgs,
    action: CtlAction,
) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let token = token_of(auth)?;
    let (client, base) = api_client(&cfg)?;
    let (path, body) = match &action {
        CtlAction::Add { .. }
        | CtlAction::Edit { .. }
        | CtlAction::Delete { .. }
        | CtlAction::Test { .. } => {
            return super::connectors::ctl(&client, &base, &token, &action).await;
        }
        CtlAction::Run {
            connector,
            full,
            dry_run,
        } => (
            format!("/connectors/{connector}/runs"),
            serde_json::json!({"kind": if *full { "full" } else { "incremental" }, "dry_run": dry_run}),
        ),
        CtlAction::Pause { connector } => (
            format!("/connectors/{connector}/pause"),
            serde_json::json!({}),
        ),
        CtlAction::Resume { connector } => (
            format!("/connectors/{connector}/resume"),
            serde_json::json!({}),
        ),
        CtlAction::Cancel { job } => (format!("/jobs/{job}/cancel"), serde_json::json!({})),
        CtlAction::Drain { instance } | CtlAction::Undrain { instance } => {
            let id = match instance {
                Some(i) => i.clone(),
                None => this_instance(&client, &base, &token).await?,
            };
            let verb = if matches!(action, CtlAction::Drain { .. }) {
                "drain"
            } else {
                "undrain"
            };
            (format!("/instances/{id}/{verb}"), serde_json::json!({}))
        }
        CtlAction::Reload => ("/config/reload".to_string(), serde_json::json!({})),
        CtlAction::Resolve {
            conflict,
            resolution,
        } => (
            format!("/conflicts/{conflict}/resolve"),
            serde_json::json!({ "resolution": resolution }),
        ),
    };
    let resp = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("reach the daemon at {base} (is `tributary run` running?)"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!("{text}");
    if !status.is_success() {
        explain_refusal(&text);
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// On stderr, the error catalog's entry for an API refusal: what it means and what to
/// do (nothing for a body that is not an error envelope).
pub(super) fn explain_refusal(body: &str) {
    if let Some(line) = tributary_api::error_codes::explain(body) {
        eprintln!("tributary: {line}");
    }
}

/// The id of the instance answering at `base` (`this` in `GET /instances`).
async fn this_instance(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<String> {
    let resp = client
        .get(format!("{base}/instances"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reach the daemon at {base} (is `tributary run` running?)"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("GET {base}/instances: HTTP {status}: {body}");
    }
    body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["this"] == true))
        .and_then(|i| i["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("the daemon at {base} did not say which instance it is"))
}
