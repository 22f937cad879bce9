//! Embedders: the local model and HTTP providers behind one trait.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tributary_config::Secret;
use tributary_embed_local::Model;
use tributary_retry::{RetryPolicy, Transient, with_retry};

use crate::split::{ApproxSizer, Sizer};

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    /// The provider is down, throttling past the retry budget or misconfigured: the
    /// items wait, they are not at fault.
    #[error("{0}")]
    Unavailable(String),
    /// The input was refused.
    #[error("{0}")]
    Rejected(String),
}

#[async_trait]
pub trait Embedder: Send + Sync {
    /// What produces the vectors (kind, model, weights or dimensions): vectors of two
    /// embedders are comparable only when this is equal.
    fn id(&self) -> String;
    /// Output dimension, once known.
    fn dim(&self) -> Option<usize>;
    /// Passages per call.
    fn batch_size(&self) -> usize;
    /// Unit-length vectors of `texts`, in order.
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// The measure of text in this embedder's tokens.
    fn sizer(&self) -> Arc<dyn Sizer>;
}

pub struct LocalEmbedder {
    model: Arc<Model>,
    sizer: Arc<dyn Sizer>,
    threads: usize,
    batch_size: usize,
}

/// Why a local model directory cannot be loaded, judged by the files it holds
/// (`None`: they are all there), with the command that fetches the default model.
pub fn model_dir_problem(model_dir: &Path) -> Option<String> {
    let missing = tributary_embed_local::missing_files(model_dir);
    (!missing.is_empty()).then(|| {
        format!(
            "the model directory `{}` lacks {}: fetch the default model (all-MiniLM-L6-v2) with `scripts/fetch-model.sh {}`, or set vectorize.embedder.model_dir",
            model_dir.display(),
            missing.join(", "),
            model_dir.display()
        )
    })
}

impl LocalEmbedder {
    /// Loads the model in `model_dir` (on a blocking thread); a missing model is an
    /// error that names the setup script. `threads` 0 means one per core.
    pub async fn load(
        model_dir: &Path,
        threads: usize,
        batch_size: usize,
    ) -> Result<LocalEmbedder, String> {
        let dir = model_dir.to_path_buf();
        let model = tokio::task::spawn_blocking(move || Model::load(&dir))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| {
                format!(
                    "{e} (fetch the model with `scripts/fetch-model.sh {}`)",
                    model_dir.display()
                )
            })?;
        let threads = if threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            threads
        };
        let model = Arc::new(model);
        Ok(LocalEmbedder {
            sizer: Arc::new(ModelSizer(model.clone())),
            model,
            threads,
            batch_size,
        })
    }
}

struct ModelSizer(Arc<Model>);

impl Sizer for ModelSizer {
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        self.0
            .token_spans(text)
            .unwrap_or_else(|_| ApproxSizer.spans(text))
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn id(&self) -> String {
        format!(
            "local dim {} blake3:{}",
            self.model.dim(),
            &self.model.fingerprint()[..16]
        )
    }

    fn dim(&self) -> Option<usize> {
        Some(self.model.dim())
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let model = self.model.clone();
        let threads = self.threads;
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.embed(&refs, threads)
        })
        .await
        .map_err(|e| EmbedError::Unavailable(format!("embedding thread: {e}")))?
        .map_err(|e| EmbedError::Rejected(e.to_string()))
    }

    fn sizer(&self) -> Arc<dyn Sizer> {
        self.sizer.clone()
    }
}

/// The HTTP protocol an [`HttpEmbedder`] speaks.
pub enum Flavor {
    /// OpenAI-compatible `/v1/embeddings`, optionally asking for `dimensions`.
    OpenAi {
        dimensions: Option<usize>,
        api_key: Option<Secret>,
    },
    /// Ollama's `/api/embed`.
    Ollama,
}

/// OpenAI-compatible `/v1/embeddings` or Ollama `/api/embed`. 429 and 5xx are retried
/// with capped exponential backoff that honours `Retry-After`; after the retry budget
/// the provider counts as unavailable.
pub struct HttpEmbedder {
    flavor: Flavor,
    url: String,
    model: String,
    batch_size: usize,
    client: reqwest::Client,
    gate: tokio::sync::Semaphore,
    dim: std::sync::OnceLock<usize>,
}

/// 6 attempts, waits from 0.5 s doubling to 30 s (or the provider's `Retry-After`, at
/// most 2 minutes).
const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 6,
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
    max_retry_after: Duration::from_secs(120),
};

/// One failed request to the provider.
enum Attempt {
    /// Throttled, a server error or the network: worth another attempt.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Refused for good (a bad key, a rejected input).
    Final(EmbedError),
}

impl Transient for Attempt {
    fn is_transient(&self) -> bool {
        matches!(self, Attempt::Retry { .. })
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Attempt::Retry { after, .. } => *after,
            Attempt::Final(_) => None,
        }
    }
}

impl HttpEmbedder {
    /// A client for the provider at `url`; at most `concurrency` requests at a time.
    pub fn new(
        flavor: Flavor,
        url: &str,
        model: &str,
        batch_size: usize,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<HttpEmbedder, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(HttpEmbedder {
            flavor,
            url: url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            batch_size,
            client,
            gate: tokio::sync::Semaphore::new(concurrency.max(1)),
            dim: Default::default(),
        })
    }

    fn endpoint(&self) -> String {
        match self.flavor {
            Flavor::OpenAi { .. } => {
                if self.url.ends_with("/v1") {
                    format!("{}/embeddings", self.url)
                } else {
                    format!("{}/v1/embeddings", self.url)
                }
            }
            Flavor::Ollama => format!("{}/api/embed", self.url),
        }
    }

    async fn call(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = match &self.flavor {
            Flavor::OpenAi { dimensions, .. } => {
                let mut b = serde_json::json!({"model": self.model, "input": texts, "encoding_format": "float"});
                if let Some(d) = dimensions {
                    b["dimensions"] = (*d).into();
                }
                b
            }
            Flavor::Ollama => {
                serde_json::json!({"model": self.model, "input": texts, "truncate": true})
            }
        };
        let endpoint = self.endpoint();
        let r = with_retry(
            RETRY,
            |attempt, e: &Attempt| {
                if let Attempt::Retry { why, .. } = e {
                    tracing::warn!(attempt, "embedder: {why}; retrying");
                }
            },
            || self.request(&endpoint, &body),
        )
        .await;
        match r {
            Ok(v) => self.parse(&v, texts.len()),
            Err(Attempt::Final(e)) => Err(e),
            Err(Attempt::Retry { why, .. }) => Err(EmbedError::Unavailable(why)),
        }
    }

    /// One request: its JSON answer, or why it failed and whether to try again.
    async fn request(
        &self,
        endpoint: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Attempt> {
        let mut req = self.client.post(endpoint).json(body);
        if let Flavor::OpenAi {
            api_key: Some(k), ..
        } = &self.flavor
        {
            req = req.bearer_auth(k.expose());
        }
        let resp = req.send().await.map_err(|e| Attempt::Retry {
            why: format!("{endpoint}: {e}"),
            after: None,
        })?;
        let status = resp.status();
        if status.is_success() {
            return resp.json().await.map_err(|e| {
                Attempt::Final(EmbedError::Unavailable(format!(
                    "{endpoint}: unreadable response: {e}"
                )))
            });
        }
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|h| h.to_str().ok())
            .and_then(|v| tributary_retry::retry_after(v, std::time::SystemTime::now()));
        let text = resp.text().await.unwrap_or_default();
        let text: String = text.chars().take(300).collect();
        let why = format!("{endpoint}: HTTP {status}: {text}");
        Err(if status.as_u16() == 429 || status.is_server_error() {
            Attempt::Retry { why, after }
        } else if status.as_u16() == 401 || status.as_u16() == 403 {
            Attempt::Final(EmbedError::Unavailable(format!(
                "{endpoint}: HTTP {status}: the API key was refused"
            )))
        } else {
            Attempt::Final(EmbedError::Rejected(why))
        })
    }

    fn parse(&self, v: &serde_json::Value, n: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let bad = |m: &str| EmbedError::Unavailable(format!("{}: {m}", self.endpoint()));
        let rows: Vec<Vec<f32>> = match self.flavor {
            Flavor::OpenAi { .. } => {
                let mut data: Vec<(usize, Vec<f32>)> = v["data"]
                    .as_array()
                    .ok_or_else(|| bad("no `data` in the response"))?
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let idx = d["index"].as_u64().map(|x| x as usize).unwrap_or(i);
                        (idx, floats(&d["embedding"]))
                    })
                    .collect();
                data.sort_by_key(|(i, _)| *i);
                data.into_iter().map(|(_, v)| v).collect()
            }
            Flavor::Ollama => v["embeddings"]
                .as_array()
                .ok_or_else(|| bad("no `embeddings` in the response"))?
                .iter()
                .map(floats)
                .collect(),
        };
        if rows.len() != n || rows.iter().any(Vec::is_empty) {
            return Err(bad(&format!("expected {n} embeddings, got {}", rows.len())));
        }
        let dim = *self.dim.get_or_init(|| rows[0].len());
        if rows.iter().any(|r| r.len() != dim) {
            return Err(bad(&format!("embeddings of another dimension than {dim}")));
        }
        Ok(rows.into_iter().map(normalize).collect())
    }
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_f64())
                .map(|x| x as f32)
                .collect()
        })
        .unwrap_or_default()
}

fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

#[async_trait]
impl Embedder for HttpEmbedder {
    fn id(&self) -> String {
        match &self.flavor {
            Flavor::OpenAi { dimensions, .. } => format!(
                "openai {}{}",
                self.model,
                dimensions.map(|d| format!(" dim {d}")).unwrap_or_default()
            ),
            Flavor::Ollama => format!("ollama {}", self.model),
        }
    }

    fn dim(&self) -> Option<usize> {
        self.dim.get().copied()
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let _permit = self.gate.acquire().await.expect("never closed");
        self.call(&texts).await
    }

    fn sizer(&self) -> Arc<dyn Sizer> {
        Arc::new(ApproxSizer)
    }
}
