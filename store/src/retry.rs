//! Retries of store operations through the workspace's one retry mechanism
//! ([`tributary_retry`]: capped exponential backoff with jitter); a [`StoreError`] is
//! worth retrying when its class is [`crate::ErrorClass::Transient`].

pub use tributary_retry::{RetryPolicy, with_retry};

use crate::StoreError;

impl tributary_retry::Transient for StoreError {
    fn is_transient(&self) -> bool {
        StoreError::is_transient(self)
    }
}
