//! A restore's destination: catalog paths made safe relative paths, and folders
//! opened and created under it without passing through a link.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// A catalog path (`/a/b/c`) as a path relative to a restore's destination, or why it
/// cannot be one: paths come from the catalog or from manifests in the bucket, which a
/// restore must not trust to stay inside the destination. Every component must be a
/// plain name: not empty (`//x`, `a//b`, a trailing `/`), not `.` or `..`, no NUL.
pub fn safe_relative(path: &[u8]) -> Result<PathBuf, String> {
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    if rel.is_empty() {
        return Err("an empty path".into());
    }
    let mut out = PathBuf::new();
    for c in rel.split(|b| *b == b'/') {
        match c {
            b"" => return Err("an empty path component".into()),
            b"." | b".." => {
                return Err(format!("a `{}` component", String::from_utf8_lossy(c)));
            }
            c if c.contains(&0) => return Err("a NUL byte".into()),
            c => out.push(std::ffi::OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// A restore's destination folder, and the folders under it this restore has opened.
/// Every folder is opened from its parent's descriptor without following a link
/// (`openat` with `O_NOFOLLOW`), and every file is created relative to its folder's
/// descriptor: a link planted in the destination, before the restore or while it runs,
/// never leads a restore out of it. Each folder is opened once, not once per file (a
/// restore of many small files spent a third of its system time on the same `statx`
/// and `mkdir` calls); at most [`OPEN_FOLDERS`] stay open (a tree of many folders is
/// reopened from the root when it passes that, never runs out of descriptors).
pub(super) struct Destination {
    pub(super) root: PathBuf,
    root_fd: Arc<OwnedFd>,
    open: std::sync::Mutex<HashMap<PathBuf, Arc<OwnedFd>>>,
}

/// Folder descriptors a restore keeps open at most.
const OPEN_FOLDERS: usize = 256;

impl Destination {
    /// Creates the destination if need be (it is the operator's to name, link or not)
    /// and opens it.
    pub(super) fn open(root: &Path) -> anyhow::Result<Destination> {
        std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
        let fd = rustix::fs::openat(
            rustix::fs::CWD,
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .with_context(|| format!("open {}", root.display()))?;
        Ok(Destination {
            root: root.to_path_buf(),
            root_fd: Arc::new(fd),
            open: Default::default(),
        })
    }

    /// The folder `rel` (relative, plain names only: [`safe_relative`]) under the
    /// destination, created if need be, opened without passing through a link.
    pub(super) fn folder(&self, rel: &Path) -> anyhow::Result<Arc<OwnedFd>> {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(self.root_fd.clone());
        };
        if let Some(fd) = self.open.lock().unwrap().get(rel) {
            return Ok(fd.clone());
        }
        let parent = self.folder(parent)?;
        let fd = Arc::new(open_folder(&parent, name, &self.root.join(rel))?);
        let mut open = self.open.lock().unwrap();
        if open.len() >= OPEN_FOLDERS {
            open.clear();
        }
        open.insert(rel.to_path_buf(), fd.clone());
        Ok(fd)
    }
}

/// Opens the folder `name` in `parent`, creating it if it is not there; refuses a
/// symbolic link or a file in its place (`shown` names it in messages).
fn open_folder(parent: &OwnedFd, name: &OsStr, shown: &Path) -> anyhow::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut made = false;
    loop {
        match rustix::fs::openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) if !made => {
                match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(Errno::EXIST) => made = true,
                    Err(e) => {
                        return Err(std::io::Error::from(e))
                            .with_context(|| format!("create {}", shown.display()));
                    }
                }
            }
            Err(Errno::NOTDIR | Errno::LOOP) => {
                let link = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                if link {
                    bail!("{} is a symbolic link; not followed", shown.display());
                }
                bail!("{} is a file, not a folder", shown.display());
            }
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("open {}", shown.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_make_a_restore_path() {
        let ok = |p: &str| safe_relative(p.as_bytes()).unwrap();
        assert_eq!(ok("/docs/a/b.txt"), PathBuf::from("docs/a/b.txt"));
        assert_eq!(ok("docs/..x/.y"), PathBuf::from("docs/..x/.y"));
        assert_eq!(ok("/a\\b"), PathBuf::from("a\\b"));
        let bad = |p: &[u8]| safe_relative(p).unwrap_err();
        assert!(bad(b"/docs/../../etc/passwd").contains("`..`"));
        assert!(bad(b"//etc/x").contains("empty path component"));
        assert!(bad(b"/docs//x").contains("empty path component"));
        assert!(bad(b"/docs/x/").contains("empty path component"));
        assert!(bad(b"/docs/./x").contains("`.`"));
        assert!(bad(b"/").contains("empty path"));
        assert!(bad(b"").contains("empty path"));
        assert!(bad(b"/a\0b").contains("NUL"));
        // whatever passes stays below the destination
        for p in ["/x", "/a/b/c", "/...", "/a b/c"] {
            let rel = ok(p);
            assert!(rel.is_relative());
            assert!(
                rel.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            );
        }
    }

    #[test]
    fn folders_are_made_without_passing_through_a_link() {
        let dest = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("docs")).unwrap();
        std::fs::write(dest.path().join("plain"), b"x").unwrap();
        let d = Destination::open(dest.path()).unwrap();
        let e = d.folder(Path::new("docs/sub")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} is a symbolic link; not followed",
                dest.path().join("docs").display()
            )
        );
        let e = d.folder(Path::new("plain/sub")).unwrap_err();
        assert!(
            e.to_string().ends_with("plain is a file, not a folder"),
            "{e}"
        );
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        d.folder(Path::new("new/sub")).unwrap();
        assert!(dest.path().join("new/sub").is_dir());
        // more folders than stay open: each still made, in its place
        for i in 0..OPEN_FOLDERS + 20 {
            d.folder(&Path::new("many").join(format!("{i}/x"))).unwrap();
        }
        assert_eq!(
            std::fs::read_dir(dest.path().join("many")).unwrap().count(),
            OPEN_FOLDERS + 20
        );
        assert!(d.open.lock().unwrap().len() <= OPEN_FOLDERS);
        // a link swapped in for a folder already made is not followed either, once the
        // folder is opened again
        d.open.lock().unwrap().clear();
        std::fs::remove_dir_all(dest.path().join("new")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("new")).unwrap();
        assert!(d.folder(Path::new("new/sub")).is_err());
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    }
}
