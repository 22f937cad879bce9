//! Include/exclude globs.
//!
//! A pattern without `/` matches a name at any depth (`*.tmp`, `~$*`, `Thumbs.db`);
//! a pattern with `/` matches the whole relative path (`docs/**/*.pdf`), with `**`
//! spanning folders and `*` staying inside one. An excluded folder is not entered.
//! Include patterns apply to files only.

use std::path::Path;

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Debug, Clone)]
pub struct Filter {
    include_name: GlobSet,
    include_path: GlobSet,
    exclude_name: GlobSet,
    exclude_path: GlobSet,
    has_include: bool,
}

impl Filter {
    pub fn new(
        include: &[String],
        exclude: &[String],
        case_insensitive: bool,
    ) -> Result<Filter, String> {
        let build = |pats: &[String], with_slash: bool| -> Result<GlobSet, String> {
            let mut b = GlobSetBuilder::new();
            for p in pats.iter().filter(|p| p.contains('/') == with_slash) {
                let p = p.trim_start_matches('/');
                b.add(
                    GlobBuilder::new(p)
                        .literal_separator(true)
                        .case_insensitive(case_insensitive)
                        .backslash_escape(true)
                        .build()
                        .map_err(|e| format!("invalid glob `{p}`: {}", e.kind()))?,
                );
            }
            b.build().map_err(|e| e.to_string())
        };
        Ok(Filter {
            include_name: build(include, false)?,
            include_path: build(include, true)?,
            exclude_name: build(exclude, false)?,
            exclude_path: build(exclude, true)?,
            has_include: !include.is_empty(),
        })
    }

    pub fn all() -> Filter {
        Filter::new(&[], &[], false).expect("empty filter builds")
    }

    fn matches(names: &GlobSet, paths: &GlobSet, rel: &[u8]) -> bool {
        let path = bytes_path(rel);
        let name = rel.rsplit(|b| *b == b'/').next().unwrap_or(rel);
        names.is_match_candidate(&Candidate::new(bytes_path(name)))
            || paths.is_match_candidate(&Candidate::new(path))
    }

    pub fn excluded(&self, rel: &[u8]) -> bool {
        Self::matches(&self.exclude_name, &self.exclude_path, rel)
    }

    /// Whether a file at `rel` is ingested.
    pub fn file_wanted(&self, rel: &[u8]) -> bool {
        !self.excluded(rel)
            && (!self.has_include || Self::matches(&self.include_name, &self.include_path, rel))
    }
}

#[cfg(unix)]
fn bytes_path(b: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_at_any_depth_paths_match_whole() {
        let f = Filter::new(
            &["*.pdf".into(), "docs/**/*.md".into()],
            &["~$*".into(), "tmp/**".into(), "Thumbs.db".into()],
            false,
        )
        .unwrap();
        assert!(f.file_wanted(b"a/b/report.pdf"));
        assert!(f.file_wanted(b"docs/x/y/readme.md"));
        assert!(!f.file_wanted(b"other/readme.md"));
        assert!(!f.file_wanted(b"a/~$report.pdf"));
        assert!(f.excluded(b"x/Thumbs.db"));
        assert!(f.excluded(b"tmp/a.pdf"));
        assert!(!f.excluded(b"tmpx/a.pdf"));
        assert!(!f.file_wanted(b"a/Report.PDF"));
        let ci = Filter::new(&["*.pdf".into()], &[], true).unwrap();
        assert!(ci.file_wanted(b"a/Report.PDF"));
        assert!(ci.file_wanted(&[b'x', 0xe9, b'.', b'p', b'd', b'f']));
    }
}
