//! A connector's storage quota (`quota: { max_bytes, max_files }`) over the current
//! content of its target, as a job plans: the usage the catalog holds, plus what the
//! job has planned so far. A new or grown file that would pass a limit is not read: it
//! becomes an item error `QUOTA_EXCEEDED` (the job goes on), and the next job takes it
//! once there is room. Deletes and files that shrink always go through. Pure, so that
//! every case is unit-tested.

use tributary_catalog::ItemState;
use tributary_config::Quota;

/// The code that opens a quota item error's message.
pub const QUOTA_EXCEEDED: &str = "QUOTA_EXCEEDED";

#[derive(Debug, Clone)]
pub(crate) struct QuotaCheck {
    quota: Quota,
    connector: String,
    /// Live files and their logical bytes, as planned so far.
    files: u64,
    bytes: u64,
}

impl QuotaCheck {
    /// The usage of the connector's live items (`held` claims are stored too).
    pub fn new<'a>(
        quota: Quota,
        connector: &str,
        items: impl Iterator<Item = &'a ItemState>,
    ) -> QuotaCheck {
        let (mut files, mut bytes) = (0u64, 0u64);
        for k in items.filter(|k| !k.deleted) {
            files += 1;
            bytes += k.size.max(0) as u64;
        }
        QuotaCheck {
            quota,
            connector: connector.to_string(),
            files,
            bytes,
        }
    }

    /// Takes room for a file of `size` bytes about to be stored, whose item holds
    /// `was` bytes now (`None`: new, or deleted). `Err` says why it does not fit.
    pub fn admit(&mut self, was: Option<u64>, size: u64) -> Result<(), String> {
        let files = self.files + u64::from(was.is_none());
        let bytes = self.bytes - was.unwrap_or(0).min(self.bytes) + size;
        if was.is_none()
            && let Some(max) = self.quota.max_files
            && files > max
        {
            return Err(format!(
                "{QUOTA_EXCEEDED}: quota.max_files of connector `{}` is {max} and it holds {} file(s): this new file is held until there is room (delete files or raise the quota)",
                self.connector, self.files
            ));
        }
        let grows = size > was.unwrap_or(0);
        if grows
            && let Some(max) = self.quota.max_bytes
            && bytes > max
        {
            return Err(format!(
                "{QUOTA_EXCEEDED}: quota.max_bytes of connector `{}` is {max} bytes and it holds {} bytes: storing this file ({size} bytes) would bring it to {bytes}; held until there is room (delete files or raise the quota)",
                self.connector, self.bytes
            ));
        }
        self.files = files;
        self.bytes = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(size: i64, deleted: bool) -> ItemState {
        ItemState {
            id: 1,
            source_id: b"a".to_vec(),
            path: b"/d/a".to_vec(),
            deleted,
            size,
            mtime_ns: 0,
            inode: None,
            change_tag: None,
            held: false,
            acl: None,
        }
    }

    fn check(max_bytes: Option<u64>, max_files: Option<u64>, items: &[ItemState]) -> QuotaCheck {
        QuotaCheck::new(
            Quota {
                max_bytes,
                max_files,
            },
            "docs",
            items.iter(),
        )
    }

    #[test]
    fn usage_counts_live_items_only() {
        let q = check(
            None,
            None,
            &[item(10, false), item(5, true), item(7, false)],
        );
        assert_eq!((q.files, q.bytes), (2, 17));
    }

    #[test]
    fn no_quota_admits_everything() {
        let mut q = check(None, None, &[item(10, false)]);
        assert!(q.admit(None, u64::MAX / 2).is_ok());
        assert_eq!(q.files, 2);
    }

    #[test]
    fn max_files_holds_new_files_and_lets_changes_through() {
        let mut q = check(None, Some(2), &[item(10, false)]);
        assert!(q.admit(None, 1).is_ok(), "the second file fits");
        let e = q.admit(None, 1).unwrap_err();
        assert!(
            e.starts_with(
                "QUOTA_EXCEEDED: quota.max_files of connector `docs` is 2 and it holds 2 file(s)"
            ),
            "{e}"
        );
        assert!(q.admit(Some(10), 50).is_ok(), "a change adds no file");
        assert_eq!(q.files, 2);
    }

    #[test]
    fn max_bytes_holds_growth_and_lets_shrinking_through() {
        let mut q = check(Some(100), None, &[item(60, false)]);
        assert!(q.admit(None, 40).is_ok(), "exactly at the limit fits");
        let e = q.admit(None, 1).unwrap_err();
        assert!(
            e.contains("quota.max_bytes of connector `docs` is 100 bytes and it holds 100 bytes")
                && e.contains("would bring it to 101"),
            "{e}"
        );
        let e = q.admit(Some(60), 61).unwrap_err();
        assert!(e.contains("would bring it to 101"), "{e}");
        // over the limit already (lowered since): a file that shrinks still goes
        let mut over = check(Some(10), None, &[item(60, false)]);
        assert!(over.admit(Some(60), 30).is_ok());
        assert_eq!(over.bytes, 30);
        assert!(over.admit(Some(30), 30).is_ok(), "same size: no growth");
    }

    #[test]
    fn a_refused_file_takes_no_room() {
        let mut q = check(Some(100), Some(10), &[]);
        assert!(q.admit(None, 150).is_err());
        assert_eq!((q.files, q.bytes), (0, 0));
        assert!(q.admit(None, 100).is_ok());
    }
}
