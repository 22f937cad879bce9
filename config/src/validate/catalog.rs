//! The `catalog` section: a SQLite file (the default) or a PostgreSQL server.

use super::*;

pub(super) fn catalog(
    cx: &mut Ctx,
    raw: Option<&raw::RawCatalog>,
    state_dir: &Path,
) -> Option<CatalogConfig> {
    let Some(raw) = raw else {
        return Some(CatalogConfig::Sqlite {
            path: state_dir.join("catalog.db"),
        });
    };
    if let Some(rest) = raw.url.strip_prefix("sqlite://") {
        if rest.is_empty() {
            cx.error("catalog.url", "expected `sqlite://PATH`, the path is empty");
            return None;
        }
        Some(CatalogConfig::Sqlite {
            path: cx.resolve(rest),
        })
    } else if raw.url.starts_with("postgres://") || raw.url.starts_with("postgresql://") {
        // a password written in the URL is a secret like any other: taken out of the
        // URL (which is shown in messages and `Debug`) and kept as the password
        let (url, url_password) = split_url_password(&raw.url);
        let password = match (url_password, &raw.password_file) {
            (Some(_), Some(_)) => {
                cx.error(
                    "catalog.password_file",
                    "the URL holds a password too: give it in one place (better `password_file`)",
                );
                None
            }
            (Some(p), None) => {
                if is_world_readable(cx.file) {
                    cx.warnings.push(format!(
                        "`catalog.url` holds a password in `{}`, which is readable by every user; move it to `catalog.password_file` or restrict the file with `chmod o-r`",
                        cx.file.display()
                    ));
                }
                Some(Secret::new(p))
            }
            (None, _) => cx.secret("catalog", "password", &None, &raw.password_file),
        };
        let pool_size = match raw.pool_size {
            None => 8,
            Some(n @ 1..=1000) => n,
            Some(n) => {
                cx.error("catalog.pool_size", format!("must be 1 to 1000, got {n}"));
                8
            }
        };
        let statement_timeout = raw.statement_timeout.as_ref().map(|_| {
            cx.positive_duration(
                "catalog.statement_timeout",
                &raw.statement_timeout,
                Duration::from_secs(60),
            )
        });
        let connect_timeout = cx.positive_duration(
            "catalog.connect_timeout",
            &raw.connect_timeout,
            Duration::from_secs(10),
        );
        Some(CatalogConfig::Postgres(PostgresCatalog {
            url,
            password,
            pool_size,
            statement_timeout,
            connect_timeout,
        }))
    } else {
        cx.error(
            "catalog.url",
            "expected a URL of the form `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`",
        );
        None
    }
}

/// `scheme://user:password@host…` as `scheme://user@host…` and the password
/// (percent-decoded), if the URL holds one.
fn split_url_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let auth_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(auth_len);
    let Some((userinfo, host)) = auth.rsplit_once('@') else {
        return (url.to_string(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_string(), None);
    };
    let password = percent_encoding::percent_decode_str(password)
        .decode_utf8_lossy()
        .into_owned();
    let at = if user.is_empty() { "" } else { "@" };
    (
        format!("{scheme}://{user}{at}{host}{tail}"),
        Some(password).filter(|p| !p.is_empty()),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_in_the_catalog_url_is_taken_out() {
        let split = |u: &str| super::split_url_password(u);
        assert_eq!(
            split("postgres://app:s%40cret@db.corp:5432/trib?sslmode=require"),
            (
                "postgres://app@db.corp:5432/trib?sslmode=require".to_string(),
                Some("s@cret".to_string())
            )
        );
        assert_eq!(
            split("postgresql://app@db/trib"),
            ("postgresql://app@db/trib".to_string(), None)
        );
        assert_eq!(
            split("postgres://:pw@db/trib"),
            ("postgres://db/trib".to_string(), Some("pw".to_string()))
        );
        // an @ after the host is not user information
        assert_eq!(
            split("postgres://db/trib?options=a:b@c"),
            ("postgres://db/trib?options=a:b@c".to_string(), None)
        );
        assert_eq!(split("postgres://app:@db/t").1, None);
    }
}
