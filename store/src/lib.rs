//! Object stores: where chunks and manifests live.
//!
//! One trait, [`ObjectStore`], two implementations: [`local::LocalStore`] (a directory;
//! the embedded default) and [`s3::S3Store`] (any S3-compatible server through
//! aws-sdk-s3). Both pass the shared suite in [`testsuite`] (feature `testsuite`).
//! Keys are `/`-separated relative paths such as `chunks/ab/ab12…`. The stored-chunk
//! format (key, compression, integrity check) is [`chunk`]; packs are [`pack`]; an
//! encrypted store is opened through [`keyring::open`], which wraps it in
//! [`sealed::SealedStore`].

pub mod chunk;
pub mod crypt;
pub mod format;
pub mod keyring;
pub mod local;
pub mod open;
pub mod pack;
pub mod retry;
#[cfg(feature = "s3")]
pub mod s3;
pub mod sealed;
#[cfg(feature = "testsuite")]
pub mod testsuite;

use async_trait::async_trait;
use bytes::Bytes;

/// Why an operation failed, in the terms callers branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth retrying: connection refused/reset, timeouts, 5xx, throttling.
    Transient,
    /// Credentials rejected or access denied.
    Auth,
    /// The key (or bucket) does not exist.
    NotFound,
    /// A conditional write found the key already present.
    AlreadyExists,
    /// Anything else: bad request, corrupt data, local I/O errors.
    Permanent,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub class: ErrorClass,
    pub message: String,
}

impl StoreError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> StoreError {
        StoreError {
            class,
            message: message.into(),
        }
    }
    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

/// The error of a ranged read that runs past the object's end.
pub(crate) fn truncated(key: &str, start: u64, len: u64, size: u64) -> StoreError {
    StoreError::new(
        ErrorClass::Permanent,
        format!("{key} is truncated: bytes {start}+{len} asked, the object has {size}"),
    )
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How a put treats an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there (content-addressed keys: same key, same bytes).
    Overwrite,
    /// Fail with [`ErrorClass::AlreadyExists`] if the key exists (conditional put).
    IfAbsent,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Last modification, Unix nanoseconds.
    pub modified_ns: i64,
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// A short description for messages (`s3://bucket/prefix`, `file:///dir`).
    fn describe(&self) -> String;
    /// Checks that the store is reachable and usable (bucket exists, credentials work).
    async fn check(&self) -> Result<()>;
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<()>;
    async fn get(&self, key: &str) -> Result<Bytes>;
    /// The `len` bytes of an object from `start` on. An object too short to hold them
    /// is a [`ErrorClass::Permanent`] error (truncated), never fewer bytes.
    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes>;
    /// `None` when the key does not exist.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;
    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// Deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// The keys of an encrypted store ([`sealed::SealedStore`]): chunks and packs are
    /// sealed, named and cut with them. `None`: the store is in the clear.
    fn crypt(&self) -> Option<&std::sync::Arc<crypt::Crypt>> {
        None
    }
}
