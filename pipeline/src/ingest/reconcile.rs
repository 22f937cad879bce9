//! Reconciling deletes at the end of a listing: what a complete listing did not name,
//! and what the source reported deleted, is deleted in the catalog, unless that would
//! pass `max_delete_percent` (then a `mass_delete` conflict holds it). Errors of files
//! that are gone are forgotten. A dry run decides the same and records none of it.

use tokio::sync::mpsc;
use tributary_catalog::conflicts::{self, NewConflict};
use tributary_catalog::{ItemState, NewVersion};

use super::plan::{self, KnownSet, under};
use super::{CommitMsg, Job};
use crate::fault;
use crate::progress::Progress;

/// What the planner gathered from a listing for reconciliation.
pub(super) struct Listed<'a> {
    pub known: &'a KnownSet,
    /// Whether this job's listing named a source id.
    pub named: &'a (dyn Fn(&[u8]) -> bool + Sync),
    /// The listing covered the whole source.
    pub complete: bool,
    /// Folders whose listing failed: nothing under them is deleted.
    pub protected: &'a [Vec<u8>],
    /// Deletes the source reported.
    pub deletes: &'a [Vec<u8>],
}

impl Job {
    pub(super) async fn reconcile(&self, l: Listed<'_>, commit_tx: &mpsc::Sender<CommitMsg>) {
        let pr = &self.progress;
        // a listing that covers the whole source may be reconciled, whatever the kind
        let (doomed, live) = plan::doomed(l.known, l.complete, l.protected, l.deletes);
        let gate = plan::delete_gate(
            doomed.len(),
            live,
            self.spec.max_delete_percent,
            self.spec.allow_mass_delete,
        );
        if gate.held {
            Progress::add(&pr.mass_delete_held, 1);
            Progress::add(&pr.files_delete_held, doomed.len() as u64);
        }
        if gate.held && self.spec.dry_run {
            Progress::add(&pr.conflicts, 1);
            pr.log(
                "warn",
                format!(
                    "conflict: mass_delete: a real run would hold its deletes: {} of {live} live items ({:.1}%), more than max_delete_percent ({}%) (dry run: not recorded)",
                    doomed.len(),
                    gate.pct,
                    self.spec.max_delete_percent
                ),
            );
        } else if gate.held {
            self.mass_delete_conflict(&doomed, live, gate.pct).await;
        } else if self.spec.dry_run {
            // what a real run would close or forget is left as it is
        } else if l.complete || gate.over {
            // allowed, or back within the limit: a held mass delete is over
            let (resolution, by) = if gate.over {
                ("allow", "operator")
            } else {
                ("withdrawn", "source")
            };
            match self
                .p
                .catalog
                .close_mass_delete(&self.spec.connector_id, resolution, by)
                .await
            {
                Ok(Some(id)) => pr.log(
                    "info",
                    format!("conflict: mass_delete #{id} closed ({resolution})"),
                ),
                Ok(None) => {}
                Err(e) => self.fail(format!("close mass delete conflict: {e}")),
            }
        }
        if l.complete && !gate.held && !self.spec.dry_run {
            self.forget_errors_of_unlisted(&l).await;
        }
        if !doomed.is_empty() && !gate.held {
            pr.log(
                "info",
                format!(
                    "{} item(s) no longer in the source: {}",
                    doomed.len(),
                    if self.spec.dry_run {
                        "a real run would delete them"
                    } else {
                        "deleting"
                    }
                ),
            );
            fault::point("reconcile.before_commit");
            for k in doomed {
                let v = NewVersion {
                    source_id: k.source_id.clone(),
                    path: k.path.clone(),
                    deleted: true,
                    mtime_ns: k.mtime_ns,
                    ..Default::default()
                };
                if commit_tx.send(CommitMsg::Version(v)).await.is_err() {
                    break;
                }
            }
        }
    }

    /// Errors of what a complete listing did not name (outside folders that failed
    /// again) are over: a folder that lists again, a file that is gone or no longer
    /// wanted, before it was ever stored.
    async fn forget_errors_of_unlisted(&self, l: &Listed<'_>) {
        let catalog = &self.p.catalog;
        let ids = match catalog.failed_source_ids(&self.spec.connector_id).await {
            Ok(ids) => ids,
            Err(e) => return self.fail(format!("read item errors: {e}")),
        };
        let stale: Vec<Vec<u8>> = ids
            .into_iter()
            .filter(|sid| !(l.named)(sid) && !l.protected.iter().any(|p| under(sid, p)))
            .collect();
        if stale.is_empty() {
            return;
        }
        match catalog
            .forget_item_errors(&self.spec.connector_id, &stale)
            .await
        {
            Ok(n) => self.progress.log(
                "info",
                format!(
                    "{n} earlier item error(s) are over: no longer in the source or listed again"
                ),
            ),
            Err(e) => self.fail(format!("forget item errors: {e}")),
        }
    }

    /// Deletes beyond `max_delete_percent`: nothing is deleted and a `mass_delete`
    /// conflict (one open per connector) waits for an operator to allow or reject it.
    async fn mass_delete_conflict(&self, doomed: &[&ItemState], live: usize, pct: f64) {
        let sample: Vec<String> = doomed
            .iter()
            .take(10)
            .map(|k| String::from_utf8_lossy(&k.path).into_owned())
            .collect();
        let detail = format!(
            "mass delete held: this job would delete {} of {live} live items ({pct:.1}%), more than max_delete_percent ({}%); nothing was deleted. \
             Allow or reject it through the API (POST /api/v1/conflicts/{{id}}/resolve), or run `tributary once --allow-mass-delete`. First: {}",
            doomed.len(),
            self.spec.max_delete_percent,
            sample.join(", ")
        );
        let c = NewConflict::open(
            conflicts::MASS_DELETE,
            &self.spec.connector_id,
            self.spec.target.as_bytes().to_vec(),
            detail.clone(),
            Vec::new(),
        );
        match self.p.catalog.raise(c).await {
            Ok((id, _)) => {
                Progress::add(&self.progress.conflicts, 1);
                tracing::warn!(connector = %self.spec.connector_id, job_id = self.job_id, conflict = id, "mass delete held");
                self.progress
                    .log("warn", format!("conflict: mass_delete #{id}: {detail}"));
            }
            Err(e) => self.fail(format!("record conflict: {e}")),
        }
    }
}
