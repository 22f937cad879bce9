//! Connectors created over the admin API (`source: api`): kept in the catalog so they
//! survive restarts and every instance sharing the catalog runs the same set. A row is
//! the connector's spec (its YAML form as JSON, inline secrets taken out), the sealed
//! secrets, and a revision that grows with every change: writers name the revision
//! they read ([`Catalog::update_api_connector`], [`Catalog::delete_api_connector`]), so
//! one of two concurrent edits fails instead of silently undoing the other.

use serde::Serialize;

use crate::{Catalog, Result, now_ns};

/// One stored connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StoredConnector {
    pub id: String,
    pub revision: i64,
    /// JSON, without inline secrets.
    pub spec: String,
    /// The inline secrets, sealed (`None`: the connector has none).
    #[serde(skip)]
    pub secrets: Option<Vec<u8>>,
    /// The id of the key that sealed `secrets`.
    pub key_id: Option<String>,
    /// Unix ns.
    pub created_at: i64,
    pub created_by: Option<String>,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

/// What a write names besides the id: the spec, its sealed secrets and who wrote it.
#[derive(Debug, Clone)]
pub struct ConnectorWrite<'a> {
    pub spec: &'a str,
    pub secrets: Option<&'a [u8]>,
    pub key_id: Option<&'a str>,
    pub by: &'a str,
}

/// Why a change was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRefused {
    NotFound,
    /// The connector is at another revision than the one named (its current one).
    Stale(i64),
    /// A connector with this id exists.
    Exists,
}

const COLUMNS: &str =
    "id, revision, spec, secrets, key_id, created_at, created_by, updated_at, updated_by";

impl Catalog {
    /// Every stored connector, by id.
    pub async fn list_api_connectors(&self) -> Result<Vec<StoredConnector>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM api_connectors ORDER BY id"
            )))
            .fetch_all(pool)
            .await?)
        })
    }

    /// `(id, revision)` of every stored connector, by id: what the instances of a fleet
    /// compare to notice a change made elsewhere.
    pub async fn api_connector_revisions(&self) -> Result<Vec<(String, i64)>> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query_as("SELECT id, revision FROM api_connectors ORDER BY id")
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    pub async fn get_api_connector(&self, id: &str) -> Result<Option<StoredConnector>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM api_connectors WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Stores a new connector at revision 1.
    pub async fn insert_api_connector(
        &self,
        id: &str,
        w: &ConnectorWrite<'_>,
    ) -> Result<std::result::Result<StoredConnector, ChangeRefused>> {
        let now = now_ns();
        let inserted = with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO api_connectors (id, revision, spec, secrets, key_id, created_at, created_by, updated_at, updated_by)
                 VALUES ($1, 1, $2, $3, $4, $5, $6, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(w.spec)
            .bind(w.secrets)
            .bind(w.key_id)
            .bind(now)
            .bind(w.by)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Ok(Err(ChangeRefused::Exists));
        }
        Ok(self
            .get_api_connector(id)
            .await?
            .ok_or(ChangeRefused::NotFound))
    }

    /// Replaces connector `id` if it is still at `revision`; it moves to the next one.
    pub async fn update_api_connector(
        &self,
        id: &str,
        revision: i64,
        w: &ConnectorWrite<'_>,
    ) -> Result<std::result::Result<StoredConnector, ChangeRefused>> {
        let changed = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE api_connectors SET revision = revision + 1, spec = $3, secrets = $4, key_id = $5,
                        updated_at = $6, updated_by = $7
                 WHERE id = $1 AND revision = $2",
            )
            .bind(id)
            .bind(revision)
            .bind(w.spec)
            .bind(w.secrets)
            .bind(w.key_id)
            .bind(now_ns())
            .bind(w.by)
            .execute(pool)
            .await?
            .rows_affected()
        });
        let now = self.get_api_connector(id).await?;
        Ok(match now {
            None => Err(ChangeRefused::NotFound),
            Some(c) if changed == 0 => Err(ChangeRefused::Stale(c.revision)),
            Some(c) => Ok(c),
        })
    }

    /// Deletes connector `id` if it is still at `revision`.
    pub async fn delete_api_connector(
        &self,
        id: &str,
        revision: i64,
    ) -> Result<std::result::Result<(), ChangeRefused>> {
        let deleted = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM api_connectors WHERE id = $1 AND revision = $2")
                .bind(id)
                .bind(revision)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if deleted > 0 {
            return Ok(Ok(()));
        }
        Ok(match self.get_api_connector(id).await? {
            None => Err(ChangeRefused::NotFound),
            Some(c) => Err(ChangeRefused::Stale(c.revision)),
        })
    }
}
