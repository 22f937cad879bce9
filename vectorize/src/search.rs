//! Search: the passages closest in meaning to a query, over the index the vectorizer
//! keeps (its phase must be ready), filtered by connector, path prefix and principals
//! and re-ranked on the full-precision vectors; and opening the index for searching
//! alone (`tributary search` without a daemon).

use std::collections::HashSet;

use serde::Serialize;

use crate::{Backends, Phase, Vectorizer};

/// One search hit.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub score: f32,
    pub item_id: i64,
    pub version_id: i64,
    pub connector: String,
    pub path: String,
    pub passage: i64,
    pub location: Option<String>,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The index cannot answer now (starting, model missing, embedder changed).
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    Embedder(String),
    #[error(transparent)]
    Catalog(#[from] tributary_catalog::CatalogError),
}

impl Vectorizer {
    /// Opens the embedder and the index for searching only (`tributary search` without
    /// a daemon): nothing is indexed, and an index that does not exist yet is not made.
    pub async fn open_for_search(&self) -> Result<(), String> {
        let built = self
            .catalog
            .vector_meta("embedder")
            .await
            .map_err(|e| e.to_string())?;
        if built.is_none() {
            return Err(
                "nothing has been vectorized yet: connectors with `vectorize: true` are indexed by the daemon (`tributary run`) or by `tributary once`".into(),
            );
        }
        self.start().await
    }

    /// The `k` passages closest in meaning to `query`, best first, optionally only of
    /// one connector or under a path prefix.
    pub async fn search(
        &self,
        query: &str,
        k: usize,
        connector: Option<&str>,
        path_prefix: Option<&str>,
        principals: &[String],
    ) -> Result<Vec<Hit>, SearchError> {
        let phase = self.phase();
        let (embedder, store) = match &*phase {
            Phase::Ready(Backends { embedder, store }) => (embedder, store),
            Phase::Starting => return Err(SearchError::NotReady("the embedder is loading".into())),
            Phase::Failed(e) => return Err(SearchError::NotReady(e.clone())),
        };
        let q = embedder
            .embed(vec![query.to_string()])
            .await
            .map_err(|e| SearchError::Embedder(e.to_string()))?
            .pop()
            .unwrap_or_default();
        let mut allowed: Option<HashSet<i64>> = match path_prefix {
            Some(p) if !p.is_empty() && p != "/" => Some(
                self.catalog
                    .item_ids_under(p.trim_end_matches('/').as_bytes())
                    .await?
                    .into_iter()
                    .collect(),
            ),
            _ => None,
        };
        if !principals.is_empty() {
            // Only documents whose captured permissions name one of the principals;
            // documents without captured permissions are not shown to a filtered query.
            let readable: HashSet<i64> = self
                .catalog
                .item_ids_for_principals(principals)
                .await?
                .into_iter()
                .collect();
            allowed = Some(match allowed {
                Some(a) => a.intersection(&readable).copied().collect(),
                None => readable,
            });
        }
        if allowed.as_ref().is_some_and(HashSet::is_empty) {
            return Ok(Vec::new());
        }
        let want = (k * 8).max(64);
        let candidates = store
            .candidates(&q, want, connector, allowed.as_ref())
            .await?;
        let ids: Vec<i64> = candidates.iter().map(|c| c.0).collect();
        // Exact re-ranking on the stored full-precision vectors.
        let mut exact: Vec<(i64, f32)> = self
            .catalog
            .passage_embeddings(&ids)
            .await?
            .into_iter()
            .map(|(id, v)| (id, v.iter().zip(&q).map(|(a, b)| a * b).sum()))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<(i64, f32)> = exact.into_iter().take(k * 2 + 8).collect();
        let top_ids: Vec<i64> = top.iter().map(|t| t.0).collect();
        let hits = self.catalog.passage_hits(&top_ids).await?;
        let mut out = Vec::with_capacity(k);
        for (id, score) in top {
            let Some(h) = hits.iter().find(|h| h.id == id) else {
                continue;
            };
            if !h.current {
                continue;
            }
            out.push(Hit {
                score,
                item_id: h.item_id,
                version_id: h.version_id,
                connector: h.connector.clone(),
                path: String::from_utf8_lossy(&h.path).into_owned(),
                passage: h.seq,
                location: h.location.clone(),
                text: h.text.clone(),
            });
            if out.len() == k {
                break;
            }
        }
        Ok(out)
    }
}
