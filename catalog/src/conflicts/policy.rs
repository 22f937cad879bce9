//! The conflict policy as a pure function: a batch's claims and what the catalog holds
//! about them in, the decision out (which claims are visible, held, renamed; which
//! owners are displaced; which conflict records to write). [`super::Catalog::decide`]
//! reads the catalog and applies the result; everything it decides is here, so every
//! policy and kind is unit-tested without a database.

use std::collections::{HashMap, HashSet};

use super::{
    ClaimRef, ConflictOp, DIVERGED, Decided, MASS_DELETE, NAME_COLLISION, Namespace, NewConflict,
    PATH_CLAIM, Policy, TORN_READ, conflict_name, nfc, path_key,
};
use crate::NewVersion;

/// A visible owner of a path key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Owner {
    pub connector: String,
    pub source_id: Vec<u8>,
    pub path: Vec<u8>,
    pub mtime_ns: i64,
    pub digest: Option<Vec<u8>>,
}

/// What the catalog knows of a claiming item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    pub held: bool,
    /// It had visible content before (so a held item was displaced).
    pub was_visible: bool,
}

/// What the catalog holds about a batch's claims, read before deciding.
#[derive(Debug, Default)]
pub(crate) struct Standing {
    /// The claiming connector's items among the batch, by source id.
    pub known: HashMap<Vec<u8>, Known>,
    /// Open conflicts whose incoming claim is one of the batch's items: source id →
    /// (conflict id, kind).
    pub open: HashMap<Vec<u8>, (i64, String)>,
    /// The visible owners of the batch's path keys (after renames).
    pub owners: HashMap<Vec<u8>, Vec<Owner>>,
}

/// Standing `keep_both` renames, (source id, original path) → renamed path: a claim
/// that was stored under a conflict name keeps that name.
pub(crate) fn apply_renames(
    versions: &mut [NewVersion],
    renames: &HashMap<(Vec<u8>, Vec<u8>), Vec<u8>>,
) {
    for v in versions.iter_mut() {
        if let Some(to) = renames.get(&(v.source_id.clone(), v.path.clone())) {
            v.path = to.clone();
        }
    }
}

/// Decides the claims of a batch of `connector` (content and tombstones) against the
/// path owners: marks losing and blocked claims held, adds the displacement of owners
/// that lost, renames `keep_both` claims and returns the conflict records to write.
pub(crate) fn decide(
    ns: &Namespace,
    connector: &str,
    versions: Vec<NewVersion>,
    at: i64,
    standing: &Standing,
) -> Decided {
    let me = ns.party(connector);
    let known = &standing.known;
    let open = &standing.open;
    let mut owners = standing.owners.clone();
    let mut out = Decided::default();
    // owners displaced in this batch; claims made visible earlier in it
    let mut gone: HashSet<(String, Vec<u8>)> = HashSet::new();
    let mut resolved: HashSet<i64> = HashSet::new();
    for mut v in versions {
        let k = known.get(&v.source_id);
        let held = k.is_some_and(|k| k.held);
        let shown = String::from_utf8_lossy(&v.path).into_owned();
        if v.deleted {
            if held {
                // the source removed a claim that was never visible
                v.held = true;
                if let Some((id, _)) = open.get(&v.source_id)
                    && resolved.insert(*id)
                {
                    out.ops.push(ConflictOp::Resolve {
                        id: *id,
                        resolution: "withdrawn",
                        by: "source".into(),
                        at,
                        renamed_to: None,
                    });
                    out.notes.push(format!(
                        "{shown}: claim withdrawn by the source; conflict #{id} closed"
                    ));
                }
            }
            out.versions.push(v);
            continue;
        }
        if let Some((id, kind)) = open.get(&v.source_id) {
            if kind == TORN_READ {
                // read whole at last: the torn-read conflict is over
                if resolved.insert(*id) {
                    out.ops.push(ConflictOp::Resolve {
                        id: *id,
                        resolution: "read",
                        by: "source".into(),
                        at,
                        renamed_to: None,
                    });
                }
            } else if kind != MASS_DELETE {
                v.held = true;
                out.ops.push(ConflictOp::Touch { id: *id, at });
                out.notes.push(format!(
                    "{shown}: changed again while conflict #{id} is open; kept aside"
                ));
                out.versions.push(v);
                continue;
            }
        }
        let key = path_key(&v.path);
        let collides = |o: &Owner| {
            let itself = o.connector == connector && o.source_id == v.source_id;
            let displaced = gone.contains(&(o.connector.clone(), o.source_id.clone()));
            let folded = !me.case_sensitive || !ns.party(&o.connector).case_sensitive;
            !itself && !displaced && (folded || nfc(&o.path) == nfc(&v.path))
        };
        let rival = owners
            .get(&key)
            .and_then(|list| list.iter().find(|o| collides(o)).cloned());
        let Some(rival) = rival else {
            owners.entry(key).or_default().push(Owner {
                connector: connector.to_string(),
                source_id: v.source_id.clone(),
                path: v.path.clone(),
                mtime_ns: v.mtime_ns,
                digest: v.digest.map(|d| d.to_vec()),
            });
            out.versions.push(v);
            continue;
        };
        let kind = if held && k.is_some_and(|k| k.was_visible) {
            DIVERGED
        } else if rival.path == v.path {
            PATH_CLAIM
        } else {
            NAME_COLLISION
        };
        let claims = vec![
            ClaimRef {
                role: "existing",
                connector: rival.connector.clone(),
                source_id: rival.source_id.clone(),
                path: rival.path.clone(),
                fingerprint: None,
            },
            ClaimRef {
                role: "incoming",
                connector: connector.to_string(),
                source_id: v.source_id.clone(),
                path: v.path.clone(),
                fingerprint: None,
            },
        ];
        let mut record = NewConflict {
            kind,
            connector: connector.to_string(),
            path: v.path.clone(),
            policy: me.policy.as_str(),
            detail: None,
            at,
            claims,
            resolution: None,
            resolved_by: Some("policy"),
            renamed_to: None,
        };
        let against = format!(
            "{shown}: {kind} with {} ({})",
            rival.connector,
            String::from_utf8_lossy(&rival.path)
        );
        let identical = v.digest.map(|d| d.to_vec()) == rival.digest && v.digest.is_some();
        let incoming_wins = match me.policy {
            _ if identical => {
                record.resolution = Some("keep_existing");
                record.resolved_by = Some("identical");
                record.detail = Some("both claims have the same content".into());
                out.notes
                    .push(format!("{against}: same content, owner kept"));
                false
            }
            Policy::Manual => {
                record.resolved_by = None;
                out.notes.push(format!(
                    "{against}: kept aside until an operator resolves it"
                ));
                false
            }
            Policy::SourceWins => {
                record.resolution = Some("keep_source");
                out.notes.push(format!("{against}: source_wins, replaced"));
                true
            }
            Policy::NewestWins => {
                let other = ns.party(&rival.connector);
                let wins = v.mtime_ns > rival.mtime_ns
                    || (v.mtime_ns == rival.mtime_ns
                        && rival.connector != connector
                        && me.rank < other.rank);
                record.resolution = Some(if wins { "keep_source" } else { "keep_existing" });
                out.notes.push(format!(
                    "{against}: newest_wins, {}",
                    if wins { "replaced" } else { "owner kept" }
                ));
                wins
            }
            Policy::KeepBoth => {
                let renamed = conflict_name(&v.path, connector, at);
                out.notes.push(format!(
                    "{against}: keep_both, stored as {}",
                    String::from_utf8_lossy(&renamed)
                ));
                record.resolution = Some("keep_both");
                record.renamed_to = Some(renamed.clone());
                v.path = renamed;
                owners.entry(path_key(&v.path)).or_default().push(Owner {
                    connector: connector.to_string(),
                    source_id: v.source_id.clone(),
                    path: v.path.clone(),
                    mtime_ns: v.mtime_ns,
                    digest: v.digest.map(|d| d.to_vec()),
                });
                out.ops.push(ConflictOp::Insert(record));
                out.versions.push(v);
                continue;
            }
        };
        out.ops.push(ConflictOp::Insert(record));
        if incoming_wins {
            gone.insert((rival.connector.clone(), rival.source_id.clone()));
            out.versions.push(displacement(&rival));
            owners.entry(key).or_default().push(Owner {
                connector: connector.to_string(),
                source_id: v.source_id.clone(),
                path: v.path.clone(),
                mtime_ns: v.mtime_ns,
                digest: v.digest.map(|d| d.to_vec()),
            });
        } else {
            v.held = true;
        }
        out.versions.push(v);
    }
    out
}

/// The version that ends an owner's visibility when another claim takes its path.
pub(crate) fn displacement(o: &Owner) -> NewVersion {
    NewVersion {
        connector: Some(o.connector.clone()),
        source_id: o.source_id.clone(),
        path: o.path.clone(),
        deleted: true,
        mtime_ns: o.mtime_ns,
        displaced: true,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conflicts::Party;

    const AT: i64 = 1_700_000_000_000_000_000;

    /// Two connectors sharing a target: `a` listed first, `b` second, `b` claiming.
    fn ns(policy: Policy, a_case_sensitive: bool) -> Namespace {
        let mut ns = Namespace::default();
        ns.parties.insert(
            "a".into(),
            Party {
                rank: 0,
                case_sensitive: a_case_sensitive,
                policy: Policy::Manual,
            },
        );
        ns.parties.insert(
            "b".into(),
            Party {
                rank: 1,
                case_sensitive: true,
                policy,
            },
        );
        ns
    }

    fn claim(path: &str, mtime_ns: i64, digest: u8) -> NewVersion {
        NewVersion {
            source_id: b"b-1".to_vec(),
            path: path.as_bytes().to_vec(),
            size: 3,
            mtime_ns,
            digest: Some([digest; 32]),
            committed_at: AT,
            ..Default::default()
        }
    }

    fn owner(path: &str, mtime_ns: i64, digest: u8) -> Owner {
        Owner {
            connector: "a".into(),
            source_id: b"a-1".to_vec(),
            path: path.as_bytes().to_vec(),
            mtime_ns,
            digest: Some(vec![digest; 32]),
        }
    }

    fn standing(owner: Option<Owner>) -> Standing {
        let mut s = Standing::default();
        if let Some(o) = owner {
            s.owners.insert(path_key(&o.path), vec![o]);
        }
        s
    }

    /// `b`'s one claim against `a`'s one owner (or none), under `policy`.
    fn one(policy: Policy, a_case_sensitive: bool, c: NewVersion, o: Option<Owner>) -> Decided {
        decide(
            &ns(policy, a_case_sensitive),
            "b",
            vec![c],
            AT,
            &standing(o),
        )
    }

    /// What a decision comes to, in the terms a user sees.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        /// (path, held, displaced) of each version to commit, in order.
        versions: Vec<(String, bool, bool)>,
        /// (kind, resolution, resolved_by) of each conflict recorded.
        records: Vec<(&'static str, Option<&'static str>, Option<&'static str>)>,
    }

    fn outcome(d: &Decided) -> Outcome {
        Outcome {
            versions: d
                .versions
                .iter()
                .map(|v| {
                    (
                        String::from_utf8_lossy(&v.path).into_owned(),
                        v.held,
                        v.displaced,
                    )
                })
                .collect(),
            records: d
                .ops
                .iter()
                .filter_map(|op| match op {
                    ConflictOp::Insert(c) => Some((c.kind, c.resolution, c.resolved_by)),
                    _ => None,
                })
                .collect(),
        }
    }

    fn v(path: &str, held: bool, displaced: bool) -> (String, bool, bool) {
        (path.to_string(), held, displaced)
    }

    #[test]
    fn every_policy_decides_a_path_claim_as_documented() {
        let renamed = String::from_utf8(conflict_name(b"/t/r.txt", "b", AT)).unwrap();
        // b's claim on /t/r.txt (mtime 20) against a's owner (mtime 10), different content
        for (policy, want) in [
            (
                Policy::Manual,
                Outcome {
                    versions: vec![v("/t/r.txt", true, false)],
                    records: vec![(PATH_CLAIM, None, None)],
                },
            ),
            (
                Policy::SourceWins,
                Outcome {
                    versions: vec![v("/t/r.txt", false, true), v("/t/r.txt", false, false)],
                    records: vec![(PATH_CLAIM, Some("keep_source"), Some("policy"))],
                },
            ),
            (
                Policy::NewestWins,
                Outcome {
                    versions: vec![v("/t/r.txt", false, true), v("/t/r.txt", false, false)],
                    records: vec![(PATH_CLAIM, Some("keep_source"), Some("policy"))],
                },
            ),
            (
                Policy::KeepBoth,
                Outcome {
                    versions: vec![v(&renamed, false, false)],
                    records: vec![(PATH_CLAIM, Some("keep_both"), Some("policy"))],
                },
            ),
        ] {
            let d = one(
                policy,
                true,
                claim("/t/r.txt", 20, 2),
                Some(owner("/t/r.txt", 10, 1)),
            );
            assert_eq!(outcome(&d), want, "{policy:?}");
            assert_eq!(d.notes.len(), 1, "{policy:?}: one note per conflict");
        }
    }

    #[test]
    fn newest_wins_compares_mtimes_and_ties_go_to_the_connector_listed_first() {
        for (mine, theirs, b_wins) in [(20, 10, true), (10, 20, false), (10, 10, false)] {
            let d = one(
                Policy::NewestWins,
                true,
                claim("/t/r.txt", mine, 2),
                Some(owner("/t/r.txt", theirs, 1)),
            );
            let o = outcome(&d);
            let resolution = if b_wins {
                "keep_source"
            } else {
                "keep_existing"
            };
            assert_eq!(
                o.records,
                vec![(PATH_CLAIM, Some(resolution), Some("policy"))]
            );
            assert_eq!(o.versions.last(), Some(&v("/t/r.txt", !b_wins, false)));
            assert_eq!(o.versions.len(), if b_wins { 2 } else { 1 }, "{o:?}");
        }
    }

    #[test]
    fn identical_content_keeps_the_owner_whatever_the_policy() {
        for policy in [Policy::Manual, Policy::SourceWins, Policy::NewestWins] {
            let d = one(
                policy,
                true,
                claim("/t/r.txt", 20, 7),
                Some(owner("/t/r.txt", 10, 7)),
            );
            assert_eq!(
                outcome(&d),
                Outcome {
                    versions: vec![v("/t/r.txt", true, false)],
                    records: vec![(PATH_CLAIM, Some("keep_existing"), Some("identical"))],
                },
                "{policy:?}"
            );
        }
    }

    #[test]
    fn kinds_path_claim_name_collision_and_diverged() {
        // other case: a collision only where a side folds case
        let d = one(
            Policy::Manual,
            false,
            claim("/t/Report.txt", 20, 2),
            Some(owner("/t/report.txt", 10, 1)),
        );
        assert_eq!(outcome(&d).records, vec![(NAME_COLLISION, None, None)]);
        let d = one(
            Policy::Manual,
            true,
            claim("/t/Report.txt", 20, 2),
            Some(owner("/t/report.txt", 10, 1)),
        );
        assert_eq!(
            outcome(&d),
            Outcome {
                versions: vec![v("/t/Report.txt", false, false)],
                records: vec![],
            },
            "both case-sensitive: two files"
        );
        // another Unicode form of the same name collides even case-sensitively
        let d = one(
            Policy::Manual,
            true,
            claim("/t/Cafe\u{301}.txt", 20, 2),
            Some(owner("/t/Caf\u{e9}.txt", 10, 1)),
        );
        assert_eq!(outcome(&d).records, vec![(NAME_COLLISION, None, None)]);
        // a held item that was visible before lost its path: diverged
        let mut s = standing(Some(owner("/t/r.txt", 10, 1)));
        s.known.insert(
            b"b-1".to_vec(),
            Known {
                held: true,
                was_visible: true,
            },
        );
        let d = decide(
            &ns(Policy::Manual, true),
            "b",
            vec![claim("/t/r.txt", 20, 2)],
            AT,
            &s,
        );
        assert_eq!(outcome(&d).records, vec![(DIVERGED, None, None)]);
    }

    #[test]
    fn an_unclaimed_path_its_own_item_and_a_claim_earlier_in_the_batch() {
        // no owner: visible, no record
        let d = one(Policy::Manual, true, claim("/t/n.txt", 1, 1), None);
        assert_eq!(
            outcome(&d),
            Outcome {
                versions: vec![v("/t/n.txt", false, false)],
                records: vec![]
            }
        );
        // the owner is the claiming item itself: an update, no conflict
        let mut me = owner("/t/r.txt", 10, 1);
        me.connector = "b".into();
        me.source_id = b"b-1".to_vec();
        let d = decide(
            &ns(Policy::Manual, true),
            "b",
            vec![claim("/t/r.txt", 20, 2)],
            AT,
            &standing(Some(me)),
        );
        assert!(outcome(&d).records.is_empty());
        // two claims of one batch on one path: the second meets the first
        let mut second = claim("/t/r.txt", 30, 3);
        second.source_id = b"b-2".to_vec();
        let d = decide(
            &ns(Policy::Manual, true),
            "b",
            vec![claim("/t/r.txt", 20, 2), second],
            AT,
            &standing(None),
        );
        assert_eq!(
            outcome(&d),
            Outcome {
                versions: vec![v("/t/r.txt", false, false), v("/t/r.txt", true, false)],
                records: vec![(PATH_CLAIM, None, None)],
            }
        );
    }

    #[test]
    fn open_conflicts_hold_new_changes_and_close_on_withdrawal_or_a_whole_read() {
        let resolved = |d: &Decided| -> Vec<(i64, &'static str)> {
            d.ops
                .iter()
                .filter_map(|op| match op {
                    ConflictOp::Resolve {
                        id, resolution, by, ..
                    } => {
                        assert_eq!(by, "source");
                        Some((*id, *resolution))
                    }
                    _ => None,
                })
                .collect()
        };
        // an open path claim: a new change of the claim is held and touches it
        let mut s = standing(Some(owner("/t/r.txt", 10, 1)));
        s.open.insert(b"b-1".to_vec(), (7, PATH_CLAIM.into()));
        let d = decide(
            &ns(Policy::SourceWins, true),
            "b",
            vec![claim("/t/r.txt", 20, 2)],
            AT,
            &s,
        );
        assert_eq!(outcome(&d).versions, vec![v("/t/r.txt", true, false)]);
        assert!(matches!(d.ops[..], [ConflictOp::Touch { id: 7, at: AT }]));
        // the source deletes a held claim: withdrawn, once
        s.known.insert(
            b"b-1".to_vec(),
            Known {
                held: true,
                was_visible: false,
            },
        );
        let mut gone = claim("/t/r.txt", 30, 0);
        gone.deleted = true;
        let d = decide(
            &ns(Policy::Manual, true),
            "b",
            vec![gone.clone(), gone],
            AT,
            &s,
        );
        assert_eq!(resolved(&d), vec![(7, "withdrawn")]);
        assert!(d.versions.iter().all(|v| v.held && v.deleted));
        // a torn read read whole at last: resolved, and decided like any claim
        let mut s = standing(None);
        s.open.insert(b"b-1".to_vec(), (9, TORN_READ.into()));
        let d = decide(
            &ns(Policy::Manual, true),
            "b",
            vec![claim("/t/r.txt", 20, 2)],
            AT,
            &s,
        );
        assert_eq!(resolved(&d), vec![(9, "read")]);
        assert_eq!(outcome(&d).versions, vec![v("/t/r.txt", false, false)]);
    }

    #[test]
    fn keep_both_renames_stand_for_later_versions_of_the_claim() {
        let mut versions = vec![claim("/t/r.txt", 20, 2), claim("/t/other.txt", 20, 2)];
        versions[1].source_id = b"b-2".to_vec();
        let to = conflict_name(b"/t/r.txt", "b", AT);
        let renames = HashMap::from([((b"b-1".to_vec(), b"/t/r.txt".to_vec()), to.clone())]);
        apply_renames(&mut versions, &renames);
        assert_eq!(versions[0].path, to);
        assert_eq!(versions[1].path, b"/t/other.txt");
    }
}
