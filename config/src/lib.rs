//! YAML configuration: read, interpolate, parse, validate into [`Config`].
//!
//! Two phases, as in ripgrep's low/high args: [`raw`] mirrors the file and rejects
//! unknown keys; [`validate`] turns it into typed values, collecting every semantic
//! problem at once, each with `file:line:column` (from [`positions`]), the key path and
//! what was expected. The only I/O is reading the configuration file and the `*_file`
//! secrets it names; the environment is passed in, never read here.

pub mod api_connector;
pub mod interpolate;
pub mod positions;
pub mod raw;
pub mod redact;
pub mod reference;
pub mod units;
mod validate;
pub use units::Rate;
pub use validate::{parse_schedule, valid_instance_id};

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::{
    Compression, ConflictPolicy, ConnectorKind, EmbedderKind, Role, SmbProtocol, SseKind, StoreKind,
};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    pub state_dir: PathBuf,
    pub catalog: CatalogConfig,
    pub object_store: ObjectStoreConfig,
    /// `object_store.encryption.key_file`: the store is encrypted with this key file.
    pub store_key_file: Option<PathBuf>,
    pub pipeline: PipelineConfig,
    pub api: ApiConfig,
    pub daemon: DaemonConfig,
    pub vectorize: VectorizeConfig,
    pub connectors: Vec<ConnectorConfig>,
    /// `secrets.key_file`: seals the inline secrets of connectors created over the API.
    pub secrets_key_file: Option<PathBuf>,
}

impl Config {
    /// Ids of the connectors with `vectorize: true`.
    pub fn vectorized_connectors(&self) -> Vec<String> {
        self.connectors
            .iter()
            .filter(|c| c.vectorize)
            .map(|c| c.id.clone())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct VectorizeConfig {
    pub embedder: EmbedderConfig,
    pub store: VectorStoreConfig,
    pub passage_tokens: usize,
    pub passage_overlap: usize,
    pub max_text_bytes: usize,
    pub max_file_size: u64,
    pub extract_timeout: Duration,
    pub extract_memory: u64,
    pub max_decompressed_bytes: u64,
    pub extract_workers: usize,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
}

impl VectorizeConfig {
    /// The defaults, with the local model in `<state_dir>/models/all-MiniLM-L6-v2`.
    pub fn with_state_dir(state_dir: &Path) -> VectorizeConfig {
        VectorizeConfig {
            embedder: EmbedderConfig::Local {
                model_dir: state_dir.join("models").join("all-MiniLM-L6-v2"),
                threads: 0,
                batch_size: 32,
            },
            store: VectorStoreConfig::Catalog,
            passage_tokens: 128,
            passage_overlap: 16,
            max_text_bytes: 4 << 20,
            max_file_size: 256 << 20,
            extract_timeout: Duration::from_secs(60),
            extract_memory: 2 << 30,
            max_decompressed_bytes: 512 << 20,
            extract_workers: 2,
            max_attempts: 3,
            retry_backoff: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub enum EmbedderConfig {
    Local {
        model_dir: PathBuf,
        /// 0 = the number of CPUs.
        threads: usize,
        batch_size: usize,
    },
    OpenAi {
        url: String,
        model: String,
        dimensions: Option<usize>,
        api_key: Option<Secret>,
        batch_size: usize,
        timeout: Duration,
        concurrency: usize,
    },
    Ollama {
        url: String,
        model: String,
        batch_size: usize,
        timeout: Duration,
        concurrency: usize,
    },
}

#[derive(Debug, Clone)]
pub enum VectorStoreConfig {
    Catalog,
    Pgvector {
        /// `postgres://…` (may hold a password).
        url: Secret,
        table: String,
    },
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: std::net::SocketAddr,
    pub tokens: Vec<ApiToken>,
    pub open_metrics: bool,
    pub max_body_size: u64,
    /// HTTPS: (certificate chain, private key) PEM files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// For a request's headers, and for an idle kept-alive connection.
    pub header_read_timeout: Duration,
    /// For the next piece of a request body.
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Live event streams open at once, in all and per principal.
    pub max_event_connections: usize,
    pub max_event_connections_per_principal: usize,
    pub rate_limits: RateLimits,
    pub oidc: Option<OidcConfig>,
    /// How long the audit trail keeps a row.
    pub audit_retention: Duration,
    /// How long a browser session lasts.
    pub session_ttl: Duration,
    /// Folders connectors created over the API may read under (none: no local files).
    pub connector_roots: Vec<PathBuf>,
    /// Whether connectors created over the API may set SharePoint's endpoints.
    pub allow_endpoint_overrides: bool,
}

/// OpenID Connect bearer tokens, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// Without a trailing `/`.
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Dotted path of the roles claim.
    pub roles_claim: String,
    /// Claim value → role; empty: `viewer`, `operator`, `admin` are the roles.
    pub role_map: std::collections::BTreeMap<String, Role>,
    /// Empty: any client.
    pub allowed_clients: Vec<String>,
    /// Browser sign-in through the provider (authorization code + PKCE), when set.
    pub sign_in: Option<OidcSignIn>,
}

/// The dashboard's sign-in through the OpenID provider: the client the daemon is
/// registered as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSignIn {
    pub client_id: String,
    /// A confidential client's secret (sent with HTTP Basic); none: a public client.
    pub client_secret: Option<Secret>,
    /// Asked for at the provider; `openid` always among them.
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicator sent with the requests, when the provider needs one
    /// to issue an access token for this API.
    pub resource: Option<String>,
    /// Where the provider sends the browser back; none: this API's own
    /// `/api/v1/session/oidc/callback` on the host the browser used.
    pub redirect_url: Option<String>,
}

/// Request rate limits (`None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Every request, per client address.
    pub client: Option<Rate>,
    /// GET/HEAD, per principal.
    pub read: Option<Rate>,
    /// Other methods, per principal.
    pub write: Option<Rate>,
    /// Failed authentications, per client address.
    pub failed_auth: Option<Rate>,
}

impl Default for RateLimits {
    fn default() -> Self {
        let per_minute = |count| {
            Some(Rate {
                count,
                per: Duration::from_secs(60),
            })
        };
        RateLimits {
            client: per_minute(6000),
            read: per_minute(3000),
            write: per_minute(600),
            failed_auth: per_minute(50),
        }
    }
}

/// A bearer token, kept only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// This instance's name among the instances sharing a catalog; `None`: the host's
    /// name and a random suffix, kept in the state directory (`instance-id`).
    pub instance_id: Option<String>,
    pub max_concurrent_jobs: usize,
    pub shutdown_deadline: Duration,
    pub max_retries: u32,
    pub retry_backoff: Duration,
    pub change_retention: Duration,
    pub version_retention: Duration,
    pub watch_debounce: Duration,
    /// A running job's lease on its connector (see [`raw::RawDaemon::lease_ttl`]).
    pub lease_ttl: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            instance_id: None,
            max_concurrent_jobs: 2,
            shutdown_deadline: Duration::from_secs(30),
            max_retries: 3,
            retry_backoff: Duration::from_secs(600),
            change_retention: Duration::from_secs(90 * 86400),
            version_retention: Duration::from_secs(365 * 86400),
            watch_debounce: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(30),
        }
    }
}

impl Config {
    pub fn connector(&self, id: &str) -> Option<&ConnectorConfig> {
        self.connectors.iter().find(|c| c.id == id)
    }
}

#[derive(Debug, Clone)]
pub enum CatalogConfig {
    Sqlite { path: PathBuf },
    Postgres(PostgresCatalog),
}

/// A PostgreSQL catalog (`catalog.url: postgres://…`).
#[derive(Debug, Clone)]
pub struct PostgresCatalog {
    /// The URL as written (a password in it is registered as a secret).
    pub url: String,
    pub password: Option<Secret>,
    pub pool_size: u32,
    pub statement_timeout: Option<Duration>,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum ObjectStoreConfig {
    Local { path: PathBuf },
    S3(S3Config),
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub bucket: String,
    pub prefix: String,
    pub region: String,
    pub path_style: bool,
    /// Static credentials; `None` means environment / default chain.
    pub credentials: Option<(String, Secret)>,
    pub sse: Option<SseKind>,
    pub sse_kms_key_id: Option<String>,
    pub request_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub chunk_min_size: u32,
    pub chunk_avg_size: u32,
    pub chunk_max_size: u32,
    pub compression: Compression,
    pub zstd_level: i32,
    pub file_concurrency: usize,
    pub upload_concurrency: usize,
    pub max_bytes_in_flight: u64,
    pub pack_size: u64,
    pub commit_batch_size: usize,
    pub torn_read_retries: u32,
    pub upload_max_attempts: u32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            chunk_min_size: 64 << 10,
            chunk_avg_size: 256 << 10,
            chunk_max_size: 2 << 20,
            compression: Compression::Zstd,
            zstd_level: 3,
            file_concurrency: 4,
            upload_concurrency: 8,
            max_bytes_in_flight: 16 << 20,
            pack_size: 4 << 20,
            commit_batch_size: 256,
            torn_read_retries: 3,
            upload_max_attempts: 10,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub id: String,
    pub kind: ConnectorKind,
    /// Target prefix in the catalog namespace: starts with `/`, no trailing `/`
    /// (the root is the empty string).
    pub target: String,
    pub schedule: Option<Schedule>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub glob_case_insensitive: bool,
    pub max_file_size: Option<u64>,
    pub max_delete_percent: f64,
    /// Limits on its current content.
    pub quota: Quota,
    pub conflict_policy: ConflictPolicy,
    pub case_sensitive: bool,
    pub watch: bool,
    pub vectorize: bool,
    /// The instances that may run its jobs (empty: any).
    pub instances: Vec<String>,
    pub source: SourceConfig,
    /// Where it is defined.
    pub origin: Origin,
    /// The connector as written (its YAML form, as JSON), every secret replaced by
    /// `{"set": true}`.
    pub spec: serde_json::Value,
}

/// A connector's storage quota (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub max_bytes: Option<u64>,
    pub max_files: Option<u64>,
}

/// Where a connector is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file.
    File,
    /// Created over the admin API and stored in the catalog, at this revision.
    Api { revision: i64 },
}

impl ConnectorConfig {
    /// Whether instance `id` may run this connector's jobs.
    pub fn runs_on(&self, id: &str) -> bool {
        self.instances.is_empty() || self.instances.iter().any(|i| i == id)
    }

    /// Whether a reload leaves this connector as it is: every setting, secrets included
    /// (their `Debug` form is redacted, so they are compared on their own).
    pub fn same_settings(&self, other: &ConnectorConfig) -> bool {
        let secrets = |c: &ConnectorConfig| match &c.source {
            SourceConfig::Smb(s) => Some(s.password.expose().to_string()),
            SourceConfig::SharePoint(s) => Some(s.credential.secret().to_string()),
            SourceConfig::Local { .. } => None,
        };
        format!("{self:?}") == format!("{other:?}") && secrets(self) == secrets(other)
    }
}

#[derive(Debug, Clone)]
pub enum SourceConfig {
    Local {
        path: PathBuf,
        follow_symlinks: bool,
        one_file_system: bool,
    },
    Smb(SmbSource),
    SharePoint(SharePointSource),
}

#[derive(Debug, Clone)]
pub struct SharePointSource {
    pub tenant_id: String,
    pub client_id: String,
    pub credential: SharePointCredential,
    pub site: String,
    pub drives: Vec<String>,
    pub graph_url: String,
    pub token_url: String,
    pub permissions: bool,
    pub permissions_rescan: Duration,
    /// A download stalled this long is cut and resumed with `Range`.
    pub read_timeout: Duration,
}

/// How the SharePoint connector authenticates to Entra ID.
#[derive(Debug, Clone)]
pub enum SharePointCredential {
    Secret(Secret),
    /// A certificate registered with the app (PEM) and its private key (PEM): every
    /// token request carries a freshly signed assertion.
    Certificate {
        cert_pem: String,
        key_pem: Secret,
    },
}

impl SharePointCredential {
    /// The secret part, to compare on reload.
    pub fn secret(&self) -> &str {
        match self {
            SharePointCredential::Secret(s) => s.expose(),
            SharePointCredential::Certificate { key_pem, .. } => key_pem.expose(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmbSource {
    pub server: String,
    pub port: u16,
    pub share: String,
    /// Folder inside the share, without leading or trailing `/` (empty: the root).
    pub path: String,
    pub domain: String,
    pub username: String,
    pub password: Secret,
    pub protocol: SmbProtocol,
    pub timeout: std::time::Duration,
    pub workers: usize,
}

/// A parsed cron schedule, its time zone and the expression the user wrote.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    pub cron: cron::Schedule,
    pub zone: Zone,
}

/// The time zone a schedule is read in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Fixed(chrono::FixedOffset),
    Named(chrono_tz::Tz),
}

impl Zone {
    pub fn name(&self) -> String {
        match self {
            Zone::Fixed(o) if o.local_minus_utc() == 0 => "UTC".into(),
            Zone::Fixed(o) => o.to_string(),
            Zone::Named(tz) => tz.name().to_string(),
        }
    }
}

impl Schedule {
    /// The first firing strictly after `after`.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.zone {
            Zone::Fixed(o) => self
                .cron
                .after(&after.with_timezone(&o))
                .next()
                .map(|t| t.with_timezone(&chrono::Utc)),
            // DST gaps and repeats are resolved by the cron crate in the named zone
            Zone::Named(tz) => self
                .cron
                .after(&after.with_timezone(&tz))
                .next()
                .map(|t| t.with_timezone(&chrono::Utc)),
        }
    }
}

/// A secret value: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret; [`redact`] masks it from now on.
    pub fn new(s: impl Into<String>) -> Secret {
        let s = s.into();
        redact::register(&s);
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, where known.
    pub pos: Option<positions::Pos>,
    /// Dotted key path, e.g. `connectors[1].schedule`; empty for the whole document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A loaded configuration and the warnings worth showing (never fatal).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Reads, interpolates, parses and validates the file at `path`.
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            pos: None,
            path: String::new(),
            message: format!("cannot read configuration file: {e}"),
        }])
    })?;
    load_str(path, &text, env)
}

/// As [`load`], with the text already read (`path` names it in messages and anchors
/// relative paths).
pub fn load_str(
    path: &Path,
    text: &str,
    env: &HashMap<String, String>,
) -> Result<Loaded, ConfigErrors> {
    let err = |pos, key: &str, message: String| ConfigError {
        file: path.to_path_buf(),
        pos,
        path: key.to_string(),
        message,
    };
    let text = interpolate::interpolate(text, env).map_err(|errs| {
        ConfigErrors(
            errs.into_iter()
                .map(|e| {
                    err(
                        Some(positions::Pos {
                            line: e.line,
                            column: e.column,
                        }),
                        "",
                        e.message,
                    )
                })
                .collect(),
        )
    })?;
    let de = serde_yaml::Deserializer::from_str(&text);
    let raw: raw::RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let inner = e.into_inner();
        let loc = inner.location();
        let pos = loc.as_ref().map(|l| positions::Pos {
            line: l.line(),
            column: l.column(),
        });
        let mut msg = inner.to_string();
        // serde_yaml repeats the path in front and the position inside its message;
        // both are printed once, in front, instead
        if let Some((head, rest)) = msg.split_once(": ")
            && !head.contains(' ')
            && key.starts_with(head)
        {
            msg = rest.to_string();
        }
        msg = plain_types(&msg);
        if let Some(l) = loc {
            msg = msg.replacen(
                &format!(" at line {} column {}", l.line(), l.column()),
                "",
                1,
            );
        }
        ConfigErrors(vec![err(pos, &key, msg)])
    })?;
    let positions = positions::Positions::index(&text);
    validate::validate(path, raw, &positions)
}

/// Rust type names in serde messages, in the words of a configuration file.
pub(crate) fn plain_types(msg: &str) -> String {
    let mut out = msg.to_string();
    for (rust, plain) in [
        ("expected usize", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected i32", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        out = out.replace(rust, plain);
    }
    if let Some(i) = out.find("expected struct Raw") {
        out.truncate(i);
        out.push_str("expected a mapping of keys");
    }
    out
}

/// The JSON Schema of the configuration file, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(raw::RawConfig)).expect("schema serializes")
}
