//! An encrypted store as its callers see it: every object is sealed on `put` and
//! opened on `get`, bound to its key, so the bucket holds no clear byte and an object
//! put in another's place fails to open. Packs are the exception that proves the rule:
//! their blobs and index are sealed one by one ([`crate::pack`], [`crate::chunk`]) so
//! that a ranged read can fetch one blob, and they pass through as they are; the
//! marker and the wrapped keys must be readable before the key is known.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::crypt::Crypt;
use crate::{ErrorClass, ObjectMeta, ObjectStore, PutMode, Result, StoreError};

pub struct SealedStore {
    inner: Arc<dyn ObjectStore>,
    crypt: Arc<Crypt>,
}

impl SealedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, crypt: Arc<Crypt>) -> SealedStore {
        SealedStore { inner, crypt }
    }
}

/// Whether this store seals `key` as a whole (see the module docs).
pub fn sealed_whole(key: &str) -> bool {
    !(key.starts_with(crate::pack::PREFIX)
        || key.starts_with(crate::keyring::PREFIX)
        || key == crate::format::MARKER_KEY)
}

/// The error of an object that fails to open.
pub fn unauthentic(key: &str) -> StoreError {
    StoreError::new(
        ErrorClass::Permanent,
        format!(
            "{key} fails authentication: it was altered, truncated or put in another object's place, or sealed under another key"
        ),
    )
}

#[async_trait]
impl ObjectStore for SealedStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn check(&self) -> Result<()> {
        self.inner.check().await
    }

    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<()> {
        let data = if sealed_whole(key) {
            Bytes::from(self.crypt.seal(key.as_bytes(), &data))
        } else {
            data
        };
        self.inner.put(key, data, mode).await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let body = self.inner.get(key).await?;
        if !sealed_whole(key) {
            return Ok(body);
        }
        self.crypt
            .open(key.as_bytes(), &body)
            .map(Bytes::from)
            .map_err(|_| unauthentic(key))
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        if sealed_whole(key) {
            return Err(StoreError::new(
                ErrorClass::Permanent,
                format!("{key} is sealed as a whole: it is read whole, never in part"),
            ));
        }
        self.inner.get_range(key, start, len).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }

    fn crypt(&self) -> Option<&Arc<Crypt>> {
        Some(&self.crypt)
    }
}
