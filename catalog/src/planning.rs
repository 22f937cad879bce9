//! What a job's planning reads: a connector's item states (the bulk path), its
//! checkpoint, which chunks and manifests are already stored.

use std::collections::{HashMap, HashSet};

use crate::rows::{CHUNK_COLUMNS, ChunkRecord, in_list};
use crate::{Catalog, ChunkRef, Hash, ItemState, Result, bulk};

impl Catalog {
    /// Every item of a connector (live and deleted). Read through the raw connection
    /// ([`bulk`]): at the start of every job, for every file the connector has.
    pub async fn items(&self, connector: &str) -> Result<Vec<ItemState>> {
        let mut conn = self.pool.acquire().await?;
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
        let v: Option<Option<String>> =
            sqlx::query_scalar("SELECT checkpoint FROM connectors WHERE id = $1")
                .bind(connector)
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.flatten())
    }

    /// The chunks among `hashes` that the catalog already holds (committed).
    pub async fn known_chunks(&self, hashes: &[Hash]) -> Result<HashMap<Hash, ChunkRef>> {
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
            for row in q.fetch_all(&self.pool).await? {
                let c = ChunkRef::try_from(row)?;
                found.insert(c.hash, c);
            }
        }
        Ok(found)
    }

    /// The manifest keys among `keys` that committed versions name.
    pub async fn known_manifests(&self, keys: &[String]) -> Result<HashSet<String>> {
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
            found.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(found)
    }
}
