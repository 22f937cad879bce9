//! The file as written: serde types that mirror the YAML one to one.
//!
//! Every struct rejects unknown keys. Values that need checking beyond their YAML type
//! (sizes, durations, cron strings, globs) stay raw here and are checked by
//! [`crate::validate`], which reports all problems at once.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::{RawDuration, RawSize};

/// Tributary configuration file, `version: 1`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Format version of this file; must be 1.
    pub version: u32,
    /// Directory for the catalog and other state. Relative paths are relative to the
    /// directory of the configuration file. Default: `./var`.
    #[serde(default)]
    pub state_dir: Option<String>,
    /// The catalog database.
    #[serde(default)]
    pub catalog: Option<RawCatalog>,
    /// Where chunks and manifests are stored. Default: a local directory
    /// `<state_dir>/objects`.
    #[serde(default)]
    pub object_store: Option<RawObjectStore>,
    /// Chunking, compression and concurrency settings of the pipeline.
    #[serde(default)]
    pub pipeline: Option<RawPipeline>,
    /// The admin REST API of the daemon.
    #[serde(default)]
    pub api: Option<RawApi>,
    /// Daemon behaviour: concurrency, retries, retention, shutdown.
    #[serde(default)]
    pub daemon: Option<RawDaemon>,
    /// Vectorization of connectors with `vectorize: true`: text extraction, passages,
    /// embeddings and the vector store.
    #[serde(default)]
    pub vectorize: Option<RawVectorize>,
    /// The sources to ingest.
    #[serde(default)]
    pub connectors: Vec<RawConnector>,
    /// Secrets of connectors created over the API (SMB passwords, SharePoint client
    /// secrets): sealed in the catalog with this key.
    #[serde(default)]
    pub secrets: Option<RawSecrets>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    /// A key file (`tributary key generate --out FILE` writes one) that seals the inline
    /// secrets of connectors created over the API. Every instance sharing a catalog
    /// needs the same one; without it such secrets are refused.
    pub key_file: String,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVectorize {
    /// The embedding model (default: `local` with all-MiniLM-L6-v2 in
    /// `<state_dir>/models/all-MiniLM-L6-v2`).
    #[serde(default)]
    pub embedder: Option<RawEmbedder>,
    /// Where vectors are kept (default: `catalog`, in the catalog database).
    #[serde(default)]
    pub store: Option<RawVectorStore>,
    /// Largest passage in tokens (default 128, the length all-MiniLM-L6-v2 was trained on).
    #[serde(default)]
    pub passage_tokens: Option<u32>,
    /// Tokens shared by consecutive passages (default 16).
    #[serde(default)]
    pub passage_overlap: Option<u32>,
    /// Text kept per file (default 4MiB); the rest is not indexed.
    #[serde(default)]
    pub max_text_size: Option<RawSize>,
    /// Files larger than this are skipped (default 256MiB).
    #[serde(default)]
    pub max_file_size: Option<RawSize>,
    /// Wall time one file's extraction may take (default 60s).
    #[serde(default)]
    pub extract_timeout: Option<RawDuration>,
    /// Address space of an extraction worker process (default 2GiB).
    #[serde(default)]
    pub extract_memory: Option<RawSize>,
    /// Bytes a DOCX/XLSX/PPTX may decompress to (default 512MiB).
    #[serde(default)]
    pub max_decompressed_size: Option<RawSize>,
    /// Files extracted at once (default 2).
    #[serde(default)]
    pub extract_workers: Option<u32>,
    /// Attempts of a failing version before it stays failed (default 3).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Wait before retrying a failed version, doubling each time (default 1m).
    #[serde(default)]
    pub retry_backoff: Option<RawDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// A sentence-embedding model evaluated in-process on the CPU.
    Local,
    /// Any OpenAI-compatible `/v1/embeddings` endpoint.
    Openai,
    /// Ollama's `/api/embed`.
    Ollama,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedder {
    /// `local` (a model run in process), `openai` (an OpenAI-compatible embeddings
    /// API) or `ollama`.
    pub kind: EmbedderKind,
    /// local: the model directory (config.json, tokenizer.json, model.safetensors).
    #[serde(default)]
    pub model_dir: Option<String>,
    /// local: threads for inference (default: the number of CPUs).
    #[serde(default)]
    pub threads: Option<u32>,
    /// openai/ollama: base URL (openai default `https://api.openai.com`, ollama default
    /// `http://127.0.0.1:11434`).
    #[serde(default)]
    pub url: Option<String>,
    /// openai/ollama: the model name.
    #[serde(default)]
    pub model: Option<String>,
    /// openai: requested output dimensions (models that support shortening).
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// openai: API key (or `api_key_file`).
    #[serde(default)]
    pub api_key: Option<String>,
    /// openai: a file holding the API key.
    #[serde(default)]
    pub api_key_file: Option<String>,
    /// Passages per request / inference batch (default 32).
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// openai/ollama: time limit of one request (default 60s).
    #[serde(default)]
    pub timeout: Option<RawDuration>,
    /// openai/ollama: requests in flight (default 2).
    #[serde(default)]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VectorStoreKind {
    /// In the catalog database, searched by an in-memory index.
    Catalog,
    /// PostgreSQL with the pgvector extension (HNSW, cosine).
    Pgvector,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVectorStore {
    /// `catalog` (the vectors beside the catalog) or `pgvector` (a PostgreSQL database
    /// with pgvector).
    pub kind: VectorStoreKind,
    /// pgvector: `postgres://user@host:port/db` (or `url_file`, when it holds a
    /// password).
    #[serde(default)]
    pub url: Option<String>,
    /// pgvector: a file holding the URL (when it holds a password).
    #[serde(default)]
    pub url_file: Option<String>,
    /// pgvector: the table (default `tributary_passages`).
    #[serde(default)]
    pub table: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only: every GET.
    Viewer,
    /// Viewer, plus runs, pause/resume and cancel.
    Operator,
    /// Operator, plus configuration reload.
    Admin,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default)]
    pub listen: Option<String>,
    /// Bearer tokens. Without any, every route but `/health` answers 401.
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    /// Serve `/api/v1/metrics` without a token (default false).
    #[serde(default)]
    pub open_metrics: Option<bool>,
    /// Largest request body accepted (default 1MiB).
    #[serde(default)]
    pub max_body_size: Option<RawSize>,
    /// Serve HTTPS with this certificate chain and key (PEM).
    #[serde(default)]
    pub tls: Option<RawTls>,
    /// Time a client has to send a request's headers; also how long a kept-alive
    /// connection may stay idle (default 10s).
    #[serde(default)]
    pub header_read_timeout: Option<RawDuration>,
    /// Longest wait for the next piece of a request body (default 30s).
    #[serde(default)]
    pub body_read_timeout: Option<RawDuration>,
    /// Connections served at once (default 1024); more are closed on accept.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Connections served at once from one client address (default 128).
    #[serde(default)]
    pub max_connections_per_client: Option<u32>,
    /// Live event streams (`/api/v1/events`, `/api/v1/ws`) open at once (default 100);
    /// more are refused (SSE: 429; WebSocket: close code 4429).
    #[serde(default)]
    pub max_event_connections: Option<u32>,
    /// Live event streams open at once for one principal (default 20).
    #[serde(default)]
    pub max_event_connections_per_principal: Option<u32>,
    /// Request rate limits (`50/minute`, `10/s`, `off`).
    #[serde(default)]
    pub rate_limits: Option<RawRateLimits>,
    /// OpenID Connect bearer tokens (JWT access tokens of an identity provider), beside
    /// the static tokens.
    #[serde(default)]
    pub oidc: Option<RawOidc>,
    /// How long the audit trail (`GET /api/v1/audit`) keeps what it recorded (default
    /// 365d).
    #[serde(default)]
    pub audit_retention: Option<RawDuration>,
    /// How long a browser session (the dashboard's sign-in) lasts (default 12h).
    #[serde(default)]
    pub session_ttl: Option<RawDuration>,
    /// Folders under which connectors created over the API may read (their `local`
    /// `path` and their `*_file` keys). None by default: such connectors may not read
    /// local files at all.
    #[serde(default)]
    pub connector_roots: Vec<String>,
    /// Let connectors created over the API set SharePoint's `graph_url` and `token_url`
    /// (default false: they reach Microsoft's endpoints only).
    #[serde(default)]
    pub allow_endpoint_overrides: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    /// The issuer (`iss`), whose `/.well-known/openid-configuration` names the keys;
    /// https (http only on loopback).
    pub issuer: String,
    /// The audience (`aud`) tokens must be issued for: one or a list.
    pub audience: OneOrMany,
    /// The claim that holds the caller's roles (a string or an array; a dotted path
    /// reaches into objects, e.g. `realm_access.roles`). Default `roles`.
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Claim value → role. Without it the values `viewer`, `operator` and `admin` are
    /// the roles.
    #[serde(default)]
    pub role_map: Option<std::collections::BTreeMap<String, Role>>,
    /// Only tokens issued to these clients (`azp`, `client_id` or `appid`).
    #[serde(default)]
    pub allowed_clients: Option<Vec<String>>,
    /// Sign in to the dashboard through this provider (authorization code + PKCE).
    #[serde(default)]
    pub sign_in: Option<RawOidcSignIn>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOidcSignIn {
    /// The client id the daemon is registered under at the provider, with
    /// `<api>/api/v1/session/oidc/callback` as a redirect URI.
    pub client_id: String,
    /// A confidential client's secret (or `client_secret_file`); leave both out for a
    /// public client (PKCE protects the exchange either way).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// A file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// Scopes asked for (default `openid profile`; `openid` is always added). Add
    /// what makes the provider issue an access token for this API's audience, e.g.
    /// `api://tributary/.default` on Entra ID.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// An RFC 8707 resource indicator to send (for providers that pick the access
    /// token's audience by it).
    #[serde(default)]
    pub resource: Option<String>,
    /// The redirect URI registered at the provider, when the API is reached through a
    /// proxy under another name (default: `/api/v1/session/oidc/callback` on the host
    /// the browser used).
    #[serde(default)]
    pub redirect_url: Option<String>,
}

/// One value or a list of them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    /// Every request from one client address (default `6000/minute`).
    #[serde(default)]
    pub client: Option<String>,
    /// GET and HEAD requests of one principal (default `3000/minute`).
    #[serde(default)]
    pub read: Option<String>,
    /// Other requests of one principal (default `600/minute`).
    #[serde(default)]
    pub write: Option<String>,
    /// Failed authentications from one client address (default `50/minute`); past it,
    /// every request with credentials from that address is refused until the window ends.
    #[serde(default)]
    pub failed_auth: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// The certificate chain (PEM), leaf first.
    pub cert_file: String,
    /// Its private key (PEM).
    pub key_file: String,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// A name for logs and audit.
    pub name: String,
    /// What the token may do: `viewer` (every GET), `operator` (+ runs, pause/resume,
    /// cancel, conflict resolutions), `admin` (+ reload, audit, connector changes).
    pub role: Role,
    /// Hex SHA-256 of the token (`printf %s TOKEN | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// A file holding the token itself.
    #[serde(default)]
    pub token_file: Option<String>,
    /// The token inline (prefer `token_sha256` or `token_file`).
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// This instance's name among the daemon instances sharing one catalog (1 to 64
    /// letters, digits, `.`, `_`, `-`); default: the host's name and a random suffix,
    /// kept in the state directory's `instance-id` file.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Jobs running at once across connectors (default 2).
    #[serde(default)]
    pub max_concurrent_jobs: Option<usize>,
    /// How long a stop waits for files in flight (default 30s).
    #[serde(default)]
    pub shutdown_deadline: Option<RawDuration>,
    /// Attempts after the first failure of a file before it stays failed (default 3).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// Wait before the first retry of a failed file, doubling each time (default 10m).
    #[serde(default)]
    pub retry_backoff: Option<RawDuration>,
    /// How long change-feed rows are kept (default 90d).
    #[serde(default)]
    pub change_retention: Option<RawDuration>,
    /// How long superseded versions and tombstones are kept (default 365d); restores
    /// `--at` a moment older than this are no longer exact.
    #[serde(default)]
    pub version_retention: Option<RawDuration>,
    /// Quiet time after file-system events before a watch job starts (default 2s).
    #[serde(default)]
    pub watch_debounce: Option<RawDuration>,
    /// How long a running job's lease on its connector lasts without renewal (default
    /// 30s, at least 3s): an instance that stops renewing it (dead, frozen, cut off
    /// from the catalog) loses the connector, which another instance then continues.
    /// The lease is renewed every sixth of it.
    #[serde(default)]
    pub lease_ttl: Option<RawDuration>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    /// `sqlite://PATH` (relative paths are relative to the configuration file), or
    /// `postgres://USER@HOST:PORT/DB` (PostgreSQL 15 or later; TLS with the URL's
    /// `sslmode` and `sslrootcert` parameters; the password from `password_file`, the
    /// standard `PGPASSWORD`/`PGPASSFILE` environment, or the URL).
    pub url: String,
    /// PostgreSQL: the password, as a file holding it.
    #[serde(default)]
    pub password_file: Option<String>,
    /// PostgreSQL: how many connections the daemon keeps at most. Default 8.
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// PostgreSQL: `statement_timeout` of every connection (e.g. `60s`). Default: none.
    #[serde(default)]
    pub statement_timeout: Option<RawDuration>,
    /// PostgreSQL: how long to wait for a connection before failing. Default `10s`.
    #[serde(default)]
    pub connect_timeout: Option<RawDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Local,
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SseKind {
    /// SSE-S3 (`AES256`).
    Aes256,
    /// SSE-KMS; needs `sse_kms_key_id`.
    Kms,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawObjectStore {
    /// `local` (a directory) or `s3` (any S3-compatible server).
    pub kind: StoreKind,
    /// local: the directory.
    #[serde(default)]
    pub path: Option<String>,
    /// s3: endpoint URL (omit for AWS).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// s3: bucket name.
    #[serde(default)]
    pub bucket: Option<String>,
    /// s3: key prefix inside the bucket.
    #[serde(default)]
    pub prefix: Option<String>,
    /// s3: region (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// s3: path-style addressing (needed by most self-hosted servers). Default true when
    /// an endpoint is given.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// s3: access key id; with the secret, static credentials. Without both, the
    /// environment and the AWS default chain are used.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// s3: a file holding the access key id.
    #[serde(default)]
    pub access_key_id_file: Option<String>,
    /// s3: the secret access key (better `secret_access_key_file`).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// s3: a file holding the secret access key.
    #[serde(default)]
    pub secret_access_key_file: Option<String>,
    /// s3: server-side encryption.
    #[serde(default)]
    pub sse: Option<SseKind>,
    /// s3: the KMS key of SSE-KMS (`sse`).
    #[serde(default)]
    pub sse_kms_key_id: Option<String>,
    /// s3: timeout of one request attempt (default 60s).
    #[serde(default)]
    pub request_timeout: Option<RawDuration>,
    /// Client-side encryption of everything written to the store (any kind).
    #[serde(default)]
    pub encryption: Option<RawEncryption>,
}

/// Client-side encryption: packs, their indexes and manifests are sealed
/// (XChaCha20-Poly1305) and chunk ids and boundaries are keyed, so the bucket reveals
/// neither content nor names. The catalog on the daemon's own disk stays in the clear.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEncryption {
    /// A key file written by `tributary key generate` (mode 0600). Keep a copy apart
    /// from the store: without one of its key files, a store cannot be read.
    pub key_file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zstd,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// FastCDC minimum chunk size (default 64KiB).
    #[serde(default)]
    pub chunk_min_size: Option<RawSize>,
    /// FastCDC average chunk size (default 256KiB): smaller chunks find more of an edited file's
    /// bytes already stored, at the cost of more catalog rows.
    #[serde(default)]
    pub chunk_avg_size: Option<RawSize>,
    /// FastCDC maximum chunk size (default 2MiB).
    #[serde(default)]
    pub chunk_max_size: Option<RawSize>,
    /// Chunk compression; a compressed chunk is kept only when smaller (default zstd).
    #[serde(default)]
    pub compression: Option<Compression>,
    /// zstd level (default 3).
    #[serde(default)]
    pub zstd_level: Option<i32>,
    /// Files read at the same time per job (default 4).
    #[serde(default)]
    pub file_concurrency: Option<usize>,
    /// Chunk uploads in flight per job (default 8).
    #[serde(default)]
    pub upload_concurrency: Option<usize>,
    /// Bound on chunk bytes read but not yet uploaded (default 16MiB).
    #[serde(default)]
    pub max_bytes_in_flight: Option<RawSize>,
    /// Target size of the pack objects chunks are stored in (default 4MiB, 1MiB to
    /// 128MiB): larger packs mean fewer requests, smaller ones less memory and finer gc.
    /// A job fills one pack per file worker (`file_concurrency`), each file's chunks back
    /// to back, so a restore reads a file with one request per pack.
    #[serde(default)]
    pub pack_size: Option<RawSize>,
    /// Versions per catalog transaction and manifest (default 256).
    #[serde(default)]
    pub commit_batch_size: Option<usize>,
    /// How often a file that changes while being read is read again in one job before it
    /// is failed for this run (default 3).
    #[serde(default)]
    pub torn_read_retries: Option<u32>,
    /// Upload attempts per object before the item fails (default 10).
    #[serde(default)]
    pub upload_max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    Local,
    Smb,
    Sharepoint,
}

/// The oldest SMB dialect a connector accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmbProtocol {
    Smb1,
    Smb2,
    Smb3,
}

/// How a connector's claim on a path that another claim already holds is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Record an open conflict; the path waits for an operator (nothing is overwritten).
    #[default]
    Manual,
    /// This connector's claim replaces the owner (whose bytes stay retrievable).
    SourceWins,
    /// The newer source mtime wins; ties go to the connector listed first.
    NewestWins,
    /// This connector's claim is stored beside the owner as
    /// `name (conflict <connector> <YYYYMMDDTHHMMSSZ>).ext`.
    KeepBoth,
}

/// A storage quota over a connector's current content: a new or grown file that would
/// pass it is held as an item error (`QUOTA_EXCEEDED`) until there is room.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    /// The most logical bytes (file sizes added up) its live files may hold, e.g. `50GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<RawSize>,
    /// The most live files it may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u64>,
}

/// One source. Keys that belong to another `kind` are rejected by validation
/// (`validate::KIND_KEYS` says which kinds each key belongs to).
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConnector {
    /// Unique id: lowercase letters, digits, `-` and `_`.
    pub id: String,
    /// The source: `local` (a folder), `smb` (a share) or `sharepoint` (a document
    /// library through Microsoft Graph).
    pub kind: ConnectorKind,
    /// local: the folder to ingest; smb: a folder inside the share (default: its root).
    #[serde(default)]
    pub path: Option<String>,
    /// smb: the file server (host name or address).
    #[serde(default)]
    pub server: Option<String>,
    /// smb: TCP port (default 445).
    #[serde(default)]
    pub port: Option<u16>,
    /// smb: the share name.
    #[serde(default)]
    pub share: Option<String>,
    /// smb: domain or workgroup (default WORKGROUP).
    #[serde(default)]
    pub domain: Option<String>,
    /// smb: user name.
    #[serde(default)]
    pub username: Option<String>,
    /// smb: password (or `password_file`).
    #[serde(default)]
    pub password: Option<String>,
    /// smb: a file holding the password.
    #[serde(default)]
    pub password_file: Option<String>,
    /// smb: the oldest protocol accepted: `smb2` (default), `smb3`, or `smb1` (only for
    /// legacy devices; insecure).
    #[serde(default)]
    pub protocol: Option<SmbProtocol>,
    /// smb: how long one server call (a directory listing, a read) may take before the
    /// worker is considered hung (default 60s).
    #[serde(default)]
    pub directory_timeout: Option<RawDuration>,
    /// smb: worker processes for this connector (default 1; libsmbclient serializes
    /// every call of a process).
    #[serde(default)]
    pub workers: Option<u32>,
    /// sharepoint: the Entra ID (Azure AD) tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// sharepoint: the app registration's client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// sharepoint: the app's client secret (or `client_secret_file`).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// sharepoint: a file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// sharepoint: certificate credentials instead of a secret: the certificate
    /// registered with the app (PEM) and its RSA private key (PEM).
    #[serde(default)]
    pub certificate_file: Option<String>,
    /// sharepoint: the certificate's RSA private key (PEM).
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// sharepoint: the site, by id or as `host:/sites/name`.
    #[serde(default)]
    pub site: Option<String>,
    /// sharepoint: document libraries by name (default: every library of the site).
    #[serde(default)]
    pub drives: Vec<String>,
    /// sharepoint: Microsoft Graph's base URL (https; http only on loopback, for tests).
    #[serde(default)]
    pub graph_url: Option<String>,
    /// sharepoint: the OAuth token endpoint (default: login.microsoftonline.com for the
    /// tenant; https, http only on loopback).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Prefix in the catalog namespace (default `/<id>`).
    #[serde(default)]
    pub target: Option<String>,
    /// Cron expression: 5 fields (minute hour day month weekday) or 6 with seconds.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Time zone of `schedule`: `UTC` (default), an IANA name (`Europe/Paris`) or a
    /// fixed offset (`+02:00`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Only paths matching one of these globs (relative to the source root; `**` spans
    /// folders) are ingested. Default: everything.
    #[serde(default)]
    pub include: Vec<String>,
    /// Paths matching one of these globs are skipped (a matching folder is not entered).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Match include/exclude globs case-insensitively (default false).
    #[serde(default)]
    pub glob_case_insensitive: Option<bool>,
    /// Files larger than this are skipped and counted.
    #[serde(default)]
    pub max_file_size: Option<RawSize>,
    /// local: follow symbolic links (default false; loops are detected when true).
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    /// local: stay on the file system of `path` (default true).
    #[serde(default)]
    pub one_file_system: Option<bool>,
    /// local: run incremental jobs on file-system events.
    #[serde(default)]
    pub watch: Option<bool>,
    /// A job that would delete more than this percentage of the connector's live items
    /// deletes nothing and opens a `mass_delete` conflict (default 50).
    #[serde(default)]
    pub max_delete_percent: Option<f64>,
    /// Limits on the current content of the connector's target (default: none).
    #[serde(default)]
    pub quota: Option<RawQuota>,
    /// How claims on a path another claim holds are decided (default `manual`).
    #[serde(default)]
    pub conflict_policy: Option<ConflictPolicy>,
    /// Whether names differing only by case are different files in this source
    /// (default: local true, smb and sharepoint false). Two connectors sharing a target
    /// are compared case-insensitively if either of them is.
    #[serde(default)]
    pub case_sensitive: Option<bool>,
    /// sharepoint: read each file's permissions and store the principals with its
    /// versions, so that search can filter by principal (default false; complete lists
    /// need the Sites.FullControl.All application permission).
    #[serde(default)]
    pub permissions: Option<bool>,
    /// sharepoint: read every file's permissions again this often, whatever delta
    /// reports (default 7d).
    #[serde(default)]
    pub permissions_rescan: Option<RawDuration>,
    /// sharepoint: a download that delivers no bytes for this long is cut and resumed
    /// where it stopped (default 60s; there is no whole-download timeout).
    #[serde(default)]
    pub read_timeout: Option<RawDuration>,
    /// Extract, embed and index this connector's documents (default false).
    #[serde(default)]
    pub vectorize: Option<bool>,
    /// The instances (their `daemon.instance_id`) that may run this connector's jobs,
    /// e.g. the hosts that mount its folder (default: any instance).
    #[serde(default)]
    pub instances: Option<Vec<String>>,
}
