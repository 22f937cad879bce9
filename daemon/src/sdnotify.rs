//! systemd readiness notification (`Type=notify`): READY, STOPPING, WATCHDOG.
//! Silent when `NOTIFY_SOCKET` is not set.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Notifier {
    socket: Option<String>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty());
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && pid_ok)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    pub fn notify(&self, state: &str) {
        let Some(path) = &self.socket else { return };
        let result = (|| {
            let sock = UnixDatagram::unbound()?;
            if let Some(name) = path.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                sock.send_to_addr(state.as_bytes(), &addr)?;
            } else {
                sock.send_to(state.as_bytes(), path)?;
            }
            Ok::<_, std::io::Error>(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }

    /// Half the watchdog interval, when systemd asked for pings.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.socket.as_ref()?;
        self.watchdog.map(|w| w / 2)
    }
}
