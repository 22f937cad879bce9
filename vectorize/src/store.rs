//! Vector stores: where passage vectors are searched. The catalog keeps every passage
//! (text, location, full-precision vector) either way; a store is the searchable
//! copy, filled from the catalog at start-up and kept in step by the vectorizer.
//!
//! - [`MemoryStore`] (`catalog`, the embedded default): the in-memory int8 index.
//! - [`PgStore`] (`pgvector`): a PostgreSQL table with an HNSW index.

use std::collections::HashSet;
use std::sync::RwLock;

use async_trait::async_trait;
use tributary_catalog::Catalog;
use tributary_catalog::pgvector::{PgVectors, StoredVector};

use crate::index::VectorIndex;

pub type StoreResult<T> = Result<T, tributary_catalog::CatalogError>;

#[async_trait]
pub trait VectorStore: Send + Sync {
    fn describe(&self) -> String;
    /// Loads (or checks) the store from the catalog's passages; returns how many.
    async fn sync(&self, catalog: &Catalog, dim: usize) -> StoreResult<usize>;
    async fn add(&self, rows: Vec<StoredVector>) -> StoreResult<()>;
    async fn remove_versions(&self, versions: &[i64]) -> StoreResult<()>;
    /// The `n` best candidates for `query` (best first, approximate scores), among
    /// `connector`'s vectors and the `items` given.
    async fn candidates(
        &self,
        query: &[f32],
        n: usize,
        connector: Option<&str>,
        items: Option<&HashSet<i64>>,
    ) -> StoreResult<Vec<(i64, f32)>>;
    /// Vectors held and bytes of memory they take here.
    async fn size(&self) -> (usize, usize);
    /// Forgets everything (a reindex).
    async fn clear(&self) -> StoreResult<()>;
}

#[derive(Default)]
pub struct MemoryStore {
    index: RwLock<VectorIndex>,
}

#[async_trait]
impl VectorStore for MemoryStore {
    fn describe(&self) -> String {
        "catalog (in-memory int8 index)".into()
    }

    async fn sync(&self, catalog: &Catalog, dim: usize) -> StoreResult<usize> {
        let mut fresh = VectorIndex::new(dim);
        let mut after = 0;
        loop {
            let page = catalog.passage_vectors(after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            if fresh.dim() == 0 {
                fresh = VectorIndex::new(page[0].embedding.len());
            }
            for p in &page {
                fresh.insert(p.id, p.item_id, p.version_id, &p.connector, &p.embedding);
            }
        }
        let n = fresh.len();
        *self.index.write().expect("lock") = fresh;
        Ok(n)
    }

    async fn add(&self, rows: Vec<StoredVector>) -> StoreResult<()> {
        let mut idx = self.index.write().expect("lock");
        if idx.dim() == 0
            && let Some(r) = rows.first()
        {
            *idx = VectorIndex::new(r.embedding.len());
        }
        for r in rows {
            idx.insert(r.id, r.item_id, r.version_id, &r.connector, &r.embedding);
        }
        Ok(())
    }

    async fn remove_versions(&self, versions: &[i64]) -> StoreResult<()> {
        let mut idx = self.index.write().expect("lock");
        for v in versions {
            idx.remove_version(*v);
        }
        Ok(())
    }

    async fn candidates(
        &self,
        query: &[f32],
        n: usize,
        connector: Option<&str>,
        items: Option<&HashSet<i64>>,
    ) -> StoreResult<Vec<(i64, f32)>> {
        let idx = self.index.read().expect("lock");
        let filter = items.map(|set| move |item: i64| set.contains(&item));
        let f: Option<&dyn Fn(i64) -> bool> = filter.as_ref().map(|f| f as &dyn Fn(i64) -> bool);
        Ok(idx.candidates(query, n, connector, f))
    }

    async fn size(&self) -> (usize, usize) {
        let idx = self.index.read().expect("lock");
        (idx.len(), idx.memory_bytes())
    }

    async fn clear(&self) -> StoreResult<()> {
        *self.index.write().expect("lock") = VectorIndex::default();
        Ok(())
    }
}

pub struct PgStore {
    pg: PgVectors,
}

impl PgStore {
    pub async fn connect(url: &str, table: &str) -> StoreResult<PgStore> {
        Ok(PgStore {
            pg: PgVectors::connect(url, table).await?,
        })
    }

    pub fn inner(&self) -> &PgVectors {
        &self.pg
    }
}

#[async_trait]
impl VectorStore for PgStore {
    fn describe(&self) -> String {
        self.pg.describe()
    }

    async fn sync(&self, catalog: &Catalog, dim: usize) -> StoreResult<usize> {
        if dim == 0 {
            // An HTTP embedder that has not answered yet: the table is made on first add.
            return Ok(self.pg.count().await? as usize);
        }
        Ok(self.pg.sync(catalog, dim).await? as usize)
    }

    async fn add(&self, rows: Vec<StoredVector>) -> StoreResult<()> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        if self.pg.dim().await?.is_none() {
            self.pg.create(first.embedding.len()).await?;
        }
        self.pg.add(&rows).await
    }

    async fn remove_versions(&self, versions: &[i64]) -> StoreResult<()> {
        self.pg.remove_versions(versions).await
    }

    async fn candidates(
        &self,
        query: &[f32],
        n: usize,
        connector: Option<&str>,
        items: Option<&HashSet<i64>>,
    ) -> StoreResult<Vec<(i64, f32)>> {
        self.pg.candidates(query, n, connector, items).await
    }

    async fn size(&self) -> (usize, usize) {
        (self.pg.count().await.unwrap_or(0) as usize, 0)
    }

    async fn clear(&self) -> StoreResult<()> {
        self.pg.drop_table().await
    }
}
