//! A native SMB2/SMB3 client, used by the worker to list folders and read files.
//!
//! libsmbclient lists with the `FileIdBothDirectoryInformation` info level, whose
//! `EaSize` field costs Samba one `listxattr` per entry: a tenth of the server's work on
//! a large share (bench/README.md, "SMB"). Nothing in libsmbclient's API chooses another
//! level, so listing speaks SMB2 itself, with `FileDirectoryInformation` (name, size,
//! times, attributes: all a listing needs), and with one round trip per folder:
//! `CREATE` + `QUERY_DIRECTORY` + `QUERY_DIRECTORY` + `CLOSE` sent as one related
//! compound (libsmbclient needs four round trips).
//!
//! Scope: dialects 2.0.2 to 3.1.1 (with its preauth integrity), NTLMv2 inside SPNEGO,
//! HMAC-SHA256 (SMB2) and AES-CMAC (SMB3) signing when the server requires it,
//! AES-128-CCM or -GCM encryption when the session or the share requires it. Anything
//! else (an SMB1-only server, Kerberos-only, a guest session) is
//! [`Error::Unsupported`], and the worker lists and reads through libsmbclient instead;
//! so it does any folder this client cannot list and any file it cannot open, so every
//! error a user sees is worded as before. Files are read with one compound round trip
//! when they fit one read ([`Session::read_file`]).
//!
//! One file because it is one client: the message layout, the session set-up
//! (negotiate, NTLMv2/SPNEGO, key derivation) and the signing and sealing of every
//! message share the session's state and keys, and the two operations are a few
//! compounds over them; the parts are ordered as a request goes out.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};

use crate::proto::{Hello, Listing};

type HmacMd5 = Hmac<md5::Md5>;
type Aes128Ccm = ccm::Ccm<aes::Aes128, ccm::consts::U16, ccm::consts::U11>;
type HmacSha256 = Hmac<sha2::Sha256>;

const NEGOTIATE: u16 = 0x00;
const SESSION_SETUP: u16 = 0x01;
const TREE_CONNECT: u16 = 0x03;
const CREATE: u16 = 0x05;
const CLOSE: u16 = 0x06;
const READ: u16 = 0x08;
const QUERY_DIRECTORY: u16 = 0x0e;

pub const STATUS_SUCCESS: u32 = 0;
const STATUS_PENDING: u32 = 0x0000_0103;
const STATUS_NO_MORE_FILES: u32 = 0x8000_0006;
const STATUS_NO_SUCH_FILE: u32 = 0xC000_000F;
const STATUS_MORE_PROCESSING_REQUIRED: u32 = 0xC000_0016;
const STATUS_END_OF_FILE: u32 = 0xC000_0011;

const FLAG_RESPONSE: u32 = 0x1;
const FLAG_ASYNC: u32 = 0x2;
const FLAG_RELATED: u32 = 0x4;
const FLAG_SIGNED: u32 = 0x8;

const HEADER: usize = 64;
const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x10;
const FILE_DIRECTORY_INFORMATION: u8 = 0x01;
/// Seconds between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const EPOCH_DIFF_SECS: i64 = 11_644_473_600;
/// Credits asked for with every request; Samba grants up to `smb2 max credits` (8192).
const CREDITS_WANTED: u16 = 256;
/// The largest `QUERY_DIRECTORY` answer asked for: 1 MiB, some 9,000 entries.
const MAX_QUERY: u32 = 1 << 20;

#[derive(Debug)]
pub enum Error {
    /// The connection failed (timed out, reset, closed): this session is gone.
    Transport(io::Error),
    /// The server answered a request with this NT status.
    Status(u32),
    /// Something this lister does not do, or a reply it cannot parse.
    Unsupported(String),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Transport(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "{e}"),
            Error::Status(s) => match status_name(*s) {
                Some(name) => f.write_str(name),
                None => write!(f, "NT status {s:#010x}"),
            },
            Error::Unsupported(m) => f.write_str(m),
        }
    }
}

fn status_name(s: u32) -> Option<&'static str> {
    Some(match s {
        0xC000_0022 => "NT_STATUS_ACCESS_DENIED",
        0xC000_006D => "NT_STATUS_LOGON_FAILURE",
        0xC000_00BB => "NT_STATUS_NOT_SUPPORTED",
        0xC000_000D => "NT_STATUS_INVALID_PARAMETER",
        0xC000_00CC => "NT_STATUS_BAD_NETWORK_NAME",
        0xC000_0034 => "NT_STATUS_OBJECT_NAME_NOT_FOUND",
        0xC000_003A => "NT_STATUS_OBJECT_PATH_NOT_FOUND",
        0xC000_0103 => "NT_STATUS_NOT_A_DIRECTORY",
        _ => return None,
    })
}

fn unsupported<T>(what: impl Into<String>) -> Result<T, Error> {
    Err(Error::Unsupported(what.into()))
}

enum Signer {
    /// SMB 2.x: HMAC-SHA256 with the session key.
    Sha256([u8; 16]),
    /// SMB 3.0.x: AES-128-CMAC with the derived signing key.
    Cmac([u8; 16]),
}

impl Signer {
    /// The signature of a message: its MAC with the signature field zeroed.
    fn mac(&self, msg: &[u8]) -> [u8; 16] {
        let parts: [&[u8]; 3] = [&msg[..48], &[0; 16], &msg[64..]];
        match self {
            Signer::Sha256(key) => {
                let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
                parts.iter().for_each(|p| mac.update(p));
                mac.finalize().into_bytes()[..16]
                    .try_into()
                    .expect("16 bytes")
            }
            Signer::Cmac(key) => {
                let mut mac =
                    <cmac::Cmac<aes::Aes128> as Mac>::new_from_slice(key).expect("16 bytes");
                parts.iter().for_each(|p| mac.update(p));
                mac.finalize().into_bytes().into()
            }
        }
    }

    fn sign(&self, msg: &mut [u8]) {
        let flags = le32(msg, 16) | FLAG_SIGNED;
        msg[16..20].copy_from_slice(&flags.to_le_bytes());
        let sig = self.mac(msg);
        msg[48..64].copy_from_slice(&sig);
    }

    fn verify(&self, msg: &[u8]) -> bool {
        le32(msg, 16) & FLAG_SIGNED != 0 && self.mac(msg)[..] == msg[48..64]
    }
}

/// The AEAD of an encrypted session: AES-128-CCM (SMB 3.0.x, or as 3.1.1 negotiated)
/// or AES-128-GCM (3.1.1).
enum Aead {
    Ccm(Box<Aes128Ccm>),
    Gcm(Box<aes_gcm::Aes128Gcm>),
}

impl Aead {
    fn new(gcm: bool, key: &[u8; 16]) -> Aead {
        use ccm::aead::KeyInit;
        if gcm {
            Aead::Gcm(Box::new(aes_gcm::Aes128Gcm::new(key.into())))
        } else {
            Aead::Ccm(Box::new(Aes128Ccm::new(key.into())))
        }
    }

    fn nonce_len(&self) -> usize {
        match self {
            Aead::Ccm(_) => 11,
            Aead::Gcm(_) => 12,
        }
    }

    fn seal(&self, nonce: &[u8], aad: &[u8], body: &mut [u8]) -> [u8; 16] {
        use ccm::aead::AeadInPlace;
        let tag = match self {
            Aead::Ccm(c) => c.encrypt_in_place_detached(nonce.into(), aad, body),
            Aead::Gcm(c) => c.encrypt_in_place_detached(nonce.into(), aad, body),
        };
        tag.expect("a message of less than 4 GiB").into()
    }

    fn open(&self, nonce: &[u8], aad: &[u8], body: &mut [u8], tag: &[u8]) -> bool {
        use ccm::aead::AeadInPlace;
        match self {
            Aead::Ccm(c) => c.decrypt_in_place_detached(nonce.into(), aad, body, tag.into()),
            Aead::Gcm(c) => c.decrypt_in_place_detached(nonce.into(), aad, body, tag.into()),
        }
        .is_ok()
    }
}

/// SMB3 encryption, for sessions or shares that require it.
struct Crypt {
    /// Client to server, server to client.
    seal: Aead,
    open: Aead,
    /// A nonce is never used twice with a key: a counter, and a random salt.
    counter: u64,
    salt: [u8; 4],
}

impl Crypt {
    fn new(session_key: &[u8; 16], keys: &Keys) -> Crypt {
        let (seal, open) = match &keys.preauth {
            Some(h) => (
                kdf(session_key, b"SMBC2SCipherKey\0", h),
                kdf(session_key, b"SMBS2CCipherKey\0", h),
            ),
            None => (
                kdf(session_key, b"SMB2AESCCM\0", b"ServerIn \0"),
                kdf(session_key, b"SMB2AESCCM\0", b"ServerOut\0"),
            ),
        };
        Crypt {
            seal: Aead::new(keys.gcm, &seal),
            open: Aead::new(keys.gcm, &open),
            counter: 0,
            salt: rand::random(),
        }
    }

    /// A transform header and the encrypted message(s).
    fn seal(&mut self, session_id: u64, plain: &[u8]) -> Vec<u8> {
        self.counter += 1;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.counter.to_le_bytes());
        let n = self.seal.nonce_len();
        nonce[8..n].copy_from_slice(&self.salt[..n - 8]);
        let mut out = Vec::with_capacity(52 + plain.len());
        out.extend_from_slice(b"\xfdSMB");
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&nonce);
        put32(&mut out, plain.len() as u32);
        put16(&mut out, 0);
        put16(&mut out, 1); // encrypted (3.1.1); AES-128-CCM (3.0.x)
        put64(&mut out, session_id);
        out.extend_from_slice(plain);
        let (head, body) = out.split_at_mut(52);
        let tag = self.seal.seal(&nonce[..n], &head[20..52], body);
        head[4..20].copy_from_slice(&tag);
        out
    }

    /// The message(s) inside a transform; `None` when they do not decrypt.
    fn open<'a>(&self, msg: &'a mut [u8]) -> Option<&'a [u8]> {
        if msg.len() < 52 {
            return None;
        }
        let (head, body) = msg.split_at_mut(52);
        let size = le32(head, 36) as usize;
        let body = body.get_mut(..size)?;
        let n = self.open.nonce_len();
        self.open
            .open(&head[20..20 + n], &head[20..52], body, &head[4..20])
            .then_some(&*body)
    }
}

/// What the dialect's keys derive from.
struct Keys {
    dialect: u16,
    /// SMB 3.1.1: the hash of the negotiation and log-on messages.
    preauth: Option<[u8; 64]>,
    /// SMB 3.1.1 negotiated AES-128-GCM for encryption.
    gcm: bool,
}

/// One request of a compound.
struct Req {
    cmd: u16,
    body: Vec<u8>,
    related: bool,
    /// Credits this request costs (its payload or its answer over 64 KiB).
    charge: u16,
}

impl Req {
    /// A request of one credit on its own (not related to the one before).
    fn new(cmd: u16, body: Vec<u8>) -> Req {
        Req {
            cmd,
            body,
            related: false,
            charge: 0,
        }
    }
}

/// A logged-on session with one share tree connected.
pub struct Session {
    sock: TcpStream,
    dead: bool,
    dialect: u16,
    next_id: u64,
    credits: u32,
    session_id: u64,
    tree_id: u32,
    /// The server grants requests of more than one credit (SMB 2.1 and later, with
    /// large MTU).
    multi_credit: bool,
    max_transact: u32,
    max_read: u32,
    signer: Option<Signer>,
    /// Every request is signed (the server requires it); else only SMB 3.1.1's tree
    /// connect is.
    sign_all: bool,
    /// Set when the session or the share requires encryption.
    crypt: Option<Crypt>,
    /// The hash of the messages so far, while negotiating and logging on (SMB 3.1.1).
    preauth: Option<[u8; 64]>,
    gcm: bool,
    /// Responses read before they were waited for.
    stash: HashMap<u64, Vec<u8>>,
    frame: Vec<u8>,
}

impl Session {
    /// Connects, negotiates, logs on and connects the share.
    pub fn connect(h: &Hello) -> Result<Session, Error> {
        let timeout = Duration::from_millis(h.timeout_ms.max(1));
        let addrs = (h.server.as_str(), h.port).to_socket_addrs()?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut sock = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let sock = sock.ok_or(last)?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        let mut s = Session {
            sock,
            dead: false,
            dialect: 0,
            next_id: 0,
            credits: 1,
            session_id: 0,
            tree_id: 0,
            multi_credit: false,
            max_transact: 65536,
            max_read: 65536,
            signer: None,
            sign_all: false,
            crypt: None,
            preauth: Some([0; 64]),
            gcm: false,
            stash: HashMap::new(),
            frame: Vec::new(),
        };
        let (dialect, signing_required) = s.negotiate(&h.min_protocol)?;
        s.dialect = dialect;
        let (key, encrypt) = s.log_on(h)?;
        let keys = Keys {
            dialect,
            preauth: s.preauth.take().filter(|_| dialect == 0x0311),
            gcm: s.gcm,
        };
        if encrypt {
            s.crypt = Some(Crypt::new(&key, &keys));
        }
        s.sign_all = signing_required;
        s.signer = match &keys.preauth {
            Some(h) => Some(Signer::Cmac(kdf(&key, b"SMBSigningKey\0", h))),
            None if !signing_required => None,
            None if keys.dialect >= 0x0300 => {
                Some(Signer::Cmac(kdf(&key, b"SMB2AESCMAC\0", b"SmbSign\0")))
            }
            None => Some(Signer::Sha256(key)),
        };
        if s.tree_connect(h)? && s.crypt.is_none() {
            s.crypt = Some(Crypt::new(&key, &keys));
        }
        Ok(s)
    }

    /// Whether the connection still stands (not [`Session::kill`]ed).
    pub fn alive(&self) -> bool {
        !self.dead
    }

    /// Marks the session unusable (its connection failed or timed out: a late answer
    /// must not be taken for a later request's).
    pub fn kill(&mut self) {
        self.dead = true;
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    /// "SMB 3.0.2, signed", say.
    pub fn describe(&self) -> String {
        let (major, minor) = (self.dialect >> 8, self.dialect & 0xff);
        let signed = match (&self.crypt, self.sign_all) {
            (Some(_), _) => ", encrypted",
            (None, true) => ", signed",
            (None, false) => "",
        };
        format!("SMB {major}.{}.{}{signed}", minor >> 4, minor & 0xf)
    }

    fn negotiate(&mut self, floor: &str) -> Result<(u16, bool), Error> {
        let dialects: &[u16] = match floor {
            "smb3" => &[0x0300, 0x0302, 0x0311],
            _ => &[0x0202, 0x0210, 0x0300, 0x0302, 0x0311],
        };
        let mut b = Vec::with_capacity(36 + 2 * dialects.len() + 96);
        put16(&mut b, 36);
        put16(&mut b, dialects.len() as u16);
        put16(&mut b, 0x1); // signing enabled
        put16(&mut b, 0);
        put32(&mut b, 0x4 | 0x40); // large MTU, encryption
        b.extend_from_slice(&rand::random::<[u8; 16]>()); // client GUID
        b.extend_from_slice(&[0; 8]); // negotiate contexts: set below
        for d in dialects {
            put16(&mut b, *d);
        }
        // SMB 3.1.1's negotiate contexts, 8-byte aligned from the header's start
        b.resize((HEADER + b.len()).next_multiple_of(8) - HEADER, 0);
        let at = (HEADER + b.len()) as u32;
        b[28..32].copy_from_slice(&at.to_le_bytes());
        b[32..34].copy_from_slice(&2u16.to_le_bytes());
        // preauth integrity: SHA-512 with a 32-byte salt
        put16(&mut b, 1);
        put16(&mut b, 38);
        put32(&mut b, 0);
        put16(&mut b, 1);
        put16(&mut b, 32);
        put16(&mut b, 1);
        b.extend_from_slice(&rand::random::<[u8; 32]>());
        b.resize((HEADER + b.len()).next_multiple_of(8) - HEADER, 0);
        // encryption: AES-128-GCM, AES-128-CCM
        put16(&mut b, 2);
        put16(&mut b, 6);
        put32(&mut b, 0);
        put16(&mut b, 2);
        put16(&mut b, 2);
        put16(&mut b, 1);
        let r = self.call(Req::new(NEGOTIATE, b))?;
        check(&r, STATUS_SUCCESS)?;
        let dialect = le16(&r, HEADER + 4);
        if !dialects.contains(&dialect) {
            return unsupported(format!("dialect {dialect:#06x}"));
        }
        let security_mode = le16(&r, HEADER + 2);
        let caps = le32(&r, HEADER + 24);
        self.max_transact = le32(&r, HEADER + 28);
        self.max_read = le32(&r, HEADER + 32);
        self.multi_credit = dialect >= 0x0210 && caps & 0x4 != 0;
        if dialect == 0x0311 {
            self.hash(&r);
            self.gcm = negotiate_gcm(&r);
        }
        Ok((dialect, security_mode & 0x2 != 0))
    }

    /// Adds a message to the SMB 3.1.1 preauth integrity hash.
    fn hash(&mut self, msg: &[u8]) {
        use sha2::Digest as _;
        if let Some(h) = &mut self.preauth {
            let mut d = sha2::Sha512::new();
            d.update(&h[..]);
            d.update(msg);
            *h = d.finalize().into();
        }
    }

    /// NTLMv2 in SPNEGO; returns the session key, and whether the session is to be
    /// encrypted.
    fn log_on(&mut self, h: &Hello) -> Result<([u8; 16], bool), Error> {
        let r = self.call(Req::new(
            SESSION_SETUP,
            session_setup(&spnego_init(&ntlm_negotiate())),
        ))?;
        check(&r, STATUS_MORE_PROCESSING_REQUIRED)?;
        self.hash(&r);
        self.session_id = le64(&r, 40);
        let blob = security_buffer(&r)?;
        let challenge = Challenge::parse(blob)?;
        let (user, domain) = ntlm_identity(&h.username, &h.domain);
        let (auth, key) = ntlm_authenticate(
            &challenge,
            user,
            domain,
            &h.password,
            rand::random(),
            filetime_now(),
        );
        let r = self.call(Req::new(
            SESSION_SETUP,
            session_setup(&spnego_response(&auth)),
        ))?;
        match check(&r, STATUS_SUCCESS) {
            // libsmbclient logged on with the same credentials a moment ago
            Err(Error::Status(0xC000_0022)) => {
                return unsupported(
                    "log-on refused with NT_STATUS_ACCESS_DENIED: the server may require encryption that this dialect does not offer",
                );
            }
            r => r?,
        }
        let flags = le16(&r, HEADER + 2);
        if flags & 0x3 != 0 {
            return unsupported("a guest or anonymous session");
        }
        let encrypt = flags & 0x4 != 0;
        if encrypt && self.dialect < 0x0300 {
            return unsupported("encryption before SMB 3");
        }
        Ok((key, encrypt))
    }

    /// Connects the share; `true` when it requires encryption.
    fn tree_connect(&mut self, h: &Hello) -> Result<bool, Error> {
        let path = utf16(&format!("\\\\{}\\{}", h.server, h.share));
        let mut b = Vec::with_capacity(8 + path.len());
        put16(&mut b, 9);
        put16(&mut b, 0);
        put16(&mut b, (HEADER + 8) as u16);
        put16(&mut b, path.len() as u16);
        b.extend_from_slice(&path);
        let r = self.call(Req::new(TREE_CONNECT, b))?;
        check(&r, STATUS_SUCCESS)?;
        self.tree_id = le32(&r, 36);
        if r.get(HEADER + 2) != Some(&1) {
            return unsupported("not a disk share");
        }
        let encrypt = le32(&r, HEADER + 4) & 0x8000 != 0;
        if encrypt && self.dialect < 0x0300 {
            return unsupported("encryption before SMB 3");
        }
        Ok(encrypt)
    }

    /// Lists the folder at `path` (share-relative, `/`-separated) into `buf` as
    /// [`Listing`] records. `.` and `..` are left out.
    pub fn list(&mut self, path: &str, buf: &mut Vec<u8>) -> Result<(), Error> {
        // as much as the credits allow, at most MAX_QUERY
        let (out_len, charge) = if self.multi_credit {
            let units = ((self.credits.saturating_sub(2)) / 2).clamp(1, MAX_QUERY >> 16);
            let len = (units << 16).min(self.max_transact.max(65536));
            (len, len.div_ceil(65536) as u16)
        } else {
            (65536.min(self.max_transact), 0)
        };
        let rs = self.exchange(&[
            create(path, Open::Folder),
            query(RELATED_FILE, 0x01, out_len, charge),
            query(RELATED_FILE, 0, out_len, charge),
            close(RELATED_FILE, false),
        ])?;
        check(&rs[0], STATUS_SUCCESS)?;
        let start = buf.len();
        // the folder is complete when either answer says "no more files"
        let done = entries(&rs[1], buf)? || entries(&rs[2], buf)?;
        if done {
            return Ok(());
        }
        // more than two answers' worth: list it again on an open handle until the end
        buf.truncate(start);
        let r = self.call(create(path, Open::Folder))?;
        check(&r, STATUS_SUCCESS)?;
        let fid = file_id(&r)?;
        let mut flags = 0x01;
        let listed = loop {
            let q = query(fid, flags, out_len, charge);
            flags = 0;
            let r = match self.call(q) {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            match entries(&r, buf) {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
        };
        let closed = self.call(close(fid, false));
        listed?;
        closed.map(drop)
    }

    /// Reads the file at `path` (share-relative) and hands its bytes to `sink` in
    /// order; returns its size and mtime at the close (the state after the read), if
    /// the server tells them. A
    /// file `size_hint` says is smaller than one read is opened, read and closed in
    /// one round trip; a larger one is read with up to four reads in flight.
    pub fn read_file(
        &mut self,
        path: &str,
        size_hint: Option<u64>,
        mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<Option<FileEnd>, ReadFail> {
        let (chunk, charge) = self.read_size();
        let small = size_hint.is_some_and(|s| s < u64::from(chunk));
        let mut reqs = vec![
            create(path, Open::File),
            read(RELATED_FILE, 0, chunk, charge),
        ];
        if small {
            reqs.push(close(RELATED_FILE, true));
        }
        let rs = self.exchange(&reqs).map_err(ReadFail::Before)?;
        check(&rs[0], STATUS_SUCCESS).map_err(ReadFail::Before)?;
        let fid = file_id(&rs[0]).map_err(ReadFail::Before)?;
        let first = read_data(&rs[1]).map_err(ReadFail::Before)?;
        if small {
            let end = file_end(&rs[2]).map_err(ReadFail::Before)?;
            sink(first).map_err(ReadFail::Sink)?;
            return Ok(end);
        }
        let full = first.len() == chunk as usize;
        sink(first).map_err(ReadFail::Sink)?;
        let streamed = if full {
            self.read_rest(fid, u64::from(chunk), chunk, charge, &mut sink)
        } else {
            Ok(())
        };
        let closed = self.call(close(fid, true)).and_then(|r| file_end(&r));
        streamed?;
        closed.map_err(ReadFail::After)
    }

    /// The reads after the first, up to four in flight, until a short one.
    fn read_rest(
        &mut self,
        fid: [u8; 16],
        mut offset: u64,
        chunk: u32,
        charge: u16,
        sink: &mut impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), ReadFail> {
        let mut in_flight = std::collections::VecDeque::new();
        let mut more = true;
        loop {
            while more && in_flight.len() < 4 {
                let cost = u32::from(charge.max(1));
                if !in_flight.is_empty() && self.credits < cost {
                    break;
                }
                let ids = self
                    .send(&[read(fid, offset, chunk, charge)])
                    .map_err(ReadFail::After)?;
                in_flight.push_back(ids[0]);
                offset += u64::from(chunk);
            }
            let Some(id) = in_flight.pop_front() else {
                return Ok(());
            };
            let r = self.recv(id).map_err(ReadFail::After)?;
            let data = read_data(&r).map_err(ReadFail::After)?;
            if more {
                sink(data).map_err(ReadFail::Sink)?;
            }
            if data.len() < chunk as usize {
                // the end: what is still in flight reads past it
                more = false;
            }
        }
    }

    /// Bytes per read: 1 MiB where the server grants multi-credit requests.
    fn read_size(&self) -> (u32, u16) {
        if self.multi_credit {
            let len = MAX_QUERY.min(self.max_read.max(65536));
            (len, len.div_ceil(65536) as u16)
        } else {
            (65536.min(self.max_read.max(4096)), 0)
        }
    }

    /// Sends one request and waits for its answer.
    fn call(&mut self, req: Req) -> Result<Vec<u8>, Error> {
        let ids = self.send(&[req])?;
        self.recv(ids[0])
    }

    /// Sends `reqs` as one compound and waits for all their answers, in order.
    fn exchange(&mut self, reqs: &[Req]) -> Result<Vec<Vec<u8>>, Error> {
        let ids = self.send(reqs)?;
        ids.into_iter().map(|id| self.recv(id)).collect()
    }

    /// Sends `reqs` as one compound (one transport frame); returns their message ids.
    fn send(&mut self, reqs: &[Req]) -> Result<Vec<u64>, Error> {
        let needed: u32 = reqs.iter().map(|r| u32::from(r.charge.max(1))).sum();
        if needed > self.credits {
            return unsupported(format!(
                "out of credits ({} granted, {needed} needed)",
                self.credits
            ));
        }
        let mut frame = vec![0u8; 4];
        let mut ids = Vec::with_capacity(reqs.len());
        for (i, r) in reqs.iter().enumerate() {
            let start = frame.len();
            let id = self.next_id;
            self.next_id += u64::from(r.charge.max(1));
            self.credits -= u32::from(r.charge.max(1));
            ids.push(id);
            frame.extend_from_slice(b"\xfeSMB");
            put16(&mut frame, 64);
            put16(&mut frame, r.charge);
            put32(&mut frame, 0); // channel sequence
            put16(&mut frame, r.cmd);
            put16(&mut frame, CREDITS_WANTED);
            put32(&mut frame, if r.related { FLAG_RELATED } else { 0 });
            put32(&mut frame, 0); // next command, set below
            put64(&mut frame, id);
            put32(&mut frame, 0xfeff); // process id
            put32(&mut frame, self.tree_id);
            put64(&mut frame, self.session_id);
            frame.extend_from_slice(&[0; 16]);
            frame.extend_from_slice(&r.body);
            if i + 1 < reqs.len() {
                frame.resize(frame.len().next_multiple_of(8), 0);
                let next = (frame.len() - start) as u32;
                frame[start + 20..start + 24].copy_from_slice(&next.to_le_bytes());
            }
            // an encrypted message is not signed: its encryption authenticates it;
            // SMB 3.1.1 signs its tree connect even where signing is not required
            if let (Some(s), None) = (&self.signer, &self.crypt)
                && (self.sign_all || r.cmd == TREE_CONNECT)
            {
                s.sign(&mut frame[start..]);
            }
            if self.preauth.is_some() {
                let msg = frame[start..].to_vec();
                self.hash(&msg);
            }
        }
        if let Some(c) = &mut self.crypt {
            let sealed = c.seal(self.session_id, &frame[4..]);
            frame.truncate(4);
            frame.extend_from_slice(&sealed);
        }
        let len = (frame.len() - 4) as u32;
        if len >= 1 << 24 {
            return unsupported("request too large");
        }
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.sock.write_all(&frame)?;
        Ok(ids)
    }

    /// The answer to message `id` (interim "pending" answers are skipped).
    fn recv(&mut self, id: u64) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(m) = self.stash.remove(&id) {
                return Ok(m);
            }
            let mut head = [0u8; 4];
            self.sock.read_exact(&mut head)?;
            let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
            self.frame.resize(len, 0);
            self.sock.read_exact(&mut self.frame)?;
            let mut frame = std::mem::take(&mut self.frame);
            let taken = self.take_answers(&mut frame);
            self.frame = frame;
            taken?;
        }
    }

    /// Stashes the answers of one transport frame (decrypted first, when it is).
    fn take_answers(&mut self, frame: &mut [u8]) -> Result<(), Error> {
        let bad = |what: &str| {
            Err(Error::Transport(io::Error::new(
                io::ErrorKind::InvalidData,
                what,
            )))
        };
        let (data, sealed): (&[u8], bool) = if frame.starts_with(b"\xfdSMB") {
            match self.crypt.as_ref().map(|c| c.open(frame)) {
                Some(Some(plain)) => (plain, true),
                Some(None) => return bad("an answer that does not decrypt"),
                None => return bad("an encrypted answer on a session without encryption"),
            }
        } else {
            (frame, false)
        };
        for a in split_answers(data)? {
            self.credits = self.credits.saturating_add(u32::from(a.credits));
            let interim = a.status == STATUS_PENDING && a.flags & FLAG_ASYNC != 0;
            if a.flags & FLAG_RESPONSE != 0 && !interim {
                // a session that encrypts takes no answer in the clear, and one that
                // signs none that is not signed right
                if self.crypt.is_some() && !sealed {
                    return bad("an answer in the clear on an encrypted session");
                }
                if let (Some(signer), false) = (&self.signer, sealed)
                    && (self.sign_all || a.flags & FLAG_SIGNED != 0)
                    && !signer.verify(a.msg)
                {
                    return bad("an answer without a valid signature");
                }
                self.stash.insert(a.id, a.msg.to_vec());
            }
        }
        Ok(())
    }
}

/// One message of a transport frame's compound, as the server sent it.
struct Answer<'a> {
    /// The whole message, header included (at least [`HEADER`] bytes).
    msg: &'a [u8],
    credits: u16,
    flags: u32,
    status: u32,
    id: u64,
}

/// The messages of one (decrypted) transport frame: each starts with the SMB2 magic
/// and a whole header, and `NextCommand` only moves forward.
fn split_answers(data: &[u8]) -> Result<Vec<Answer<'_>>, Error> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let m = &data[at..];
        if m.len() < HEADER || &m[..4] != b"\xfeSMB" {
            return unsupported("a malformed answer");
        }
        let next = le32(m, 20) as usize;
        let end = if next == 0 {
            m.len()
        } else {
            next.min(m.len())
        };
        if end < HEADER {
            return unsupported("a malformed answer");
        }
        out.push(Answer {
            msg: &m[..end],
            credits: le16(m, 14),
            flags: le32(m, 16),
            status: le32(m, 8),
            id: le64(m, 24),
        });
        if next == 0 {
            break;
        }
        at += next;
    }
    Ok(out)
}

/// Whether a 3.1.1 `NEGOTIATE` answer's contexts choose AES-128-GCM.
fn negotiate_gcm(r: &[u8]) -> bool {
    let mut gcm = false;
    let mut at = le32(r, HEADER + 60) as usize;
    for _ in 0..le16(r, HEADER + 6) {
        let (kind, len) = (le16(r, at), le16(r, at + 2) as usize);
        if kind == 2 {
            gcm = le16(r, at + 10) == 2;
        }
        at = (at + 8 + len).next_multiple_of(8);
    }
    gcm
}

/// Entry points for the fuzz targets (`fuzz/`): every parser of bytes an SMB server
/// sends, on arbitrary input. They must return, never panic. Not an API.
#[doc(hidden)]
pub mod fuzz {
    use super::*;

    /// A decrypted transport frame and each message parser.
    pub fn answer(data: &[u8]) {
        if let Ok(answers) = split_answers(data) {
            for a in answers {
                Signer::Sha256([7; 16]).verify(a.msg);
                Signer::Cmac([7; 16]).verify(a.msg);
            }
        }
        let mut buf = Vec::new();
        if entries(data, &mut buf).is_ok() {
            let _ = Listing::parse(&buf);
        }
        let _ = file_end(data);
        let _ = read_data(data);
        let _ = file_id(data);
        let _ = negotiate_gcm(data);
        for blob in [security_buffer(data).ok(), Some(data)]
            .into_iter()
            .flatten()
        {
            if let Ok(c) = Challenge::parse(blob) {
                let _ = c.timestamp();
                let _ = ntlm_authenticate(&c, "user", "DOMAIN", "password", [1; 8], 0);
            }
        }
    }

    /// An encrypted transport frame, opened with fixed keys (CCM and GCM).
    pub fn sealed(data: &[u8]) {
        for gcm in [false, true] {
            let c = Crypt {
                seal: Aead::new(gcm, &[3; 16]),
                open: Aead::new(gcm, &[3; 16]),
                counter: 0,
                salt: [0; 4],
            };
            let mut frame = data.to_vec();
            if let Some(plain) = c.open(&mut frame) {
                answer(plain);
            }
        }
    }
}

/// `FileId` meaning "the handle the previous request of this compound opened".
const RELATED_FILE: [u8; 16] = [0xff; 16];

/// What a `CREATE` opens.
#[derive(Clone, Copy)]
enum Open {
    /// A folder, to list.
    Folder,
    /// A file, to read.
    File,
}

/// `CREATE` of `path` (share-relative, `/`-separated), sharing read, write and delete
/// with other clients.
fn create(path: &str, open: Open) -> Req {
    let name = utf16(&path.trim_matches('/').replace('/', "\\"));
    // FILE_LIST_DIRECTORY or FILE_READ_DATA (the same bit), FILE_READ_ATTRIBUTES,
    // SYNCHRONIZE; FILE_DIRECTORY_FILE or FILE_NON_DIRECTORY_FILE
    let access = 0x0000_0001 | 0x0000_0080 | 0x0010_0000;
    let options = match open {
        Open::Folder => 0x1,
        Open::File => 0x40,
    };
    let mut b = Vec::with_capacity(57 + name.len());
    put16(&mut b, 57);
    b.push(0); // security flags
    b.push(0); // no oplock
    put32(&mut b, 2); // impersonation
    put64(&mut b, 0);
    put64(&mut b, 0);
    put32(&mut b, access);
    put32(&mut b, 0); // file attributes
    put32(&mut b, 0x7); // share read, write, delete
    put32(&mut b, 1); // FILE_OPEN
    put32(&mut b, options);
    put16(&mut b, (HEADER + 56) as u16);
    put16(&mut b, name.len() as u16);
    put32(&mut b, 0);
    put32(&mut b, 0);
    b.extend_from_slice(&name);
    if name.is_empty() {
        b.push(0); // the buffer is never empty
    }
    Req::new(CREATE, b)
}

/// `QUERY_DIRECTORY` for every name; on [`RELATED_FILE`], related to the request before.
fn query(fid: [u8; 16], flags: u8, out_len: u32, charge: u16) -> Req {
    let pattern = utf16("*");
    let mut b = Vec::with_capacity(32 + pattern.len());
    put16(&mut b, 33);
    b.push(FILE_DIRECTORY_INFORMATION);
    b.push(flags);
    put32(&mut b, 0); // file index
    b.extend_from_slice(&fid);
    put16(&mut b, (HEADER + 32) as u16);
    put16(&mut b, pattern.len() as u16);
    put32(&mut b, out_len);
    b.extend_from_slice(&pattern);
    Req {
        cmd: QUERY_DIRECTORY,
        body: b,
        related: fid == RELATED_FILE,
        charge,
    }
}

/// `CLOSE`, asking for the file's attributes as it closes when `postquery`; on
/// [`RELATED_FILE`], related to the request before.
fn close(fid: [u8; 16], postquery: bool) -> Req {
    let mut b = Vec::with_capacity(24);
    put16(&mut b, 24);
    put16(&mut b, u16::from(postquery));
    put32(&mut b, 0);
    b.extend_from_slice(&fid);
    Req {
        related: fid == RELATED_FILE,
        ..Req::new(CLOSE, b)
    }
}

/// A file's size and mtime at its close (`None` from a server that does not say).
#[derive(Debug, Clone, Copy)]
pub struct FileEnd {
    pub size: u64,
    pub mtime_ns: i64,
}

/// How a native read failed: before any byte went to the sink (so another reader may
/// start over), after, or in the sink itself.
#[derive(Debug)]
pub enum ReadFail {
    Before(Error),
    After(Error),
    Sink(io::Error),
}

/// `READ` of `len` bytes at `offset`; on [`RELATED_FILE`], related to the request
/// before.
fn read(fid: [u8; 16], offset: u64, len: u32, charge: u16) -> Req {
    let mut b = Vec::with_capacity(49);
    put16(&mut b, 49);
    b.push(0x50); // where the data starts in the answer
    b.push(0);
    put32(&mut b, len);
    put64(&mut b, offset);
    b.extend_from_slice(&fid);
    put32(&mut b, 0); // minimum count
    put32(&mut b, 0); // channel
    put32(&mut b, 0); // remaining bytes
    put16(&mut b, 0);
    put16(&mut b, 0);
    b.push(0);
    Req {
        cmd: READ,
        body: b,
        related: fid == RELATED_FILE,
        charge,
    }
}

/// The data of a `READ` answer (empty at the end of the file).
fn read_data(r: &[u8]) -> Result<&[u8], Error> {
    match le32(r, 8) {
        STATUS_END_OF_FILE => return Ok(&[]),
        STATUS_SUCCESS => {}
        s => return Err(Error::Status(s)),
    }
    let off = usize::from(*r.get(HEADER + 2).unwrap_or(&0));
    let len = le32(r, HEADER + 4) as usize;
    match r.get(off..off + len) {
        Some(d) => Ok(d),
        None => unsupported("a malformed read answer"),
    }
}

fn file_end(r: &[u8]) -> Result<Option<FileEnd>, Error> {
    check(r, STATUS_SUCCESS)?;
    Ok((le16(r, HEADER + 2) & 1 != 0).then(|| FileEnd {
        size: le64(r, HEADER + 48),
        mtime_ns: mtime_ns(le64(r, HEADER + 24)),
    }))
}

/// Appends a `QUERY_DIRECTORY` answer's entries to `buf`; `true` at the end of the
/// folder (the answer is "no more files").
fn entries(r: &[u8], buf: &mut Vec<u8>) -> Result<bool, Error> {
    match le32(r, 8) {
        STATUS_NO_MORE_FILES | STATUS_NO_SUCH_FILE => return Ok(true),
        STATUS_SUCCESS => {}
        s => return Err(Error::Status(s)),
    }
    let off = le16(r, HEADER + 2) as usize;
    let len = le32(r, HEADER + 4) as usize;
    let Some(mut data) = r.get(off..off + len) else {
        return unsupported("a malformed directory answer");
    };
    let mut name16 = Vec::new();
    while data.len() >= 64 {
        let next = le32(data, 0) as usize;
        let name_len = le32(data, 60) as usize;
        let Some(raw) = data.get(64..64 + name_len) else {
            return unsupported("a malformed directory entry");
        };
        name16.clear();
        name16.extend(
            raw.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]])),
        );
        // a name that is not valid UTF-16 is left out, as libsmbclient's listing does
        if let Ok(name) = String::from_utf16(&name16)
            && !matches!(name.as_str(), "" | "." | "..")
        {
            let dir = le32(data, 56) & FILE_ATTRIBUTE_DIRECTORY != 0;
            Listing::push(buf, &name, dir, le64(data, 40), mtime_ns(le64(data, 24)));
        }
        if next == 0 || next > data.len() {
            break;
        }
        data = &data[next..];
    }
    Ok(false)
}

/// A FILETIME as libsmbclient's listing reports it through pavao: whole seconds since
/// 1970, and times before 1970 as 1970 itself.
fn mtime_ns(ft: u64) -> i64 {
    let secs = (ft / 10_000_000) as i64 - EPOCH_DIFF_SECS;
    // past the year 2262 the nanoseconds no longer fit: the latest time that does
    secs.max(0).saturating_mul(1_000_000_000)
}

fn filetime_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() + EPOCH_DIFF_SECS as u64) * 10_000_000 + u64::from(d.subsec_nanos() / 100)
}

/// The handle a `CREATE` answer opened.
fn file_id(r: &[u8]) -> Result<[u8; 16], Error> {
    match r.get(HEADER + 64..HEADER + 80) {
        Some(id) => Ok(id.try_into().expect("16 bytes")),
        None => unsupported("a malformed create answer"),
    }
}

fn check(r: &[u8], want: u32) -> Result<(), Error> {
    match le32(r, 8) {
        s if s == want => Ok(()),
        s => Err(Error::Status(s)),
    }
}

fn session_setup(token: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(24 + token.len());
    put16(&mut b, 25);
    b.push(0); // flags
    b.push(0x1); // signing enabled
    put32(&mut b, 0); // capabilities
    put32(&mut b, 0); // channel
    put16(&mut b, (HEADER + 24) as u16);
    put16(&mut b, token.len() as u16);
    put64(&mut b, 0); // previous session
    b.extend_from_slice(token);
    b
}

/// The NTLMSSP message inside a `SESSION_SETUP` answer's SPNEGO token.
fn security_buffer(r: &[u8]) -> Result<&[u8], Error> {
    let off = le16(r, HEADER + 4) as usize;
    let len = le16(r, HEADER + 6) as usize;
    let blob = r.get(off..off + len).unwrap_or_default();
    match blob.windows(8).position(|w| w == b"NTLMSSP\0") {
        Some(at) => Ok(&blob[at..]),
        None => unsupported("the server offers no NTLMSSP log-on"),
    }
}

// ---- NTLMSSP (MS-NLMP) and SPNEGO (RFC 4178) -------------------------------------------

const NTLM_UNICODE: u32 = 0x0000_0001;
const NTLM_REQUEST_TARGET: u32 = 0x0000_0004;
const NTLM_SIGN: u32 = 0x0000_0010;
const NTLM_NTLM: u32 = 0x0000_0200;
const NTLM_ALWAYS_SIGN: u32 = 0x0000_8000;
const NTLM_EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
const NTLM_TARGET_INFO: u32 = 0x0080_0000;
const NTLM_128: u32 = 0x2000_0000;
const NTLM_56: u32 = 0x8000_0000;
const NTLM_FLAGS: u32 = NTLM_UNICODE
    | NTLM_REQUEST_TARGET
    | NTLM_SIGN
    | NTLM_NTLM
    | NTLM_ALWAYS_SIGN
    | NTLM_EXTENDED_SESSION_SECURITY
    | NTLM_TARGET_INFO
    | NTLM_128
    | NTLM_56;

fn ntlm_negotiate() -> Vec<u8> {
    let mut b = b"NTLMSSP\0".to_vec();
    put32(&mut b, 1);
    put32(&mut b, NTLM_FLAGS);
    b.extend_from_slice(&[0; 16]); // no domain, no workstation
    b
}

struct Challenge<'a> {
    flags: u32,
    server_challenge: [u8; 8],
    target_info: &'a [u8],
}

impl<'a> Challenge<'a> {
    fn parse(m: &'a [u8]) -> Result<Challenge<'a>, Error> {
        if m.len() < 48 || le32(m, 8) != 2 {
            return unsupported("a malformed NTLMSSP challenge");
        }
        let len = le16(m, 40) as usize;
        let off = le32(m, 44) as usize;
        let Some(target_info) = m.get(off..off + len) else {
            return unsupported("a malformed NTLMSSP challenge");
        };
        Ok(Challenge {
            flags: le32(m, 20),
            server_challenge: m[24..32].try_into().expect("8 bytes"),
            target_info,
        })
    }

    /// The server's time (MsvAvTimestamp), if it sent one.
    fn timestamp(&self) -> Option<u64> {
        let mut av = self.target_info;
        while av.len() >= 4 {
            let (id, len) = (le16(av, 0), le16(av, 2) as usize);
            if id == 0 {
                break;
            }
            let value = av.get(4..4 + len)?;
            if id == 7 && len == 8 {
                return Some(le64(value, 0));
            }
            av = &av[4 + len..];
        }
        None
    }
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = HmacMd5::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// NTOWFv2: the NTLMv2 response key.
fn ntowf_v2(user: &str, domain: &str, password: &str) -> [u8; 16] {
    let nt_hash: [u8; 16] = Md4::digest(utf16(password)).into();
    let who = utf16(&format!("{}{domain}", user.to_uppercase()));
    hmac_md5(&nt_hash, &[&who])
}

/// The user and domain NTLM sends, as libsmbclient reads a user name: `DOMAIN\user`
/// names its domain, and `user@realm` (a UPN) goes as it is with no domain.
fn ntlm_identity<'a>(user: &'a str, domain: &'a str) -> (&'a str, &'a str) {
    if let Some((d, u)) = user.split_once('\\') {
        (u, d)
    } else if user.contains('@') {
        (user, "")
    } else {
        (user, domain)
    }
}

/// The AUTHENTICATE message and the session key (NTLMv2, no key exchange: the session
/// key is the session base key).
fn ntlm_authenticate(
    c: &Challenge,
    user: &str,
    domain: &str,
    password: &str,
    client_challenge: [u8; 8],
    now: u64,
) -> (Vec<u8>, [u8; 16]) {
    let key = ntowf_v2(user, domain, password);
    let server_time = c.timestamp();
    let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
    put64(&mut blob, server_time.unwrap_or(now));
    blob.extend_from_slice(&client_challenge);
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(c.target_info);
    blob.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(&key, &[&c.server_challenge, &blob]);
    let session_key = hmac_md5(&key, &[&proof]);
    let mut nt = proof.to_vec();
    nt.extend_from_slice(&blob);
    // with a server timestamp the LM response is all zeros (MS-NLMP 3.1.5.1.2)
    let lm = if server_time.is_some() {
        vec![0; 24]
    } else {
        let mut lm = hmac_md5(&key, &[&c.server_challenge, &client_challenge]).to_vec();
        lm.extend_from_slice(&client_challenge);
        lm
    };
    let (domain, user) = (utf16(domain), utf16(user));
    let fields: [&[u8]; 6] = [&lm, &nt, &domain, &user, &[], &[]];
    let mut m = b"NTLMSSP\0".to_vec();
    put32(&mut m, 3);
    let mut at = 64u32;
    for f in fields {
        put16(&mut m, f.len() as u16);
        put16(&mut m, f.len() as u16);
        put32(&mut m, at);
        at += f.len() as u32;
    }
    put32(&mut m, NTLM_FLAGS & c.flags);
    for f in fields {
        m.extend_from_slice(f);
    }
    (m, session_key)
}

/// DER: a tag, its length, its content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut b = vec![tag];
    match content.len() {
        n if n < 0x80 => b.push(n as u8),
        n if n < 0x100 => b.extend_from_slice(&[0x81, n as u8]),
        n => b.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    b.extend_from_slice(content);
    b
}

const OID_SPNEGO: &[u8] = &[0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
const OID_NTLMSSP: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a,
];

/// SPNEGO NegTokenInit offering NTLMSSP only, carrying its first message.
fn spnego_init(token: &[u8]) -> Vec<u8> {
    let mech_types = der(0xa0, &der(0x30, OID_NTLMSSP));
    let mech_token = der(0xa2, &der(0x04, token));
    let init = der(0xa0, &der(0x30, &[mech_types, mech_token].concat()));
    der(0x60, &[OID_SPNEGO, &init].concat())
}

/// SPNEGO NegTokenResp carrying the next message.
fn spnego_response(token: &[u8]) -> Vec<u8> {
    der(0xa1, &der(0x30, &der(0xa2, &der(0x04, token))))
}

/// SP800-108 counter-mode KDF with HMAC-SHA256, as SMB 3.0 derives its keys.
fn kdf(key: &[u8; 16], label: &[u8], context: &[u8]) -> [u8; 16] {
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(&1u32.to_be_bytes());
    mac.update(label);
    mac.update(&[0]);
    mac.update(context);
    mac.update(&128u32.to_be_bytes());
    mac.finalize().into_bytes()[..16]
        .try_into()
        .expect("16 bytes")
}

// ---- little-endian helpers ---------------------------------------------------------------

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// Little-endian reads; past the end reads as zero (a short answer then fails the
/// checks that follow instead of panicking).
fn le16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// MS-NLMP 4.2.4: the NTLMv2 example (user "User", domain "Domain", password
    /// "Password", time 0, client challenge aa..aa).
    #[test]
    fn ntlmv2_matches_the_specification_example() {
        assert_eq!(
            ntowf_v2("User", "Domain", "Password").to_vec(),
            hex("0c868a403bfd7a93a3001ef22ef02e3f")
        );
        let target_info =
            hex("02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000");
        let c = Challenge {
            flags: NTLM_FLAGS,
            server_challenge: hex("0123456789abcdef").try_into().unwrap(),
            target_info: &target_info,
        };
        let (m, session_key) = ntlm_authenticate(&c, "User", "Domain", "Password", [0xaa; 8], 0);
        assert_eq!(
            session_key.to_vec(),
            hex("8de40ccadbc14a82f15cb0ad0de95ca3")
        );
        let field = |at: usize| {
            let (len, off) = (le16(&m, at) as usize, le32(&m, at + 4) as usize);
            m[off..off + len].to_vec()
        };
        // LMv2 (no server timestamp in this example)
        assert_eq!(
            field(12),
            hex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa")
        );
        let nt = field(20);
        assert_eq!(nt[..16].to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"));
        assert_eq!(field(28), utf16("Domain"));
        assert_eq!(field(36), utf16("User"));
    }

    #[test]
    fn a_tampered_or_unsigned_answer_fails_verification() {
        for signer in [Signer::Sha256([3; 16]), Signer::Cmac([3; 16])] {
            let mut msg = vec![0u8; 64];
            msg[..4].copy_from_slice(b"\xfeSMB");
            msg.extend_from_slice(b"a folder's entries");
            let unsigned = msg.clone();
            signer.sign(&mut msg);
            assert!(signer.verify(&msg));
            assert!(!signer.verify(&unsigned));
            let mut tampered = msg.clone();
            *tampered.last_mut().unwrap() ^= 1;
            assert!(!signer.verify(&tampered));
        }
    }

    #[test]
    fn user_names_name_their_domain_as_libsmbclient_reads_them() {
        assert_eq!(ntlm_identity("alice", "CORP"), ("alice", "CORP"));
        assert_eq!(ntlm_identity("SALES\\alice", "CORP"), ("alice", "SALES"));
        assert_eq!(
            ntlm_identity("alice@corp.example", "CORP"),
            ("alice@corp.example", "")
        );
    }

    #[test]
    fn filetimes_become_whole_seconds_since_1970() {
        // 2020-01-01T00:00:00.5Z
        let ft = (1_577_836_800 + EPOCH_DIFF_SECS as u64) * 10_000_000 + 5_000_000;
        assert_eq!(mtime_ns(ft), 1_577_836_800 * 1_000_000_000);
        assert_eq!(mtime_ns(0), 0);
    }

    #[test]
    fn a_time_past_2262_or_a_flood_of_credits_does_not_overflow() {
        assert_eq!(mtime_ns(u64::MAX), i64::MAX);
        // a compound of two answers, each granting 65535 credits, and a bad third
        let mut m = vec![0u8; HEADER];
        m[..4].copy_from_slice(b"\xfeSMB");
        m[14..16].copy_from_slice(&u16::MAX.to_le_bytes());
        m[16..20].copy_from_slice(&FLAG_RESPONSE.to_le_bytes());
        let mut frame = m.clone();
        frame[20..24].copy_from_slice(&(HEADER as u32).to_le_bytes());
        frame.extend_from_slice(&m);
        let a = split_answers(&frame).unwrap();
        assert_eq!(a.len(), 2);
        assert!(
            a.iter()
                .all(|x| x.credits == u16::MAX && x.msg.len() == HEADER)
        );
        frame[HEADER + 20..HEADER + 24].copy_from_slice(&8u32.to_le_bytes());
        frame.extend_from_slice(b"junk");
        assert!(
            split_answers(&frame).is_err(),
            "a next command inside the header"
        );
    }

    #[test]
    fn spnego_lengths_are_der() {
        let long = vec![0u8; 300];
        let t = spnego_response(&long);
        assert_eq!(t[0], 0xa1);
        assert_eq!(&t[1..4], &[0x82, 0x01, 0x38]); // 312 = 300 + 4 + 4 + 4
        assert!(t.windows(300).any(|w| w == &long[..]));
    }
}
