//! The catalog lease that keeps store-wide operations (gc, migrate-store) apart: short,
//! renewed while the operation runs, and taken over at once from a holder on this host
//! whose process is gone (a killed gc must not block the next one for the lease's
//! lifetime).

use std::time::Duration;

use tributary_catalog::Catalog;

/// Lifetime of the lease without renewal.
const TTL: Duration = Duration::from_secs(120);

/// A held lease; released on [`Lease::release`], or expiring when its process dies.
pub(crate) struct Lease {
    catalog: Catalog,
    name: &'static str,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
}

/// This process as a lease holder: `<host>:<pid>:<random>`.
fn me() -> String {
    format!(
        "{}:{}:{:08x}",
        hostname(),
        std::process::id(),
        rand::random::<u32>()
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Whether `holder` is a process of this host that no longer runs.
pub(crate) fn gone(holder: &str, host: &str, alive: impl Fn(u32) -> bool) -> bool {
    let mut parts = holder.split(':');
    let (Some(h), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) => !host.is_empty() && h == host && pid != std::process::id() && !alive(pid),
        Err(_) => false,
    }
}

impl Lease {
    /// Takes the lease `name` or says who holds it (`what` names the operation).
    pub(crate) async fn take(catalog: &Catalog, name: &'static str) -> anyhow::Result<Lease> {
        let holder = me();
        let mut ok = catalog.try_lock(name, &holder, TTL).await?;
        if !ok && let Some(other) = catalog.lock_holder(name).await? {
            let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
            if gone(&other, &hostname(), alive) {
                tracing::warn!(lease = name, holder = %other, "taking over a lease whose process is gone");
                ok = catalog.take_lock_from(name, &other, &holder, TTL).await?;
            }
        }
        if !ok {
            anyhow::bail!(
                "a gc or a store migration is running (lease `{name}` is held); try again later"
            );
        }
        let renewal = {
            let (catalog, holder) = (catalog.clone(), holder.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(TTL / 4).await;
                    if let Err(e) = catalog.try_lock(name, &holder, TTL).await {
                        tracing::warn!(lease = name, error = %e, "lease renewal failed");
                    }
                }
            })
        };
        Ok(Lease {
            catalog: catalog.clone(),
            name,
            holder,
            renewal,
        })
    }

    pub(crate) async fn release(self) -> anyhow::Result<()> {
        self.renewal.abort();
        self.catalog.unlock(self.name, &self.holder).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_process_of_this_host_gives_up_its_lease() {
        let dead = |_| false;
        let alive = |_| true;
        assert!(gone("box:4242:0000abcd", "box", dead));
        assert!(!gone("box:4242:0000abcd", "box", alive), "still running");
        assert!(
            !gone("other:4242:0000abcd", "box", dead),
            "another host's process"
        );
        assert!(
            !gone("box:4242:0000abcd", "", dead),
            "this host has no name"
        );
        assert!(
            !gone("gc-4242-0000abcd", "box", dead),
            "an older holder format"
        );
        let me = format!("box:{}:1", std::process::id());
        assert!(!gone(&me, "box", dead), "never this process");
    }
}
