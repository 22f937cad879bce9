//! Generated file trees for ingest tests: nested folders, empty files, duplicates,
//! non-UTF-8 and very long names, and a few large files.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rand::{Rng, RngCore, SeedableRng};

/// Deterministic pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Writes a varied tree under `root` and returns the relative paths of the files.
/// `big` is the size of the one large file (e.g. 100 MiB).
pub fn generate(root: &Path, seed: u64, big: usize) -> Vec<PathBuf> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut files = Vec::new();
    let mut write = |rel: PathBuf, data: &[u8]| {
        let p = root.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        files.push(rel);
    };
    // nested folders with small and medium files
    for d in 0..6 {
        for f in 0..8 {
            let depth = (d % 3) + 1;
            let mut rel = PathBuf::new();
            for l in 0..depth {
                rel.push(format!("dir{d}-{l}"));
            }
            rel.push(format!("file{f}.txt"));
            let len = rng.random_range(0..300_000);
            write(rel, &random_bytes(seed ^ (d * 100 + f), len));
        }
    }
    // empty files, one at the root and one nested
    write(PathBuf::from("empty.bin"), b"");
    write(PathBuf::from("dir0-0/empty"), b"");
    // exact duplicates in other folders
    let dup = random_bytes(seed ^ 0xd0d0, 3 << 20);
    write(PathBuf::from("dups/a/copy1.dat"), &dup);
    write(PathBuf::from("dups/b/copy2.dat"), &dup);
    // a non-UTF-8 name, a name with odd characters, a very long name
    write(
        PathBuf::from(OsString::from_vec(b"odd/caf\xe9-latin1.txt".to_vec())),
        b"latin-1 named file",
    );
    write(
        PathBuf::from("odd/spaces & #hash% 100%25.txt"),
        b"odd chars",
    );
    write(
        PathBuf::from(format!("odd/{}.txt", "long".repeat(60))),
        b"long name",
    );
    write(PathBuf::from("odd/Ünïcödé ✓.md"), "unicode".as_bytes());
    // the large file
    if big > 0 {
        write(
            PathBuf::from("big/large.bin"),
            &random_bytes(seed ^ 0xb16, big),
        );
    }
    files.sort();
    files
}

/// The Rust sources (`*.rs`) under `dir`, at any depth, sorted: what the tests that read
/// the project's own code (layering, error codes, quoted messages) look through.
pub fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every regular file under `root` with its bytes, keyed by relative path.
pub fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.insert(
                    e.path().strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    out
}
