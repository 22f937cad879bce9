//! Signals between the instances of a fleet, over PostgreSQL's `LISTEN/NOTIFY`: when
//! something an instance polls the catalog for changes — a job queued, a cancel
//! requested, a connector paused or resumed, an instance drained — the instance that
//! changed it says so on one channel, and every other instance looks at once instead
//! of at its next poll. Signals are hints, never the state: a signal lost (a listener
//! reconnecting) costs one poll interval, as before. On SQLite (one host, one daemon)
//! there is no one to tell, and nothing is sent.

use std::sync::Arc;

use sqlx::postgres::{PgListener, PgPoolOptions};

use crate::{Catalog, Db, Result};

/// The channel every instance listens on.
pub const CHANNEL: &str = "tributary_fleet";

/// What a signal says changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A job was queued: an instance with a free slot may claim it.
    Queued,
    /// A cancel was requested, a connector paused or resumed, an instance drained or
    /// undrained, an API connector written: the fleet's view is to be read again.
    Changed,
}

impl Signal {
    fn as_str(self) -> &'static str {
        match self {
            Signal::Queued => "queued",
            Signal::Changed => "changed",
        }
    }
}

/// A signal's payload: `sender:what` (an instance id may hold colons; `what` does not).
fn payload(sender: Option<&str>, signal: Signal) -> String {
    format!("{}:{}", sender.unwrap_or(""), signal.as_str())
}

/// The sender and the signal of a payload; `None` for one this binary does not know
/// (sent by a newer release: ignored, the poll catches up).
fn parse(payload: &str) -> Option<(&str, Signal)> {
    let (sender, what) = payload.rsplit_once(':')?;
    let signal = match what {
        "queued" => Signal::Queued,
        "changed" => Signal::Changed,
        _ => return None,
    };
    Some((sender, signal))
}

impl Catalog {
    /// Tells the other instances of the fleet that `signal` happened. Best effort: a
    /// signal that cannot be sent is logged and left to the instances' poll.
    pub(crate) async fn signal_fleet(&self, signal: Signal) {
        let Db::Postgres(pool) = &self.db else {
            return;
        };
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload(self.instance.as_deref(), signal))
            .execute(pool)
            .await
        {
            tracing::debug!(error = %e, "signal the fleet (its instances will poll)");
        }
    }

    /// Tells the other instances that the connectors created over the API changed.
    pub async fn signal_connectors_changed(&self) {
        self.signal_fleet(Signal::Changed).await
    }

    /// A listener for the other instances' signals, on a connection of its own (not
    /// one of the pool's); `None` on SQLite.
    pub async fn fleet_signals(&self) -> Result<Option<FleetSignals>> {
        Ok(self.listener(CHANNEL).await?.map(|listener| FleetSignals {
            listener,
            me: self.instance.clone(),
        }))
    }

    /// A listener on `channel`, on a connection of its own (not one of the pool's, so
    /// that it stays open); `None` on SQLite.
    pub(crate) async fn listener(&self, channel: &str) -> Result<Option<PgListener>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with((*pool.connect_options()).clone())
            .await?;
        let mut listener = PgListener::connect_with(&own).await?;
        listener.listen(channel).await?;
        Ok(Some(listener))
    }
}

/// Signals from the other instances ([`Catalog::fleet_signals`]).
pub struct FleetSignals {
    listener: PgListener,
    me: Option<Arc<str>>,
}

impl FleetSignals {
    /// The next signal another instance sent. A lost connection is re-established
    /// here (signals sent meanwhile are lost); an error means the server could not be
    /// reached again yet.
    pub async fn next(&mut self) -> Result<Signal> {
        loop {
            let n = self.listener.recv().await?;
            match parse(n.payload()) {
                Some((sender, _)) if Some(sender) == self.me.as_deref() => continue,
                Some((_, signal)) => return Ok(signal),
                None => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_sender_and_unknown_ones_are_ignored() {
        let p = payload(Some("host:with:colons-1a2b"), Signal::Queued);
        assert_eq!(parse(&p), Some(("host:with:colons-1a2b", Signal::Queued)));
        assert_eq!(
            parse(&payload(None, Signal::Changed)),
            Some(("", Signal::Changed))
        );
        assert_eq!(parse("node-a:rebalanced"), None);
        assert_eq!(parse("no separator"), None);
    }
}
