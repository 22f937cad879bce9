//! The worker process: owns one libsmbclient context and answers the daemon's requests
//! one at a time (libsmbclient is blocking and pavao serializes every call of a process
//! behind one lock, so one process per connector keeps connectors and servers from
//! stalling each other). Started by the daemon: the `tributary-smb-worker` program, the
//! only one that links libsmbclient.

use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pavao::{
    SmbClient, SmbCredentials, SmbDialect, SmbDirentType, SmbError, SmbOpenOptions, SmbOptions,
};

use crate::proto::{self, ErrKind, Hello, Listing, PathReq, PathsReq, Stat, WireError};
use crate::smb2;

const READ_SIZE: usize = proto::FRAME_DATA;

/// Serves requests from stdin until it closes. Returns the process exit code.
pub fn run() -> i32 {
    let mut input = BufReader::new(io::stdin().lock());
    let mut out = BufWriter::with_capacity(READ_SIZE + 16, io::stdout().lock());
    match serve(&mut input, &mut out) {
        Ok(()) => 0,
        // the daemon is gone (a job that ended while this worker was still logging
        // on): nothing to say
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("smb worker: {e}");
            1
        }
    }
}

fn serve(input: &mut impl Read, out: &mut impl Write) -> io::Result<()> {
    let Some((proto::HELLO, body)) = proto::read_frame(input)? else {
        return Err(io::Error::other("expected the connection settings first"));
    };
    let hello: Hello = serde_json::from_slice(&body).map_err(io::Error::other)?;
    let client = match connect(&hello) {
        Ok(c) => c,
        Err(e) => return proto::write_json(out, proto::ERR, &e),
    };
    let mut native = Native::start(&hello);
    proto::write_json(out, proto::OK, &native.describe())?;
    let server = format!("{}:{}", hello.server, hello.port);
    while let Some((tag, body)) = proto::read_frame(input)? {
        let (paths, single, size) = match tag {
            proto::LIST_MANY => {
                let req: PathsReq = serde_json::from_slice(&body).map_err(io::Error::other)?;
                (req.paths, None, None)
            }
            _ => {
                let req: PathReq = serde_json::from_slice(&body).map_err(io::Error::other)?;
                if tag == proto::LIST {
                    (vec![req.path], None, None)
                } else {
                    (Vec::new(), Some(req.path), req.size)
                }
            }
        };
        // a listing: natively where it can, else through libsmbclient
        let listed = native.list_many(&hello, &paths);
        for (path, r) in paths.iter().zip(listed) {
            match r.unwrap_or_else(|| list(&client, &encode(path), &server)) {
                Ok(buf) => proto::write_frame(out, proto::OK, &buf)?,
                Err(e) => proto::write_json(out, proto::ERR, &e)?,
            }
        }
        let Some(shown) = single else { continue };
        let path = encode(&shown);
        match tag {
            proto::STAT => match client.stat(&path) {
                Ok(s) => proto::write_json(out, proto::OK, &Some(stat_of(&s)))?,
                Err(e) if classify(&e).0 == ErrKind::NotFound => {
                    proto::write_json(out, proto::OK, &None::<Stat>)?
                }
                Err(e) => proto::write_json(out, proto::ERR, &wire(&e, &shown, &server))?,
            },
            proto::READ => {
                if !native.read(&client, &hello, &shown, size, out)? {
                    read(&client, &path, &shown, &server, out)?
                }
            }
            t => return Err(io::Error::other(format!("unknown request {t}"))),
        }
    }
    Ok(())
}

fn connect(h: &Hello) -> Result<SmbClient, WireError> {
    let dialect = match h.min_protocol.as_str() {
        "smb1" => SmbDialect::Nt1,
        "smb3" => SmbDialect::Smb300,
        _ => SmbDialect::Smb202,
    };
    let target = format!("//{}:{}/{}", h.server, h.port, h.share);
    let client = SmbClient::new(
        SmbCredentials::default()
            .server(format!("smb://{}:{}", h.server, h.port))
            .share(format!("/{}", h.share))
            .username(&h.username)
            .password(&h.password)
            .workgroup(&h.domain),
        SmbOptions::default()
            .one_share_per_server(true)
            .case_sensitive(true)
            .no_auto_anonymous_login(true)
            .min_protocol(dialect),
    )
    .map_err(|e| WireError {
        kind: ErrKind::Io,
        message: format!("{target}: {e}"),
    })?;
    let _ = client.set_timeout(Duration::from_millis(h.timeout_ms));
    // new() does not connect: the first call does, and tells what is wrong
    match client.stat("/") {
        Ok(_) => Ok(client),
        Err(e) => {
            let (kind, detail) = classify(&e);
            let message = match kind {
                ErrKind::AccessDenied => {
                    return Err(WireError {
                        kind: ErrKind::Auth,
                        message: format!(
                            "log-on to {target} failed (NT_STATUS_LOGON_FAILURE or access denied) for user `{}` in domain `{}`: check the user name, password and domain",
                            h.username, h.domain
                        ),
                    });
                }
                ErrKind::NotFound => {
                    return Err(WireError {
                        kind: ErrKind::NoShare,
                        message: format!(
                            "share `{}` not found on {}:{} (NT_STATUS_BAD_NETWORK_NAME)",
                            h.share, h.server, h.port
                        ),
                    });
                }
                ErrKind::Unavailable => format!(
                    "cannot reach SMB server {}:{} for share `{}`: {detail}",
                    h.server, h.port, h.share
                ),
                ErrKind::TimedOut => format!(
                    "SMB server {}:{} did not answer within {} ms",
                    h.server, h.port, h.timeout_ms
                ),
                _ => format!("{target}: {detail}"),
            };
            // a server that accepts the connection and then drops it during negotiation,
            // or answers with an older dialect than the floor (NT_STATUS_NOT_SUPPORTED,
            // ENOSYS), speaks none of the dialects offered (SMB2 and later by default)
            let not_supported =
                matches!(&e, SmbError::Io(io) if io.raw_os_error() == Some(libc::ENOSYS));
            let no_dialect = not_supported
                || matches!(&e, SmbError::Io(io) if matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ));
            let kind = match kind {
                _ if no_dialect && h.min_protocol != "smb1" => ErrKind::Protocol,
                ErrKind::TimedOut => ErrKind::Unavailable,
                k => k,
            };
            // libsmbclient's errno for it reads "Function not implemented": say what it is
            let detail = if not_supported {
                "no dialect in common: NT_STATUS_NOT_SUPPORTED".to_string()
            } else {
                detail
            };
            let message = match (kind, h.min_protocol.as_str()) {
                (ErrKind::Protocol, "smb3") => format!(
                    "{target}: the server offers no SMB3 dialect ({detail}), and `protocol: smb3` accepts nothing older; it may only speak SMB2 (allowed with `protocol: smb2`) or SMB1"
                ),
                (ErrKind::Protocol, _) => format!(
                    "{target}: the server refused SMB2 and later ({detail}); it may only speak SMB1, which is disabled unless `protocol: smb1` is set"
                ),
                _ => message,
            };
            Err(WireError { kind, message })
        }
    }
}

/// Native listing sessions a worker opens at most: the folders of one `LIST_MANY`
/// are listed side by side on them (one server process each, on Samba).
const MAX_SESSIONS: usize = 4;

/// The native lister's sessions ([`smb2`]).
enum Native {
    /// Not used, and why: it cannot log on with what this server requires, it lost
    /// its connection, or `TRIBUTARY_SMB_NATIVE=0` turned it off.
    Off(String),
    On {
        sessions: Vec<smb2::Session>,
        /// More sessions were asked for (once: a server that refuses more connections
        /// is not asked again).
        grown: bool,
    },
}

/// What one native listing came to.
enum Listed {
    Ok(Vec<u8>),
    /// libsmbclient lists it (and words its error).
    Fallback,
    /// The server did not answer: reported as is (libsmbclient would wait as long).
    TimedOut(WireError),
    /// The session's connection is gone: libsmbclient lists it.
    Dead(String),
}

impl Native {
    /// Opens the native lister's session, right after libsmbclient's log-on succeeded
    /// with the same credentials (so a wrong password costs one failed log-on, not two).
    fn start(h: &Hello) -> Native {
        if !h.native {
            return Native::Off("TRIBUTARY_SMB_NATIVE=0".into());
        }
        match smb2::Session::connect(h) {
            Ok(s) => Native::On {
                sessions: vec![s],
                grown: false,
            },
            Err(e) => Native::Off(e.to_string()),
        }
    }

    fn describe(&self) -> proto::Welcome {
        proto::Welcome {
            lister: match self {
                Native::On { sessions, .. } => format!("native {}", sessions[0].describe()),
                Native::Off(why) => {
                    format!("libsmbclient (the native SMB client is unavailable: {why})")
                }
            },
        }
    }

    /// Lists `paths` natively, side by side on up to [`MAX_SESSIONS`] sessions; per
    /// path `None` when libsmbclient must list it (this lister is off, or the folder
    /// gave it an error that libsmbclient then words the way every other error of the
    /// connector is worded).
    fn list_many(
        &mut self,
        h: &Hello,
        paths: &[String],
    ) -> Vec<Option<Result<Vec<u8>, WireError>>> {
        let Native::On { sessions, grown } = self else {
            return paths.iter().map(|_| None).collect();
        };
        // a session for every two folders (each takes the next folder as it is done:
        // a slow folder does not hold the others up), at most MAX_SESSIONS
        let want = paths.len().div_ceil(2).min(MAX_SESSIONS);
        if sessions.len() < want && !*grown {
            *grown = true;
            while sessions.len() < want {
                match smb2::Session::connect(h) {
                    Ok(s) => sessions.push(s),
                    Err(_) => break,
                }
            }
        }
        // each session takes the next folder until none is left (or its connection
        // is gone)
        let next = std::sync::atomic::AtomicUsize::new(0);
        let take = |s: &mut smb2::Session| {
            let mut v = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(p) = paths.get(i) else { break };
                let o = list_one(s, h, p);
                let dead = matches!(o, Listed::Dead(_));
                v.push((i, o));
                if dead {
                    break;
                }
            }
            v
        };
        let outcomes: Vec<(usize, Listed)> = if paths.len() == 1 || sessions.len() == 1 {
            take(&mut sessions[0])
        } else {
            let take = &take;
            std::thread::scope(|scope| {
                let threads: Vec<_> = sessions
                    .iter_mut()
                    .take(paths.len())
                    .map(|s| scope.spawn(move || take(s)))
                    .collect();
                threads
                    .into_iter()
                    .flat_map(|t| t.join().unwrap_or_default())
                    .collect()
            })
        };
        let mut results: Vec<Option<Result<Vec<u8>, WireError>>> =
            paths.iter().map(|_| None).collect();
        let mut gone = String::from("the server did not answer");
        for (i, o) in outcomes {
            results[i] = match o {
                Listed::Ok(buf) => Some(Ok(buf)),
                Listed::TimedOut(e) => Some(Err(e)),
                Listed::Fallback => None,
                Listed::Dead(why) => {
                    gone = why;
                    None
                }
            };
        }
        self.drop_dead(gone);
        results
    }
}

impl Native {
    /// Drops the sessions whose connection failed (and could not be opened again);
    /// with none left, libsmbclient does everything, and `why` says why.
    fn drop_dead(&mut self, why: String) {
        if let Native::On { sessions, .. } = self {
            sessions.retain(smb2::Session::alive);
            if sessions.is_empty() {
                *self = Native::Off(why);
            }
        }
    }

    /// Streams the file at `path` natively (`OK`, data frames, `END` with the state at
    /// the close); `false` when libsmbclient must read it (this lister is off, or the
    /// open failed: libsmbclient then words the error, "locked", "access denied" …).
    fn read(
        &mut self,
        client: &SmbClient,
        h: &Hello,
        path: &str,
        size: Option<u64>,
        out: &mut impl Write,
    ) -> io::Result<bool> {
        let Native::On { sessions, .. } = self else {
            return Ok(false);
        };
        let mut started = false;
        let mut sink = |data: &[u8]| {
            if !started {
                proto::write_frame(out, proto::OK, b"{}")?;
                started = true;
            }
            // an empty file sends no data frame
            if data.is_empty() {
                Ok(())
            } else {
                proto::write_frame(out, proto::DATA, data)
            }
        };
        let mut r = sessions[0].read_file(path, size, &mut sink);
        // a connection the server closed while the worker was idle is opened again, once
        if let Err(smb2::ReadFail::Before(smb2::Error::Transport(e))) = &r
            && !timed_out(e)
            && let Ok(fresh) = smb2::Session::connect(h)
        {
            sessions[0] = fresh;
            r = sessions[0].read_file(path, size, &mut sink);
        }
        let (e, before) = match r {
            Ok(end) => {
                if !started {
                    proto::write_frame(out, proto::OK, b"{}")?;
                }
                let stat = match end {
                    Some(e) => Ok(Stat {
                        dir: false,
                        size: e.size,
                        mtime_ns: e.mtime_ns,
                    }),
                    // a server that does not tell the state at the close is asked
                    None => client
                        .stat(encode(path))
                        .map(|s| stat_of(&s))
                        .map_err(|e| wire(&e, path, &format!("{}:{}", h.server, h.port))),
                };
                match stat {
                    Ok(s) => proto::write_json(out, proto::END, &s)?,
                    Err(e) => proto::write_json(out, proto::ERR, &e)?,
                }
                return Ok(true);
            }
            Err(smb2::ReadFail::Sink(e)) => return Err(e),
            Err(smb2::ReadFail::Before(e)) => (e, true),
            Err(smb2::ReadFail::After(e)) => (e, false),
        };
        let timeout = matches!(&e, smb2::Error::Transport(io) if timed_out(io));
        if let smb2::Error::Transport(io) = &e {
            // the connection is in an unknown state: that session goes
            sessions[0].kill();
            self.drop_dead(io.to_string());
        }
        if before && !timeout {
            return Ok(false);
        }
        let e = if timeout {
            did_not_answer(h, path)
        } else {
            WireError {
                kind: match e {
                    smb2::Error::Transport(_) => ErrKind::Unavailable,
                    _ => ErrKind::Io,
                },
                message: format!("{path}: {e}"),
            }
        };
        proto::write_json(out, proto::ERR, &e)?;
        Ok(true)
    }
}

/// A server that did not answer a native request in time (libsmbclient would wait as
/// long again: reported as is).
fn did_not_answer(h: &Hello, path: &str) -> WireError {
    WireError {
        kind: ErrKind::TimedOut,
        message: format!(
            "{path}: SMB server {}:{} did not answer within {} ms",
            h.server, h.port, h.timeout_ms
        ),
    }
}

/// One folder on one session; a connection the server closed while the worker was
/// idle (servers drop idle sessions) is opened again, once.
fn list_one(s: &mut smb2::Session, h: &Hello, path: &str) -> Listed {
    let mut buf = Vec::new();
    let mut r = s.list(path, &mut buf);
    if let Err(smb2::Error::Transport(e)) = &r
        && !timed_out(e)
        && let Ok(fresh) = smb2::Session::connect(h)
    {
        *s = fresh;
        buf.clear();
        r = s.list(path, &mut buf);
    }
    match r {
        Ok(()) => Listed::Ok(buf),
        Err(smb2::Error::Transport(e)) => {
            s.kill();
            if timed_out(&e) {
                Listed::TimedOut(did_not_answer(h, path))
            } else {
                Listed::Dead(e.to_string())
            }
        }
        Err(_) => Listed::Fallback,
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Lists `path` through libsmbclient ([`Listing`] encoding).
fn list(client: &SmbClient, path: &str, server: &str) -> Result<Vec<u8>, WireError> {
    let mut buf = Vec::new();
    match client.list_dirplus(path) {
        Ok(entries) => {
            for e in &entries {
                let dir = e.get_type() == SmbDirentType::Dir;
                Listing::push(&mut buf, e.name(), dir, e.size, ns(e.mtime));
            }
            Ok(buf)
        }
        // listing errors lose errno: ask stat what is wrong with the folder
        Err(_) => Err(match client.stat(path) {
            Err(e) => wire(&e, path, server),
            Ok(s) if !s.mode.is_dir() => WireError {
                kind: ErrKind::Io,
                message: "a file, not a folder".into(),
            },
            Ok(_) => WireError {
                kind: ErrKind::AccessDenied,
                message: "the folder exists but cannot be listed (access denied?)".into(),
            },
        }),
    }
}

/// New handles one read may take after libsmbclient's spurious EINVAL.
const MAX_REOPENS: u32 = 3;

fn read(
    client: &SmbClient,
    path: &str,
    shown: &str,
    server: &str,
    out: &mut impl Write,
) -> io::Result<()> {
    // no `stat` first: the listing's size and mtime are the state before the read (a
    // change since then shows in the `stat` after it), and a small file costs one
    // round trip less
    let mut file = match client.open_with(path, SmbOpenOptions::default().read(true)) {
        Ok(f) => f,
        Err(e) => return proto::write_json(out, proto::ERR, &wire(&e, shown, server)),
    };
    proto::write_frame(out, proto::OK, b"{}")?;
    let mut buf = vec![0u8; READ_SIZE];
    // bytes sent so far, and new handles taken after an EINVAL
    let (mut offset, mut reopened) = (0u64, 0);
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // libsmbclient fails a read with EINVAL now and then (the server's
            // INVALID_PARAMETER, seen on a busy smbd): a new handle, positioned where
            // the last one stopped, carries on, so nothing is sent twice or skipped.
            Err(e) if reopened < MAX_REOPENS && e.raw_os_error() == Some(libc::EINVAL) => {
                reopened += 1;
                drop(file);
                file = match client.open_with(path, SmbOpenOptions::default().read(true)) {
                    Ok(f) => f,
                    Err(e) => return proto::write_json(out, proto::ERR, &wire(&e, shown, server)),
                };
                if let Err(e) = file.seek(SeekFrom::Start(offset)) {
                    let e = wire(&SmbError::Io(e), shown, server);
                    return proto::write_json(out, proto::ERR, &e);
                }
                continue;
            }
            Err(e) => {
                let e = wire(&SmbError::Io(e), shown, server);
                return proto::write_json(out, proto::ERR, &e);
            }
        };
        proto::write_frame(out, proto::DATA, &buf[..n])?;
        offset += n as u64;
    }
    drop(file);
    match client.stat(path) {
        Ok(s) => proto::write_json(out, proto::END, &stat_of(&s)),
        Err(e) => proto::write_json(out, proto::ERR, &wire(&e, shown, server)),
    }
}

fn stat_of(s: &pavao::SmbStat) -> Stat {
    Stat {
        dir: s.mode.is_dir(),
        size: s.size,
        mtime_ns: ns(s.modified),
    }
}

fn ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

fn classify(e: &SmbError) -> (ErrKind, String) {
    let kind = match e {
        SmbError::Io(io) => match io.kind() {
            io::ErrorKind::NotFound => ErrKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrKind::AccessDenied,
            io::ErrorKind::TimedOut => ErrKind::TimedOut,
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable => ErrKind::Unavailable,
            io::ErrorKind::ResourceBusy => ErrKind::Locked,
            _ if io.raw_os_error() == Some(16) || io.raw_os_error() == Some(26) => ErrKind::Locked,
            _ => ErrKind::Io,
        },
        _ => ErrKind::Io,
    };
    (kind, e.to_string())
}

fn wire(e: &SmbError, path: &str, server: &str) -> WireError {
    let (kind, detail) = classify(e);
    let message = match kind {
        ErrKind::Unavailable => format!("cannot reach SMB server {server} ({path}): {detail}"),
        ErrKind::NotFound => format!("{path}: not found"),
        ErrKind::AccessDenied => format!("{path}: access denied"),
        ErrKind::Locked => {
            format!("{path}: locked by another client (sharing violation); it is retried later")
        }
        ErrKind::TimedOut => format!("{path}: the server did not answer in time"),
        ErrKind::Io
            if matches!(e, SmbError::Io(io) if io.raw_os_error() == Some(22))
                && path.contains(['?', '*', ':', '<', '>', '|', '"', '\\']) =>
        {
            format!(
                "{path}: the server refuses this name over SMB (it contains characters that are invalid in SMB names: ? * : < > | \" \\); rename the file on the server, or enable name mangling on the share"
            )
        }
        _ => format!("{path}: {detail}"),
    };
    WireError { kind, message }
}

/// libsmbclient URL-decodes paths: `%` (and `?`, which would start URL options) must
/// be escaped.
fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn percent_and_question_marks_are_escaped() {
        assert_eq!(encode("/a/50%off?.txt"), "/a/50%25off%3F.txt");
        assert_eq!(encode("/Café #1 & co.txt"), "/Café #1 & co.txt");
    }
}
