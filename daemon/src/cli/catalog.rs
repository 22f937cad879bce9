//! `tributary catalog copy`: an installation's catalog into an empty one
//! ([`tributary_catalog::copy`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use tributary_catalog::{Catalog, PgSettings};

use super::args::CatalogCommand;

pub(super) async fn run(command: CatalogCommand) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::Copy {
            from,
            to,
            from_password_file,
            to_password_file,
            json,
        } => {
            let from = CatalogUrl::parse("--from", &from, from_password_file.as_deref())?;
            let to = CatalogUrl::parse("--to", &to, to_password_file.as_deref())?;
            if from == to {
                bail!(
                    "--from and --to name the same catalog ({})",
                    from.describe()
                );
            }
            let started = std::time::Instant::now();
            let source = from
                .open()
                .await
                .with_context(|| format!("source catalog {}", from.describe()))?;
            let dest = to
                .open()
                .await
                .with_context(|| format!("destination catalog {}", to.describe()))?;
            let copied = source
                .copy_to(&dest, |t| {
                    if !json {
                        println!("{:<20} {:>12} rows", t.table, t.copied_rows);
                    }
                })
                .await
                .with_context(|| format!("copy {} to {}", from.describe(), to.describe()));
            // the trail of the catalog that goes on: the copy once it is whole, else the
            // source, still the installation's
            let row = super::audit::entry(
                "cli.catalog_copy",
                "tributary catalog copy",
                Some(format!("catalogs/{}", to.describe())),
                copied.is_ok(),
                started,
            );
            let trail = if copied.is_ok() { &dest } else { &source };
            if let Err(e) = trail.record_audit(&row).await {
                eprintln!(
                    "warning: the audit trail did not record the copy: {}",
                    super::shown(format!("{e:#}"))
                );
            }
            source.close().await;
            dest.close().await;
            let report = copied?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "from": from.describe(),
                        "to": to.describe(),
                        "tables": report,
                    })
                );
            } else {
                let rows: u64 = report.iter().map(|t| t.copied_rows).sum();
                println!(
                    "copied {rows} rows of {} tables from {} to {}; counts checked. Point `catalog.url` at the destination before the daemon starts again.",
                    report.len(),
                    from.describe(),
                    to.describe()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A catalog named on the command line.
#[derive(Debug, PartialEq)]
enum CatalogUrl {
    Sqlite(PathBuf),
    Postgres {
        url: String,
        password: Option<String>,
    },
}

impl CatalogUrl {
    /// `sqlite://PATH` or `postgres://…` (`postgresql://` too); a password from a file.
    fn parse(flag: &str, s: &str, password_file: Option<&Path>) -> anyhow::Result<CatalogUrl> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                bail!("{flag}: expected `sqlite://PATH`, the path is empty");
            }
            if password_file.is_some() {
                bail!("{flag}: a SQLite catalog has no password");
            }
            return Ok(CatalogUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let password = password_file
                .map(|f| {
                    std::fs::read_to_string(f)
                        .map(|p| p.trim_end_matches(['\n', '\r']).to_string())
                        .with_context(|| format!("{flag} password file {}", f.display()))
                })
                .transpose()?;
            return Ok(CatalogUrl::Postgres {
                url: s.to_string(),
                password,
            });
        }
        bail!("{flag}: expected `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`")
    }

    fn settings(url: &str, password: &Option<String>) -> PgSettings {
        PgSettings {
            password: password.clone(),
            pool_size: 2,
            ..PgSettings::new(url)
        }
    }

    /// Where it is, for messages: never the password.
    fn describe(&self) -> String {
        match self {
            CatalogUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            CatalogUrl::Postgres { url, password } => Self::settings(url, password).display(),
        }
    }

    /// Opened at this binary's schema (a new catalog is created; migrations applied).
    async fn open(&self) -> anyhow::Result<Catalog> {
        Ok(match self {
            CatalogUrl::Sqlite(p) => {
                if !p.exists() {
                    // a missing source is a typo, a missing destination a new file
                    // (allowed: copying from PostgreSQL back to SQLite)
                    if let Some(dir) = p.parent()
                        && !dir.as_os_str().is_empty()
                        && !dir.is_dir()
                    {
                        bail!("{} does not exist", dir.display());
                    }
                }
                Catalog::open_sqlite(p).await?
            }
            CatalogUrl::Postgres { url, password } => {
                Catalog::open_postgres(&Self::settings(url, password)).await?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_urls_are_sqlite_paths_or_postgres_urls() {
        assert_eq!(
            CatalogUrl::parse("--from", "sqlite:///var/lib/t/catalog.db", None).unwrap(),
            CatalogUrl::Sqlite("/var/lib/t/catalog.db".into())
        );
        let pg = CatalogUrl::parse("--to", "postgres://trib:hunter2@db:5433/cat", None).unwrap();
        assert_eq!(pg.describe(), "postgres://trib@db:5433/cat");
        for bad in ["sqlite://", "mysql://x", "/var/lib/catalog.db"] {
            let e = CatalogUrl::parse("--from", bad, None)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("--from: expected"), "{bad}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(
            CatalogUrl::parse("--to", "postgresql://u@h/d", Some(&f)).unwrap(),
            CatalogUrl::Postgres {
                url: "postgresql://u@h/d".into(),
                password: Some("s3cret".into())
            }
        );
        assert!(CatalogUrl::parse("--to", "sqlite:///x.db", Some(&f)).is_err());
    }
}
