//! Vectorization end to end through the real daemon: documents of every supported type
//! are extracted in worker processes, split, embedded by the real model and searched;
//! new versions and deletes leave no stale passages; hostile files fail alone; a
//! changed model is refused until `tributary reindex`; `tributary once` vectorizes what
//! it stored and `tributary search` needs no daemon.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vectorize/extract/tests/fixtures")
        .join(name);
    std::fs::read(p).unwrap()
}

/// Distinct documents, one topic each; the queries below were written for them.
fn write_corpus(src: &Path) {
    std::fs::create_dir_all(src.join("kitchen")).unwrap();
    std::fs::create_dir_all(src.join("office")).unwrap();
    std::fs::write(src.join("office/policy.docx"), fixture("policy.docx")).unwrap();
    std::fs::write(src.join("office/budget.xlsx"), fixture("budget.xlsx")).unwrap();
    std::fs::write(src.join("office/roadmap.pptx"), fixture("roadmap.pptx")).unwrap();
    std::fs::write(src.join("manual.pdf"), fixture("manual.pdf")).unwrap();
    std::fs::write(
        src.join("kitchen/sourdough.txt"),
        "Baking sourdough bread at home\n\nFeed the starter the evening before. Mix flour, \
         water and salt, fold the dough every half hour, let it rise overnight in the \
         fridge and bake it in a hot Dutch oven until the crust is dark brown.",
    )
    .unwrap();
    std::fs::write(
        src.join("deploy.md"),
        "# Deploying\n\nWe ship every service as a container image.\n\n## Cluster\n\n\
         Rollouts to the Kubernetes cluster go through Helm charts; `helm upgrade` \
         replaces pods one by one so that the service stays up.\n",
    )
    .unwrap();
    std::fs::write(
        src.join("volcanoes.html"),
        "<html><head><title>Volcanoes</title><script>track()</script></head><body>\
         <h1>Eruptions</h1><p>When pressure builds in the magma chamber, molten rock \
         rises and lava flows down the flanks of the mountain. Ash clouds can ground \
         flights for days.</p></body></html>",
    )
    .unwrap();
    std::fs::write(
        src.join("cellar.csv"),
        "wine,region,year\nChateau Margaux,Bordeaux,2015\nBarolo Riserva,Piedmont,2013\n\
         Rioja Gran Reserva,La Rioja,2012\n",
    )
    .unwrap();
    // Windows-1252: "Minutes of the café committee: the espresso machine is broken."
    std::fs::write(
        src.join("minutes.txt"),
        b"Minutes of the caf\xe9 committee \x96 the espresso machine in the kitchen is \
          broken again; a technician will replace the pump next week.",
    )
    .unwrap();
    // Not text: skipped. Hostile: fail alone.
    std::fs::write(
        src.join("photo.png"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01",
    )
    .unwrap();
    let pdf = fixture("manual.pdf");
    std::fs::write(src.join("broken.pdf"), &pdf[..pdf.len() / 3]).unwrap();
    std::fs::write(src.join("bomb.docx"), zip_bomb()).unwrap();
}

/// A DOCX whose text inflates to 600 MiB, over the 512 MiB default budget.
fn zip_bomb() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut out);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    z.start_file("word/document.xml", opts).unwrap();
    z.write_all(b"<w:document><w:body><w:p><w:r><w:t>").unwrap();
    let block = vec![b'a'; 1 << 20];
    for _ in 0..600 {
        z.write_all(&block).unwrap();
    }
    z.write_all(b"</w:t></w:r></w:p></w:body></w:document>")
        .unwrap();
    z.finish().unwrap();
    out.into_inner()
}

fn vector_config(dir: &Path, port: u16, model: &Path) -> std::path::PathBuf {
    config(
        dir,
        port,
        "",
        &local_connector("    vectorize: true\n"),
        &format!(
            "vectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n  extract_timeout: 20s\n  retry_backoff: 1h\n",
            model.display()
        ),
    )
}

async fn queue(d: &Running) -> Value {
    d.get("/api/v1/queue").await
}

/// Waits until nothing is pending and the index is ready.
async fn settled(d: &Running) -> Value {
    let mut last = Value::Null;
    d.wait_for("the vectorization queue to drain", 240, async |d| {
        last = queue(d).await;
        last["state"] == "ready" && last["pending"] == 0
    })
    .await;
    last
}

async fn search(d: &Running, q: &str, extra: &str) -> Vec<Value> {
    let url = format!(
        "/api/v1/search?q={}&k=3{extra}",
        q.replace(' ', "%20").replace('?', "%3F")
    );
    d.get(&url).await["items"].as_array().unwrap().clone()
}

fn paths(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["path"].as_str().unwrap().to_string())
        .collect()
}

async fn item_by_path(d: &Running, path: &str) -> Value {
    let list = d.get("/api/v1/items?per_page=500").await;
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == path)
        .unwrap_or_else(|| panic!("no item {path}"))
        .clone();
    d.get(&format!("/api/v1/items/{}", item["id"])).await
}

fn current_index(item: &Value) -> Value {
    item["versions"][0]["index"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_of_every_type_are_searchable_by_meaning_and_stay_current() {
    let model = model_dir();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_corpus(&src);
    let port = free_port();
    let cfg = vector_config(dir.path(), port, &model);
    let mut d = Running::start(&cfg, port, &[]);
    let job = d.latest_job("docs").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let q = settled(&d).await;
    assert_eq!(
        q["embedder"].as_str().unwrap().split(' ').next(),
        Some("local")
    );
    assert_eq!(q["dim"], 384);
    // 9 documents indexed, the PNG skipped, the broken PDF and the bomb failed.
    assert_eq!(q["indexed"], 9, "{q}");
    assert_eq!(q["skipped"], 1, "{q}");
    assert_eq!(q["failed"], 2, "{q}");

    // Retrieval: each query's document is in the top 3.
    let cases = [
        ("how often should the filter be cleaned", "/docs/manual.pdf"),
        (
            "what is the limit for a hotel room per night",
            "/docs/office/policy.docx",
        ),
        (
            "opening a new office in Portugal",
            "/docs/office/roadmap.pptx",
        ),
        (
            "how much money did research get",
            "/docs/office/budget.xlsx",
        ),
        ("making bread with a starter", "/docs/kitchen/sourdough.txt"),
        ("rolling out containers with helm", "/docs/deploy.md"),
        ("lava and molten rock", "/docs/volcanoes.html"),
        ("red wine from Italy", "/docs/cellar.csv"),
        ("the coffee machine needs repair", "/docs/minutes.txt"),
    ];
    for (query, want) in cases {
        let hits = search(&d, query, "").await;
        assert!(
            paths(&hits).iter().any(|p| p == want),
            "{query:?}: expected {want} in {:?}",
            paths(&hits)
        );
    }
    // A hit says where in the document it is, with its text and ids.
    let hits = search(&d, "clean the filter every three months", "").await;
    assert_eq!(hits[0]["path"], "/docs/manual.pdf");
    assert_eq!(hits[0]["location"], "page 2");
    assert!(
        hits[0]["text"]
            .as_str()
            .unwrap()
            .contains("Clean the filter")
    );
    assert!(hits[0]["score"].as_f64().unwrap() > 0.5);
    assert!(hits[0]["item_id"].is_i64() && hits[0]["version_id"].is_i64());
    let hits = search(&d, "hiring plan for the Lisbon office", "").await;
    assert_eq!(hits[0]["path"], "/docs/office/roadmap.pptx");
    assert!(hits[0]["location"].as_str().unwrap().starts_with("slide 1"));
    // Filters.
    let only_office = search(&d, "lava and molten rock", "&path_prefix=/docs/office").await;
    assert!(
        paths(&only_office)
            .iter()
            .all(|p| p.starts_with("/docs/office/"))
    );
    let none = search(&d, "lava", "&connector=nope").await;
    assert!(none.is_empty());

    // Index states in the item API.
    let docx = item_by_path(&d, "/docs/office/policy.docx").await;
    let idx = current_index(&docx);
    assert_eq!(idx["state"], "indexed", "{docx}");
    assert_eq!(idx["format"], "docx");
    assert!(idx["passages"].as_i64().unwrap() >= 1);
    let png = current_index(&item_by_path(&d, "/docs/photo.png").await);
    assert_eq!(png["state"], "skipped");
    assert!(png["reason"].as_str().unwrap().contains("png"), "{png}");
    let broken = current_index(&item_by_path(&d, "/docs/broken.pdf").await);
    assert_eq!(broken["state"], "failed");
    assert!(
        broken["reason"].as_str().unwrap().starts_with("pdf:"),
        "{broken}"
    );
    let bomb = current_index(&item_by_path(&d, "/docs/bomb.docx").await);
    assert_eq!(bomb["state"], "failed");
    assert!(
        bomb["reason"].as_str().unwrap().contains("zip bomb"),
        "{bomb}"
    );
    // The files themselves are stored whatever their index state.
    assert_eq!(
        item_by_path(&d, "/docs/bomb.docx").await["status"],
        "completed"
    );

    // Readiness, metrics.
    let ready = d.get("/api/v1/health/ready").await;
    assert_eq!(ready["checks"]["vectors"]["ok"], true, "{ready}");
    let (_, _, metrics) = d.call("GET", "/api/v1/metrics", Some(VIEWER), None).await;
    assert!(
        metrics.contains("tributary_vectorize_versions{state=\"indexed\"} 9"),
        "{metrics}"
    );
    assert!(metrics.contains("tributary_vectorize_queue_depth 0"));

    // New versions and deletes: nothing stale is found, the new content is.
    let passages_before = queue(&d).await["passages"].as_i64().unwrap();
    std::fs::write(
        src.join("kitchen/sourdough.txt"),
        "Chess openings\n\nThe Sicilian Defence answers 1.e4 with c5 and leads to sharp, \
         unbalanced positions where Black fights for the initiative.",
    )
    .unwrap();
    std::fs::remove_file(src.join("volcanoes.html")).unwrap();
    // A copy of a document under another name reuses its passages.
    std::fs::copy(src.join("deploy.md"), src.join("kitchen/deploy-copy.md")).unwrap();
    let job = d.run_and_wait("docs", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let q = settled(&d).await;
    assert_eq!(q["indexed"], 9, "{q}");
    assert!(q["totals"]["reused"].as_u64().unwrap() >= 1, "{q}");
    let lava = search(&d, "lava and molten rock", "").await;
    assert!(!paths(&lava).contains(&"/docs/volcanoes.html".to_string()));
    let bread = search(&d, "making bread with a starter", "").await;
    for h in &bread {
        assert!(
            !h["text"].as_str().unwrap().contains("sourdough"),
            "stale passage: {h}"
        );
    }
    let chess = search(&d, "Sicilian defence chess opening", "").await;
    assert_eq!(chess[0]["path"], "/docs/kitchen/sourdough.txt");
    let helm = search(&d, "rolling out containers with helm", "").await;
    assert!(paths(&helm).contains(&"/docs/kitchen/deploy-copy.md".to_string()));
    let passages_after = queue(&d).await["passages"].as_i64().unwrap();
    assert!(
        passages_after >= passages_before,
        "{passages_before} -> {passages_after}"
    );

    // The CLI searches through the API.
    let out = Command::new(BIN)
        .args([
            "search",
            "-c",
            cfg.to_str().unwrap(),
            "--token",
            VIEWER,
            "-k",
            "2",
        ])
        .arg("Sicilian defence chess opening")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("1. "), "{stdout}");
    assert!(stdout.contains("/docs/kitchen/sourdough.txt"), "{stdout}");
    // Without a token it searches the catalog itself, the same hits, the daemon running
    // or not (below, once it has stopped).
    let local_search = || {
        let out = cli_ok(&[
            "search",
            "-c",
            cfg.to_str().unwrap(),
            "-k",
            "2",
            "--json",
            "Sicilian defence chess opening",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["items"].as_array().unwrap().clone()
    };
    let direct = local_search();
    let through_api = d
        .get("/api/v1/search?q=Sicilian%20defence%20chess%20opening&k=2")
        .await["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(paths(&direct), paths(&through_api));

    // `check --connect` tries the embedder and the vector store too.
    let out = Command::new(BIN)
        .args(["check", "-c", cfg.to_str().unwrap(), "--connect"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("embedder local dim 384"), "{stdout}");
    assert!(stdout.contains("(384 dimensions)"), "{stdout}");
    assert!(stdout.contains("vector store catalog"), "{stdout}");

    // Bad requests.
    let (status, headers, body) = d
        .call("GET", "/api/v1/search?k=3", Some(VIEWER), None)
        .await;
    assert_eq!(status, 400);
    assert_envelope(status, &headers, &body, "INVALID_QUERY");
    let (status, _, _) = d
        .call("GET", "/api/v1/search?q=x&k=0", Some(VIEWER), None)
        .await;
    assert_eq!(status, 400);

    d.signal("TERM");
    assert!(d.wait_exit(30).success());
    assert_eq!(paths(&local_search()), paths(&direct), "no daemon needed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_model_is_refused_until_reindex() {
    let model = model_dir();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("a.txt"),
        "The quick brown fox jumps over the lazy dog.",
    )
    .unwrap();
    let port = free_port();
    let cfg = vector_config(dir.path(), port, &model);
    {
        let d = Running::start(&cfg, port, &[]);
        d.latest_job("docs").await;
        let q = settled(&d).await;
        assert_eq!(q["indexed"], 1);
    }
    // Another model: the same files with one weight changed.
    let other = dir.path().join("other-model");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["config.json", "tokenizer.json", "sentence_bert_config.json"] {
        std::fs::copy(model.join(f), other.join(f)).unwrap();
    }
    let mut weights = std::fs::read(model.join("model.safetensors")).unwrap();
    let n = weights.len();
    weights[n - 2] ^= 0x01;
    std::fs::write(other.join("model.safetensors"), weights).unwrap();
    // a new port for each start: another test's daemon may have taken the last one
    let port = free_port();
    let cfg = vector_config(dir.path(), port, &other);
    {
        let d = Running::start(&cfg, port, &[]);
        d.wait_for("the vectorizer to refuse the index", 60, async |d| {
            queue(d).await["state"] == "failed"
        })
        .await;
        let (status, _, body) = d.call("GET", "/api/v1/health/ready", None, None).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("tributary reindex"), "{body}");
        let (status, headers, body) = d
            .call("GET", "/api/v1/search?q=fox", Some(VIEWER), None)
            .await;
        assert_eq!(status, 503);
        assert_envelope(status, &headers, &body, "VECTORS_UNAVAILABLE");
        assert!(body.contains("different models"), "{body}");
    }
    let out = Command::new(BIN)
        .args(["reindex", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dropped"));
    let port = free_port();
    let cfg = vector_config(dir.path(), port, &other);
    let d = Running::start(&cfg, port, &[]);
    let q = settled(&d).await;
    assert_eq!(q["indexed"], 1, "{q}");
    let hits = search(&d, "a fox jumping", "").await;
    assert_eq!(hits[0]["path"], "/docs/a.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_without_vectorized_connectors_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let d = Running::start(&cfg, port, &[]);
    let (status, headers, body) = d
        .call("GET", "/api/v1/search?q=x", Some(VIEWER), None)
        .await;
    assert_eq!(status, 503);
    assert_envelope(status, &headers, &body, "VECTORS_UNAVAILABLE");
    assert!(body.contains("vectorize: true"), "{body}");
    let ready = d.get("/api/v1/health/ready").await;
    assert!(ready["checks"].get("vectors").is_none(), "{ready}");
}

fn http_config(dir: &Path, port: u16, embedder: &str) -> std::path::PathBuf {
    config(
        dir,
        port,
        "",
        &local_connector("    vectorize: true\n"),
        &format!("vectorize:\n  embedder: {embedder}\n  retry_backoff: 1s\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_compatible_provider_with_throttling_and_an_outage() {
    let fake = tributary_testkit::embeddings::FakeEmbeddings::start(256).await;
    let key = "sk-test-embedding-key-0042";
    fake.require_key(key);
    fake.throttle(2, 1);
    fake.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("pump.txt"),
        "Clean the pump filter every three months.",
    )
    .unwrap();
    std::fs::write(
        src.join("bread.md"),
        "# Bread\n\nBake sourdough bread with a starter.",
    )
    .unwrap();
    std::fs::write(dir.path().join("key"), format!("{key}\n")).unwrap();
    let port = free_port();
    let cfg = http_config(
        dir.path(),
        port,
        &format!(
            "{{ kind: openai, url: {}, model: text-embedding-3-small, api_key_file: key, batch_size: 8, timeout: 5s }}",
            fake.url
        ),
    );
    let d = Running::start(&cfg, port, &[]);
    // The provider is down: content is stored anyway, versions wait as failed.
    let job = d.latest_job("docs").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    d.wait_for("versions failed on the outage", 60, async |d| {
        queue(d).await["failed"] == 2
    })
    .await;
    let pump = current_index(&item_by_path(&d, "/docs/pump.txt").await);
    assert_eq!(pump["state"], "failed");
    assert!(pump["reason"].as_str().unwrap().contains("503"), "{pump}");
    assert_eq!(pump["attempts"], 0, "an outage uses no attempt: {pump}");
    assert_eq!(
        item_by_path(&d, "/docs/pump.txt").await["status"],
        "completed"
    );
    // Back up (after two 429s): everything gets indexed.
    fake.set_down(false);
    let q = settled(&d).await;
    let q = if q["indexed"] == 2 {
        q
    } else {
        let mut last = q;
        d.wait_for("both versions indexed", 60, async |d| {
            last = queue(d).await;
            last["indexed"] == 2
        })
        .await;
        last
    };
    assert_eq!(q["embedder"], "openai text-embedding-3-small");
    assert_eq!(q["dim"], 256, "{q}");
    let hits = search(&d, "pump filter", "").await;
    assert_eq!(hits[0]["path"], "/docs/pump.txt");
    // Retry-After was honoured: the request after a 429 came at least 1 s later.
    let reqs = fake.requests();
    for w in reqs.windows(2) {
        if w[0].status == 429 {
            assert!(
                w[1].at.duration_since(w[0].at).as_millis() >= 950,
                "{reqs:?}"
            );
        }
    }
    assert!(reqs.iter().filter(|r| r.status == 429).count() == 2);
    assert!(
        reqs.iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {key}")[..]))
    );
    // The key never shows.
    let (_, _, metrics) = d.call("GET", "/api/v1/metrics", Some(VIEWER), None).await;
    let queue_body = d.call("GET", "/api/v1/queue", Some(VIEWER), None).await.2;
    for body in [metrics, queue_body, d.log()] {
        assert!(!body.contains(key), "the API key leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ollama_embedder() {
    let fake = tributary_testkit::embeddings::FakeEmbeddings::start(128).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "Volcanoes erupt lava and ash.").unwrap();
    std::fs::write(src.join("b.txt"), "Espresso machines need descaling.").unwrap();
    let port = free_port();
    let cfg = http_config(
        dir.path(),
        port,
        &format!(
            "{{ kind: ollama, url: {}, model: nomic-embed-text }}",
            fake.url
        ),
    );
    let d = Running::start(&cfg, port, &[]);
    d.latest_job("docs").await;
    let q = settled(&d).await;
    assert_eq!(q["indexed"], 2, "{q}");
    assert_eq!(q["embedder"], "ollama nomic-embed-text");
    let hits = search(&d, "espresso descaling", "").await;
    assert_eq!(hits[0]["path"], "/docs/b.txt");
    assert!(fake.requests().iter().all(|r| r.path == "/api/embed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pgvector_store_on_a_real_postgresql() {
    let model = model_dir();
    let pg = tributary_testkit::postgres::shared();
    let url = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("pump.txt"),
        "Clean the pump filter every three months.",
    )
    .unwrap();
    std::fs::write(
        src.join("bread.txt"),
        "Bake sourdough bread with a starter.",
    )
    .unwrap();
    std::fs::write(src.join("lava.txt"), "Volcanoes erupt lava and ash.").unwrap();
    std::fs::write(dir.path().join("pg-url"), &url).unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        "",
        &local_connector("    vectorize: true\n"),
        &format!(
            "vectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n  store: {{ kind: pgvector, url_file: pg-url, table: docs_vectors }}\n",
            model.display()
        ),
    );
    let psql = |sql: &str| -> String {
        let bin = std::path::PathBuf::from(std::env::var("TRIBUTARY_PG_BIN").unwrap());
        let out = Command::new(bin.join("psql"))
            .args([url.as_str(), "-tA", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    {
        let d = Running::start(&cfg, port, &[]);
        d.latest_job("docs").await;
        let q = settled(&d).await;
        assert_eq!(q["indexed"], 3, "{q}");
        assert_eq!(
            psql("SELECT COUNT(*) FROM docs_vectors"),
            q["passages"].to_string()
        );
        let hits = search(&d, "volcanic eruption", "").await;
        assert_eq!(hits[0]["path"], "/docs/lava.txt");
        // A delete removes its vectors from PostgreSQL too.
        std::fs::remove_file(src.join("lava.txt")).unwrap();
        d.run_and_wait("docs", "full").await;
        let q = settled(&d).await;
        assert_eq!(q["indexed"], 2, "{q}");
        d.wait_for("the deleted file's vectors to go", 30, async |d| {
            !paths(&search(d, "volcanic eruption", "").await)
                .contains(&"/docs/lava.txt".to_string())
        })
        .await;
        assert_eq!(psql("SELECT COUNT(*) FROM docs_vectors"), "2");
        let plan = psql(
            "SET enable_seqscan = off; EXPLAIN SELECT id FROM docs_vectors ORDER BY embedding <=> (SELECT embedding FROM docs_vectors LIMIT 1) LIMIT 5",
        );
        assert!(plan.contains("docs_vectors_hnsw"), "{plan}");
    }
    // A store that lost its rows is reloaded from the catalog at start-up.
    psql("TRUNCATE docs_vectors");
    let d = Running::start(&cfg, port, &[]);
    settled(&d).await;
    let hits = search(&d, "cleaning a filter", "").await;
    assert_eq!(hits[0]["path"], "/docs/pump.txt");
    assert_eq!(psql("SELECT COUNT(*) FROM docs_vectors"), "2");
    assert!(!d.log().contains(&url), "the store URL was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_indexed_in_rounds_and_later_changes_anywhere_are_picked_up() {
    let model = model_dir();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..40 {
        std::fs::write(
            src.join(format!("n{i:02}.txt")),
            format!("Note number {i} about topic {i}."),
        )
        .unwrap();
    }
    let port = free_port();
    let cfg = vector_config(dir.path(), port, &model);
    let d = Running::start(&cfg, port, &[]);
    d.latest_job("docs").await;
    let q = settled(&d).await;
    assert_eq!(q["indexed"], 40, "{q}");
    // Changes at the start and the end of the id order, and a delete.
    std::fs::write(
        src.join("n00.txt"),
        "The harbour crane lifts containers off the ship.",
    )
    .unwrap();
    std::fs::write(
        src.join("n39.txt"),
        "Penguins huddle together against the Antarctic wind.",
    )
    .unwrap();
    std::fs::remove_file(src.join("n20.txt")).unwrap();
    d.run_and_wait("docs", "full").await;
    let q = settled(&d).await;
    assert_eq!(q["indexed"], 39, "{q}");
    assert_eq!(
        search(&d, "cranes unloading a ship", "").await[0]["path"],
        "/docs/n00.txt"
    );
    assert_eq!(
        search(&d, "penguins in Antarctica", "").await[0]["path"],
        "/docs/n39.txt"
    );
    d.wait_for("the deleted note's passages to go", 30, async |d| {
        queue(d).await["passages"] == 39
    })
    .await;
}

#[test]
fn once_vectorizes_what_it_stored_unless_told_not_to_and_search_needs_no_daemon() {
    let model = model_dir();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_corpus(&src);
    let cfg = vector_config(dir.path(), free_port(), &model);
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["-c", cfg.to_str().unwrap()])
            .env_remove("TRIBUTARY_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // the corpus holds a broken PDF and a bomb: they fail alone, the rest is indexed
    let (code, out, err) = run(&["once", "docs"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("vectorized: 9 document(s) indexed, 1 skipped (no text), 2 failed"),
        "{out}"
    );
    let (code, out, err) = run(&["search", "-k", "1", "making bread with a starter"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("/docs/kitchen/sourdough.txt"), "{out}");

    // --no-vectorize stores only; the next once (or the daemon) indexes the rest
    std::fs::write(
        src.join("kitchen/tea.txt"),
        "Brewing green tea: water at 80 degrees, three minutes, no longer.",
    )
    .unwrap();
    let (code, out, err) = run(&["once", "docs", "--incremental", "--no-vectorize"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("vectorized:"), "{out}");
    let (_, out, _) = run(&["search", "-k", "1", "steeping green tea temperature"]);
    assert!(!out.contains("tea.txt"), "not indexed yet: {out}");
    let (code, out, err) = run(&["once", "docs", "--incremental", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    serde_json::from_str::<Value>(&out).expect("stdout stays the JSON summary");
    assert!(err.contains("vectorized: 10 document(s) indexed"), "{err}");
    let (_, out, _) = run(&["search", "-k", "1", "steeping green tea temperature"]);
    assert!(out.contains("/docs/kitchen/tea.txt"), "{out}");
}
