//! Planning, as pure functions of the listing and the catalog's state: what to read,
//! skip, relocate without a read, delete, or hold for an operator. The job's driver
//! (`ingest::drive`) does the I/O around these decisions.

// `Known` hashes and compares by source id only: its `seen` mark never moves it.
#![allow(clippy::mutable_key_type)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use tributary_catalog::{ItemState, acl_text, conflicts};
use tributary_connectors::{Entry, Fingerprint};

use crate::target_path;

/// An item the catalog knows, looked up by source id, marked when the listing names it.
pub(crate) struct Known {
    pub state: ItemState,
    seen: AtomicBool,
}

impl Known {
    pub fn new(state: ItemState) -> Known {
        Known {
            state,
            seen: AtomicBool::new(false),
        }
    }

    /// The listing named it.
    pub fn mark_seen(&self) {
        self.seen.store(true, Ordering::Relaxed);
    }

    pub fn seen(&self) -> bool {
        self.seen.load(Ordering::Relaxed)
    }

    /// Live in the catalog: not deleted, or a held claim (which also ends when its
    /// source file goes).
    fn live(&self) -> bool {
        !self.state.deleted || self.state.held
    }
}

impl std::hash::Hash for Known {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.state.source_id.as_slice().hash(h)
    }
}

impl PartialEq for Known {
    fn eq(&self, o: &Known) -> bool {
        self.state.source_id == o.state.source_id
    }
}

impl Eq for Known {}

impl std::borrow::Borrow<[u8]> for Known {
    fn borrow(&self) -> &[u8] {
        &self.state.source_id
    }
}

/// The catalog's items of one connector, by source id. Seeded per process: source
/// names cannot be chosen to collide.
pub(crate) type KnownSet = HashSet<Known, foldhash::fast::RandomState>;

/// The form in which a failed attempt's source state is remembered.
pub(crate) fn fingerprint_text(f: &Fingerprint) -> String {
    format!(
        "{}:{}:{}:{}",
        f.size,
        f.mtime_ns,
        f.inode.map(|i| i.to_string()).unwrap_or_default(),
        f.change_tag.as_deref().unwrap_or("")
    )
}

/// Where a connector's files land, and who it is (for `keep_both` conflict names).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    pub target: &'a str,
    pub connector: &'a str,
}

impl Place<'_> {
    /// Whether a known item still sits where the source entry maps (or under the
    /// conflict name a `keep_both` decision gave it).
    pub fn holds(&self, k: &ItemState, rel: &[u8]) -> bool {
        let (p, t) = (k.path.as_slice(), self.target.as_bytes());
        let at_target = p.len() == t.len() + 1 + rel.len()
            && p.starts_with(t)
            && p[t.len()] == b'/'
            && p.ends_with(rel);
        at_target || {
            let path = target_path(self.target, rel);
            conflicts::is_conflict_name_of(p, &path, self.connector)
        }
    }
}

/// Whether the source's permissions are those last stored (true when the connector
/// does not capture permissions): a sharing change alone is then committed as a new
/// version of the same content, without reading it.
pub(crate) fn same_principals(k: &ItemState, e: &Entry) -> bool {
    match &e.principals {
        None => true,
        Some(p) => k.acl.as_deref() == Some(acl_text(p).as_str()),
    }
}

/// What earlier jobs and operators decided to leave alone.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    /// Source ids with an open `torn_read` conflict.
    pub torn_open: HashSet<Vec<u8>>,
    /// Torn reads an operator dismissed, with the source state they were dismissed at.
    pub torn_dismissed: HashMap<Vec<u8>, String>,
    /// Files out of retries, with the source state of their last failure.
    pub exhausted: HashMap<Vec<u8>, Option<String>>,
}

/// What to do with one listed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The catalog has this state already.
    Unchanged,
    /// The same content (by the source's content hash) under another path or with
    /// other metadata or permissions: a move, a rename or a sharing change, committed
    /// without a read (where the catalog still has the content; otherwise
    /// [`Holds::read_or_skip`] decides).
    Relocate,
    /// Its torn-read conflict is open, or was dismissed at this very state.
    SkipTorn,
    /// It failed `max_retries` times and has not changed since.
    SkipExhausted,
    /// Read, chunk and store it.
    Read,
}

impl Holds {
    /// Whether to read a file that is neither unchanged nor relocated.
    pub fn read_or_skip(&self, e: &Entry) -> Decision {
        let fp = || fingerprint_text(&e.fingerprint());
        if self.torn_open.contains(&e.source_id)
            || self
                .torn_dismissed
                .get(&e.source_id)
                .is_some_and(|d| *d == fp())
        {
            Decision::SkipTorn
        } else if self
            .exhausted
            .get(&e.source_id)
            .is_some_and(|f| f.as_deref() == Some(fp().as_str()))
        {
            Decision::SkipExhausted
        } else {
            Decision::Read
        }
    }

    /// Whether a failed file that a partial listing did not name is looked up again.
    pub fn retry_unlisted(&self, source_id: &[u8]) -> bool {
        !self.exhausted.contains_key(source_id) && !self.torn_open.contains(source_id)
    }
}

/// Decides one listed file against what the catalog knows of it (`None`: new).
pub(crate) fn classify(place: Place, k: Option<&ItemState>, e: &Entry, holds: &Holds) -> Decision {
    let Some(k) = k else {
        return holds.read_or_skip(e);
    };
    // a held claim is unchanged too: its state is already kept aside
    let unchanged = (!k.deleted || k.held)
        && k.size == e.size as i64
        && k.mtime_ns == e.mtime_ns
        && (k.inode.is_none() || e.inode.is_none() || k.inode == e.inode)
        && k.change_tag == e.change_tag
        && (k.held || place.holds(k, &e.rel_path))
        && same_principals(k, e);
    if unchanged {
        return Decision::Unchanged;
    }
    let relocated = !k.deleted
        && !k.held
        && k.size == e.size as i64
        && k.change_tag.is_some()
        && k.change_tag == e.change_tag;
    if relocated {
        Decision::Relocate
    } else {
        holds.read_or_skip(e)
    }
}

/// Whether source id `id` lies in the folder `prefix` (`""`: the whole source).
pub(crate) fn under(id: &[u8], prefix: &[u8]) -> bool {
    prefix.is_empty()
        || (id.starts_with(prefix) && (id.len() == prefix.len() || id[prefix.len()] == b'/'))
}

/// The deletes a job would commit: with a complete listing (`reconcile`), every live
/// item it did not name outside the folders that failed to list (`protected`); and
/// whatever the source reported deleted. Returns them with the number of live items.
pub(crate) fn doomed<'a>(
    known: &'a KnownSet,
    reconcile: bool,
    protected: &[Vec<u8>],
    explicit: &[Vec<u8>],
) -> (Vec<&'a ItemState>, usize) {
    let mut live = 0;
    let mut doomed: Vec<&ItemState> = Vec::new();
    for k in known.iter().filter(|k| k.live()) {
        live += 1;
        if reconcile && !k.seen() && !protected.iter().any(|p| under(&k.state.source_id, p)) {
            doomed.push(&k.state);
        }
    }
    for id in explicit {
        if let Some(k) = known
            .get(id.as_slice())
            .map(|k| &k.state)
            .filter(|k| !k.deleted)
            && !doomed.iter().any(|d| d.id == k.id)
        {
            doomed.push(k);
        }
    }
    (doomed, live)
}

/// Whether deletes pass `max_delete_percent`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DeleteGate {
    /// The share of live items the deletes would take, in percent.
    pub pct: f64,
    /// Beyond the limit.
    pub over: bool,
    /// Beyond the limit and not allowed for this job: nothing is deleted and a
    /// `mass_delete` conflict waits for an operator.
    pub held: bool,
}

pub(crate) fn delete_gate(doomed: usize, live: usize, max_pct: f64, allow: bool) -> DeleteGate {
    let pct = if live == 0 {
        0.0
    } else {
        doomed as f64 * 100.0 / live as f64
    };
    let over = doomed > 0 && pct > max_pct;
    DeleteGate {
        pct,
        over,
        held: over && !allow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: Place = Place {
        target: "/docs",
        connector: "share",
    };

    fn item(rel: &str) -> ItemState {
        ItemState {
            id: 1,
            source_id: rel.as_bytes().to_vec(),
            path: format!("/docs/{rel}").into_bytes(),
            deleted: false,
            size: 100,
            mtime_ns: 1_000,
            inode: Some(7),
            change_tag: None,
            held: false,
            acl: None,
        }
    }

    fn entry(rel: &str) -> Entry {
        Entry {
            source_id: rel.as_bytes().to_vec(),
            rel_path: rel.as_bytes().to_vec(),
            size: 100,
            mtime_ns: 1_000,
            inode: Some(7),
            change_tag: None,
            principals: None,
        }
    }

    #[test]
    fn classify_by_source_state() {
        use Decision::*;
        type Case = (&'static str, fn(&mut ItemState, &mut Entry), Decision);
        let cases: &[Case] = &[
            ("the same state", |_, _| {}, Unchanged),
            ("a new size", |_, e| e.size = 101, Read),
            ("a new mtime", |_, e| e.mtime_ns += 1, Read),
            ("another inode", |_, e| e.inode = Some(8), Read),
            ("no inode at the source", |_, e| e.inode = None, Unchanged),
            ("no inode in the catalog", |k, _| k.inode = None, Unchanged),
            (
                "deleted in the catalog, back",
                |k, _| k.deleted = true,
                Read,
            ),
            (
                "a held claim elsewhere",
                |k, _| {
                    k.held = true;
                    k.path = b"/other/a.txt".to_vec()
                },
                Unchanged,
            ),
            (
                "moved at the source, no content hash",
                |_, e| e.rel_path = b"b/a.txt".to_vec(),
                Read,
            ),
            (
                "moved, same content hash",
                |k, e| {
                    k.change_tag = Some("h1".into());
                    e.change_tag = Some("h1".into());
                    e.rel_path = b"b/a.txt".to_vec();
                    e.mtime_ns = 5;
                },
                Relocate,
            ),
            (
                "same content hash, other size",
                |k, e| {
                    k.change_tag = Some("h1".into());
                    e.change_tag = Some("h1".into());
                    e.size = 5;
                },
                Read,
            ),
            (
                "new content hash",
                |k, e| {
                    k.change_tag = Some("h1".into());
                    e.change_tag = Some("h2".into());
                },
                Read,
            ),
            (
                "a held claim is never relocated",
                |k, e| {
                    k.held = true;
                    k.change_tag = Some("h1".into());
                    e.change_tag = Some("h1".into());
                    e.mtime_ns = 5;
                },
                Read,
            ),
            (
                "permissions captured, the same",
                |k, e| {
                    k.acl = Some("group:b\nuser:a".into());
                    e.principals = Some(vec!["user:a".into(), "group:b".into(), "user:a".into()]);
                },
                Unchanged,
            ),
            (
                "a sharing change with a content hash",
                |k, e| {
                    k.acl = Some("user:a".into());
                    k.change_tag = Some("h1".into());
                    e.change_tag = Some("h1".into());
                    e.principals = Some(vec!["anyone".into()]);
                },
                Relocate,
            ),
            (
                "a sharing change without one",
                |k, e| {
                    k.acl = Some("user:a".into());
                    e.principals = Some(vec!["anyone".into()]);
                },
                Read,
            ),
        ];
        for (what, change, want) in cases {
            let (mut k, mut e) = (item("a.txt"), entry("a.txt"));
            change(&mut k, &mut e);
            assert_eq!(
                classify(PLACE, Some(&k), &e, &Holds::default()),
                *want,
                "{what}"
            );
        }
        assert_eq!(
            classify(PLACE, None, &entry("new.txt"), &Holds::default()),
            Read,
            "a new file"
        );
    }

    #[test]
    fn keep_both_names_are_the_same_place() {
        let mut k = item("a.txt");
        k.path = b"/docs/a (conflict share 20261203T101500Z).txt".to_vec();
        assert_eq!(
            classify(PLACE, Some(&k), &entry("a.txt"), &Holds::default()),
            Decision::Unchanged,
            "an item under the name keep_both gave it stays there"
        );
        k.path = b"/docs/a (conflict other 20261203T101500Z).txt".to_vec();
        assert_eq!(
            classify(PLACE, Some(&k), &entry("a.txt"), &Holds::default()),
            Decision::Read,
            "another connector's conflict name is not this one's"
        );
        k.path = b"/docs/elsewhere/a.txt".to_vec();
        assert_eq!(
            classify(PLACE, Some(&k), &entry("a.txt"), &Holds::default()),
            Decision::Read
        );
        // the target is a prefix of the path by folder, not by bytes
        k.path = b"/docsX/a.txt".to_vec();
        assert_eq!(
            classify(PLACE, Some(&k), &entry("a.txt"), &Holds::default()),
            Decision::Read
        );
    }

    #[test]
    fn holds_skip_only_at_the_state_they_were_made_at() {
        let e = entry("a.txt");
        let fp = fingerprint_text(&e.fingerprint());
        let mut changed = entry("a.txt");
        changed.size = 5;
        let k = item("a.txt");
        let mut changed_k = k.clone();
        changed_k.size = 1;

        let torn = Holds {
            torn_open: [b"a.txt".to_vec()].into(),
            ..Holds::default()
        };
        // an open torn read blocks whatever the file's state
        assert_eq!(classify(PLACE, None, &changed, &torn), Decision::SkipTorn);
        assert_eq!(
            classify(PLACE, Some(&changed_k), &e, &torn),
            Decision::SkipTorn
        );
        assert!(!torn.retry_unlisted(b"a.txt"));
        // but an unchanged file is unchanged, not skipped
        assert_eq!(classify(PLACE, Some(&k), &e, &torn), Decision::Unchanged);

        let dismissed = Holds {
            torn_dismissed: [(b"a.txt".to_vec(), fp.clone())].into(),
            ..Holds::default()
        };
        assert_eq!(classify(PLACE, None, &e, &dismissed), Decision::SkipTorn);
        assert_eq!(classify(PLACE, None, &changed, &dismissed), Decision::Read);

        let exhausted = Holds {
            exhausted: [(b"a.txt".to_vec(), Some(fp)), (b"b.txt".to_vec(), None)].into(),
            ..Holds::default()
        };
        assert_eq!(
            classify(PLACE, None, &e, &exhausted),
            Decision::SkipExhausted
        );
        assert_eq!(classify(PLACE, None, &changed, &exhausted), Decision::Read);
        // a failure without a recorded state (a folder) never blocks a file
        assert_eq!(
            classify(PLACE, None, &entry("b.txt"), &exhausted),
            Decision::Read
        );
        assert!(!exhausted.retry_unlisted(b"b.txt"));
        assert!(exhausted.retry_unlisted(b"c.txt"));
    }

    fn known(items: &[(&str, bool, bool, bool)]) -> KnownSet {
        // (source id, deleted, held, seen)
        let mut set = KnownSet::default();
        for (i, (sid, deleted, held, seen)) in items.iter().enumerate() {
            let mut s = item(sid);
            s.id = i as i64 + 1;
            s.deleted = *deleted;
            s.held = *held;
            let k = Known::new(s);
            if *seen {
                k.mark_seen();
            }
            set.insert(k);
        }
        set
    }

    fn ids(d: &[&ItemState]) -> Vec<String> {
        let mut v: Vec<String> = d
            .iter()
            .map(|k| String::from_utf8_lossy(&k.source_id).into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn doomed_items() {
        let set = known(&[
            ("a.txt", false, false, true),
            ("gone.txt", false, false, false),
            ("dir/x.txt", false, false, false),
            ("dirx/y.txt", false, false, false),
            ("old.txt", true, false, false),
            ("claim.txt", true, true, false),
        ]);
        // a complete listing: whatever it did not name, outside failed folders
        let (d, live) = doomed(&set, true, &[b"dir".to_vec()], &[]);
        assert_eq!(live, 5, "deleted items are not live, held claims are");
        assert_eq!(ids(&d), ["claim.txt", "dirx/y.txt", "gone.txt"]);
        // a failed root protects everything
        let (d, _) = doomed(&set, true, &[Vec::new()], &[]);
        assert!(d.is_empty());
        // a partial listing deletes only what the source said, once, and never twice
        let explicit = [
            b"gone.txt".to_vec(),
            b"gone.txt".to_vec(),
            b"old.txt".to_vec(),
            b"unknown.txt".to_vec(),
        ];
        let (d, _) = doomed(&set, false, &[], &explicit);
        assert_eq!(ids(&d), ["gone.txt"]);
        let (d, _) = doomed(&set, true, &[b"dir".to_vec()], &explicit);
        assert_eq!(ids(&d), ["claim.txt", "dirx/y.txt", "gone.txt"]);
    }

    #[test]
    fn mass_delete_gate() {
        let g = delete_gate(0, 0, 50.0, false);
        assert!(!g.over && !g.held);
        let g = delete_gate(5, 10, 50.0, false);
        assert_eq!(
            (g.pct, g.over, g.held),
            (50.0, false, false),
            "at the limit"
        );
        let g = delete_gate(6, 10, 50.0, false);
        assert!(g.over && g.held);
        let g = delete_gate(6, 10, 50.0, true);
        assert!(g.over && !g.held, "allowed for this job");
        let g = delete_gate(1, 1, 100.0, false);
        assert!(!g.over, "100 % allows deleting everything");
        let g = delete_gate(1, 1000, 0.0, false);
        assert!(g.held && g.pct == 0.1, "0 % holds any delete");
    }

    #[test]
    fn folders_by_component() {
        assert!(under(b"a/b", b""));
        assert!(under(b"a/b", b"a"));
        assert!(under(b"a", b"a"));
        assert!(!under(b"ab/c", b"a"));
        assert!(!under(b"b/a", b"a"));
    }
}
