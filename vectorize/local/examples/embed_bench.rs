//! Embedding throughput of the local model: 256 passages of ≥128 word pieces
//! (truncated to `max` tokens), in batches of 32.
//!
//!     cargo run --release -p tributary-embed-local --example embed_bench -- MODEL_DIR [threads] [max_tokens] [dump.json]
//!
//! With a fourth argument the passages are also written there (a JSON list), for
//! `bench/embed_reference.py` to embed the very same passages with the reference.

use std::time::Instant;

fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("MODEL_DIR"));
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let max: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(128);
    let model = tributary_embed_local::Model::load(&dir).unwrap();
    let words = [
        "storage",
        "replication",
        "backup",
        "quarterly",
        "invoice",
        "customer",
        "pipeline",
        "retention",
        "encryption",
        "document",
        "network",
        "latency",
        "throughput",
        "schedule",
        "compliance",
        "archive",
        "version",
        "catalog",
        "search",
        "meaning",
    ];
    let passages: Vec<String> = (0..256)
        .map(|i| {
            (0..110)
                .map(|j| words[(i * 7 + j * 13) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    // Cut each passage to `max` tokens as the splitter would.
    let passages: Vec<String> = passages
        .iter()
        .map(|p| {
            let spans = model.token_spans(p).unwrap();
            let end = spans[(max - 2).min(spans.len()) - 1].1;
            p[..end].to_string()
        })
        .collect();
    if let Some(dump) = args.next() {
        std::fs::write(&dump, serde_json::to_vec(&passages).unwrap()).unwrap();
    }
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    for batch in passages.chunks(32) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        model.embed(&refs, threads).unwrap();
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "passages=256 tokens<={max} threads={threads} wall={wall:.2}s cpu={cpu:.2}s passages/s={:.1} passages/cpu-s={:.1}",
        256.0 / wall,
        256.0 / cpu.max(1e-9)
    );
}
