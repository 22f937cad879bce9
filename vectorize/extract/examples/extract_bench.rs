//! Extraction throughput per format, in-process (the worker process adds one spawn per
//! file on top; see bench/README.md).
//!
//!     cargo run --release -p tributary-extract --example extract_bench [DIR]
//!
//! Without DIR it uses the small test fixtures; `bench/make_documents.py DIR` writes
//! larger PDF, DOCX, XLSX and PPTX files to measure instead.

use std::time::Instant;

use tributary_extract::{Limits, extract};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn main() {
    let para = "Tributary ingests documents from file shares and SharePoint into object storage, \
                deduplicated, and makes them searchable by meaning. ";
    let text = para.repeat(8000); // ~1 MiB
    let html = format!(
        "<html><head><title>t</title></head><body>{}</body></html>",
        (0..8000)
            .map(|i| format!("<h2>Section {i}</h2><p>{para}</p>"))
            .collect::<String>()
    );
    let md: String = (0..8000)
        .map(|i| format!("## Section {i}\n\n{para}\n\n"))
        .collect();
    let csv: String = (0..20000)
        .map(|i| format!("{i},north,widget {i},{},2026-03-{:02}\n", i * 7, i % 28 + 1))
        .collect();
    let dir = std::env::args().nth(1);
    let doc = |kind: &str, small: &str| match &dir {
        Some(d) => std::fs::read(format!("{d}/large.{kind}")).unwrap(),
        None => fixture(small),
    };
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("pdf", "manual.pdf", doc("pdf", "manual.pdf")),
        ("docx", "policy.docx", doc("docx", "policy.docx")),
        ("xlsx", "budget.xlsx", doc("xlsx", "budget.xlsx")),
        ("pptx", "roadmap.pptx", doc("pptx", "roadmap.pptx")),
        ("html", "page.html", html.into_bytes()),
        ("markdown", "doc.md", md.into_bytes()),
        ("text", "notes.txt", text.into_bytes()),
        ("csv", "table.csv", csv.into_bytes()),
    ];
    let limits = Limits {
        max_text_bytes: 64 << 20,
        ..Limits::default()
    };
    for (kind, name, bytes) in cases {
        let t = Instant::now();
        let mut n = 0u32;
        let mut out = 0usize;
        while t.elapsed().as_secs_f64() < 2.0 {
            let x = extract(name, &bytes, &limits).unwrap();
            out = x.sections.iter().map(|s| s.text.len()).sum();
            n += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{kind:9} input {:>8} B  text {:>8} B  {:>8.1} files/s  {:>7.1} MB/s of input",
            bytes.len(),
            out,
            n as f64 / secs,
            bytes.len() as f64 * n as f64 / secs / 1e6
        );
    }
}
