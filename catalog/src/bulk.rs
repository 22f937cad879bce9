//! Bulk reads that sqlx makes slow: sqlx's SQLite driver copies every column of every
//! row into its own allocation and hands rows one by one across a channel from its
//! worker thread, about 4 µs a row. The item states of a connector (read at the start
//! of every job, 100,000 rows and more) are read here through the connection's raw
//! handle instead, which sqlx lends while it keeps its worker off the connection:
//! ten times faster. Same SQL, same connection, same transaction semantics.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

use crate::{CatalogError, ItemState, Result};

/// A prepared statement, finalized on drop.
struct Stmt(NonNull<ffi::sqlite3_stmt>);

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on a connection that outlives it and is
        // finalized exactly once
        unsafe { ffi::sqlite3_finalize(self.0.as_ptr()) };
    }
}

fn error(db: NonNull<ffi::sqlite3>, what: &str) -> CatalogError {
    // SAFETY: errmsg returns a NUL-terminated string owned by the connection
    let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) };
    CatalogError::Corrupt(format!("{what}: {}", msg.to_string_lossy()))
}

/// The bytes of column `i` of the current row (empty for NULL).
///
/// # Safety
/// `stmt` must be positioned on a row; the slice is valid until the next step.
unsafe fn bytes<'a>(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> &'a [u8] {
    // SAFETY: as documented by SQLite: ask for the pointer first, then the length
    unsafe {
        let p = ffi::sqlite3_column_blob(stmt, i) as *const u8;
        let n = ffi::sqlite3_column_bytes(stmt, i);
        if p.is_null() || n <= 0 {
            &[]
        } else {
            std::slice::from_raw_parts(p, n as usize)
        }
    }
}

/// # Safety
/// `stmt` must be positioned on a row.
unsafe fn is_null(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> bool {
    // SAFETY: reading the type of a column of the current row
    unsafe { ffi::sqlite3_column_type(stmt, i) == ffi::SQLITE_NULL }
}

/// # Safety
/// `stmt` must be positioned on a row.
unsafe fn text(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> Result<Option<String>> {
    // SAFETY: forwarded
    unsafe {
        if is_null(stmt, i) {
            return Ok(None);
        }
        String::from_utf8(bytes(stmt, i).to_vec())
            .map(Some)
            .map_err(|_| CatalogError::Corrupt("item text column is not UTF-8".into()))
    }
}

/// Prepares `sql` on `db`.
///
/// # Safety
/// `db` must be an open connection that nothing else uses during the call.
unsafe fn prepare(db: NonNull<ffi::sqlite3>, sql: &CStr, what: &str) -> Result<Stmt> {
    let mut raw = ptr::null_mut();
    // SAFETY: a valid connection and a NUL-terminated statement
    let rc = unsafe {
        ffi::sqlite3_prepare_v2(db.as_ptr(), sql.as_ptr(), -1, &mut raw, ptr::null_mut())
    };
    match NonNull::new(raw) {
        Some(s) if rc == ffi::SQLITE_OK => Ok(Stmt(s)),
        _ => Err(error(db, what)),
    }
}

/// Binds `connector` to `?1` and `ids` (if any) to `?2` and `?3`.
///
/// # Safety
/// `stmt` must be a statement prepared on `db`.
unsafe fn bind(
    db: NonNull<ffi::sqlite3>,
    stmt: &Stmt,
    connector: &str,
    ids: Option<(i64, i64)>,
) -> Result<()> {
    let s = stmt.0.as_ptr();
    let len = c_int::try_from(connector.len())
        .map_err(|_| CatalogError::Corrupt("connector id too long".into()))?;
    // SAFETY: SQLITE_TRANSIENT makes SQLite copy the text before returning
    let mut rc = unsafe {
        ffi::sqlite3_bind_text(
            s,
            1,
            connector.as_ptr() as *const c_char,
            len,
            ffi::SQLITE_TRANSIENT(),
        )
    };
    if let Some((lo, hi)) = ids {
        // SAFETY: binding integers to a prepared statement
        unsafe {
            rc |= ffi::sqlite3_bind_int64(s, 2, lo);
            rc |= ffi::sqlite3_bind_int64(s, 3, hi);
        }
    }
    if rc != ffi::SQLITE_OK {
        return Err(error(db, "bind the item query"));
    }
    Ok(())
}

/// Every item of `connector` (the query of [`crate::Catalog::items`]).
///
/// The connector's rows usually fill most of a range of row ids (they were inserted
/// by its jobs). Then the range is read in row order: sequential pages, which the
/// kernel reads ahead when the catalog is not in the page cache, instead of one page
/// lookup per row in source-id order through the index (a cold 100k-item catalog:
/// about half the time). Rows interleaved with other connectors' go through the index.
///
/// # Safety
/// `db` must be an open connection that nothing else uses during the call.
pub(crate) unsafe fn items(db: NonNull<ffi::sqlite3>, connector: &str) -> Result<Vec<ItemState>> {
    const SPAN: &CStr = c"SELECT min(id), max(id), count(*) FROM items WHERE connector = ?1";
    const BY_ROW: &CStr = c"SELECT id, source_id, path, deleted, size, mtime_ns, inode, change_tag, held, acl FROM items WHERE id BETWEEN ?2 AND ?3 AND +connector = ?1";
    const BY_INDEX: &CStr = c"SELECT id, source_id, path, deleted, size, mtime_ns, inode, change_tag, held, acl FROM items WHERE connector = ?1";
    // SAFETY: forwarded
    let (lo, hi, count) = unsafe {
        let span = prepare(db, SPAN, "prepare the item span query")?;
        bind(db, &span, connector, None)?;
        let s = span.0.as_ptr();
        if ffi::sqlite3_step(s) != ffi::SQLITE_ROW {
            return Err(error(db, "read the item span"));
        }
        (
            ffi::sqlite3_column_int64(s, 0),
            ffi::sqlite3_column_int64(s, 1),
            ffi::sqlite3_column_int64(s, 2),
        )
    };
    if count == 0 {
        return Ok(Vec::new());
    }
    let dense = count.saturating_mul(2) >= hi.saturating_sub(lo).saturating_add(1);
    // SAFETY: forwarded
    let stmt = unsafe {
        let stmt = prepare(
            db,
            if dense { BY_ROW } else { BY_INDEX },
            "prepare the item query",
        )?;
        bind(db, &stmt, connector, dense.then_some((lo, hi)))?;
        stmt
    };
    let s = stmt.0.as_ptr();
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    loop {
        // SAFETY: a prepared, bound statement
        match unsafe { ffi::sqlite3_step(s) } {
            ffi::SQLITE_ROW => {}
            ffi::SQLITE_DONE => break,
            _ => return Err(error(db, "read the items")),
        }
        // SAFETY: the statement is on a row; every slice is copied before the next step
        let item = unsafe {
            ItemState {
                id: ffi::sqlite3_column_int64(s, 0),
                source_id: bytes(s, 1).to_vec(),
                path: bytes(s, 2).to_vec(),
                deleted: ffi::sqlite3_column_int64(s, 3) != 0,
                size: ffi::sqlite3_column_int64(s, 4),
                mtime_ns: ffi::sqlite3_column_int64(s, 5),
                inode: (!is_null(s, 6)).then(|| ffi::sqlite3_column_int64(s, 6)),
                change_tag: text(s, 7)?,
                held: ffi::sqlite3_column_int64(s, 8) != 0,
                acl: text(s, 9)?,
            }
        };
        out.push(item);
    }
    Ok(out)
}
