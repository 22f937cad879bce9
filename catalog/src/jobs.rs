//! Jobs (queued, running, finished; their counters and log) and the connectors'
//! paused flags.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::signals::Signal;
use crate::{Catalog, CatalogError, Result, now_ns, redact};

/// A job's counters (a point-in-time copy of the pipeline's `Progress`); stored as
/// JSON in [`JobRow::stats`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Stats {
    pub files_seen: u64,
    pub files_unchanged: u64,
    pub files_planned: u64,
    pub bytes_planned: u64,
    pub files_done: u64,
    pub files_failed: u64,
    pub files_skipped: u64,
    pub files_deleted: u64,
    pub bytes_read: u64,
    pub bytes_uploaded: u64,
    pub bytes_deduplicated: u64,
    pub chunks_new: u64,
    pub chunks_reused: u64,
    pub upload_retries: u64,
    pub torn_reads: u64,
    pub conflicts: u64,
    pub files_held: u64,
    pub files_relocated: u64,
    pub versions_committed: u64,
    pub listing_done: bool,
    /// Files read because they are new to the catalog (planned, in a dry run).
    pub files_new: u64,
    /// Files read because they changed (planned, in a dry run).
    pub files_changed: u64,
    /// The mass-delete guard held this job's deletes (it opened, or in a dry run would
    /// open, a `mass_delete` conflict).
    pub mass_delete_held: bool,
    /// The deletes the mass-delete guard held.
    pub files_delete_held: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub connector: String,
    pub kind: String,
    pub trigger: String,
    pub status: String,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error_count: i64,
    pub last_error: Option<String>,
    pub stats: String,
    /// The instance that ran it (`None` for jobs recorded before instances were).
    pub instance: Option<String>,
    /// Who asked for it over the API (the principal's name); `None` for jobs the
    /// daemon started (schedules, watches, retries, start-up).
    pub requested_by: Option<String>,
    /// A dry run: it listed and planned and stored nothing; its counters say what a
    /// real run would have done.
    pub dry_run: bool,
}

pub(crate) const JOB_COLUMNS: &str = "id, connector, kind, trigger, status, queued_at, started_at, finished_at, error_count, last_error, stats, instance, requested_by, (dry_run <> 0) AS dry_run";

/// Filters of a job listing.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub connector: Option<String>,
    pub status: Option<String>,
    /// Jobs queued or started at or after this time (Unix ns).
    pub since: Option<i64>,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LogLine {
    pub at: i64,
    pub level: String,
    pub message: String,
}

impl Catalog {
    /// A job row in state `running` (`tributary once`). [`CatalogError::JobActive`]
    /// when the connector has a job queued or running already.
    pub async fn create_job(&self, connector: &str, kind: &str, trigger: &str) -> Result<i64> {
        self.insert_job(connector, kind, trigger, "running", i64::MAX, false)
            .await
    }

    /// [`Catalog::create_job`] for a dry run.
    pub async fn create_dry_run_job(
        &self,
        connector: &str,
        kind: &str,
        trigger: &str,
    ) -> Result<i64> {
        self.insert_job(connector, kind, trigger, "running", i64::MAX, true)
            .await
    }

    async fn insert_job(
        &self,
        connector: &str,
        kind: &str,
        trigger: &str,
        status: &str,
        unless_after: i64,
        dry_run: bool,
    ) -> Result<i64> {
        let now = now_ns();
        let (queued_at, started_at) = match status {
            "queued" => (Some(now), None),
            _ => (None, Some(now)),
        };
        let inserted: Result<Option<i64>> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO jobs (connector, kind, trigger, status, queued_at, started_at, instance, dry_run)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $9
                 WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE connector = $1 AND id > $8)
                 RETURNING id",
            )
            .bind(connector)
            .bind(kind)
            .bind(trigger)
            .bind(status)
            .bind(queued_at)
            .bind(started_at)
            // a queued job is anyone's until an instance claims it
            .bind(self.instance.as_deref().filter(|_| status != "queued"))
            .bind(unless_after)
            .bind(dry_run as i64)
            .fetch_optional(pool)
            .await
            .map_err(CatalogError::from)
        });
        let inserted = match inserted {
            Ok(Some(id)) => Ok(id),
            Ok(None) => {
                let job: i64 = with_pool!(self, |pool| {
                    sqlx::query_scalar("SELECT MAX(id) FROM jobs WHERE connector = $1")
                        .bind(connector)
                        .fetch_one(pool)
                        .await?
                });
                return Err(CatalogError::JobSuperseded {
                    connector: connector.to_string(),
                    job,
                });
            }
            Err(e) => Err(e),
        };
        match inserted {
            Err(CatalogError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                let job: Option<i64> = with_pool!(self, |pool| {
                    sqlx::query_scalar(
                        "SELECT id FROM jobs WHERE connector = $1 AND status IN ('queued', 'running')",
                    )
                    .bind(connector)
                    .fetch_optional(pool)
                    .await?
                });
                match job {
                    // a job run outside the daemon (`once`) replaces one that nothing
                    // runs any more: a crashed `once`, or an instance gone
                    Some(job) if status == "running" && self.abandoned(job).await? => {
                        self.finish_job(
                            job,
                            "interrupted",
                            "{}",
                            0,
                            Some("abandoned: its process is gone"),
                        )
                        .await?;
                    }
                    Some(job) => {
                        return Err(CatalogError::JobActive {
                            connector: connector.to_string(),
                            job,
                        });
                    }
                    // it ended meanwhile
                    None => {}
                }
                // the way is clear: try once more
                Box::pin(self.insert_job(connector, kind, trigger, status, unless_after, dry_run))
                    .await
            }
            other => other,
        }
    }

    /// Records a job's end; a job that is no longer queued or running (interrupted by
    /// a reaper after its lease expired, say) keeps the end it has.
    pub async fn finish_job(
        &self,
        id: i64,
        status: &str,
        stats_json: &str,
        error_count: i64,
        last_error: Option<&str>,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE jobs SET status = $1, finished_at = $2, stats = $3, error_count = $4, last_error = $5
                 WHERE id = $6 AND status IN ('queued', 'running')",
            )
            .bind(status)
            .bind(now_ns())
            .bind(stats_json)
            .bind(error_count)
            .bind(last_error.map(redact))
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Marks jobs left `running` (by a crash or a stop) as `interrupted`; returns the
    /// connectors they belonged to. Queued jobs stay queued: any instance claims them. A handle acting for an instance
    /// ([`Catalog::for_instance`]) touches its own jobs, jobs that name no instance and
    /// jobs of instances that are not up (stopped, or without a heartbeat for
    /// `down_after`: a renamed or dead instance) — never a running instance's.
    pub async fn interrupt_unfinished_jobs(&self, down_after: Duration) -> Result<Vec<String>> {
        const MINE: &str = "status = 'running' AND ($1 IS NULL OR instance IS NULL OR instance = $1
            OR instance NOT IN (SELECT id FROM instances WHERE stopped_at IS NULL AND heartbeat_at >= $2))";
        let now = now_ns();
        let alive_since = now - down_after.as_nanos() as i64;
        with_pool!(self, |pool| {
            let connectors: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT DISTINCT connector FROM jobs WHERE {MINE} ORDER BY connector"
            )))
            .bind(self.instance.as_deref())
            .bind(alive_since)
            .fetch_all(pool)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET status = 'interrupted', finished_at = $3 WHERE {MINE}"
            )))
            .bind(self.instance.as_deref())
            .bind(alive_since)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(connectors)
        })
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Whether nothing will run job `id`: running, it names no instance, or one that
    /// stopped or sent no heartbeat for [`crate::INSTANCE_DOWN_AFTER`]; queued, no
    /// instance is up to claim it (the fleet is stopped).
    async fn abandoned(&self, id: i64) -> Result<bool> {
        let alive_since = now_ns() - crate::INSTANCE_DOWN_AFTER.as_nanos() as i64;
        let live: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT j.id FROM jobs j JOIN instances i
                   ON i.id = j.instance OR (j.status = 'queued' AND j.instance IS NULL)
                 WHERE j.id = $1 AND i.stopped_at IS NULL AND i.heartbeat_at >= $2
                 LIMIT 1",
            )
            .bind(id)
            .bind(alive_since)
            .fetch_optional(pool)
            .await?
        });
        Ok(live.is_none())
    }

    /// A job row in state `queued`, for the daemon's job queue.
    /// [`CatalogError::JobActive`] when the connector has a job queued or running
    /// already, on this instance or another.
    pub async fn create_queued_job(
        &self,
        connector: &str,
        kind: &str,
        trigger: &str,
    ) -> Result<i64> {
        self.queue_job(connector, kind, trigger, false).await
    }

    /// [`Catalog::create_queued_job`] for a dry run, or not.
    pub async fn queue_job(
        &self,
        connector: &str,
        kind: &str,
        trigger: &str,
        dry_run: bool,
    ) -> Result<i64> {
        let id = self
            .insert_job(connector, kind, trigger, "queued", i64::MAX, dry_run)
            .await?;
        self.signal_fleet(Signal::Queued).await;
        Ok(id)
    }

    /// [`Catalog::create_queued_job`] decided on the connector's latest job as seen
    /// (`seen`, `None` when it had none): [`CatalogError::JobSuperseded`] when a later
    /// job exists by the time of the insert — another instance acted on the same sight
    /// meanwhile, and its job (queued, running or ended) does the work.
    pub async fn create_queued_job_after(
        &self,
        connector: &str,
        kind: &str,
        trigger: &str,
        seen: Option<i64>,
    ) -> Result<i64> {
        let id = self
            .insert_job(connector, kind, trigger, "queued", seen.unwrap_or(0), false)
            .await?;
        self.signal_fleet(Signal::Queued).await;
        Ok(id)
    }

    pub async fn start_job(&self, id: i64) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE jobs SET status = 'running', started_at = $1 WHERE id = $2 AND status IN ('queued', 'running')")
                .bind(now_ns())
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Jobs, newest first, with the total count for pagination.
    pub async fn list_jobs(
        &self,
        f: &JobFilter,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<JobRow>, i64)> {
        with_pool!(self, |pool| {
            const WHERE: &str = "($1 IS NULL OR connector = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR COALESCE(started_at, queued_at) >= $3)";
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM jobs WHERE {WHERE}"
            )))
            .bind(&f.connector)
            .bind(&f.status)
            .bind(f.since)
            .fetch_one(pool)
            .await?;
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE {WHERE} ORDER BY id DESC LIMIT $4 OFFSET $5"
            )))
            .bind(&f.connector)
            .bind(&f.status)
            .bind(f.since)
            .bind(per_page)
            .bind((page - 1).max(0) * per_page)
            .fetch_all(pool)
            .await?;
            Ok((rows, total))
        })
    }

    /// The latest job of a connector.
    pub async fn last_job(&self, connector: &str) -> Result<Option<JobRow>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE connector = $1 ORDER BY id DESC LIMIT 1"
            )))
            .bind(connector)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// When the connector's last successful job (not a dry run) finished (Unix ns).
    pub async fn last_success(&self, connector: &str) -> Result<Option<i64>> {
        with_pool!(self, |pool| {
            let v: Option<Option<i64>> = sqlx::query_scalar(
                "SELECT MAX(finished_at) FROM jobs WHERE connector = $1 AND status = 'succeeded' AND dry_run = 0",
            )
            .bind(connector)
            .fetch_optional(pool)
            .await?;
            Ok(v.flatten())
        })
    }

    /// Counts of jobs per status.
    pub async fn job_status_counts(&self) -> Result<Vec<(String, i64)>> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    /// Replaces a job's log with `lines`.
    pub async fn write_job_log(&self, job_id: i64, lines: &[LogLine]) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM job_logs WHERE job_id = $1")
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            for (i, l) in lines.iter().enumerate() {
                sqlx::query("INSERT INTO job_logs (job_id, seq, at, level, message) VALUES ($1, $2, $3, $4, $5)")
                    .bind(job_id)
                    .bind(i as i64)
                    .bind(l.at)
                    .bind(&l.level)
                    .bind(redact(&l.message))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn job_log(&self, job_id: i64) -> Result<Vec<LogLine>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT at, level, message FROM job_logs WHERE job_id = $1 ORDER BY seq",
            )
            .bind(job_id)
            .fetch_all(pool)
            .await?)
        })
    }

    // ---- connectors -------------------------------------------------------------

    pub async fn set_paused(&self, connector: &str, paused: bool) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO connectors (id, updated_at, paused) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
            )
            .bind(connector)
            .bind(now_ns())
            .bind(paused as i64)
            .execute(pool)
            .await?;
            Ok::<_, CatalogError>(())
        })?;
        self.signal_fleet(Signal::Changed).await;
        Ok(())
    }

    pub async fn paused_connectors(&self) -> Result<HashSet<String>> {
        with_pool!(self, |pool| {
            let v: Vec<String> = sqlx::query_scalar("SELECT id FROM connectors WHERE paused = 1")
                .fetch_all(pool)
                .await?;
            Ok(v.into_iter().collect())
        })
    }
}
