//! The fleet's job queue, kept in the catalog so that every instance sharing it takes
//! part: a trigger inserts a `queued` job that names no instance; an instance with a
//! free job slot claims the oldest one it may run (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL) and from then holds the connector's **lease** until `lease_until`,
//! renewing it while the job runs. Lease times are the catalog's clock (PostgreSQL's
//! `clock_timestamp()`), never an instance's, so hosts with skewed clocks agree.
//!
//! - **Fencing**: every commit of a job's batch checks, in its own transaction and
//!   with the job's row locked, that the job still runs, on this instance, under an
//!   unexpired lease ([`fence`]); an instance that was frozen past its lease commits
//!   nothing more.
//! - **Reaping**: any instance interrupts a job whose lease expired and queues its
//!   connector again (incremental, trigger `failover`), in one transaction.
//! - A cancel issued on another instance is a flag on the job's row, which the
//!   instance running it reads within its poll; a queued job is cancelled at once.
//! - A `draining` instance claims nothing new.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use crate::signals::Signal;
use crate::{Catalog, CatalogError, Db, Result, Tx, now_ns};

/// The catalog's clock in Unix ns, as SQL (PostgreSQL: the server's; SQLite: the one
/// host's).
fn now_sql(db: &Db) -> &'static str {
    match db {
        Db::Postgres(_) => PG_NOW,
        Db::Sqlite(_) => SQLITE_NOW,
    }
}

const PG_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000000000)::bigint";
const SQLITE_NOW: &str = "CAST(unixepoch('subsec') * 1000000000 AS INTEGER)";

fn ttl_ns(ttl: Duration) -> i64 {
    ttl.as_nanos().min(i64::MAX as u128) as i64
}

/// A job queued or running somewhere in the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ActiveJob {
    pub id: i64,
    pub connector: String,
    pub status: String,
    /// The instance running it (`None` while queued).
    pub instance: Option<String>,
    pub cancel_requested: i64,
}

/// What every instance polls: the fleet's active jobs, the paused connectors, and
/// whether this instance is told to drain.
#[derive(Debug, Clone, Default)]
pub struct FleetView {
    pub jobs: Vec<ActiveJob>,
    pub paused: HashSet<String>,
    pub draining: bool,
    /// The instances that are up (a heartbeat within [`crate::INSTANCE_DOWN_AFTER`],
    /// not stopped) and not draining.
    pub available: Vec<String>,
}

/// A job interrupted because its lease expired, and the job queued to continue it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub job: i64,
    pub connector: String,
    /// The instance that held the lease.
    pub instance: Option<String>,
    /// The job queued in its place (`None` when one was queued already, or the job was
    /// a dry run).
    pub next: Option<i64>,
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was queued: it is cancelled and will not run.
    Dequeued,
    /// The job runs on `instance`, which stops it when it next polls.
    Requested { instance: Option<String> },
    /// The job is not queued or running.
    NotActive,
}

/// Whether a job's row lets its instance `me` commit at catalog time `now`: it runs,
/// and, when it holds a lease (daemon jobs do; `tributary once` and older jobs do
/// not), on `me` with the lease unexpired. `Err` says why not.
pub fn lease_verdict(
    status: &str,
    instance: Option<&str>,
    lease_until: Option<i64>,
    now: i64,
    me: Option<&str>,
) -> std::result::Result<(), String> {
    if status != "running" {
        return Err(format!("the job is {status}"));
    }
    match lease_until {
        None => Ok(()),
        Some(_) if instance != me => {
            Err(format!("instance {} runs it", instance.unwrap_or("(none)")))
        }
        Some(until) if until <= now => Err(format!(
            "the lease expired {:.1} s ago",
            (now - until) as f64 / 1e9
        )),
        Some(_) => Ok(()),
    }
}

/// Checks, inside a commit's transaction, that job `job` may still commit
/// ([`lease_verdict`]); its row stays locked until the transaction ends, so a reaper
/// cannot interrupt the job half-way through a commit.
pub(crate) async fn fence(tx: &mut Tx<'_>, job: i64, me: Option<&str>) -> Result<()> {
    type Row = (String, Option<String>, Option<i64>, i64);
    let row: Option<Row> =
        match tx {
            Tx::Postgres(t) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT status, instance, lease_until, {PG_NOW} FROM jobs WHERE id = $1 FOR SHARE"
            )))
            .bind(job)
            .fetch_optional(&mut **t)
            .await?,
            // a write first, as the rest of the commit: a deferred transaction that
            // read first could not take the write lock once another connection wrote
            // (SQLITE_BUSY at once instead of waiting its turn)
            Tx::Sqlite(t) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE jobs SET lease_until = lease_until WHERE id = $1
                     RETURNING status, instance, lease_until, {SQLITE_NOW}"
                )))
                .bind(job)
                .fetch_optional(&mut **t)
                .await?
            }
        };
    let verdict = match &row {
        None => Err("the job is gone".to_string()),
        Some((status, instance, until, now)) => {
            lease_verdict(status, instance.as_deref(), *until, *now, me)
        }
    };
    verdict.map_err(|why| CatalogError::LeaseLost { job, why })
}

impl Catalog {
    fn me(&self) -> Result<&str> {
        self.instance
            .as_deref()
            .ok_or_else(|| CatalogError::Corrupt("the job queue needs an instance".into()))
    }

    /// Claims the oldest queued job of one of `connectors` (queued at or before
    /// `queued_before`, when given) for this instance, with a lease of `ttl`.
    pub async fn claim_job(
        &self,
        connectors: &[String],
        ttl: Duration,
        queued_before: Option<i64>,
    ) -> Result<Option<crate::JobRow>> {
        if connectors.is_empty() {
            return Ok(None);
        }
        let me = self.me()?;
        let now = now_sql(&self.db);
        let cols = crate::jobs::JOB_COLUMNS;
        match &self.db {
            Db::Postgres(pool) => Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET status = 'running', instance = $1, started_at = $2, lease_until = {now} + $3
                 WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND connector = ANY($4)
                               AND ($5::bigint IS NULL OR queued_at <= $5)
                             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING {cols}"
            )))
            .bind(me)
            .bind(now_ns())
            .bind(ttl_ns(ttl))
            .bind(connectors)
            .bind(queued_before)
            .fetch_optional(pool)
            .await?),
            Db::Sqlite(pool) => Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET status = 'running', instance = $1, started_at = $2, lease_until = {now} + $3
                 WHERE id = (SELECT id FROM jobs WHERE status = 'queued'
                               AND connector IN (SELECT value FROM json_each($4))
                               AND ($5 IS NULL OR queued_at <= $5)
                             ORDER BY id LIMIT 1)
                 RETURNING {cols}"
            )))
            .bind(me)
            .bind(now_ns())
            .bind(ttl_ns(ttl))
            .bind(serde_json::to_string(connectors).expect("strings serialize"))
            .bind(queued_before)
            .fetch_optional(pool)
            .await?),
        }
    }

    /// Renews the leases of this instance's running jobs whose lease has not expired;
    /// returns their ids. A running job of this instance missing from the answer has
    /// lost its lease.
    pub async fn renew_leases(&self, ttl: Duration) -> Result<Vec<i64>> {
        let me = self.me()?;
        let now = now_sql(&self.db);
        let sql = format!(
            "UPDATE jobs SET lease_until = {now} + $2
             WHERE instance = $1 AND status = 'running' AND lease_until > {now} RETURNING id"
        );
        with_pool!(self, |pool| {
            let mut ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(me)
                .bind(ttl_ns(ttl))
                .fetch_all(pool)
                .await?;
            ids.sort_unstable();
            Ok(ids)
        })
    }

    /// Interrupts every running job whose lease expired (its instance died, froze or
    /// lost the catalog) and queues each such connector again, in one transaction.
    pub async fn reap_expired_leases(&self) -> Result<Vec<Reaped>> {
        let now = now_sql(&self.db);
        // a row locked by a commit in flight is left for the next poll (a frozen
        // committer's session is ended by the server's idle-in-transaction timeout)
        let skip_locked = match self.db {
            Db::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            Db::Sqlite(_) => "",
        };
        let reap = format!(
            "UPDATE jobs SET status = 'interrupted', finished_at = $1,
               last_error = 'the lease of instance ' || COALESCE(instance, '?') || ' expired: it stopped renewing it (dead, frozen or cut off from the catalog)'
             WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_until IS NOT NULL
                            AND lease_until < {now} {skip_locked})
             RETURNING id, connector, instance, dry_run"
        );
        const REQUEUE: &str = "INSERT INTO jobs (connector, kind, trigger, status, queued_at)
             VALUES ($1, 'incremental', 'failover', 'queued', $2)
             ON CONFLICT (connector) WHERE status IN ('queued', 'running') DO NOTHING
             RETURNING id";
        let stamp = now_ns();
        let out = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut gone: Vec<(i64, String, Option<String>, i64)> =
                sqlx::query_as(sqlx::AssertSqlSafe(reap))
                    .bind(stamp)
                    .fetch_all(&mut *tx)
                    .await?;
            gone.sort();
            let mut out = Vec::with_capacity(gone.len());
            for (job, connector, instance, dry_run) in gone {
                // a dry run that was cut off is over: it is not continued for real
                let next: Option<i64> = if dry_run != 0 {
                    None
                } else {
                    sqlx::query_scalar(REQUEUE)
                        .bind(&connector)
                        .bind(stamp)
                        .fetch_optional(&mut *tx)
                        .await?
                };
                out.push(Reaped {
                    job,
                    connector,
                    instance,
                    next,
                });
            }
            tx.commit().await?;
            Ok::<_, CatalogError>(out)
        })?;
        if out.iter().any(|r| r.next.is_some()) {
            self.signal_fleet(Signal::Queued).await;
        }
        Ok(out)
    }

    /// Cancels job `id`: a queued job at once, a running one by a request its instance
    /// acts on.
    pub async fn request_cancel(&self, id: i64) -> Result<CancelOutcome> {
        let now = now_ns();
        let outcome = with_pool!(self, |pool| {
            let dequeued = sqlx::query(
                "UPDATE jobs SET status = 'cancelled', finished_at = $2, last_error = 'cancelled before it started'
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
            if dequeued > 0 {
                return Ok(CancelOutcome::Dequeued);
            }
            let running: Option<Option<String>> = sqlx::query_scalar(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND status = 'running' RETURNING instance",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok::<_, CatalogError>(match running {
                Some(instance) => CancelOutcome::Requested { instance },
                None => CancelOutcome::NotActive,
            })
        })?;
        if matches!(outcome, CancelOutcome::Requested { .. }) {
            self.signal_fleet(Signal::Changed).await;
        }
        Ok(outcome)
    }

    /// The fleet's active jobs, paused connectors and this instance's drain flag.
    pub async fn fleet_view(&self) -> Result<FleetView> {
        let me = self.instance.as_deref();
        with_pool!(self, |pool| {
            let jobs: Vec<ActiveJob> = sqlx::query_as(
                "SELECT id, connector, status, instance, cancel_requested FROM jobs
                 WHERE status IN ('queued', 'running') ORDER BY id",
            )
            .fetch_all(pool)
            .await?;
            let paused: Vec<String> =
                sqlx::query_scalar("SELECT id FROM connectors WHERE paused = 1")
                    .fetch_all(pool)
                    .await?;
            let draining: Option<i64> =
                sqlx::query_scalar("SELECT draining FROM instances WHERE id = $1")
                    .bind(me)
                    .fetch_optional(pool)
                    .await?;
            let available: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM instances WHERE stopped_at IS NULL AND draining = 0 AND heartbeat_at >= $1 ORDER BY id",
            )
            .bind(now_ns() - crate::INSTANCE_DOWN_AFTER.as_nanos() as i64)
            .fetch_all(pool)
            .await?;
            Ok(FleetView {
                jobs,
                paused: paused.into_iter().collect(),
                draining: draining.unwrap_or(0) != 0,
                available,
            })
        })
    }

    /// Stores the counters of running jobs (JSON), so that every instance's API shows
    /// the progress of jobs running elsewhere.
    pub async fn save_progress(&self, jobs: &[(i64, String)]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for (id, stats) in jobs {
                sqlx::query("UPDATE jobs SET stats = $1 WHERE id = $2 AND status = 'running'")
                    .bind(stats)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Claims the firing of `connector`'s schedule at `fire_at` (Unix ns, the cron
    /// instant): `true` for the first instance to ask, `false` for the others.
    pub async fn claim_fire(&self, connector: &str, fire_at: i64) -> Result<bool> {
        with_pool!(self, |pool| {
            Ok(sqlx::query(
                "INSERT INTO schedule_fires (connector, fire_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(connector)
            .bind(fire_at)
            .execute(pool)
            .await?
            .rows_affected()
                > 0)
        })
    }

    /// Forgets schedule firings before `before` (Unix ns).
    pub async fn prune_fires(&self, before: i64) -> Result<u64> {
        with_pool!(self, |pool| {
            Ok(sqlx::query("DELETE FROM schedule_fires WHERE fire_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// Tells instance `id` to claim no new job (or to claim again); `false` when no
    /// such instance is known.
    pub async fn set_draining(&self, id: &str, draining: bool) -> Result<bool> {
        let known = with_pool!(self, |pool| {
            sqlx::query("UPDATE instances SET draining = $1 WHERE id = $2")
                .bind(i64::from(draining))
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
                > 0
        });
        if known {
            self.signal_fleet(Signal::Changed).await;
        }
        Ok(known)
    }
}

#[cfg(test)]
mod tests {
    use super::lease_verdict;

    #[test]
    fn a_job_commits_only_while_it_runs_under_its_own_unexpired_lease() {
        let me = Some("a");
        assert_eq!(
            lease_verdict("running", Some("a"), Some(100), 99, me),
            Ok(())
        );
        // no lease: `tributary once`, or a job of an older release
        assert_eq!(lease_verdict("running", None, None, 99, None), Ok(()));
        let why = |s, i, l, now| lease_verdict(s, i, l, now, me).unwrap_err();
        assert_eq!(
            why("running", Some("a"), Some(100), 100),
            "the lease expired 0.0 s ago"
        );
        assert_eq!(
            why("running", Some("a"), Some(0), 2_500_000_000),
            "the lease expired 2.5 s ago"
        );
        assert_eq!(
            why("running", Some("b"), Some(100), 0),
            "instance b runs it"
        );
        assert_eq!(
            why("interrupted", Some("a"), Some(100), 0),
            "the job is interrupted"
        );
        assert_eq!(why("cancelled", None, None, 0), "the job is cancelled");
    }
}
