//! What each connector's current content uses: live files, their logical bytes, and the
//! stored bytes of the distinct chunks their current versions reference (after dedup
//! and compression; a chunk that two connectors share counts for both). Kept in
//! `connector_usage` (migration 0015), recalculated from the items and chunks after a
//! job that committed something and on request.

use serde::Serialize;

use crate::{Catalog, Result, now_ns};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Usage {
    pub connector: String,
    pub files: i64,
    pub bytes: i64,
    pub stored_bytes: i64,
    /// When it was calculated (Unix ns).
    pub calculated_at: i64,
}

impl Catalog {
    /// The usage last calculated, by connector.
    pub async fn usage(&self) -> Result<Vec<Usage>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT connector, files, bytes, stored_bytes, calculated_at
                 FROM connector_usage ORDER BY connector",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Recalculates the usage of `connector` from the catalog, stores it and returns it.
    pub async fn recalculate_usage(&self, connector: &str) -> Result<Usage> {
        let at = now_ns();
        with_pool!(self, |pool| {
            let (files, bytes): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM items
                 WHERE connector = $1 AND deleted = 0",
            )
            .bind(connector)
            .fetch_one(pool)
            .await?;
            let stored_bytes: i64 = sqlx::query_scalar(
                "SELECT COALESCE(SUM(c.stored_size), 0) FROM chunks c
                 WHERE c.hash IN (SELECT vc.hash FROM items i
                                  JOIN version_chunks vc ON vc.version_id = i.current_version
                                  WHERE i.connector = $1 AND i.deleted = 0)",
            )
            .bind(connector)
            .fetch_one(pool)
            .await?;
            let u = Usage {
                connector: connector.to_string(),
                files,
                bytes,
                stored_bytes,
                calculated_at: at,
            };
            sqlx::query(
                "INSERT INTO connector_usage (connector, files, bytes, stored_bytes, calculated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (connector) DO UPDATE SET files = excluded.files, bytes = excluded.bytes,
                   stored_bytes = excluded.stored_bytes, calculated_at = excluded.calculated_at",
            )
            .bind(&u.connector)
            .bind(u.files)
            .bind(u.bytes)
            .bind(u.stored_bytes)
            .bind(u.calculated_at)
            .execute(pool)
            .await?;
            Ok(u)
        })
    }
}
