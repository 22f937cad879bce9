//! Maintenance commands run on the catalog and the object store without the daemon:
//! `check`, `restore`, `verify`, `gc`, `prune`, `rebuild-catalog`, `reindex`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tributary_catalog::Catalog;
use tributary_store::ObjectStore;

use anyhow::{Context, bail};
use tributary_config::Config;
use tributary_pipeline::maintenance::{self, GcOptions};

use super::output::human_bytes;
use super::shown;
use crate::wiring;

pub(super) async fn check(path: PathBuf, connect: bool) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    println!(
        "{}: ok ({} connector(s))",
        path.display(),
        cfg.connectors.len()
    );
    // offline too: the local model a vectorized connector needs is on disk
    let mut failed = false;
    let mut model_missing = false;
    if !cfg.vectorized_connectors().is_empty()
        && let tributary_config::EmbedderConfig::Local { model_dir, .. } = &cfg.vectorize.embedder
        && let Some(problem) = tributary_vectorize::embed::model_dir_problem(model_dir)
    {
        failed = true;
        model_missing = true;
        println!("embedder: {problem}");
    }
    if !connect {
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    // reachable, and at a schema this binary reads; nothing is migrated here
    match catalog_state(&cfg).await {
        Ok(line) => println!("{line}"),
        Err(e) => {
            failed = true;
            println!("{}", shown(format!("{e:#}")));
        }
    }
    // reachable, in a format this version reads (a new store is marked here) and, when
    // encrypted, opened by the key file
    match wiring::open_bucket(&cfg).await {
        Ok((store, f)) => println!(
            "object store {}: ok (format {}{}{})",
            store.describe(),
            f.format,
            if f.packed() {
                ", packs"
            } else {
                ", one object per chunk: `tributary migrate-store` rewrites it into packs"
            },
            match wiring::store_key(&cfg)? {
                Some(k) if f.encryption.is_some() =>
                    format!(", encrypted, opened by key {}", k.id()),
                _ => String::new(),
            }
        ),
        Err(e) => {
            failed = true;
            println!("{}", shown(format!("{e:#}")));
        }
    }
    for c in &cfg.connectors {
        let r = match wiring::connector(c) {
            Ok(conn) => conn.check().await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match r {
            Ok(found) => println!("connector {}: ok ({found})", c.id),
            Err(e) => {
                failed = true;
                println!("connector {}: {}", c.id, shown(format!("{e:#}")));
            }
        }
    }
    if !cfg.vectorized_connectors().is_empty() {
        match wiring::embedder(&cfg.vectorize.embedder).await {
            // said above
            Err(_) if model_missing => {}
            Ok(e) => match e.embed(vec!["tributary check".into()]).await {
                Ok(v) => println!(
                    "embedder {}: ok ({} dimensions)",
                    e.id(),
                    v.first().map_or(0, Vec::len)
                ),
                Err(err) => {
                    failed = true;
                    println!("embedder {}: {}", e.id(), shown(err));
                }
            },
            Err(e) => {
                failed = true;
                println!("embedder: {}", shown(e));
            }
        }
        match wiring::vector_store(&cfg.vectorize.store).await {
            Ok(s) => println!("vector store {}: ok", s.describe()),
            Err(e) => {
                failed = true;
                println!("vector store: {}", shown(e));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `catalog …: ok (…, schema N of M)`, or why the catalog cannot be used.
async fn catalog_state(cfg: &Config) -> anyhow::Result<String> {
    let catalog = wiring::connect_catalog(cfg).await?;
    let info = catalog.info().await;
    let pending = catalog.migration_state().await;
    catalog.close().await;
    let (info, (_, pending)) = (info?, pending?);
    let where_ = wiring::describe_catalog(cfg);
    if info.schema_version > info.binary_schema_version {
        bail!(
            "catalog {where_}: at schema version {}, newer than this binary's {}: it was written by a newer Tributary",
            info.schema_version,
            info.binary_schema_version
        );
    }
    Ok(format!(
        "catalog {where_}: ok ({}, schema version {}{})",
        info.server_version,
        info.schema_version,
        if pending.is_empty() {
            String::new()
        } else {
            format!(
                "; {} migration(s) to apply at start or with `tributary migrate`: {}",
                pending.len(),
                pending
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ))
}

/// `tributary migrate [--dry-run]`: applies the catalog's pending migrations (what
/// `run` does at start), or lists them.
pub(super) async fn migrate(path: PathBuf, dry_run: bool) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let where_ = wiring::describe_catalog(&cfg);
    let catalog = wiring::connect_catalog(&cfg).await?;
    let (at, pending) = catalog.migration_state().await?;
    if at > tributary_catalog::SCHEMA_VERSION {
        bail!(
            "catalog {where_}: at schema version {at}, newer than this binary's {}: it was written by a newer Tributary",
            tributary_catalog::SCHEMA_VERSION
        );
    }
    if pending.is_empty() {
        println!("catalog {where_}: at schema version {at}, nothing to apply");
    } else if dry_run {
        println!(
            "catalog {where_}: at schema version {at}; would apply {}",
            pending
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        let applied = catalog
            .migrate()
            .await
            .with_context(|| format!("catalog {where_}"))?;
        println!(
            "catalog {where_}: applied {}; now at schema version {}",
            applied
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            tributary_catalog::SCHEMA_VERSION
        );
    }
    catalog.close().await;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn parse_at(s: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).with_context(|| {
        format!("--at `{s}`: expected RFC 3339 (2026-11-01T12:00:00Z) or Unix seconds")
    })?;
    t.timestamp_nanos_opt().context("--at is out of range")
}

/// The shape of the commands that work on the store: load the configuration, open the
/// catalog and the object store, run `op`, print its report (JSON with `--json`, else
/// `text`); exit 1 unless `ok` says the report is clean.
async fn on_store<R: serde::Serialize>(
    path: PathBuf,
    json: bool,
    op: impl AsyncFnOnce(Catalog, Arc<dyn ObjectStore>, &Config) -> anyhow::Result<R>,
    text: impl FnOnce(&R),
    ok: impl FnOnce(&R) -> bool,
) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let catalog = wiring::open_catalog(&cfg).await?;
    let (store, _) = wiring::open_bucket(&cfg).await?;
    let report = op(catalog, store, &cfg).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        text(&report);
    }
    Ok(if ok(&report) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) async fn restore(
    path: PathBuf,
    prefix: String,
    dest: PathBuf,
    at: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let at = at.as_deref().map(parse_at).transpose()?;
    let prefix = if prefix == "/" { String::new() } else { prefix };
    on_store(
        path,
        json,
        async |catalog, store, _| {
            maintenance::restore(&catalog, store, prefix.as_bytes(), &dest, at).await
        },
        |r| {
            println!(
                "restored {} file(s), {} into {}",
                r.files,
                human_bytes(r.bytes),
                dest.display()
            );
            for e in &r.errors {
                println!("  error: {e}");
            }
        },
        |r| r.errors.is_empty(),
    )
    .await
}

pub(super) async fn verify(path: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    on_store(
        path,
        json,
        async |catalog, store, _| Ok(maintenance::verify(&catalog, store).await?),
        |r| {
            println!(
                "verified {} chunk(s) in {} pack(s) and objects of their own, {}: {} missing, {} corrupt",
                r.chunks_checked,
                r.packs_checked,
                human_bytes(r.bytes_checked),
                r.missing.len(),
                r.corrupt.len()
            );
            for m in &r.missing {
                println!("  missing: {m}");
            }
            for c in &r.corrupt {
                println!("  corrupt: {c}");
            }
        },
        |r| r.ok(),
    )
    .await
}

pub(super) async fn gc(
    path: PathBuf,
    grace: String,
    dry_run: bool,
    max_unused: String,
    max_repack_size: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let grace = tributary_config::units::parse_duration(&grace)
        .map_err(anyhow::Error::msg)
        .context("--grace")?;
    let max_unused = parse_percent(&max_unused).context("--max-unused")?;
    let max_repack_size = max_repack_size
        .map(|s| tributary_config::units::parse_size(&s).map_err(anyhow::Error::msg))
        .transpose()
        .context("--max-repack-size")?;
    on_store(
        path,
        json,
        async |catalog, store, cfg| {
            let opts = GcOptions {
                grace,
                dry_run,
                max_unused,
                max_repack_size,
                pack_size: cfg.pipeline.pack_size,
            };
            maintenance::gc(&catalog, store, opts).await
        },
        |r| {
            let (would, deleted, repacked) = if dry_run {
                (" (dry run)", "would delete", "would repack")
            } else {
                ("", "deleted", "repacked")
            };
            println!(
                "gc{would}: {} pack(s) listed, {} {deleted}, {} {repacked} ({} copied); {} chunk(s) freed, {} {deleted} in all; {} manifest(s) {deleted}; {} object(s) kept within the grace period",
                r.packs_listed,
                r.packs_deleted,
                r.packs_repacked,
                human_bytes(r.bytes_repacked),
                r.chunks_deleted,
                human_bytes(r.bytes_deleted),
                r.manifests_deleted,
                r.kept_in_grace
            );
            for e in &r.errors {
                println!("  not repacked: {e}");
            }
        },
        |r| r.errors.is_empty(),
    )
    .await
}

/// A share given in per cent: `5%` or `5`.
fn parse_percent(s: &str) -> anyhow::Result<f64> {
    let n: f64 = s
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("expected a percentage such as `5%`, got `{s}`"))?;
    if !(0.0..=100.0).contains(&n) {
        bail!("expected 0% to 100%, got `{s}`");
    }
    Ok(n / 100.0)
}

pub(super) async fn rebuild(path: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    on_store(
        path,
        json,
        async |catalog, store, _| Ok(maintenance::rebuild_catalog(&catalog, store).await?),
        |r| {
            println!(
                "rebuilt the catalog from {} manifest(s) and {} pack(s): {} version(s), {} duplicate(s) skipped, {} without data (pruned) skipped",
                r.manifests, r.packs, r.versions, r.duplicates_skipped, r.missing_data_skipped
            );
            for p in &r.unreadable_packs {
                println!("  unreadable pack: {p}");
            }
        },
        |r| r.unreadable_packs.is_empty(),
    )
    .await
}

pub(super) async fn migrate_store(path: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    on_store(
        path,
        json,
        async |catalog, store, cfg| {
            let report = maintenance::migrate_store(
                &catalog,
                store,
                cfg.pipeline.pack_size,
                Arc::new(tributary_pipeline::fault::FaultPoints),
                |done, total| eprintln!("migrate-store: {done} of {total} chunk(s) moved into packs"),
            )
            .await?;
            Ok(report)
        },
        |r| {
            println!(
                "the store is in format 2 (it was in format {}): {} chunk(s), {}, moved into packs; {} error(s)",
                r.from_format,
                r.chunks_moved,
                human_bytes(r.bytes_moved),
                r.errors.len()
            );
            for e in &r.errors {
                println!("  not moved: {e}");
            }
        },
        |r| r.errors.is_empty(),
    )
    .await
}

/// `migrate-store --encrypt`: the clear store rewritten sealed with the configured key
/// file ([`maintenance::encrypt_store`]).
pub(super) async fn encrypt_store(path: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let Some(kek) = wiring::store_key(&cfg)? else {
        bail!(
            "{}: `--encrypt` needs object_store.encryption.key_file (`tributary key generate --out …` writes one)",
            path.display()
        );
    };
    let catalog = wiring::open_catalog(&cfg).await?;
    let raw = wiring::open_store(&cfg).await?;
    if let Err(e) = raw.check().await {
        bail!("object store {}: {}", raw.describe(), shown(e));
    }
    let (sealed, done) = tributary_store::keyring::begin_encryption(raw.clone(), &kek)
        .await
        .map_err(|e| anyhow::anyhow!("object store {}: {}", raw.describe(), shown(e)))?;
    const CURSOR: &str = "encrypt.after_version";
    if done {
        catalog.clear_store_state(CURSOR).await?;
        println!("the store {} is encrypted already", raw.describe());
        return Ok(ExitCode::SUCCESS);
    }
    let report = maintenance::encrypt_store(
        &catalog,
        raw.clone(),
        sealed,
        &wiring::settings(&cfg),
        Arc::new(tributary_pipeline::fault::FaultPoints),
        |done, total| eprintln!("migrate-store: {done} of {total} version(s) rewritten sealed"),
    )
    .await?;
    let finished = report.errors.is_empty();
    if finished {
        tributary_store::keyring::finish_encryption(&*raw).await?;
        catalog.clear_store_state(CURSOR).await?;
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} version(s) rewritten sealed: {} chunk(s), {}; {} manifest(s) rewritten; {} of clear objects deleted",
            report.versions_rewritten,
            report.chunks_written,
            human_bytes(report.bytes_written),
            report.manifests_rewritten,
            human_bytes(report.cleanup.bytes_deleted)
        );
        for e in &report.errors {
            println!("  not rewritten: {e}");
        }
        println!(
            "{}",
            if finished {
                "the store is encrypted"
            } else {
                "the store stays marked as being encrypted: fix the errors above and run `migrate-store --encrypt` again"
            }
        );
    }
    Ok(if finished {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) async fn prune(path: PathBuf, older_than: String) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let age = tributary_config::units::parse_duration(&older_than)
        .map_err(anyhow::Error::msg)
        .context("--older-than")?;
    let catalog = wiring::open_catalog(&cfg).await?;
    let (versions, items) = catalog
        .prune_versions(tributary_catalog::now_ns() - age.as_nanos() as i64)
        .await?;
    println!(
        "pruned {versions} version(s) and {items} deleted item(s); run `tributary gc` to remove data no longer referenced"
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn reindex(path: PathBuf) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let catalog = wiring::open_catalog(&cfg).await?;
    let backends = wiring::VectorBackends(cfg.vectorize.clone());
    let reset = match tributary_vectorize::OpenBackends::open(&backends).await {
        Ok(b) => tributary_vectorize::reindex(&catalog, b).await,
        Err(e) => Err(e),
    };
    match reset {
        Ok((embedder, dropped)) => {
            println!(
                "dropped {dropped} passages; the daemon will embed every document of the vectorized connectors again with {embedder}"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => bail!("reindex: {e}"),
    }
}
