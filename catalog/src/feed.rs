//! The change feed: rows in commit order, and its pruning.

use crate::{Catalog, Result};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Change {
    pub seq: i64,
    pub connector: String,
    pub item_id: i64,
    pub version_id: i64,
    pub op: String,
    pub path: Vec<u8>,
    pub at: i64,
}

impl Catalog {
    /// Cursors below this sequence number point into pruned history.
    pub async fn pruned_through(&self) -> Result<i64> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query_scalar("SELECT pruned_through FROM feed_state WHERE id = 1")
                    .fetch_optional(pool)
                    .await?
                    .unwrap_or(0),
            )
        })
    }

    pub async fn latest_change(&self) -> Result<i64> {
        with_pool!(self, |pool| {
            let v: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM changes")
                .fetch_one(pool)
                .await?;
            Ok(v.unwrap_or(0))
        })
    }

    /// Drops change-feed rows older than `before` (Unix ns), always keeping the newest
    /// one, and moves the retention watermark. Returns how many were removed.
    pub async fn prune_changes(&self, before: i64) -> Result<u64> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let through: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(seq) FROM changes WHERE at < $1 AND seq < (SELECT MAX(seq) FROM changes)",
            )
            .bind(before)
            .fetch_one(&mut *tx)
            .await?;
            let Some(through) = through else { return Ok(0) };
            let r = sqlx::query("DELETE FROM changes WHERE seq <= $1")
                .bind(through)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE feed_state SET pruned_through = $1 WHERE id = 1 AND pruned_through < $1",
            )
            .bind(through)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(r.rows_affected())
        })
    }

    pub async fn changes(&self, after: i64, limit: i64) -> Result<Vec<Change>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT seq, connector, item_id, version_id, op, path, at FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }
}
