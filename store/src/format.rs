//! The store's format, recorded in the bucket itself (`tributary-store.json`), so that
//! every reader and writer of a bucket — another daemon, a rebuilt catalog — agrees on
//! it and a store is never silently mixed.
//!
//! - **1**: one object per chunk (`chunks/<2 hex>/<hash>`), manifests.
//! - **2**: chunks in pack objects (`packs/…`, [`crate::pack`]), manifests; either in
//!   the clear or, when the marker says `encryption`, every object sealed
//!   ([`crate::keyring`]).
//!
//! A bucket without the marker is format 1 if it holds chunk objects (written before
//! the marker existed), else a new store: format 2. `tributary migrate-store` turns a
//! format 1 store into format 2.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{ErrorClass, ObjectStore, PutMode, StoreError};

/// The key of the marker object.
pub const MARKER_KEY: &str = "tributary-store.json";

/// The format new stores get.
pub const CURRENT: u32 = 2;

/// What the marker says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFormat {
    pub format: u32,
    /// Set when every object of the store is sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// A clear store being rewritten sealed (`migrate-store --encrypt`): no reader or
    /// writer but that migration may use it until it is done.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypting: bool,
}

/// How an encrypted store is sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// The one cipher there is: `xchacha20-poly1305`.
    pub cipher: String,
    /// The data key's check value ([`crate::crypt::DataKey::check`]).
    pub key_check: String,
}

/// The cipher encrypted stores use.
pub const CIPHER: &str = "xchacha20-poly1305";

impl StoreFormat {
    /// A new store in the current format, in the clear.
    pub fn current() -> StoreFormat {
        StoreFormat {
            format: CURRENT,
            encryption: None,
            encrypting: false,
        }
    }

    /// Chunks go into packs.
    pub fn packed(&self) -> bool {
        self.format >= 2
    }
}

fn parse(body: &[u8]) -> Result<StoreFormat, StoreError> {
    let f: StoreFormat = serde_json::from_slice(body).map_err(|e| {
        StoreError::new(
            ErrorClass::Permanent,
            format!("{MARKER_KEY} is not a Tributary store marker: {e}"),
        )
    })?;
    if let Some(e) = &f.encryption
        && (e.cipher != CIPHER || f.format < 2)
    {
        return Err(StoreError::new(
            ErrorClass::Permanent,
            format!(
                "the store is encrypted with `{}` in format {} ({MARKER_KEY}); this Tributary encrypts format 2 with `{CIPHER}` only",
                e.cipher, f.format
            ),
        ));
    }
    if f.format == 0 || f.format > CURRENT {
        return Err(StoreError::new(
            ErrorClass::Permanent,
            format!(
                "the store is in format {} ({MARKER_KEY}); this Tributary reads formats 1 to {CURRENT} (written by a newer version?)",
                f.format
            ),
        ));
    }
    Ok(f)
}

/// What the store's marker says, `None` when it has none.
pub async fn read(store: &dyn ObjectStore) -> Result<Option<StoreFormat>, StoreError> {
    match store.get(MARKER_KEY).await {
        Ok(body) => parse(&body).map(Some),
        Err(e) if e.class == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the store holds chunks written before the marker existed (format 1).
pub async fn holds_legacy_chunks(store: &dyn ObjectStore) -> Result<bool, StoreError> {
    Ok(!store.list("chunks/").await?.is_empty())
}

/// The store's format; marks a store that has no marker yet (see the module docs): a
/// new one as `fresh` says.
pub async fn open(store: &dyn ObjectStore, fresh: StoreFormat) -> Result<StoreFormat, StoreError> {
    if let Some(f) = read(store).await? {
        return Ok(f);
    }
    let f = if holds_legacy_chunks(store).await? {
        StoreFormat {
            format: 1,
            encryption: None,
            encrypting: false,
        }
    } else {
        fresh
    };
    create(store, f).await
}

/// Marks a store that has no marker with `f`; when another writer marked it first,
/// its word holds and is the result.
pub async fn create(store: &dyn ObjectStore, f: StoreFormat) -> Result<StoreFormat, StoreError> {
    match store.put(MARKER_KEY, encode(&f), PutMode::IfAbsent).await {
        Ok(()) => Ok(f),
        Err(e) if e.class == ErrorClass::AlreadyExists => parse(&store.get(MARKER_KEY).await?),
        Err(e) => Err(e),
    }
}

/// Records a new format (`migrate-store`, once the store holds only that format).
pub async fn set(store: &dyn ObjectStore, f: &StoreFormat) -> Result<(), StoreError> {
    store.put(MARKER_KEY, encode(f), PutMode::Overwrite).await
}

fn encode(f: &StoreFormat) -> Bytes {
    Bytes::from(serde_json::to_vec(f).expect("a plain struct serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalStore;

    #[tokio::test]
    async fn new_stores_are_v2_old_ones_v1_and_newer_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let fresh = StoreFormat::current;
        assert_eq!(open(&store, fresh()).await.unwrap().format, 2);
        assert_eq!(
            open(&store, fresh()).await.unwrap().format,
            2,
            "the marker holds"
        );

        let old = tempfile::tempdir().unwrap();
        let store = LocalStore::new(old.path()).unwrap();
        store
            .put(
                "chunks/ab/ab00",
                Bytes::from_static(b"x"),
                PutMode::Overwrite,
            )
            .await
            .unwrap();
        let f = open(&store, fresh()).await.unwrap();
        assert_eq!(f.format, 1);
        assert!(!f.packed());
        set(&store, &fresh()).await.unwrap();
        assert!(open(&store, fresh()).await.unwrap().packed());

        store
            .put(
                MARKER_KEY,
                Bytes::from_static(b"{\"format\":3}"),
                PutMode::Overwrite,
            )
            .await
            .unwrap();
        let e = open(&store, fresh()).await.unwrap_err();
        assert!(
            e.message.contains("format 3") && e.message.contains("newer"),
            "{e}"
        );
        store
            .put(
                MARKER_KEY,
                Bytes::from_static(
                    br#"{"format":2,"encryption":{"cipher":"rot13","key_check":"00"}}"#,
                ),
                PutMode::Overwrite,
            )
            .await
            .unwrap();
        let e = open(&store, fresh()).await.unwrap_err();
        assert!(e.message.contains("rot13"), "{e}");
        store
            .put(
                MARKER_KEY,
                Bytes::from_static(b"<html>"),
                PutMode::Overwrite,
            )
            .await
            .unwrap();
        assert!(
            open(&store, fresh())
                .await
                .unwrap_err()
                .message
                .contains("not a Tributary store marker")
        );
    }
}
