//! The log writer: every formatted log line goes to stderr with the configured secrets
//! masked ([`tributary_config::redact`]), whatever field or error text carried them.

use std::io::{self, Write};

/// A `MakeWriter` for the tracing subscriber.
pub struct RedactedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactedStderr {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::new())
    }
}

/// Collects one event (the subscriber writes each whole) and writes it redacted on drop.
pub struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = io::stderr().write_all(tributary_config::redact::redact(&text).as_bytes());
    }
}
