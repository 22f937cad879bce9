//! hyper's own answers to requests it cannot parse, rewritten into the envelope.
//!
//! A request line or header section that hyper refuses before any of our code runs
//! (a URI over its 64 KiB limit, headers over its read buffer, bytes that are not
//! HTTP/1.1) is answered by hyper with a bare head: `HTTP/1.1 414 URI Too Long`,
//! `content-length: 0`, and the connection closed. hyper has no hook for that answer,
//! so [`Enveloped`] wraps the connection's byte stream: a write that is exactly such an
//! automatic head (status 400, 414 or 431, nothing but `content-length: 0`, `date` and
//! `connection` headers, no body) is replaced by the same status carrying the JSON
//! envelope and an `X-Request-Id`. Every other write passes through untouched.
//!
//! hyper writes the automatic head into an empty write buffer (the previous response
//! is flushed before the next head is read) in a write of its own, which is what makes
//! a whole-write match sufficient; our own responses always carry `x-request-id`, so
//! they never match.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The envelope's code and message for an automatic answer of hyper's.
fn describe(status: u16) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match status {
        400 => (
            "Bad Request",
            "BAD_REQUEST",
            "the request is not valid HTTP/1.1 (request line or header syntax)",
        ),
        414 => (
            "URI Too Long",
            "URI_TOO_LONG",
            "the request URI is longer than the server reads (64 KiB)",
        ),
        431 => (
            "Request Header Fields Too Large",
            "HEADERS_TOO_LARGE",
            "the request's header section is larger than the server reads",
        ),
        _ => return None,
    })
}

/// When `written` is exactly one of hyper's automatic error heads, the response to send
/// in its place. Pure: `request_id` is the id the envelope and header carry.
pub fn rewrite(written: &[u8], request_id: &str) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut head = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = head.parse(written).ok()? else {
        return None;
    };
    if len != written.len() {
        return None; // a body follows: not an automatic answer
    }
    let (reason, code, message) = describe(head.code?)?;
    let mut date = None;
    for h in head.headers.iter() {
        match h.name.to_ascii_lowercase().as_str() {
            "content-length" if h.value == b"0" => {}
            "connection" => {}
            "date" => date = Some(h.value),
            _ => return None,
        }
    }
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "details": {},
            "request_id": request_id,
        }
    })
    .to_string();
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-request-id: {request_id}\r\nconnection: close\r\n",
        head.code?,
        body.len()
    )
    .into_bytes();
    if let Some(d) = date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(d);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

/// A connection's byte stream whose automatic error heads are answered in the envelope.
pub struct Enveloped<I> {
    inner: I,
    /// A replacement being written: its bytes, how many are out, and the length of
    /// hyper's write it stands for (reported once the replacement is all out).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<I> Enveloped<I> {
    pub fn new(inner: I) -> Self {
        Enveloped {
            inner,
            pending: None,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Enveloped<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> Enveloped<I> {
    fn write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, done, stands_for)) = &mut self.pending {
            if *done == bytes.len() {
                let n = *stands_for;
                self.pending = None;
                return Poll::Ready(Ok(n));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(0))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Enveloped<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            // cheap test first: hyper's automatic heads are short status-line-first writes
            if buf.len() < 512 && buf.starts_with(b"HTTP/1.") {
                let id = format!("{:016x}", rand::random::<u64>());
                if let Some(out) = rewrite(buf, &id) {
                    tracing::debug!(request_id = %id, "api: request refused by the HTTP parser");
                    this.pending = Some((out, 0, buf.len()));
                }
            }
            if this.pending.is_none() {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
        }
        this.write_pending(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        match (non_empty.next(), non_empty.next()) {
            // one buffer: the automatic head is written alone
            (Some(only), None) if self.pending.is_none() => self.poll_write(cx, only),
            _ if self.pending.is_some() => self.write_pending(cx),
            _ => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_some() {
            ready!(self.write_pending(cx))?;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_some() {
            ready!(self.write_pending(cx))?;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn hypers_automatic_heads_become_the_envelope() {
        for (status, reason, code) in [
            (414, "URI Too Long", "URI_TOO_LONG"),
            (431, "Request Header Fields Too Large", "HEADERS_TOO_LARGE"),
            (400, "Bad Request", "BAD_REQUEST"),
        ] {
            let head = format!(
                "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\
                 date: Thu, 03 Dec 2026 12:00:00 GMT\r\n\r\n"
            );
            let out = text(&rewrite(head.as_bytes(), "abc").unwrap());
            let (h, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(
                h.starts_with(&format!("HTTP/1.1 {status} {reason}\r\n")),
                "{h}"
            );
            assert!(h.contains("x-request-id: abc\r\n"), "{h}");
            assert!(h.contains("connection: close\r\n"), "{h}");
            assert!(h.contains("date: Thu, 03 Dec 2026 12:00:00 GMT"), "{h}");
            assert!(
                h.contains(&format!("content-length: {}\r\n", body.len())),
                "{h}"
            );
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["error"]["code"], code);
            assert_eq!(v["error"]["request_id"], "abc");
        }
    }

    #[test]
    fn everything_else_passes_untouched() {
        for written in [
            // one of ours: carries a request id
            &b"HTTP/1.1 400 Bad Request\r\nx-request-id: 1\r\ncontent-length: 0\r\n\r\n"[..],
            // a body follows
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 2\r\n\r\n{}",
            // not an error hyper makes
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            // not a whole head (file content that happens to start like one)
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n",
            b"",
            b"\x00\x01garbage",
        ] {
            assert_eq!(rewrite(written, "x"), None, "{:?}", text(written));
        }
    }

    #[tokio::test]
    async fn a_replacement_is_written_whole_through_a_slow_writer_and_stands_for_the_original() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(7); // 7-byte pipe: many partial writes
        let mut w = Enveloped::new(server);
        let head = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        let n = w.write(head).await.unwrap();
        assert_eq!(n, head.len(), "hyper is told its whole head went out");
        w.write_all(b"after").await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        let all = text(&reader.await.unwrap());
        assert!(all.contains("\"code\":\"URI_TOO_LONG\""), "{all}");
        assert!(all.ends_with("}after"), "{all}");
    }
}
