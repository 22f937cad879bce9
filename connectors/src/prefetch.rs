//! Warms the kernel's caches ahead of a walk of a local tree.
//!
//! The local connector's walk is one thread, in name order, one `stat` after the other
//! (its order makes listings deterministic). With the tree's folders and inodes out of
//! the cache — a daemon that wakes once a night, a host that reads much else — every
//! one of those calls waits for the disk, one at a time: on a tree of 7,190 files in
//! 5,538 folders, most of a no-change run went to that wait. A few threads list and
//! `stat` the folders ahead of the walk, in about the order the walk takes them, so the
//! disk (or the network file system) has many requests at once; the walk then finds
//! what it asks for in the cache. They only read: what the walk lists stays the walk's
//! own doing, and an error here is left for the walk to meet and report.
//!
//! Bounded: at most about [`AHEAD`] entries listed ahead of the walk (what the kernel
//! keeps of them is what this costs), and the queue holds folder paths only. Folders
//! the filter excludes, other file systems (when the walk stays on one) and symbolic
//! links are not entered. When the tree is in the cache already (a daemon's frequent
//! runs), listing it twice only costs CPU: after [`WARM_STOP`] folders in a row listed
//! at the cache's speed ([`from_cache`]), the threads stop.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::filter::Filter;

/// Threads listing ahead of a walk: requests the disk has at once.
const THREADS: usize = 8;

/// Folders in a row listed from the cache after which the listing ahead stops.
const WARM_STOP: usize = 64;

/// Whether a folder of `entries` entries was listed (and its entries `stat`ed) in
/// `took` from the cache: about 10 µs for a small folder and 1 µs an entry when
/// cached, at least one disk read (0.1 ms on a local SSD, more on a network) when not.
fn from_cache(took: Duration, entries: usize) -> bool {
    took < Duration::from_micros(60 + 2 * entries as u64)
}

/// Entries (files and folders) listed ahead of the walk at most, about 64 MiB of the
/// kernel's cache. A walk starts after the catalog and the store are open: on a tree
/// of 7,190 files in 5,538 folders, out of the cache, a bound of 512 folders left the
/// walk waiting (0.55–0.59 s for the no-change run), 4,096 folders did not (0.38–0.41 s).
const AHEAD: isize = 65_536;

struct State {
    /// Folders to list, the next one last (depth first, in name order, as the walk).
    todo: Folders,
    /// Entries listed less the entries the walk listed: how far ahead the listing is
    /// (below zero when the walk got ahead; the listing then catches up, finding in
    /// the cache what the walk read).
    ahead: isize,
    /// Threads listing a folder now (whose children are still to come).
    busy: usize,
    /// Folders listed from the cache since the last that was not.
    cached_in_a_row: usize,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    filter: Filter,
    /// The root's device, when the walk stays on one file system.
    device: Option<u64>,
    /// [`AHEAD`] (smaller in tests).
    limit: isize,
}

/// Threads that list a tree ahead of its walk; they stop when this is dropped.
pub(crate) struct Prefetch {
    shared: Arc<Shared>,
}

impl Prefetch {
    /// Starts listing `root` (`device`: stay on it) and what lies under it.
    pub fn start(root: PathBuf, filter: Filter, device: Option<u64>) -> Prefetch {
        Prefetch::with_limit(root, filter, device, AHEAD)
    }

    fn with_limit(root: PathBuf, filter: Filter, device: Option<u64>, limit: isize) -> Prefetch {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                todo: vec![(root, Vec::new())],
                ahead: 0,
                busy: 0,
                cached_in_a_row: 0,
                stopped: false,
            }),
            wake: Condvar::new(),
            filter,
            device,
            limit,
        });
        for _ in 0..THREADS {
            let shared = shared.clone();
            // a thread that cannot start leaves the walk as it was: slower, not wrong
            let _ = std::thread::Builder::new()
                .name("tributary-prefetch".into())
                .spawn(move || work(&shared));
        }
        Prefetch { shared }
    }

    /// The walk listed a folder of `entries` entries: as many more may be listed ahead.
    pub fn walked(&self, entries: usize) {
        let mut s = self.shared.state.lock().unwrap();
        let was = s.ahead;
        s.ahead = was - entries as isize;
        if was >= self.shared.limit && s.ahead < self.shared.limit {
            self.shared.wake.notify_all();
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().stopped = true;
        self.shared.wake.notify_all();
    }
}

fn work(shared: &Shared) {
    loop {
        let (dir, rel) = {
            let mut s = shared.state.lock().unwrap();
            loop {
                if s.stopped {
                    return;
                }
                if s.ahead < shared.limit
                    && let Some(next) = s.todo.pop()
                {
                    s.busy += 1;
                    break next;
                }
                if s.todo.is_empty() && s.busy == 0 {
                    // nothing left to list, and nothing being listed that could add to it
                    return;
                }
                s = shared.wake.wait(s).unwrap();
            }
        };
        let started = Instant::now();
        let (entries, children) = list(shared, &dir, &rel);
        let cached = from_cache(started.elapsed(), entries);
        let mut s = shared.state.lock().unwrap();
        s.busy -= 1;
        s.ahead += entries as isize;
        s.cached_in_a_row = if cached { s.cached_in_a_row + 1 } else { 0 };
        if s.cached_in_a_row >= WARM_STOP {
            // the walk will find the tree in the cache without help
            s.stopped = true;
        }
        // the first child on top: taken next, as the walk takes it
        s.todo.extend(children.into_iter().rev());
        shared.wake.notify_all();
    }
}

/// Lists `dir` and `stat`s what it holds (what the walk will ask for); returns how many
/// entries it holds and the folders to list next, in name order.
fn list(shared: &Shared, dir: &std::path::Path, rel: &[u8]) -> (usize, Folders) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, Vec::new());
    };
    let (mut entries, mut folders) = (0, Vec::new());
    for e in rd.flatten() {
        entries += 1;
        let path = e.path();
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !md.is_dir() || shared.device.is_some_and(|d| d != md.dev()) {
            continue;
        }
        let child = crate::local::join(rel, e.file_name().as_bytes());
        if !shared.filter.excluded(&child) {
            folders.push((path, child));
        }
    }
    folders.sort_by(|a, b| a.1.cmp(&b.1));
    (entries, folders)
}

/// Folders to list: their paths, and the same relative to the root (as the filter
/// sees them).
type Folders = Vec<(PathBuf, Vec<u8>)>;

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(filter: Filter) -> Shared {
        Shared {
            state: Mutex::new(State {
                todo: Vec::new(),
                ahead: 0,
                busy: 0,
                cached_in_a_row: 0,
                stopped: false,
            }),
            wake: Condvar::new(),
            filter,
            device: None,
            limit: AHEAD,
        }
    }

    #[test]
    fn the_folders_the_walk_enters_come_next_in_its_order() {
        let d = tempfile::tempdir().unwrap();
        for f in ["b", "a", "c/x", "node_modules", "a/deep"] {
            std::fs::create_dir_all(d.path().join(f)).unwrap();
        }
        std::fs::write(d.path().join("file"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("c"), d.path().join("link")).unwrap();
        let excl = Filter::new(&[], &["node_modules".into()], false).unwrap();
        let (entries, next) = list(&shared(excl), d.path(), b"top");
        let next: Vec<_> = next
            .into_iter()
            .map(|(p, rel)| (p.strip_prefix(d.path()).unwrap().to_owned(), rel))
            .collect();
        // folders only, in name order, not the excluded one, not through a link
        assert_eq!(
            next,
            [
                (PathBuf::from("a"), b"top/a".to_vec()),
                (PathBuf::from("b"), b"top/b".to_vec()),
                (PathBuf::from("c"), b"top/c".to_vec()),
            ]
        );
        // every entry was listed: what the walk will find in the cache
        assert_eq!(entries, 6);
        let (entries, next) = list(&shared(Filter::all()), &d.path().join("gone"), b"");
        assert_eq!((entries, next.len()), (0, 0));
    }

    #[test]
    fn a_folder_listed_at_the_speed_of_the_cache_is_told_from_one_read_from_disk() {
        let us = Duration::from_micros;
        assert!(from_cache(us(12), 1));
        assert!(from_cache(us(800), 1_000));
        // one disk read, a network round trip
        assert!(!from_cache(us(150), 1));
        assert!(!from_cache(us(900), 3));
        assert!(!from_cache(us(30_000), 1_000));
    }

    /// Waits until `done` holds of the prefetch's state.
    fn until(s: &Shared, done: impl Fn(&State) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done(&s.state.lock().unwrap()) {
            let (ahead, busy, todo) = {
                let st = s.state.lock().unwrap();
                (st.ahead, st.busy, st.todo.len())
            };
            assert!(
                std::time::Instant::now() < deadline,
                "never happened: {ahead} ahead, {busy} busy, {todo} to list"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn the_listing_stays_a_bounded_way_ahead_and_its_threads_end() {
        let d = tempfile::tempdir().unwrap();
        let (folders, files) = (30, 10);
        for i in 0..folders {
            let f = d.path().join(format!("{i:02}"));
            std::fs::create_dir(&f).unwrap();
            for j in 0..files {
                std::fs::write(f.join(j.to_string()), b"").unwrap();
            }
        }
        let limit = 100;
        let p = Prefetch::with_limit(d.path().to_owned(), Filter::all(), None, limit);
        let s = p.shared.clone();
        // the walk has listed nothing: the listing stops once `limit` entries are
        // ahead (each thread may finish the folder it took)
        until(&s, |st| st.ahead >= limit && st.busy == 0);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (ahead, todo) = {
            let st = s.state.lock().unwrap();
            (st.ahead, st.todo.len())
        };
        assert!(ahead < limit + (THREADS * files) as isize, "{ahead}");
        assert!(todo > 0);
        // the walk lists the root, then every folder; the rest is listed, then
        // nothing is left
        p.walked(folders as usize);
        for _ in 0..folders {
            p.walked(files);
            std::thread::yield_now();
        }
        until(&s, |st| st.todo.is_empty() && st.busy == 0);
        // every entry listed once, as the walk listed it
        assert_eq!(s.state.lock().unwrap().ahead, 0);
        drop(p);
        // only this test's handle is left once every thread has returned
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&s) > 1 {
            assert!(std::time::Instant::now() < deadline, "a thread did not end");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
