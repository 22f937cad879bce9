//! The daemon instances that use a catalog: each registers at start, renews its
//! heartbeat while it runs and records a clean stop; the jobs a handle creates carry
//! its instance ([`Catalog::for_instance`]).

use serde::Serialize;

use crate::{Catalog, Result, now_ns};

/// An instance without a heartbeat for this long is taken for gone (`down`): its jobs
/// may be interrupted by others.
pub const INSTANCE_DOWN_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// An instance as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub hostname: String,
    /// The Tributary version it runs.
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Set when it stopped cleanly; `None` while it runs (or if it died).
    pub stopped_at: Option<i64>,
    /// Non-zero: told to claim no new job.
    pub draining: i64,
}

/// Whether an instance is running, stopped cleanly, or silent for longer than `ttl`
/// (Unix ns) at `now`: `up`, `stopped` or `down`.
pub fn instance_state(row: &InstanceRow, now: i64, ttl: i64) -> &'static str {
    if row.stopped_at.is_some() {
        "stopped"
    } else if now - row.heartbeat_at > ttl {
        "down"
    } else {
        "up"
    }
}

impl Catalog {
    /// This handle, acting for instance `id`: the jobs it creates record it.
    pub fn for_instance(&self, id: &str) -> Catalog {
        Catalog {
            instance: Some(id.into()),
            ..self.clone()
        }
    }

    /// The instance this handle acts for.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Records that instance `id` starts (again): its host and version, a fresh
    /// heartbeat, no stop.
    pub async fn register_instance(&self, id: &str, hostname: &str, version: &str) -> Result<()> {
        let now = now_ns();
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO instances (id, hostname, version, started_at, heartbeat_at, stopped_at)
                 VALUES ($1, $2, $3, $4, $4, NULL)
                 ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version,
                   started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL,
                   down_announced_at = NULL",
            )
            .bind(id)
            .bind(hostname)
            .bind(version)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Renews instance `id`'s heartbeat.
    pub async fn heartbeat(&self, id: &str) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE instances SET heartbeat_at = $1, down_announced_at = NULL WHERE id = $2",
            )
            .bind(now_ns())
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The instances other than `me` silent for longer than `ttl` without a clean stop
    /// and not yet announced down, marked announced: each is returned to one caller
    /// only, however many instances ask at once (id, last heartbeat in Unix ns).
    pub async fn claim_silent_instances(
        &self,
        me: &str,
        ttl: std::time::Duration,
    ) -> Result<Vec<(String, i64)>> {
        let now = now_ns();
        let before = now - ttl.as_nanos() as i64;
        with_pool!(self, |pool| {
            let mut rows: Vec<(String, i64)> = sqlx::query_as(
                "UPDATE instances SET down_announced_at = $1
                 WHERE id <> $2 AND stopped_at IS NULL AND down_announced_at IS NULL AND heartbeat_at < $3
                 RETURNING id, heartbeat_at",
            )
            .bind(now)
            .bind(me)
            .bind(before)
            .fetch_all(pool)
            .await?;
            rows.sort();
            Ok(rows)
        })
    }

    /// Records that instance `id` stopped cleanly.
    pub async fn instance_stopped(&self, id: &str) -> Result<()> {
        let now = now_ns();
        with_pool!(self, |pool| {
            sqlx::query("UPDATE instances SET stopped_at = $1, heartbeat_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Every instance that ever used the catalog, by id, with the ids of its jobs that
    /// are queued or running.
    pub async fn instances(&self) -> Result<Vec<(InstanceRow, Vec<i64>)>> {
        with_pool!(self, |pool| {
            let rows: Vec<InstanceRow> = sqlx::query_as(
                "SELECT id, hostname, version, started_at, heartbeat_at, stopped_at, draining FROM instances ORDER BY id",
            )
            .fetch_all(pool)
            .await?;
            let jobs: Vec<(String, i64)> = sqlx::query_as(
                "SELECT instance, id FROM jobs WHERE instance IS NOT NULL AND status IN ('queued', 'running') ORDER BY id",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mine = jobs
                        .iter()
                        .filter(|(i, _)| *i == r.id)
                        .map(|(_, j)| *j)
                        .collect();
                    (r, mine)
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_up_stopped_or_down_by_its_heartbeat() {
        let row = |heartbeat_at, stopped_at| InstanceRow {
            id: "a".into(),
            hostname: "h".into(),
            version: "0".into(),
            started_at: 0,
            heartbeat_at,
            stopped_at,
            draining: 0,
        };
        assert_eq!(instance_state(&row(100, None), 120, 30), "up");
        assert_eq!(instance_state(&row(100, None), 130, 30), "up");
        assert_eq!(instance_state(&row(100, None), 131, 30), "down");
        assert_eq!(instance_state(&row(100, Some(100)), 1000, 30), "stopped");
    }
}
