//! The listener: accepts connections (plain or TLS) and serves the router on each with
//! hyper, under limits that hold whatever a client does.
//!
//! - At most `max_connections` at once, and `max_connections_per_client` from one client
//!   address; a connection over either is closed on accept (counted in
//!   `tributary_api_connections_refused_total`).
//! - A client has `header_read_timeout` to send a request's headers, and a kept-alive
//!   connection is closed after idling that long (hyper's header timer restarts when
//!   a response is done); a TLS handshake gets the same time.
//! - What hyper refuses before the router runs (a URI over 64 KiB, headers over its
//!   buffer, bytes that are not HTTP) is still answered in the envelope
//!   ([`crate::parse_errors`]).
//! - Accept errors (out of file descriptors) pause accepting briefly instead of spinning.
//!
//! The router sees the peer address as `ConnectInfo<SocketAddr>`. On shutdown, no new
//! connection is accepted and the open ones finish their request in flight.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The largest request head (request line and headers) read: larger is 431. Above
/// hyper's own 64 KiB URI limit, so that a long URI is 414 whatever the timing of its
/// bytes; far above what a client with a large token needs.
pub const MAX_HEADER_SECTION: usize = 96 * 1024;

/// Connection limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub header_read_timeout: Duration,
}

/// Connections closed on accept because a limit was reached.
pub static CONNECTIONS_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Registers the listener's counters.
pub fn register(registry: &mut prometheus_client::registry::Registry) {
    registry.register(
        "tributary_api_connections_refused",
        "API connections closed on accept (connection limits)",
        prometheus_client::metrics::counter::ConstCounter::new(
            CONNECTIONS_REFUSED.load(Ordering::Relaxed),
        ),
    );
}

/// Open connections per client address; a slot is given back when its guard drops.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

struct Slot(Arc<PerClient>, IpAddr);

impl PerClient {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot(self.clone(), ip))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = (self.0).0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets the connections in
/// flight finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: ConnLimits,
    stop: CancellationToken,
    drain: Duration,
) {
    let connections = TaskTracker::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE/ENFILE and the like: the backlog waits; retry shortly
                tracing::warn!(error = %e, "api: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refuse(peer, "max_connections");
            continue;
        };
        let Some(slot) = per_client.take(peer.ip(), limits.max_connections_per_client) else {
            refuse(peer, "max_connections_per_client");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let watcher = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _held = (permit, slot);
            match tls {
                None => connection(stream, peer, app, limits, watcher).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                        Ok(Ok(s)) => connection(s, peer, app, limits, watcher).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "api: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "api: TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    connections.close();
    let _ = tokio::time::timeout(drain, connections.wait()).await;
}

fn refuse(peer: SocketAddr, limit: &str) {
    // dropping the stream closes it; log the first of a burst only
    if CONNECTIONS_REFUSED
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(1000)
    {
        tracing::warn!(%peer, limit, "api: connection refused: limit reached");
    }
}

async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: ConnLimits,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEADER_SECTION)
        .keep_alive(true);
    // upgrades: `/api/v1/ws` (the WebSocket runs on in a task of its own)
    let conn = builder
        .serve_connection(
            TokioIo::new(crate::parse_errors::Enveloped::new(io)),
            service,
        )
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            // the request in flight finishes; a kept-alive connection closes after it
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "api: connection ended with an error");
    }
}

/// Loads a PEM certificate chain and private key into a TLS acceptor.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("read certificate chain {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("read private key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_slots_are_counted_and_given_back() {
        let pc = Arc::new(PerClient::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = pc.take(a, 2).unwrap();
        let _s2 = pc.take(a, 2).unwrap();
        assert!(pc.take(a, 2).is_none());
        assert!(pc.take(b, 2).is_some());
        drop(s1);
        assert!(pc.take(a, 2).is_some());
    }
}
