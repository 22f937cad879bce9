//! Events across a fleet (PostgreSQL): an instance sends the events it publishes
//! through the catalog, and every instance (itself included) receives them, so that
//! each instance's event stream carries the whole fleet's events under the same ids.
//!
//! Ids come from one counter row (`event_seq`) moved in the transaction that sends the
//! events with `pg_notify`: the row lock orders the transactions, and PostgreSQL
//! delivers notifications in commit order, so every listener receives ids in
//! increasing order. A notification's payload is the event's JSON with its id; one over
//! PostgreSQL's 8000-byte limit is cut down to its identifying fields. A listener that
//! loses its connection misses what was sent meanwhile: [`FleetEvents::next`] says so,
//! and the stream tells its clients (a `gap`).

use sqlx::postgres::PgListener;

use crate::{Catalog, Db, Result};

/// The channel events travel on.
pub const CHANNEL: &str = "tributary_events";

/// The largest payload sent (PostgreSQL refuses 8000 bytes and more).
pub const MAX_PAYLOAD: usize = 7900;

/// An event to send: its type, connector and JSON fields (an object).
#[derive(Debug, Clone)]
pub struct OutEvent {
    pub kind: String,
    pub connector: Option<String>,
    pub fields: serde_json::Value,
}

/// The payload of `e` under `id`: `{"id", "type", "at", "connector"?, ...fields}`; cut
/// down to `{"id", "type", "at", "connector", "truncated": true}` and the fields that
/// name what it is about (`job_id`, `path`, `kind`, `status`) when too large.
pub fn payload(id: i64, at: &str, e: &OutEvent) -> String {
    use serde_json::{Map, Value, json};
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("type".into(), json!(e.kind));
    m.insert("at".into(), json!(at));
    if let Some(c) = &e.connector {
        m.insert("connector".into(), json!(c));
    }
    let base = m.clone();
    if let Value::Object(f) = &e.fields {
        for (k, v) in f {
            m.entry(k.clone()).or_insert(v.clone());
        }
    }
    let full = Value::Object(m).to_string();
    if full.len() <= MAX_PAYLOAD {
        return full;
    }
    let mut cut = base;
    if let Value::Object(f) = &e.fields {
        for k in ["job_id", "kind", "status", "path"] {
            if let Some(v) = f.get(k).filter(|v| v.to_string().len() < 1024) {
                cut.entry(k.to_string()).or_insert(v.clone());
            }
        }
    }
    cut.insert("truncated".into(), json!(true));
    Value::Object(cut).to_string()
}

impl Catalog {
    /// Whether events go through the catalog (PostgreSQL) rather than staying in the
    /// process (SQLite: one daemon).
    pub fn relays_events(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Sends `events` to every instance in one transaction; returns their ids.
    pub async fn send_events(&self, events: &[OutEvent], at: &str) -> Result<Vec<i64>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(Vec::new());
        };
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = pool.begin().await?;
        let last: i64 =
            sqlx::query_scalar("UPDATE event_seq SET n = n + $1 WHERE one = 1 RETURNING n")
                .bind(events.len() as i64)
                .fetch_one(&mut *tx)
                .await?;
        let first = last - events.len() as i64 + 1;
        let ids: Vec<i64> = (first..=last).collect();
        let payloads: Vec<String> = events
            .iter()
            .zip(&ids)
            .map(|(e, id)| payload(*id, at, e))
            .collect();
        sqlx::query(
            "SELECT pg_notify($1, p) FROM UNNEST($2::text[]) WITH ORDINALITY AS u(p, i) ORDER BY i",
        )
        .bind(CHANNEL)
        .bind(&payloads)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// A listener for the fleet's events, on a connection of its own; `None` on SQLite.
    pub async fn fleet_events(&self) -> Result<Option<FleetEvents>> {
        Ok(self
            .listener(CHANNEL)
            .await?
            .map(|listener| FleetEvents { listener }))
    }
}

/// What [`FleetEvents::next`] gives.
#[derive(Debug)]
pub enum Received {
    /// An event's payload (its JSON, id included).
    Event(String),
    /// The connection was lost and is back: events sent meanwhile are missing.
    Lost,
}

/// The fleet's events ([`Catalog::fleet_events`]).
pub struct FleetEvents {
    listener: PgListener,
}

impl FleetEvents {
    /// The next event, or word that some were lost while the connection was down;
    /// an error means the server could not be reached again yet.
    pub async fn next(&mut self) -> Result<Received> {
        match self.listener.try_recv().await? {
            Some(n) => Ok(Received::Event(n.payload().to_string())),
            None => Ok(Received::Lost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn payloads_carry_the_id_and_are_cut_below_the_limit() {
        let e = OutEvent {
            kind: "item.failed".into(),
            connector: Some("docs".into()),
            fields: json!({"job_id": 4, "path": "/docs/a", "error": "denied", "id": 99}),
        };
        let v: Value = serde_json::from_str(&payload(7, "2026-12-05T00:00:00Z", &e)).unwrap();
        assert_eq!(v["id"], 7, "a field does not replace the id");
        assert_eq!(v["type"], "item.failed");
        assert_eq!(v["connector"], "docs");
        assert_eq!(v["error"], "denied");
        let big = OutEvent {
            fields: json!({"job_id": 4, "path": "/docs/a", "error": "x".repeat(20_000)}),
            ..e
        };
        let p = payload(8, "2026-12-05T00:00:00Z", &big);
        assert!(p.len() <= MAX_PAYLOAD);
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["truncated"], true);
        assert_eq!(v["path"], "/docs/a");
        assert_eq!(v["job_id"], 4);
        assert!(v.get("error").is_none());
    }
}
