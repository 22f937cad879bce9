//! An S3-compatible object store on aws-sdk-s3.
//!
//! Uploads send the body unsigned (`UNSIGNED-PAYLOAD`: no SigV4 SHA-256 pass over every
//! byte, which costs ~200 MB/s per core on CPUs without SHA instructions) but with the
//! SDK's CRC32 checksum header, which the server verifies. The SDK's own retries are
//! off; callers retry transient errors with [`crate::retry`], so one policy (capped
//! exponential backoff with jitter) governs every request.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use bytes::Bytes;

use crate::{ErrorClass, ObjectMeta, ObjectStore, PutMode, Result, StoreError, truncated};

/// Settings of an [`S3Store`]; secrets are plain strings here and never printed.
#[derive(Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub bucket: String,
    /// Key prefix, empty or ending with `/`.
    pub prefix: String,
    pub region: String,
    pub path_style: bool,
    /// `(access key id, secret)`; `None`: the AWS default chain (environment, profile,
    /// instance metadata).
    pub credentials: Option<(String, String)>,
    pub sse: Option<Sse>,
    pub request_timeout: Duration,
}

#[derive(Clone, Debug)]
pub enum Sse {
    Aes256,
    Kms { key_id: String },
}

pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    sse: Option<Sse>,
    describe: String,
}

impl S3Store {
    pub async fn new(s: S3Settings) -> S3Store {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(s.request_timeout)
            .build();
        let mut b = match &s.credentials {
            Some((id, secret)) => aws_sdk_s3::config::Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(Credentials::new(id, secret, None, None, "tributary-config")),
            None => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(s.region.clone()))
                    .load()
                    .await;
                aws_sdk_s3::config::Builder::from(&shared)
            }
        };
        b = b
            .region(Region::new(s.region.clone()))
            .force_path_style(s.path_style)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(ep) = &s.endpoint {
            b = b.endpoint_url(ep);
        }
        let describe = format!(
            "s3://{}/{} at {}",
            s.bucket,
            s.prefix,
            s.endpoint.as_deref().unwrap_or("AWS")
        );
        S3Store {
            client: Client::from_conf(b.build()),
            bucket: s.bucket,
            prefix: s.prefix,
            sse: s.sse,
            describe,
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

/// Maps an SDK error to a class and a message that names the operation and the key but
/// never credentials.
/// A GET's whole body; a body cut short is worth retrying.
async fn body_bytes(full: &str, body: aws_sdk_s3::primitives::ByteStream) -> Result<Bytes> {
    let body = body.collect().await.map_err(|e| {
        StoreError::new(ErrorClass::Transient, format!("get {full}: body cut: {e}"))
    })?;
    Ok(body.into_bytes())
}

/// What an S3 error answer means for the caller (retry or not, whose fault), and a
/// hint for the operator appended to the message (see docs/troubleshooting.md).
fn service_error(status: u16, code: &str) -> (ErrorClass, &'static str) {
    let class = match (status, code) {
        (_, "NoSuchBucket") => ErrorClass::NotFound,
        (404, _) | (_, "NoSuchKey") | (_, "NotFound") => ErrorClass::NotFound,
        (412, _) | (_, "PreconditionFailed") => ErrorClass::AlreadyExists,
        // the body arrived other than it was sent (a proxy, a faulty path): sent again
        (_, "BadDigest" | "XAmzContentChecksumMismatch" | "InvalidDigest") => ErrorClass::Transient,
        (401 | 403, _) => ErrorClass::Auth,
        (408 | 429, _) | (500..=599, _) | (_, "SlowDown" | "RequestTimeout" | "InternalError") => {
            ErrorClass::Transient
        }
        _ => ErrorClass::Permanent,
    };
    let hint = match (class, code) {
        (_, "NoSuchBucket") => " (the bucket does not exist)",
        (_, "RequestTimeTooSkewed") => {
            " (this host's clock differs from the server's by more than 15 minutes: synchronise it, e.g. with chrony or systemd-timesyncd)"
        }
        (_, "BadDigest" | "XAmzContentChecksumMismatch" | "InvalidDigest") => {
            " (the server received other bytes than were sent: a proxy or the network path changed the body; retried)"
        }
        (ErrorClass::Auth, "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
            " (the credentials were rejected: check access_key_id and secret_access_key)"
        }
        (ErrorClass::Auth, _) => " (access denied)",
        _ => "",
    };
    (class, hint)
}

fn classify<E, R>(op: &str, what: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    match &e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status_code();
            let code = se.err().code().unwrap_or("").to_string();
            let msg = se.err().message().unwrap_or("").to_string();
            let (class, hint) = service_error(status, &code);
            let code = if code.is_empty() {
                String::new()
            } else {
                format!(" {code}")
            };
            let msg = if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            };
            StoreError::new(
                class,
                format!("{op} {what}: HTTP {status}{code}{msg}{hint}"),
            )
        }
        SdkError::DispatchFailure(df) => {
            let detail = std::error::Error::source(&e)
                .map(|s| format!("{s}"))
                .unwrap_or_default();
            let kind = if df.is_timeout() {
                "timed out"
            } else if df.is_io() {
                "connection failed"
            } else {
                "request failed"
            };
            StoreError::new(
                ErrorClass::Transient,
                format!("{op} {what}: {kind} (endpoint unreachable?): {detail}"),
            )
        }
        SdkError::TimeoutError(_) => {
            StoreError::new(ErrorClass::Transient, format!("{op} {what}: timed out"))
        }
        SdkError::ResponseError(_) => StoreError::new(
            ErrorClass::Transient,
            format!("{op} {what}: invalid or cut response"),
        ),
        _ => StoreError::new(ErrorClass::Permanent, format!("{op} {what}: {e}")),
    }
}

/// The HTTP status of a raw response (only the one response type the SDK uses).
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn ns_of(dt: Option<&aws_sdk_s3::primitives::DateTime>) -> i64 {
    dt.map(|d| d.secs() * 1_000_000_000 + d.subsec_nanos() as i64)
        .unwrap_or(0)
}

#[async_trait]
impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn check(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| classify("check bucket", &self.describe, e))
            .map_err(|mut e| {
                if e.class == ErrorClass::NotFound {
                    e.message = format!(
                        "bucket `{}` does not exist ({})",
                        self.bucket, self.describe
                    );
                }
                e
            })?;
        Ok(())
    }

    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<()> {
        let full = self.key(key);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .body(ByteStream::from(data));
        if mode == PutMode::IfAbsent {
            req = req.if_none_match("*");
        }
        req = match &self.sse {
            None => req,
            Some(Sse::Aes256) => req.server_side_encryption(ServerSideEncryption::Aes256),
            Some(Sse::Kms { key_id }) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key_id),
        };
        req.customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| classify("put", &full, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let full = self.key(key);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| classify("get", &full, e))?;
        body_bytes(&full, out.body).await
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let full = self.key(key);
        let end = start
            .checked_add(len - 1)
            .ok_or_else(|| truncated(key, start, len, 0))?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .range(format!("bytes={start}-{end}"))
            .send()
            .await
            // a range that starts past the end is a 416: Permanent, as truncation is
            .map_err(|e| classify("get", &full, e))?;
        let body = body_bytes(&full, out.body).await?;
        if body.len() as u64 != len {
            return Err(truncated(key, start, len, start + body.len() as u64));
        }
        Ok(body)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let full = self.key(key);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(o) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: o.content_length().unwrap_or(0).max(0) as u64,
                modified_ns: ns_of(o.last_modified()),
            })),
            Err(e) => {
                let e = classify("head", &full, e);
                if e.class == ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let full = self.key(prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("list", &full, e))?;
            for o in page.contents() {
                let Some(k) = o.key() else { continue };
                let Some(rel) = k.strip_prefix(&self.prefix) else {
                    continue;
                };
                out.push(ObjectMeta {
                    key: rel.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified_ns: ns_of(o.last_modified()),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.key(key);
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = classify("delete", &full, e);
                if e.class == ErrorClass::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn service_errors_are_classified_with_a_hint_for_the_operator() {
        let c = |status, code| service_error(status, code);
        assert!(
            matches!(c(404, "NoSuchBucket"), (ErrorClass::NotFound, h) if h.contains("does not exist"))
        );
        assert!(
            matches!(c(403, "SignatureDoesNotMatch"), (ErrorClass::Auth, h) if h.contains("credentials"))
        );
        assert!(matches!(
            c(403, "AccessDenied"),
            (ErrorClass::Auth, " (access denied)")
        ));
        // a skewed clock is not a wrong key: the hint says what to fix
        assert!(
            matches!(c(403, "RequestTimeTooSkewed"), (ErrorClass::Auth, h) if h.contains("clock"))
        );
        // a body changed on the way is sent again
        assert!(
            matches!(c(400, "BadDigest"), (ErrorClass::Transient, h) if h.contains("other bytes"))
        );
        assert!(matches!(
            c(400, "XAmzContentChecksumMismatch"),
            (ErrorClass::Transient, _)
        ));
        assert!(matches!(c(503, "SlowDown"), (ErrorClass::Transient, "")));
        assert!(matches!(c(412, ""), (ErrorClass::AlreadyExists, "")));
        assert!(matches!(
            c(400, "InvalidArgument"),
            (ErrorClass::Permanent, "")
        ));
    }
}
