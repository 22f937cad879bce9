//! Connecting to a PostgreSQL catalog: the settings, and errors that name the server,
//! database and user — never the password.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::{CatalogError, Result};

/// The advisory lock key under which migrations run (`pg_advisory_xact_lock`).
pub(crate) const MIGRATION_LOCK: i64 = 0x7472_6962_6d69_6772; // "tribmigr"

/// A PostgreSQL catalog: where, as whom, and how many connections.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user@host:port/db?sslmode=…&sslrootcert=…` (a password in the URL is
    /// accepted but better kept in `password`).
    pub url: String,
    /// The password, if not in the URL or the standard `PG*` environment.
    pub password: Option<String>,
    pub pool_size: u32,
    /// `statement_timeout` of every connection; `None`: the server's.
    pub statement_timeout: Option<Duration>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// `idle_in_transaction_session_timeout` of every connection: the server ends a
    /// session that holds a transaction open without a word for this long — a frozen
    /// daemon instance (SIGSTOP, a VM pause) mid-commit would otherwise keep its locks,
    /// and every other instance waiting on them, for as long as it is frozen.
    pub idle_in_transaction_timeout: Option<Duration>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.display())
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl PgSettings {
    pub fn new(url: impl Into<String>) -> PgSettings {
        PgSettings {
            url: url.into(),
            password: None,
            pool_size: 8,
            statement_timeout: None,
            connect_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: None,
        }
    }

    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions> {
        let mut opts = PgConnectOptions::from_str(&self.url).map_err(|e| {
            CatalogError::Open(format!(
                "catalog {}: not a PostgreSQL URL: {}",
                self.display(),
                crate::redact(&scrub(&e.to_string(), self))
            ))
        })?;
        if let Some(p) = &self.password {
            opts = opts.password(p);
        }
        if let Some(t) = self.statement_timeout {
            opts = opts.options([("statement_timeout", format!("{}", t.as_millis()))]);
        }
        if let Some(t) = self.idle_in_transaction_timeout {
            opts = opts.options([(
                "idle_in_transaction_session_timeout",
                format!("{}", t.as_millis()),
            )]);
        }
        Ok(opts.application_name("tributary"))
    }

    /// `postgres://user@host:port/db`: the URL without its password or parameters.
    pub fn display(&self) -> String {
        let o = PgConnectOptions::from_str(&self.url).ok();
        match o {
            Some(o) => format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or(o.get_username())
            ),
            None => "postgres://(unparsable URL)".into(),
        }
    }

    /// An error opening the catalog, as one message naming the server, database and
    /// user, with the password scrubbed from whatever the server or driver said.
    pub(crate) fn explain(&self, e: CatalogError) -> CatalogError {
        let what = match &e {
            CatalogError::Open(m) if m.starts_with("catalog ") => {
                return CatalogError::Open(scrub(m, self));
            }
            CatalogError::Open(m) => m.trim_start_matches("the catalog ").to_string(),
            CatalogError::Db(sqlx::Error::Database(d)) => match d.code().as_deref() {
                Some("28P01") | Some("28000") => format!(
                    "the server refused the log-on ({}); check the user and catalog.password_file or PGPASSWORD",
                    d.message()
                ),
                Some("3D000") => format!("{} (create it, or fix the URL)", d.message()),
                _ => d.to_string(),
            },
            CatalogError::Db(sqlx::Error::Io(io)) => format!("cannot reach the server: {io}"),
            CatalogError::Db(sqlx::Error::PoolTimedOut) => {
                "no connection within the connect timeout (is the server up and reachable?)"
                    .to_string()
            }
            CatalogError::Db(sqlx::Error::Tls(t)) => format!("TLS: {t}"),
            other => other.to_string(),
        };
        CatalogError::Open(format!(
            "catalog {}: {}",
            self.display(),
            crate::redact(&scrub(&what, self))
        ))
    }
}

/// `text` with the catalog password (from the settings or the URL) masked.
fn scrub(text: &str, s: &PgSettings) -> String {
    let mut out = text.to_string();
    let from_url = url_password(&s.url);
    for p in [s.password.as_deref(), from_url.as_deref()]
        .into_iter()
        .flatten()
    {
        if !p.is_empty() {
            out = out.replace(p, "***");
        }
    }
    out
}

/// The password part of `scheme://user:password@host…`, if any.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let auth = rest.split(['/', '?']).next()?;
    let (userinfo, _) = auth.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, p)| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_errors_never_show_the_password() {
        let mut s = PgSettings::new("postgres://ann:hunter2@db.example:6543/cat?sslmode=require");
        s.password = Some("s3cret-pw".into());
        assert_eq!(s.display(), "postgres://ann@db.example:6543/cat");
        let e = s.explain(CatalogError::Open(
            "server said: bad password hunter2 / s3cret-pw".into(),
        ));
        let m = e.to_string();
        assert!(!m.contains("hunter2") && !m.contains("s3cret-pw"), "{m}");
        assert!(format!("{s:?}").contains("db.example") && !format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn url_passwords() {
        assert_eq!(url_password("postgres://a:b@h/d").as_deref(), Some("b"));
        assert_eq!(url_password("postgres://a@h/d"), None);
        assert_eq!(url_password("postgres://h/d?x=@"), None);
    }
}
