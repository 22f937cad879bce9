//! This process's instance id among the daemon instances sharing a catalog:
//! `daemon.instance_id` when configured, else the host's name and a random suffix,
//! made once and kept in the state directory (`instance-id`), so that a restarted
//! daemon is the same instance and two daemons on one host (each with its own state
//! directory) are not.

use std::path::Path;

use anyhow::Context;

/// The file in the state directory that keeps a generated instance id.
pub const FILE: &str = "instance-id";

/// The instance id: `configured`, or the one kept in `state_dir`, or a new one made
/// from `hostname` and kept there.
pub fn resolve(
    configured: Option<&str>,
    state_dir: &Path,
    hostname: &str,
) -> anyhow::Result<String> {
    if let Some(id) = configured {
        return Ok(id.to_string());
    }
    let file = state_dir.join(FILE);
    match std::fs::read_to_string(&file) {
        Ok(s) => {
            let id = s.trim();
            anyhow::ensure!(
                tributary_config::valid_instance_id(id),
                "{} holds `{id}`, not an instance id (1 to 64 letters, digits, `.`, `_`, `-`): fix or remove it",
                file.display()
            );
            return Ok(id.to_string());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("read {}", file.display())),
    }
    let id = generate(hostname);
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("create state directory {}", state_dir.display()))?;
    // written aside and linked into place: two processes starting together keep one id
    let tmp = state_dir.join(format!(".{FILE}.{}", std::process::id()));
    std::fs::write(&tmp, format!("{id}\n")).with_context(|| format!("write {}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, &file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(id),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            resolve(None, state_dir, hostname)
        }
        Err(e) => Err(e).with_context(|| format!("write {}", file.display())),
    }
}

/// `<host>-<6 hex digits>`, the host's name cut to what an id may hold.
fn generate(hostname: &str) -> String {
    let host: String = hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(50)
        .collect();
    let host = if host.is_empty() {
        "tributary".to_string()
    } else {
        host
    };
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// The host's name (`gethostname`).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, and gethostname writes at
    // most that many bytes
    #[allow(unsafe_code)]
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_id_is_configured_or_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(resolve(Some("node-1"), &state, "h").unwrap(), "node-1");
        assert!(!state.join(FILE).exists(), "a configured id is not written");

        let made = resolve(None, &state, "build host.example").unwrap();
        assert!(made.starts_with("build-host.example-"), "{made}");
        assert!(tributary_config::valid_instance_id(&made), "{made}");
        assert_eq!(resolve(None, &state, "other").unwrap(), made, "kept");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            resolve(None, other.path(), "build host.example").unwrap(),
            made
        );

        std::fs::write(state.join(FILE), "not an id!\n").unwrap();
        let e = resolve(None, &state, "h").unwrap_err().to_string();
        assert!(e.contains("not an instance id"), "{e}");
        assert!(!hostname().is_empty());
    }
}
