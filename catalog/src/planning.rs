//! What a job's planning reads: a connector's item states (the bulk path), its
//! checkpoint, which chunks and manifests are already stored.

use std::collections::{HashMap, HashSet};

use crate::rows::{CHUNK_COLUMNS, ChunkRecord, in_list};
use crate::{Catalog, ChunkRef, Db, Hash, ItemState, Result, bulk};

impl Catalog {
    /// Every item of a connector (live and deleted). On SQLite read through the raw
    /// connection ([`bulk`]); on PostgreSQL one query whose rows arrive in the binary
    /// protocol, decoded as they stream. At the start of every job, for every file the
    /// connector has.
    pub async fn items(&self, connector: &str) -> Result<Vec<ItemState>> {
        let pool = match &self.db {
            Db::Sqlite(pool) => pool,
            Db::Postgres(pool) => return items_pg(pool, connector).await,
        };
        let mut conn = pool.acquire().await?;
        let mut handle = conn.lock_handle().await?;
        let db = handle.as_raw_handle();
        let read = || {
            // SAFETY: sqlx lends the connection exclusively while `handle` lives
            #[allow(unsafe_code)]
            unsafe {
                bulk::items(db, connector)
            }
        };
        // a long read: keep the other tasks of this runtime thread moving
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => read(),
            _ => tokio::task::block_in_place(read),
        }
    }

    pub async fn checkpoint(&self, connector: &str) -> Result<Option<String>> {
        with_pool!(self, |pool| {
            let v: Option<Option<String>> =
                sqlx::query_scalar("SELECT checkpoint FROM connectors WHERE id = $1")
                    .bind(connector)
                    .fetch_optional(pool)
                    .await?;
            Ok(v.flatten())
        })
    }

    /// Forgets the connector's checkpoint: its next listing starts from nothing (its
    /// data was deleted; a delta cursor would not name what was there).
    pub async fn forget_checkpoint(&self, connector: &str) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE connectors SET checkpoint = NULL WHERE id = $1")
                .bind(connector)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The chunks among `hashes` that the catalog already holds (committed).
    pub async fn known_chunks(&self, hashes: &[Hash]) -> Result<HashMap<Hash, ChunkRef>> {
        if let Db::Postgres(pool) = &self.db {
            // one query, the hashes bound as one array
            let mut found = HashMap::new();
            let sql = format!(
                "SELECT {CHUNK_COLUMNS} FROM chunks WHERE refcount > 0 AND hash = ANY($1::bytea[])"
            );
            for row in sqlx::query_as::<_, ChunkRecord>(sqlx::AssertSqlSafe(sql))
                .bind(hashes.iter().map(|h| h.as_slice()).collect::<Vec<_>>())
                .fetch_all(pool)
                .await?
            {
                let c = ChunkRef::try_from(row)?;
                found.insert(c.hash, c);
            }
            return Ok(found);
        }
        with_pool!(self, |pool| {
            let mut found = HashMap::new();
            for batch in hashes.chunks(500) {
                let sql = format!(
                    "SELECT {CHUNK_COLUMNS} FROM chunks WHERE refcount > 0 AND hash IN {}",
                    in_list(1, batch.len())
                );
                let mut q = sqlx::query_as::<_, ChunkRecord>(sqlx::AssertSqlSafe(sql));
                for h in batch {
                    q = q.bind(h.as_slice());
                }
                for row in q.fetch_all(pool).await? {
                    let c = ChunkRef::try_from(row)?;
                    found.insert(c.hash, c);
                }
            }
            Ok(found)
        })
    }

    /// The manifest keys among `keys` that committed versions name.
    pub async fn known_manifests(&self, keys: &[String]) -> Result<HashSet<String>> {
        with_pool!(self, |pool| {
            let mut found = HashSet::new();
            for batch in keys.chunks(500) {
                let sql = format!(
                    "SELECT DISTINCT manifest FROM versions WHERE manifest IN {}",
                    in_list(1, batch.len())
                );
                let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
                for k in batch {
                    q = q.bind(k);
                }
                found.extend(q.fetch_all(pool).await?);
            }
            Ok(found)
        })
    }
}

type ItemTuple = (
    i64,
    Vec<u8>,
    Vec<u8>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    Option<String>,
);

/// [`Catalog::items`] on PostgreSQL.
async fn items_pg(pool: &sqlx::PgPool, connector: &str) -> Result<Vec<ItemState>> {
    use futures::TryStreamExt;
    let mut rows = sqlx::query_as::<_, ItemTuple>(
        "SELECT id, source_id, path, deleted, COALESCE(size, 0), COALESCE(mtime_ns, 0), inode, change_tag, held, acl
         FROM items WHERE connector = $1",
    )
    .bind(connector)
    .fetch(pool);
    let mut out = Vec::new();
    while let Some((id, source_id, path, deleted, size, mtime_ns, inode, change_tag, held, acl)) =
        rows.try_next().await?
    {
        out.push(ItemState {
            id,
            source_id,
            path,
            deleted: deleted != 0,
            size,
            mtime_ns,
            inode,
            change_tag,
            held: held != 0,
            acl,
        });
    }
    Ok(out)
}
