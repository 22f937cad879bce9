//! Live events through the real daemon: Server-Sent Events and WebSocket, resume after
//! `Last-Event-ID` and the `gap` event, filters, the WebSocket close codes, connection
//! limits and slow consumers.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::common::*;

/// One received event: its `id:`, `event:` and `data:` (JSON).
#[derive(Debug, Clone)]
pub(crate) struct Ev {
    pub(crate) id: u64,
    pub(crate) kind: String,
    pub(crate) data: Value,
}

/// A Server-Sent Events stream, read frame by frame.
pub(crate) struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    pub(crate) async fn open(d: &Running, query: &str, last_id: Option<u64>) -> Sse {
        let mut req = d
            .http
            .get(d.url(&format!("/api/v1/events{query}")))
            .bearer_auth(VIEWER);
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event within `secs` (comments skipped); `None` when the stream ends.
    pub(crate) async fn next(&mut self, secs: u64) -> Option<Ev> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, None);
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<u64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                    }
                }
                match (id, kind, data) {
                    (Some(id), Some(kind), Some(data)) => return Some(Ev { id, kind, data }),
                    _ => continue, // a heartbeat comment
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("no event in time")
                .unwrap()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one that `stop` accepts (included).
    pub(crate) async fn until(&mut self, secs: u64, stop: impl Fn(&Ev) -> bool) -> Vec<Ev> {
        let mut out = Vec::new();
        loop {
            let e = self.next(secs).await.expect("the stream ended");
            let last = stop(&e);
            out.push(e);
            if last {
                return out;
            }
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `/api/v1/ws`, with `Authorization: Bearer <token>` when given; the
/// upgrade is asserted to complete.
async fn ws(d: &Running, query: &str, token: Option<&str>) -> Ws {
    let mut req = format!("ws://127.0.0.1:{}/api/v1/ws{query}", d.port)
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (s, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101, "the upgrade always completes");
    s
}

/// The next text message as JSON, skipping pings.
async fn ws_next(s: &mut Ws, secs: u64) -> Result<Value, Option<(u16, String)>> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(secs), s.next())
            .await
            .expect("no message in time");
        match m {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(f))) => {
                return Err(f.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// The close code the server sends next.
async fn close_code(s: &mut Ws) -> u16 {
    loop {
        match ws_next(s, 15).await {
            Ok(_) => continue,
            Err(Some((code, _))) => return code,
            Err(None) => panic!("closed without a close frame"),
        }
    }
}

/// Many requests in a short time: the tests' own.
const NO_RATE_LIMITS: &str = "  rate_limits: { client: off, read: off, write: off }\n";

pub(crate) fn is_finish_of(job: i64) -> impl Fn(&Ev) -> bool {
    move |e: &Ev| e.kind == "job.finished" && e.data["job_id"] == job
}

/// As an unprivileged user, so that a file without read permission fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_events_arrive_live_in_order_over_sse_and_websocket_and_resume_after_their_id() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("ok.txt"), "fine").unwrap();
    std::fs::write(src.join("locked.txt"), "secret").unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    add_api_lines(&cfg, NO_RATE_LIMITS);
    let d = start_as_nobody(dir.path(), &cfg, port);
    let first = d.latest_job("docs").await;
    assert_eq!(first["status"], "succeeded", "{first}");

    let mut all = Sse::open(&d, "", None).await;
    let mut items = Sse::open(&d, "?type=item&connector=docs", None).await;
    let mut sock = ws(&d, "", Some(VIEWER)).await;
    let welcome = ws_next(&mut sock, 10).await.unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["principal"], "v");

    // a run with enough to read that it shows progress, and a file it cannot read
    for i in 0..24 {
        std::fs::write(
            src.join(format!("big-{i}.bin")),
            tributary_testkit::tree::random_bytes(i, 1 << 20),
        )
        .unwrap();
    }
    std::fs::write(src.join("locked.txt"), "secret, edited").unwrap();
    std::fs::set_permissions(
        src.join("locked.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    assert!(
        Command::new("chown")
            .args(["-R", "nobody:nogroup", src.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let job = d.queue_run("docs", Some("full")).await;
    let got = all.until(60, is_finish_of(job)).await;
    let ids: Vec<u64> = got.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    for e in &got {
        assert_eq!(e.data["type"], e.kind.as_str(), "{e:?}");
        assert_eq!(e.data["id"], e.id, "{e:?}");
        assert!(e.data["at"].is_string());
    }
    let of_job: Vec<&Ev> = got.iter().filter(|e| e.data["job_id"] == job).collect();
    let kinds: Vec<&str> = of_job.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"job.queued"), "{kinds:?}");
    assert_eq!(kinds.get(1), Some(&"job.started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"job.finished"), "{kinds:?}");
    assert_eq!(of_job[0].data["connector"], "docs");
    assert_eq!(of_job[0].data["kind"], "full");
    // progress: at least one, at most two a second, counting up to what was planned
    let progress: Vec<&&Ev> = of_job.iter().filter(|e| e.kind == "job.progress").collect();
    assert!(!progress.is_empty(), "{kinds:?}");
    let at = |e: &Ev| chrono::DateTime::parse_from_rfc3339(e.data["at"].as_str().unwrap()).unwrap();
    for w in progress.windows(2) {
        assert!(
            at(w[1]) - at(w[0]) >= chrono::Duration::milliseconds(400),
            "at most two progress events a second: {:?} {:?}",
            w[0].data["at"],
            w[1].data["at"]
        );
        assert!(w[1].data["bytes_done"].as_u64() >= w[0].data["bytes_done"].as_u64());
    }
    for p in &progress {
        for k in [
            "files_done",
            "files_planned",
            "bytes_done",
            "bytes_planned",
            "throughput_bytes_per_second",
        ] {
            assert!(p.data[k].is_u64(), "{k}: {}", p.data);
        }
    }
    let failed: Vec<&&Ev> = of_job.iter().filter(|e| e.kind == "item.failed").collect();
    assert_eq!(failed.len(), 1, "{kinds:?}");
    assert_eq!(failed[0].data["path"], "/docs/locked.txt");
    assert!(
        failed[0].data["error"]
            .as_str()
            .unwrap()
            .contains("ermission denied"),
        "{}",
        failed[0].data
    );
    let finished = &of_job.last().unwrap().data;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["error_count"], 1, "{finished}");
    assert!(
        finished["stats"]["bytes_read"].as_u64().unwrap() >= 24 << 20,
        "{finished}"
    );
    let job_row = d.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(job_row["error_count"], finished["error_count"]);

    // the WebSocket saw the same events, in the same order
    let mut over_ws = Vec::new();
    while over_ws.last() != Some(&finished["id"]) {
        let v = ws_next(&mut sock, 30).await.unwrap();
        over_ws.push(v["id"].clone());
    }
    assert_eq!(over_ws, ids.iter().map(|i| json!(i)).collect::<Vec<_>>());

    // resuming after an id replays what followed it; an id no longer held is a gap
    let started = of_job[1].id;
    let mut resumed = Sse::open(&d, "", Some(started)).await;
    let again = resumed.until(10, is_finish_of(job)).await;
    assert_eq!(
        again.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids.iter()
            .copied()
            .filter(|i| *i > started)
            .collect::<Vec<_>>()
    );
    let mut stale = Sse::open(&d, "", Some(1)).await;
    let gap = stale.next(10).await.unwrap();
    assert_eq!(gap.kind, "gap", "{gap:?}");
    assert_eq!(gap.data["last_event_id"], 1);
    assert!(
        gap.id >= *ids.last().unwrap(),
        "a gap resumes at the newest event"
    );

    // the file readable again: stored, and said so; a filtered stream sees only items
    std::fs::set_permissions(
        src.join("locked.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let job2 = d.queue_run("docs", Some("full")).await;
    let got2 = all.until(60, is_finish_of(job2)).await;
    let recovered: Vec<&Ev> = got2.iter().filter(|e| e.kind == "item.recovered").collect();
    assert_eq!(recovered.len(), 1, "{got2:?}");
    assert_eq!(recovered[0].data["path"], "/docs/locked.txt");
    assert_eq!(got2.last().unwrap().data["error_count"], 0);
    let only_items = items.until(10, |e| e.kind == "item.recovered").await;
    assert_eq!(
        only_items
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["item.failed", "item.recovered"]
    );

    // operator actions
    let (s, _, b) = d
        .call(
            "POST",
            "/api/v1/connectors/docs/pause",
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = d
        .call(
            "POST",
            "/api/v1/connectors/docs/resume",
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let acts = all.until(10, |e| e.kind == "connector.resumed").await;
    let kinds: Vec<&str> = acts.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["connector.paused", "connector.resumed"]);
    assert_eq!(acts[0].data["connector"], "docs");
    let (s, _, b) = d
        .call("POST", "/api/v1/config/reload", Some(ADMIN), None)
        .await;
    assert_eq!(s, 200, "{b}");
    let reloaded = all.next(10).await.unwrap();
    assert_eq!(reloaded.kind, "config.reloaded", "{reloaded:?}");
    assert_eq!(reloaded.data["reloaded"], true);

    // the metrics count the streams and what they were sent
    let metrics = d.get_text("/api/v1/metrics").await;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(value("tributary_event_connections ") >= 5.0, "{metrics}");
    assert!(value("tributary_events_sent_total") >= (ids.len() * 2) as f64);

    // stopping the daemon ends the streams (it does not wait for them)
    let mut d = d;
    d.signal("TERM");
    let last = all.next(20).await.expect("the instance says it stops");
    assert_eq!(last.kind, "instance.down", "{last:?}");
    assert_eq!(last.data["reason"], "stopped");
    assert!(all.next(20).await.is_none(), "the stream ended");
    assert!(d.wait_exit(20).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_authentication_and_limits_are_close_codes_and_sse_limits_are_429() {
    use tributary_testkit::oidc::OidcProvider;
    let idp = OidcProvider::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a.txt"), "alpha").unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let api = format!(
        "  max_event_connections: 3\n  max_event_connections_per_principal: 2\n  rate_limits: {{ client: off, read: off, write: off, failed_auth: off }}\n  oidc:\n    issuer: {}\n    audience: [api://tributary]\n    role_map: {{ viewer: viewer }}\n    allowed_clients: [reader, no-role]\n",
        idp.issuer()
    );
    add_api_lines(&cfg, &api);
    let d = Running::start(&cfg, port, &[]);

    // not a WebSocket handshake: an error in the envelope; SSE needs a token like any route
    let (s, h, b) = d.call("GET", "/api/v1/ws", Some(VIEWER), None).await;
    assert_eq!(s, 426, "{b}");
    assert_envelope(s, &h, &b, "UPGRADE_REQUIRED");
    let (s, h, b) = d.call("GET", "/api/v1/events", None, None).await;
    assert_eq!(s, 401, "{b}");
    assert_envelope(s, &h, &b, "AUTH_TOKEN_INVALID");
    let (s, h, b) = d
        .call("GET", "/api/v1/events?type=jobs", Some(VIEWER), None)
        .await;
    assert_eq!(s, 400, "{b}");
    assert_envelope(s, &h, &b, "VALIDATION_FAILED");

    // 4401: a wrong header token, a wrong first-message token, a first message that
    // is no token
    let mut s1 = ws(&d, "", Some("not-a-token")).await;
    assert_eq!(close_code(&mut s1).await, 4401);
    let mut s2 = ws(&d, "", None).await;
    s2.send(Message::Text(json!({"token": "wrong"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut s2).await, 4401);
    let mut s3 = ws(&d, "", None).await;
    s3.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(close_code(&mut s3).await, 4401);
    // an expired token of the provider
    let mut s4 = ws(&d, "", None).await;
    let expired = idp.mint("expired").await;
    s4.send(Message::Text(json!({"token": expired}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut s4).await, 4401);
    // 4403: a valid token that maps to no role
    let no_role = idp.token("no-role", None).await;
    let mut s5 = ws(&d, "", Some(&no_role)).await;
    assert_eq!(close_code(&mut s5).await, 4403);
    // a provider's token as the first message is a viewer
    let reader = idp.token("reader", None).await;
    let mut r1 = ws(&d, "", None).await;
    r1.send(Message::Text(json!({"token": reader}).to_string().into()))
        .await
        .unwrap();
    let welcome = ws_next(&mut r1, 10).await.unwrap();
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["role"], "viewer");
    assert!(
        welcome["principal"].as_str().unwrap().starts_with("oidc:"),
        "{welcome}"
    );

    // limits: two per principal, three in all (r1 is one)
    let mut v1 = ws(&d, "", Some(VIEWER)).await;
    assert_eq!(ws_next(&mut v1, 10).await.unwrap()["type"], "welcome");
    let _v2 = Sse::open(&d, "", None).await;
    let mut v3 = ws(&d, "", Some(VIEWER)).await;
    assert_eq!(close_code(&mut v3).await, 4429, "per principal");
    let (s, h, b) = d.call("GET", "/api/v1/events", Some(VIEWER), None).await;
    assert_eq!(s, 429, "{b}");
    assert_envelope(s, &h, &b, "TOO_MANY_EVENT_STREAMS");
    let mut o1 = ws(&d, "", Some(OPERATOR)).await;
    assert_eq!(close_code(&mut o1).await, 4429, "in all");
    // a slot comes back when its stream closes
    v1.close(None).await.unwrap();
    d.wait_for("the slot to come back", 10, async |d| {
        d.call("GET", "/api/v1/metrics", Some(VIEWER), None)
            .await
            .2
            .contains("tributary_event_connections 2")
    })
    .await;
    let mut o2 = ws(&d, "", Some(OPERATOR)).await;
    assert_eq!(ws_next(&mut o2, 10).await.unwrap()["type"], "welcome");
    let metrics = d.get_text("/api/v1/metrics").await;
    assert!(
        metrics.contains("tributary_event_connections_refused_total 3"),
        "{metrics}"
    );

    // refused authentications are in the audit trail, without the token
    let (s, _, audit) = d
        .call(
            "GET",
            "/api/v1/audit?action=event.ws&outcome=permission_denied",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, 200, "{audit}");
    let audit: Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit["meta"]["total"], 5, "{audit}");
    assert!(!audit.to_string().contains("not-a-token"));
    assert!(!d.log().contains("not-a-token"), "a token is never logged");
}

/// A client that stops reading is dropped once it falls behind, while a client that
/// reads keeps receiving every event and jobs run as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_dropped_while_other_streams_and_jobs_keep_going() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a.txt"), "alpha").unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    add_api_lines(&cfg, NO_RATE_LIMITS);
    let d = Running::start(&cfg, port, &[]);
    let first = d.latest_job("docs").await;
    assert_eq!(first["status"], "succeeded", "{first}");

    // the slow client: a small receive buffer, and it never reads
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut slow = sock
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    slow.write_all(
        format!("GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VIEWER}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut reader = Sse::open(&d, "?type=connector", None).await;
    d.wait_for("both streams", 10, async |d| {
        d.get_text("/api/v1/metrics")
            .await
            .contains("tributary_event_connections 2")
    })
    .await;

    // events until the slow client is dropped; a job runs meanwhile
    let job = d.queue_run("docs", Some("full")).await;
    let dropped = |m: &str| m.contains("tributary_event_consumers_dropped_total 1");
    let mut published = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for _ in 0..250 {
            for action in ["pause", "resume"] {
                let (s, _, b) = d
                    .call(
                        "POST",
                        &format!("/api/v1/connectors/docs/{action}"),
                        Some(OPERATOR),
                        None,
                    )
                    .await;
                assert_eq!(s, 200, "{b}");
                published += 1;
            }
        }
        if dropped(&d.get_text("/api/v1/metrics").await) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow client was not dropped after {published} events"
        );
    }
    // the reading client got every one, in order
    let mut n = 0;
    let mut last = 0;
    while n < published {
        let e = reader.next(30).await.expect("the reader's stream goes on");
        assert!(e.id > last);
        last = e.id;
        let want = if n % 2 == 0 {
            "connector.paused"
        } else {
            "connector.resumed"
        };
        assert_eq!(e.kind, want, "event {n}");
        n += 1;
    }
    let j = d.get(&format!("/api/v1/jobs/{job}")).await;
    d.wait_for("the job", 60, async |d| {
        d.get(&format!("/api/v1/jobs/{job}")).await["finished_at"].is_string()
    })
    .await;
    let j2 = d.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(j2["status"], "succeeded", "{j} {j2}");
    // the slow client's stream ends once it reads what was already on its way
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = vec![0u8; 65536];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    got.extend_from_slice(&buf[..k]);
                    if got.ends_with(b"0\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the slow stream ended");
    let text = String::from_utf8_lossy(&got);
    let events = text.matches("\nevent: ").count();
    assert!(
        events < published,
        "the slow client was cut off: {events} of {published}"
    );
    let metrics = d.get_text("/api/v1/metrics").await;
    assert!(
        metrics.contains("tributary_event_connections 1"),
        "{metrics}"
    );
}
