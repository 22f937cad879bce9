//! Opening a bucket the way every command does: reachable ([`ObjectStore::check`]), its
//! format read (a new store marked) and, when encrypted, unlocked
//! ([`keyring::open`]). The whole opening is retried over transient failures — a
//! server that answers one request with a 500 or resets one connection while the
//! daemon starts must not stop it — for a few seconds only, so that a store that is
//! down is still reported at once. Opening is safe to repeat: it writes only the
//! marker and a new store's key, each created only if absent.

use std::sync::Arc;
use std::time::Duration;

use crate::crypt::Kek;
use crate::format::StoreFormat;
use crate::keyring;
use crate::retry::{RetryPolicy, with_retry};
use crate::{ObjectStore, StoreError};

/// How long opening tries: six attempts, waits of 0.2 s doubling (at most about 6 s).
pub const OPEN_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 6,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(8),
    max_retry_after: Duration::from_secs(10),
};

/// The store checked, its format, and the store as its callers must use it (sealed
/// when encrypted). `on_retry` is told of each transient failure before the next
/// attempt (for the log).
pub async fn open_bucket(
    raw: Arc<dyn ObjectStore>,
    kek: Option<&Kek>,
    policy: RetryPolicy,
    on_retry: impl FnMut(u32, &StoreError),
) -> Result<(Arc<dyn ObjectStore>, StoreFormat), StoreError> {
    with_retry(policy, on_retry, || {
        let raw = raw.clone();
        async move {
            raw.check().await?;
            keyring::open(raw, kek).await
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalStore;
    use crate::{ErrorClass, ObjectMeta, PutMode};
    use async_trait::async_trait;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A store whose first `failures` requests (of any kind) fail as `class`.
    struct Failing {
        inner: LocalStore,
        failures: u32,
        class: ErrorClass,
        seen: AtomicU32,
    }

    impl Failing {
        fn fail(&self) -> Result<(), StoreError> {
            if self.seen.fetch_add(1, Ordering::SeqCst) < self.failures {
                return Err(StoreError::new(
                    self.class,
                    "get tributary-store.json: HTTP 500 InternalError",
                ));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl ObjectStore for Failing {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        async fn check(&self) -> Result<(), StoreError> {
            self.inner.check().await
        }
        async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
            self.fail()?;
            self.inner.put(key, data, mode).await
        }
        async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
            self.fail()?;
            self.inner.get(key).await
        }
        async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, StoreError> {
            self.fail()?;
            self.inner.get_range(key, start, len).await
        }
        async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
            self.fail()?;
            self.inner.head(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
            self.fail()?;
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.fail()?;
            self.inner.delete(key).await
        }
    }

    fn failing(dir: &std::path::Path, failures: u32, class: ErrorClass) -> Arc<dyn ObjectStore> {
        Arc::new(Failing {
            inner: LocalStore::new(dir).unwrap(),
            failures,
            class,
            seen: AtomicU32::new(0),
        })
    }

    const QUICK: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(1),
        ..OPEN_RETRY
    };

    #[tokio::test]
    async fn a_store_that_fails_a_few_requests_while_opening_still_opens() {
        for kek in [None, Some(Kek::generate())] {
            let dir = tempfile::tempdir().unwrap();
            let mut retries = Vec::new();
            let (store, f) = open_bucket(
                failing(dir.path(), 3, ErrorClass::Transient),
                kek.as_ref(),
                QUICK,
                |attempt, e| retries.push((attempt, e.message.clone())),
            )
            .await
            .unwrap();
            assert_eq!(f.encryption.is_some(), kek.is_some());
            assert_eq!(retries.len(), 3, "{retries:?}");
            assert!(retries[0].1.contains("HTTP 500"));
            // the store opened is usable, and a second opening finds the same format
            store
                .put("manifests/m", Bytes::from_static(b"m"), PutMode::IfAbsent)
                .await
                .unwrap();
            let (again, f2) = open_bucket(
                Arc::new(LocalStore::new(dir.path()).unwrap()),
                kek.as_ref(),
                QUICK,
                |_, _| {},
            )
            .await
            .unwrap();
            assert_eq!(f, f2);
            assert_eq!(again.get("manifests/m").await.unwrap(), "m");
        }
    }

    #[tokio::test]
    async fn a_store_that_keeps_failing_or_refuses_is_an_error_soon() {
        let dir = tempfile::tempdir().unwrap();
        let mut tries = 0;
        let e = open_bucket(
            failing(dir.path(), u32::MAX, ErrorClass::Transient),
            None,
            QUICK,
            |_, _| tries += 1,
        )
        .await
        .map(|_| ())
        .unwrap_err();
        assert_eq!(tries, OPEN_RETRY.max_attempts - 1);
        assert!(e.message.contains("HTTP 500"), "{}", e.message);

        let mut tries = 0;
        let e = open_bucket(
            failing(dir.path(), u32::MAX, ErrorClass::Auth),
            None,
            QUICK,
            |_, _| tries += 1,
        )
        .await
        .map(|_| ())
        .unwrap_err();
        assert_eq!((tries, e.class), (0, ErrorClass::Auth));
    }
}
