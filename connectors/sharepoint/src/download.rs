//! Downloads: `/content` answers 302 to a pre-authenticated URL that gets no bearer
//! token; the body is streamed with a per-chunk timeout, resumed with `Range` when the
//! connection is cut (or restarted when the host ignores Range), fetched anew when the
//! URL expired, and checked against the listed size and QuickXorHash. Bytes that do
//! not match are a change (when Graph now reports another state: the reader's
//! fingerprint becomes that state) or damage on the way (the read fails).

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest12::{StatusCode, header};
use tokio::sync::mpsc;
use tributary_connectors::{Connector, Entry, Fingerprint, ItemError, SourceFile};

use crate::token::TokenError;
use crate::{
    ATTEMPTS, SharePointConnector, THROTTLED, USER_AGENT, client_request_id, grow, jittered,
    quickxor, retry_after,
};

impl SharePointConnector {
    /// Opens `e` for reading: the download runs as a task, the reader blocks on it.
    pub(crate) async fn download(&self, e: &Entry) -> Result<Box<dyn SourceFile>, ItemError> {
        let sid = String::from_utf8_lossy(&e.source_id).into_owned();
        let (drive, item) = sid
            .split_once('/')
            .ok_or_else(|| ItemError::Io(format!("bad source id {sid}")))?;
        let location = self.download_url(drive, item).await?;
        let (tx, rx) = mpsc::channel(4);
        let changed = Arc::new(Mutex::new(None));
        let job = Download {
            http: self.http.clone(),
            location,
            listed: e.fingerprint(),
            source_id: e.source_id.clone(),
            changed: changed.clone(),
            chunk_timeout: self.s.read_timeout,
            refresh: DownloadRefresh {
                conn: self.clone_for_download(),
                drive: drive.to_string(),
                item: item.to_string(),
            },
        };
        tokio::spawn(job.run(tx));
        Ok(Box::new(Streamed {
            rx,
            buf: bytes::Bytes::new(),
            fp: e.fingerprint(),
            changed,
            done: false,
        }))
    }
}

/// What a download needs to fetch a fresh URL when its URL expired.
#[derive(Clone)]
struct DownloadRefresh {
    conn: Arc<SharePointConnector>,
    drive: String,
    item: String,
}

impl SharePointConnector {
    fn clone_for_download(&self) -> Arc<SharePointConnector> {
        Arc::new(SharePointConnector {
            id: self.id.clone(),
            s: self.s.clone(),
            base: self.base.clone(),
            graph: self.graph.clone(),
            tokens: self.tokens.clone(),
            http: self.http.clone(),
            gate: self.gate.clone(),
            notes: self.notes.clone(),
            state: self.state.clone(),
        })
    }

    /// The pre-authenticated URL of an item's content (`/content` → 302).
    async fn download_url(&self, drive: &str, item: &str) -> Result<String, ItemError> {
        let url = format!("{}/drives/{drive}/items/{item}/content", self.base);
        let mut refreshed = false;
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            let _slot = self.wait_gate().await;
            let token = self.tokens.token().await.map_err(|e| match e {
                TokenError::Rejected(m) => ItemError::SourceUnavailable(m),
                e => ItemError::Io(e.to_string()),
            })?;
            let resp = self
                .http
                .get(&url)
                .bearer_auth(token)
                .header("client-request-id", client_request_id())
                .header(header::USER_AGENT, USER_AGENT)
                .send()
                .await
                .map_err(|e| ItemError::Io(format!("Graph /content: {e}")))?;
            let status = resp.status();
            self.pace(resp.headers());
            match status {
                StatusCode::FOUND | StatusCode::SEE_OTHER | StatusCode::TEMPORARY_REDIRECT => {
                    return resp
                        .headers()
                        .get(header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .map(str::to_string)
                        .ok_or_else(|| ItemError::Io("a redirect without Location".into()));
                }
                // gone since the delta: a delete (the next delta reports it too)
                StatusCode::NOT_FOUND => return Err(ItemError::Deleted),
                StatusCode::UNAUTHORIZED if !refreshed => {
                    refreshed = true;
                    self.tokens.invalidate().await;
                }
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    if attempt < ATTEMPTS =>
                {
                    let wait = jittered(retry_after(resp.headers()).unwrap_or(backoff));
                    backoff = grow(backoff);
                    THROTTLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.note(format!(
                        "Graph answered {status} to a download: every request to the tenant waits {:.1}s",
                        wait.as_secs_f64()
                    ));
                    self.close_gate(wait);
                }
                s => {
                    let rid = resp
                        .headers()
                        .get("request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(|r| format!(" (request-id {r})"))
                        .unwrap_or_default();
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    return Err(ItemError::Io(format!(
                        "Graph /content answered {s}: {}{rid}",
                        body["error"]["code"].as_str().unwrap_or("")
                    )));
                }
            }
        }
        Err(ItemError::Io("Graph /content kept failing; gave up".into()))
    }
}

struct Download {
    http: reqwest12::Client,
    location: String,
    /// The state the listing gave: what the bytes must match.
    listed: Fingerprint,
    source_id: Vec<u8>,
    /// Set when the bytes did not match because the file changed since the listing:
    /// its state now.
    changed: Arc<Mutex<Option<Fingerprint>>>,
    refresh: DownloadRefresh,
    /// Per read of the body: a stalled connection is cut after this long.
    chunk_timeout: Duration,
}

impl Download {
    async fn run(mut self, tx: mpsc::Sender<std::io::Result<bytes::Bytes>>) {
        let r = self.stream(&tx).await;
        if let Err(e) = r {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn stream(
        &mut self,
        tx: &mpsc::Sender<std::io::Result<bytes::Bytes>>,
    ) -> std::io::Result<()> {
        let mut got: u64 = 0;
        let mut hasher = quickxor::QuickXor::new();
        let mut failures = 0;
        loop {
            // never a bearer token here: the URL is pre-authenticated
            let mut req = self.http.get(&self.location);
            if got > 0 {
                req = req.header(header::RANGE, format!("bytes={got}-"));
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    failures += 1;
                    if failures > 5 {
                        return Err(std::io::Error::other(format!("download: {e}")));
                    }
                    continue;
                }
            };
            let status = resp.status();
            let mut skip = match status {
                StatusCode::PARTIAL_CONTENT => 0,
                // the host ignored Range (or this is the first request): from the start
                StatusCode::OK => got,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
                    if failures < 3 =>
                {
                    // expired: ask Graph for a fresh URL
                    failures += 1;
                    self.location = self
                        .refresh
                        .conn
                        .download_url(&self.refresh.drive, &self.refresh.item)
                        .await
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    continue;
                }
                // shorter than listed, and all of it read: checked below
                StatusCode::RANGE_NOT_SATISFIABLE if got > 0 => break,
                s => return Err(std::io::Error::other(format!("download host answered {s}"))),
            };
            let mut resp = resp;
            loop {
                match tokio::time::timeout(self.chunk_timeout, resp.chunk()).await {
                    Ok(Ok(Some(mut c))) => {
                        if skip > 0 {
                            let n = (skip as usize).min(c.len());
                            c = c.slice(n..);
                            skip -= n as u64;
                        }
                        if c.is_empty() {
                            continue;
                        }
                        got += c.len() as u64;
                        hasher.update(&c);
                        if tx.send(Ok(c)).await.is_err() {
                            return Ok(()); // the reader is gone
                        }
                    }
                    Ok(Ok(None)) => break,
                    Ok(Err(_)) | Err(_) => {
                        failures += 1;
                        if failures > 5 {
                            return Err(std::io::Error::other("download cut too often; gave up"));
                        }
                        break;
                    }
                }
            }
            if got >= self.listed.size {
                break;
            }
        }
        let mismatch = if got != self.listed.size {
            format!("downloaded {got} bytes, Graph said {}", self.listed.size)
        } else {
            match &self.listed.change_tag {
                Some(want) if *want != hasher.finish() => format!(
                    "QuickXorHash mismatch: Graph said {want}, the bytes give {}",
                    hasher.finish()
                ),
                _ => return Ok(()),
            }
        };
        // Changed since the listing (the read is then torn, and read again), or bytes
        // garbled on the way (the read fails).
        match self.refresh.conn.stat(&self.source_id).await {
            Ok(Some(now)) if now.fingerprint() != self.listed => {
                *self.changed.lock().unwrap() = Some(now.fingerprint());
                Ok(())
            }
            Ok(None) => Err(std::io::Error::other("deleted while being downloaded")),
            _ => Err(std::io::Error::other(mismatch)),
        }
    }
}

/// The download as a blocking reader.
struct Streamed {
    rx: mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    buf: bytes::Bytes,
    fp: Fingerprint,
    changed: Arc<Mutex<Option<Fingerprint>>>,
    done: bool,
}

impl Read for Streamed {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(e),
                None => self.done = true,
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

impl SourceFile for Streamed {
    /// Graph has no cheap stat by handle: the listed state, or, once the download
    /// found bytes of another size or QuickXorHash and Graph reports the file changed,
    /// its new state (so the pipeline reads it again).
    fn fingerprint(&mut self) -> std::io::Result<Fingerprint> {
        Ok(self
            .changed
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| self.fp.clone()))
    }
}
