//! Every supported format, from real files (committed fixtures made by python-docx,
//! openpyxl, python-pptx and reportlab, see fixtures/make_fixtures.py) or generated
//! here; and hostile input that must fail alone.

use std::io::Write;

use tributary_extract::{ExtractError, Extracted, Limits, extract};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn all_text(x: &Extracted) -> String {
    x.sections
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn section<'a>(x: &'a Extracted, location: &str) -> &'a str {
    &x.sections
        .iter()
        .find(|s| s.location.as_deref() == Some(location))
        .unwrap_or_else(|| panic!("no section {location:?} in {:?}", x.sections))
        .text
}

#[test]
fn docx_text_tables_and_heading_locations() {
    let x = extract("policy.docx", &fixture("policy.docx"), &Limits::default()).unwrap();
    assert_eq!(x.format, "docx");
    let hotels = section(&x, "Travel policy > Hotels");
    assert!(
        hotels.contains("München and 東京 are capped at 180 EUR"),
        "{hotels}"
    );
    assert!(
        hotels.contains("Only above 6 hours"),
        "table cells: {hotels}"
    );
    assert!(section(&x, "Travel policy").contains("trains for trips under 600 km"));
    assert!(section(&x, "Expenses").contains("within 30 days & signed"));
}

#[test]
fn xlsx_every_sheet_with_cells() {
    let x = extract("budget.xlsx", &fixture("budget.xlsx"), &Limits::default()).unwrap();
    assert_eq!(x.format, "xlsx");
    let budget = section(&x, "sheet Budget");
    assert!(budget.contains("Department\tQuarter\tAmount"), "{budget}");
    assert!(budget.contains("Research\tQ1\t125000"), "{budget}");
    assert!(budget.contains("98000.5"), "{budget}");
    let notes = section(&x, "sheet Notes");
    assert!(notes.contains("approved by the finance committee"));
    assert!(notes.contains("2026-03-31"), "{notes}");
}

#[test]
fn pptx_slides_in_order_and_speaker_notes() {
    let x = extract("roadmap.pptx", &fixture("roadmap.pptx"), &Limits::default()).unwrap();
    assert_eq!(x.format, "pptx");
    assert!(section(&x, "slide 1").contains("Roadmap 2027"));
    assert!(section(&x, "slide 1").contains("Open an office in Lisbon"));
    assert!(section(&x, "slide 2").contains("Supply chain delays"));
    assert!(section(&x, "slide 1 notes").contains("hiring plan for Lisbon"));
    let order: Vec<_> = x
        .sections
        .iter()
        .filter_map(|s| s.location.clone())
        .collect();
    assert_eq!(order[0], "slide 1");
    assert_eq!(order[1], "slide 2");
}

#[test]
fn pdf_text_by_page() {
    let x = extract("manual.pdf", &fixture("manual.pdf"), &Limits::default()).unwrap();
    assert_eq!(x.format, "pdf");
    assert!(section(&x, "page 1").contains("water inlet"));
    assert!(section(&x, "page 2").contains("Clean the filter every three months"));
}

#[test]
fn html_visible_text_with_title_and_headings() {
    let html = r#"<!doctype html><html><head><title>Release notes</title>
        <style>body { color: red }</style><script>var secret = "do not index";</script></head>
        <body><h1>Version 2</h1><p>Faster   uploads and <b>resumable</b> downloads.</p>
        <h2>Fixes</h2><ul><li>Crash on empty files</li><li>Wrong mtime</li></ul>
        <noscript>enable js</noscript></body></html>"#;
    let x = extract("notes.html", html.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(x.format, "html");
    let text = all_text(&x);
    assert!(text.contains("Release notes"));
    assert!(
        text.contains("Faster uploads and resumable downloads."),
        "{text}"
    );
    assert!(!text.contains("do not index") && !text.contains("color: red"));
    assert!(!text.contains("enable js"));
    assert!(section(&x, "Version 2 > Fixes").contains("Crash on empty files\nWrong mtime"));
}

#[test]
fn markdown_sections_by_heading() {
    let md = "# Setup\n\nInstall the *package*.\n\n## Linux\n\nRun `apt install tributary`.\n\n# Usage\n\nStart it.\n";
    let x = extract("README.md", md.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(x.format, "markdown");
    assert!(section(&x, "Setup").contains("Install the package."));
    assert!(section(&x, "Setup > Linux").contains("apt install tributary"));
    assert!(section(&x, "Usage").contains("Start it."));
}

#[test]
fn plain_text_in_legacy_encodings_and_csv() {
    // UTF-16 with a BOM, Windows-1252 and Shift_JIS.
    let mut utf16 = vec![0xFF, 0xFE];
    for u in "Grüße aus Köln".encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let x = extract("greeting.txt", &utf16, &Limits::default()).unwrap();
    assert_eq!(all_text(&x), "Grüße aus Köln");
    let cp1252 = b"Caf\xe9 cr\xe8me br\xfbl\xe9e, na\xefve fa\xe7ade \x80 5";
    let x = extract("menu.txt", cp1252, &Limits::default()).unwrap();
    assert_eq!(all_text(&x), "Café crème brûlée, naïve façade € 5");
    let (sjis, _, _) =
        encoding_rs::SHIFT_JIS.encode("東京都の天気は晴れです。明日は雨が降るでしょう。");
    let x = extract("weather.txt", &sjis, &Limits::default()).unwrap();
    assert!(
        all_text(&x).contains("東京都の天気は晴れ"),
        "{}",
        all_text(&x)
    );
    let x = extract(
        "people.csv",
        b"name,city\r\nAda,London\r\n",
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(x.format, "csv");
    assert_eq!(all_text(&x), "name,city\nAda,London");
    // No extension, but text.
    let x = extract(
        "LICENSE",
        b"Permission is hereby granted",
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(x.format, "text");
}

#[test]
fn binary_files_are_skipped_not_failed() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
    assert!(matches!(
        extract("photo.png", png, &Limits::default()),
        Err(ExtractError::Unsupported(_))
    ));
    assert!(matches!(
        extract("blob", png, &Limits::default()),
        Err(ExtractError::Unsupported(_))
    ));
    let zip = fixture("budget.xlsx");
    assert!(matches!(
        extract("archive.zip", &zip, &Limits::default()),
        Err(ExtractError::Unsupported(_)) | Ok(_)
    ));
}

#[test]
fn text_is_capped() {
    let big = "lorem ipsum ".repeat(100_000);
    let limits = Limits {
        max_text_bytes: 10_000,
        ..Limits::default()
    };
    let x = extract("big.txt", big.as_bytes(), &limits).unwrap();
    assert!(x.truncated);
    assert!(all_text(&x).len() <= 10_000);
}

#[test]
fn truncated_pdf_fails_with_a_message() {
    let pdf = fixture("manual.pdf");
    let e = extract("manual.pdf", &pdf[..pdf.len() / 3], &Limits::default()).unwrap_err();
    assert!(
        matches!(e, ExtractError::Failed(ref m) if m.starts_with("pdf:")),
        "{e:?}"
    );
}

#[test]
fn a_docx_that_is_not_a_zip_fails() {
    let e = extract("report.docx", b"this is not a zip", &Limits::default()).unwrap_err();
    assert!(matches!(e, ExtractError::Failed(_)), "{e:?}");
}

/// A DOCX whose document.xml inflates from ~100 KiB to 100 MiB.
fn zip_bomb() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut out);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("[Content_Types].xml", opts).unwrap();
    z.write_all(b"<Types/>").unwrap();
    z.start_file("word/document.xml", opts).unwrap();
    z.write_all(b"<w:document><w:body><w:p><w:r><w:t>").unwrap();
    let zeros = vec![b'a'; 1 << 20];
    for _ in 0..100 {
        z.write_all(&zeros).unwrap();
    }
    z.write_all(b"</w:t></w:r></w:p></w:body></w:document>")
        .unwrap();
    z.finish().unwrap();
    out.into_inner()
}

#[test]
fn zip_bombs_are_stopped_by_the_decompression_budget() {
    let bomb = zip_bomb();
    assert!(bomb.len() < 1 << 20);
    let limits = Limits {
        max_decompressed_bytes: 16 << 20,
        ..Limits::default()
    };
    let e = extract("bomb.docx", &bomb, &limits).unwrap_err();
    assert!(
        matches!(e, ExtractError::Failed(ref m) if m.contains("zip bomb")),
        "{e:?}"
    );
    let e = extract("bomb.xlsx", &bomb, &limits).unwrap_err();
    assert!(matches!(e, ExtractError::Failed(_)), "{e:?}");
}
