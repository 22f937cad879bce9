//! The framed protocol between the daemon and an SMB worker process, over the worker's
//! stdin and stdout: `[tag: u8][length: u32 BE][payload]`. Control payloads are JSON;
//! file data is raw bytes; a folder's listing is binary ([`Listing`]), one frame per
//! folder. The first request carries the credentials, so the password
//! never appears in a command line or the environment.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Requests (daemon → worker).
pub const HELLO: u8 = b'H';
pub const LIST: u8 = b'L';
/// Several folders at once ([`PathsReq`]): one answer frame per folder, in order.
pub const LIST_MANY: u8 = b'M';
pub const STAT: u8 = b'S';
pub const READ: u8 = b'R';
/// Responses (worker → daemon).
pub const OK: u8 = b'O';
pub const ERR: u8 = b'E';
pub const DATA: u8 = b'D';
pub const END: u8 = b'Z';

/// Bytes of file data per `DATA` frame (and per read call: 1 MiB reads are the fastest
/// through libsmbclient, see the project's research notes).
pub const FRAME_DATA: usize = 1 << 20;

/// The largest frame accepted (a directory listing of a few hundred thousand names).
const MAX_FRAME: usize = 256 << 20;

pub fn write_frame(w: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&[tag])?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

pub fn write_json(w: &mut impl Write, tag: u8, v: &impl Serialize) -> io::Result<()> {
    write_frame(w, tag, &serde_json::to_vec(v).map_err(io::Error::other)?)
}

/// The next frame; `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..])?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    // grown as bytes arrive: a header alone cannot make us allocate its claimed length
    let mut payload = Vec::with_capacity(len.min(FRAME_DATA + 64));
    r.take(len as u64).read_to_end(&mut payload)?;
    if payload.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("a frame cut at {} of {len} bytes", payload.len()),
        ));
    }
    Ok(Some((head[0], payload)))
}

/// Connection settings, sent once.
#[derive(Clone, Serialize, Deserialize)]
pub struct Hello {
    pub server: String,
    pub port: u16,
    pub share: String,
    pub domain: String,
    pub username: String,
    pub password: String,
    /// `smb1`, `smb2` or `smb3`: the oldest dialect accepted.
    pub min_protocol: String,
    pub timeout_ms: u64,
    /// List and read with the native SMB2/3 client where the server allows it (false:
    /// libsmbclient for everything). The daemon decides; the worker reads no
    /// environment.
    #[serde(default = "native_default")]
    pub native: bool,
}

fn native_default() -> bool {
    true
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("share", &self.share)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The worker's answer to [`Hello`] once logged on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Welcome {
    /// How folders are listed and files read: natively (the dialect; signed, encrypted)
    /// or through libsmbclient, and why.
    #[serde(default)]
    pub lister: String,
}

/// A path request (share-relative, `/`-separated, starting with `/`).
#[derive(Debug, Serialize, Deserialize)]
pub struct PathReq {
    pub path: String,
    /// For `READ`: the size the listing saw (a small file is read in one round trip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// Folders to list, side by side where the worker can.
#[derive(Debug, Serialize, Deserialize)]
pub struct PathsReq {
    pub paths: Vec<String>,
}

/// One entry of a folder, borrowed from its listing frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    pub name: &'a str,
    pub dir: bool,
    pub size: u64,
    pub mtime_ns: i64,
}

/// A folder's listing as it crosses the pipe: per entry `[dir: u8][size: u64 LE]
/// [mtime_ns: i64 LE][name length: u32 LE][name, UTF-8]`. Written into a buffer the
/// worker keeps, read in place by the daemon: no allocation per entry on either side.
pub struct Listing;

impl Listing {
    pub fn push(buf: &mut Vec<u8>, name: &str, dir: bool, size: u64, mtime_ns: i64) {
        buf.push(u8::from(dir));
        buf.extend_from_slice(&size.to_le_bytes());
        buf.extend_from_slice(&mtime_ns.to_le_bytes());
        buf.extend_from_slice(&(name.len() as u32).to_le_bytes());
        buf.extend_from_slice(name.as_bytes());
    }

    pub fn parse(mut buf: &[u8]) -> io::Result<Vec<DirEntry<'_>>> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed listing frame");
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (head, rest) = buf.split_at_checked(21).ok_or_else(bad)?;
            let int = |r: std::ops::Range<usize>| -> [u8; 8] { head[r].try_into().unwrap() };
            let len = u32::from_le_bytes(head[17..21].try_into().unwrap()) as usize;
            let (name, rest) = rest.split_at_checked(len).ok_or_else(bad)?;
            out.push(DirEntry {
                name: std::str::from_utf8(name).map_err(|_| bad())?,
                dir: head[0] != 0,
                size: u64::from_le_bytes(int(1..9)),
                mtime_ns: i64::from_le_bytes(int(9..17)),
            });
            buf = rest;
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub dir: bool,
    pub size: u64,
    pub mtime_ns: i64,
}

/// How an SMB call failed, as far as libsmbclient lets us tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrKind {
    /// The log-on failed (wrong user, password or domain).
    Auth,
    /// The share (or the folder in it) does not exist.
    NoShare,
    /// The server cannot be reached or does not answer.
    Unavailable,
    /// The server only speaks a dialect older than the configured floor.
    Protocol,
    NotFound,
    AccessDenied,
    /// Another client holds the file open without sharing (sharing violation).
    Locked,
    TimedOut,
    Io,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub kind: ErrKind,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_that_claims_more_than_it_brings_is_an_error_not_an_allocation() {
        let mut r: &[u8] = &[DATA, 0x0f, 0xff, 0xff, 0xff, 1, 2, 3];
        let e = read_frame(&mut r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("cut at 3 of"), "{e}");
        let mut buf = Vec::new();
        write_frame(&mut buf, OK, b"{}").unwrap();
        assert_eq!(
            read_frame(&mut &buf[..]).unwrap(),
            Some((OK, b"{}".to_vec()))
        );
    }

    #[test]
    fn listings_round_trip_and_truncation_is_an_error() {
        let mut buf = Vec::new();
        Listing::push(&mut buf, "Café ✓.txt", false, 1 << 40, -5_000_000_000);
        Listing::push(&mut buf, "sub", true, 0, 1_700_000_000_000_000_000);
        Listing::push(&mut buf, "", false, 7, 0);
        let got = Listing::parse(&buf).unwrap();
        assert_eq!(
            got,
            vec![
                DirEntry {
                    name: "Café ✓.txt",
                    dir: false,
                    size: 1 << 40,
                    mtime_ns: -5_000_000_000
                },
                DirEntry {
                    name: "sub",
                    dir: true,
                    size: 0,
                    mtime_ns: 1_700_000_000_000_000_000
                },
                DirEntry {
                    name: "",
                    dir: false,
                    size: 7,
                    mtime_ns: 0
                },
            ]
        );
        assert!(Listing::parse(&[]).unwrap().is_empty());
        for cut in [1, 20, buf.len() - 1] {
            assert!(Listing::parse(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }
}
