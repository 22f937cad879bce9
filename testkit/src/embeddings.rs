//! A fake embedding provider on a loopback port that speaks both the OpenAI
//! `/v1/embeddings` API and Ollama's `/api/embed`, with the response and error shapes
//! those services use.
//!
//! Its vectors are hashed bags of words (lower-cased words into `dim` buckets, then L2
//! normalised), so texts sharing words are close: enough for retrieval assertions.
//! Knobs: an API key it requires, a number of requests answered `429` with a
//! `Retry-After`, and a "down" switch (every request `503`). Every request is logged
//! with its arrival time and `Authorization` header.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub at: Instant,
    pub authorization: Option<String>,
    pub inputs: usize,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    api_key: Option<String>,
    throttle: u32,
    retry_after: u64,
    down: bool,
    requests: Vec<Request>,
}

#[derive(Clone)]
pub struct FakeEmbeddings {
    pub url: String,
    pub dim: usize,
    inner: Arc<Mutex<Inner>>,
}

/// The fake's embedding of a text.
pub fn embed(text: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; dim];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        let h = w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        v[(h % dim as u64) as usize] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    } else {
        v[0] = 1.0;
    }
    v
}

impl FakeEmbeddings {
    pub async fn start(dim: usize) -> FakeEmbeddings {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeEmbeddings {
            url,
            dim,
            inner: Default::default(),
        };
        let app = axum::Router::new()
            .route("/v1/embeddings", post(openai))
            .route("/api/embed", post(ollama))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// Requests without `Authorization: Bearer <key>` get 401.
    pub fn require_key(&self, key: &str) {
        self.inner.lock().unwrap().api_key = Some(key.to_string());
    }

    /// The next `n` requests get 429 with `Retry-After: secs`.
    pub fn throttle(&self, n: u32, secs: u64) {
        let mut i = self.inner.lock().unwrap();
        i.throttle = n;
        i.retry_after = secs;
    }

    /// While down, every request gets 503.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Decides the fate of a request; `Ok` means serve it.
    fn gate(&self, path: &str, headers: &HeaderMap, inputs: usize) -> Result<(), Box<Response>> {
        let mut i = self.inner.lock().unwrap();
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (status, resp) = if i.down {
            (
                503,
                Some(
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Json(json!({"error": {"message": "The server is overloaded or not ready yet.", "type": "server_error"}})),
                    )
                        .into_response(),
                ),
            )
        } else if i
            .api_key
            .as_ref()
            .is_some_and(|k| authorization.as_deref() != Some(&format!("Bearer {k}")))
        {
            (
                401,
                Some(
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}})),
                    )
                        .into_response(),
                ),
            )
        } else if i.throttle > 0 {
            i.throttle -= 1;
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}})),
            )
                .into_response();
            r.headers_mut()
                .insert("retry-after", i.retry_after.to_string().parse().unwrap());
            (429, Some(r))
        } else {
            (200, None)
        };
        i.requests.push(Request {
            path: path.to_string(),
            at: Instant::now(),
            authorization,
            inputs,
            status,
        });
        match resp {
            Some(r) => Err(Box::new(r)),
            None => Ok(()),
        }
    }
}

fn inputs(body: &Value) -> Vec<String> {
    match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().unwrap_or("").to_string())
            .collect(),
        _ => Vec::new(),
    }
}

async fn openai(
    State(f): State<FakeEmbeddings>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let texts = inputs(&body);
    if let Err(r) = f.gate("/v1/embeddings", &headers, texts.len()) {
        return *r;
    }
    if texts.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "'input' is required", "type": "invalid_request_error"}})),
        )
            .into_response();
    }
    let dim = body["dimensions"]
        .as_u64()
        .map(|d| d as usize)
        .unwrap_or(f.dim);
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed(t, dim)}))
        .collect();
    let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response()
}

async fn ollama(
    State(f): State<FakeEmbeddings>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let texts = inputs(&body);
    if let Err(r) = f.gate("/api/embed", &headers, texts.len()) {
        return *r;
    }
    let embeddings: Vec<Vec<f32>> = texts.iter().map(|t| embed(t, f.dim)).collect();
    Json(json!({"model": body["model"], "embeddings": embeddings, "total_duration": 1000, "prompt_eval_count": texts.len()}))
        .into_response()
}
