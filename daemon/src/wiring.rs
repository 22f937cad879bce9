//! Configuration → implementations: catalog, object store, connectors, pipeline,
//! embedder and vector store.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tributary_catalog::{Catalog, PgSettings};
use tributary_config::{
    CatalogConfig, Compression, Config, ConfigErrors, ConnectorConfig, EmbedderConfig,
    ObjectStoreConfig, SourceConfig, SseKind, VectorStoreConfig, VectorizeConfig,
};
use tributary_connectors::Connector;
use tributary_connectors::filter::Filter;
use tributary_connectors::local::{LocalConnector, LocalSettings};
use tributary_pipeline::chunking::ChunkParams;
use tributary_pipeline::{Pipeline, Settings};
use tributary_store::ObjectStore;
use tributary_store::crypt::Kek;
use tributary_store::format::StoreFormat;
use tributary_store::local::LocalStore;
use tributary_store::retry::RetryPolicy;
use tributary_store::s3::{S3Settings, S3Store, Sse};

/// Loads the configuration with the process environment; prints warnings.
pub fn load_config(path: &Path) -> Result<Config, ConfigErrors> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let loaded = tributary_config::load(path, &env)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded.config)
}

/// The catalog, with pending migrations applied (on PostgreSQL under an advisory lock:
/// instances starting together do not race). A catalog at a newer schema than this
/// binary is refused.
pub async fn open_catalog(cfg: &Config) -> anyhow::Result<Catalog> {
    open_catalog_with(cfg, None).await
}

async fn open_catalog_with(cfg: &Config, idle: Option<Duration>) -> anyhow::Result<Catalog> {
    match &cfg.catalog {
        CatalogConfig::Sqlite { path } => Catalog::open_sqlite(path)
            .await
            .with_context(|| format!("open catalog {}", path.display())),
        CatalogConfig::Postgres(p) => {
            let mut settings = pg_settings(p);
            settings.idle_in_transaction_timeout = idle;
            Ok(Catalog::open_postgres(&settings).await?)
        }
    }
}

/// The catalog as it is, without applying migrations (`check --connect`, `migrate
/// --dry-run`).
pub async fn connect_catalog(cfg: &Config) -> anyhow::Result<Catalog> {
    match &cfg.catalog {
        CatalogConfig::Sqlite { path } => Catalog::connect_sqlite(path)
            .await
            .with_context(|| format!("open catalog {}", path.display())),
        CatalogConfig::Postgres(p) => Ok(Catalog::connect_postgres(&pg_settings(p)).await?),
    }
}

/// Where the catalog is, for messages: its file, or its server without the password.
pub fn describe_catalog(cfg: &Config) -> String {
    match &cfg.catalog {
        CatalogConfig::Sqlite { path } => format!("sqlite://{}", path.display()),
        CatalogConfig::Postgres(p) => pg_settings(p).display(),
    }
}

fn pg_settings(p: &tributary_config::PostgresCatalog) -> PgSettings {
    PgSettings {
        url: p.url.clone(),
        password: p.password.as_ref().map(|s| s.expose().to_string()),
        pool_size: p.pool_size,
        statement_timeout: p.statement_timeout,
        connect_timeout: p.connect_timeout,
        idle_in_transaction_timeout: None,
    }
}

/// The object store as every command reads and writes it: reachable, its format known
/// (a new store is marked) and, when encrypted, unlocked with the configured key file
/// ([`tributary_store::keyring::open`]), the whole retried for a few seconds over
/// transient failures ([`tributary_store::open::open_bucket`]). A missing or wrong key
/// is this one error, before anything is written.
pub async fn open_bucket(cfg: &Config) -> anyhow::Result<(Arc<dyn ObjectStore>, StoreFormat)> {
    let raw = open_store(cfg).await?;
    let kek = store_key(cfg)?;
    let what = raw.describe();
    tributary_store::open::open_bucket(
        raw,
        kek.as_ref(),
        tributary_store::open::OPEN_RETRY,
        |attempt, e| tracing::warn!(attempt, "object store {what}: {e}; trying again"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("object store {what}: {e}"))
}

/// The configured store key file, read.
pub fn store_key(cfg: &Config) -> anyhow::Result<Option<Kek>> {
    cfg.store_key_file
        .as_deref()
        .map(Kek::load)
        .transpose()
        .map_err(|e| anyhow::anyhow!("object_store.encryption.key_file: {e}"))
}

/// The object store as configured, not yet opened: [`open_bucket`] is what commands
/// use.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match &cfg.object_store {
        ObjectStoreConfig::Local { path } => Arc::new(LocalStore::new(path)?),
        ObjectStoreConfig::S3(s) => Arc::new(
            S3Store::new(S3Settings {
                endpoint: s.endpoint.clone(),
                bucket: s.bucket.clone(),
                prefix: s.prefix.clone(),
                region: s.region.clone(),
                path_style: s.path_style,
                credentials: s
                    .credentials
                    .as_ref()
                    .map(|(k, v)| (k.clone(), v.expose().to_string())),
                sse: match s.sse {
                    None => None,
                    Some(SseKind::Aes256) => Some(Sse::Aes256),
                    Some(SseKind::Kms) => Some(Sse::Kms {
                        key_id: s.sse_kms_key_id.clone().unwrap_or_default(),
                    }),
                },
                request_timeout: s.request_timeout,
            })
            .await,
        ),
    })
}

pub fn settings(cfg: &Config) -> Settings {
    let p = &cfg.pipeline;
    Settings {
        chunk: ChunkParams {
            min: p.chunk_min_size,
            avg: p.chunk_avg_size,
            max: p.chunk_max_size,
        },
        zstd_level: match p.compression {
            Compression::None => None,
            Compression::Zstd => Some(p.zstd_level),
        },
        file_concurrency: p.file_concurrency,
        upload_concurrency: p.upload_concurrency,
        max_bytes_in_flight: p.max_bytes_in_flight,
        pack_size: p.pack_size,
        commit_batch_size: p.commit_batch_size,
        torn_read_retries: p.torn_read_retries,
        retry: RetryPolicy {
            max_attempts: p.upload_max_attempts,
            ..RetryPolicy::default()
        },
        ..Settings::default()
    }
}

pub fn connector(c: &ConnectorConfig) -> anyhow::Result<Arc<dyn Connector>> {
    let filter =
        Filter::new(&c.include, &c.exclude, c.glob_case_insensitive).map_err(anyhow::Error::msg)?;
    match &c.source {
        SourceConfig::Local {
            path,
            follow_symlinks,
            one_file_system,
        } => Ok(Arc::new(LocalConnector::new(
            c.id.clone(),
            LocalSettings {
                root: path.clone(),
                filter,
                max_file_size: c.max_file_size,
                follow_symlinks: *follow_symlinks,
                one_file_system: *one_file_system,
            },
        ))),
        SourceConfig::SharePoint(s) => {
            use tributary_connector_sharepoint::{
                Credential, SharePointConnector, SharePointSettings,
            };
            Ok(Arc::new(
                SharePointConnector::new(
                    c.id.clone(),
                    SharePointSettings {
                        graph_url: s.graph_url.clone(),
                        token_url: s.token_url.clone(),
                        client_id: s.client_id.clone(),
                        credential: match &s.credential {
                            tributary_config::SharePointCredential::Secret(x) => {
                                Credential::Secret(x.expose().to_string())
                            }
                            tributary_config::SharePointCredential::Certificate {
                                cert_pem,
                                key_pem,
                            } => Credential::Certificate {
                                cert_pem: cert_pem.clone(),
                                key_pem: key_pem.expose().to_string(),
                            },
                        },
                        site: s.site.clone(),
                        drives: s.drives.clone(),
                        filter,
                        max_file_size: c.max_file_size,
                        permissions: s.permissions,
                        permissions_rescan: s.permissions_rescan,
                        read_timeout: s.read_timeout,
                    },
                )
                .map_err(anyhow::Error::msg)?,
            ))
        }
        #[cfg(not(feature = "smb"))]
        SourceConfig::Smb(_) => bail!(
            "connector `{}`: this build of tributary has no SMB support (built without the `smb` feature); install libsmbclient-dev and rebuild with default features",
            c.id
        ),
        #[cfg(feature = "smb")]
        SourceConfig::Smb(s) => {
            use tributary_config::SmbProtocol;
            use tributary_connector_smb::{SmbConnector, SmbSettings, proto::Hello};
            let hello = Hello {
                server: s.server.clone(),
                port: s.port,
                share: s.share.clone(),
                domain: s.domain.clone(),
                username: s.username.clone(),
                password: s.password.expose().to_string(),
                min_protocol: match s.protocol {
                    SmbProtocol::Smb1 => "smb1",
                    SmbProtocol::Smb2 => "smb2",
                    SmbProtocol::Smb3 => "smb3",
                }
                .into(),
                timeout_ms: s.timeout.as_millis() as u64,
                // the daemon reads the environment; the worker is told
                native: std::env::var_os("TRIBUTARY_SMB_NATIVE").is_none_or(|v| v != "0"),
            };
            Ok(Arc::new(SmbConnector::new(
                c.id.clone(),
                SmbSettings {
                    hello,
                    path: s.path.clone(),
                    filter,
                    max_file_size: c.max_file_size,
                    workers: s.workers,
                    worker_exe: smb_worker_exe(&c.id)?,
                },
            )))
        }
    }
}

/// The SMB worker program, installed next to this one.
#[cfg(feature = "smb")]
fn smb_worker_exe(connector: &str) -> anyhow::Result<std::path::PathBuf> {
    let me = std::env::current_exe().context("locate the tributary binary")?;
    let worker = me.with_file_name("tributary-smb-worker");
    if !worker.is_file() {
        bail!(
            "connector `{connector}`: the SMB worker program {} is missing (it is installed next to {} by the packages, the container image and `cargo build`)",
            worker.display(),
            me.display()
        );
    }
    Ok(worker)
}

pub async fn pipeline(cfg: &Config) -> anyhow::Result<Pipeline> {
    // the daemon's transactions are commits, statement after statement: one silent
    // for half a lease belongs to a frozen process, whose locks must not outlive its
    // lease (see `PgSettings::idle_in_transaction_timeout`)
    let idle = (cfg.daemon.lease_ttl / 2).max(Duration::from_secs(2));
    let catalog = open_catalog_with(cfg, Some(idle))
        .await?
        .for_instance(&instance_id(cfg)?);
    let (store, format) = open_bucket(cfg).await?;
    Ok(Pipeline::new(catalog, store, settings(cfg)).with_format(format))
}

/// This process's instance id ([`crate::instance`]).
pub fn instance_id(cfg: &Config) -> anyhow::Result<String> {
    crate::instance::resolve(
        cfg.daemon.instance_id.as_deref(),
        &cfg.state_dir,
        &crate::instance::hostname(),
    )
}

/// Every connector's conflict settings, in configuration order (ties of `newest_wins`
/// go to the connector listed first).
pub fn namespace(cfg: &Config) -> tributary_catalog::Namespace {
    use tributary_catalog::{Party, Policy};
    use tributary_config::ConflictPolicy;
    let parties = cfg
        .connectors
        .iter()
        .enumerate()
        .map(|(rank, c)| {
            let policy = match c.conflict_policy {
                ConflictPolicy::Manual => Policy::Manual,
                ConflictPolicy::SourceWins => Policy::SourceWins,
                ConflictPolicy::NewestWins => Policy::NewestWins,
                ConflictPolicy::KeepBoth => Policy::KeepBoth,
            };
            (
                c.id.clone(),
                Party {
                    rank,
                    case_sensitive: c.case_sensitive,
                    policy,
                },
            )
        })
        .collect();
    tributary_catalog::Namespace { parties }
}

/// The configured embedder; the local model is loaded here.
pub async fn embedder(
    cfg: &EmbedderConfig,
) -> Result<Arc<dyn tributary_vectorize::Embedder>, String> {
    use tributary_vectorize::embed::{Flavor, HttpEmbedder, LocalEmbedder};
    Ok(match cfg {
        EmbedderConfig::Local {
            model_dir,
            threads,
            batch_size,
        } => Arc::new(LocalEmbedder::load(model_dir, *threads, *batch_size).await?),
        EmbedderConfig::OpenAi {
            url,
            model,
            dimensions,
            api_key,
            batch_size,
            timeout,
            concurrency,
        } => Arc::new(HttpEmbedder::new(
            Flavor::OpenAi {
                dimensions: *dimensions,
                api_key: api_key.clone(),
            },
            url,
            model,
            *batch_size,
            *timeout,
            *concurrency,
        )?),
        EmbedderConfig::Ollama {
            url,
            model,
            batch_size,
            timeout,
            concurrency,
        } => Arc::new(HttpEmbedder::new(
            Flavor::Ollama,
            url,
            model,
            *batch_size,
            *timeout,
            *concurrency,
        )?),
    })
}

/// The configured vector store.
pub async fn vector_store(
    cfg: &VectorStoreConfig,
) -> Result<Arc<dyn tributary_vectorize::VectorStore>, String> {
    use tributary_vectorize::{MemoryStore, PgStore};
    Ok(match cfg {
        VectorStoreConfig::Catalog => Arc::new(MemoryStore::default()),
        VectorStoreConfig::Pgvector { url, table } => Arc::new(
            PgStore::connect(url.expose(), table)
                .await
                .map_err(|e| format!("pgvector store: {e}"))?,
        ),
    })
}

/// The vectorizer's embedder and vector store, opened from the configuration.
pub struct VectorBackends(pub VectorizeConfig);

#[async_trait::async_trait]
impl tributary_vectorize::OpenBackends for VectorBackends {
    async fn open(&self) -> Result<tributary_vectorize::Backends, String> {
        Ok(tributary_vectorize::Backends {
            embedder: embedder(&self.0.embedder).await?,
            store: vector_store(&self.0.store).await?,
        })
    }
}
