//! Text extraction from untrusted files: PDF, DOCX, XLSX, PPTX, HTML, Markdown, CSV and
//! plain text in any common encoding.
//!
//! [`extract`] is a pure function of the bytes; it is meant to run inside a worker
//! process ([`worker`]) with a memory and CPU limit, because parsers of hostile files
//! can loop, allocate without bound or crash. Inside, every archive entry is read
//! through a decompression budget, and the text kept is capped.

pub mod worker;

use std::borrow::Cow;
use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};

/// Limits of one extraction.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    /// Text kept per file, in bytes; the rest is dropped (and said so).
    pub max_text_bytes: usize,
    /// Bytes an archive (DOCX, XLSX, PPTX) may decompress to in total.
    pub max_decompressed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_bytes: 4 << 20,
            max_decompressed_bytes: 256 << 20,
        }
    }
}

/// A part of a document with where it is: `page 3`, `sheet Budget`, `slide 2`,
/// `slide 2 notes`, or the heading path of a text document (`Install > Linux`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub location: Option<String>,
    pub text: String,
}

/// What came out of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// `pdf`, `docx`, `xlsx`, `pptx`, `html`, `markdown`, `csv` or `text`.
    pub format: String,
    pub sections: Vec<Section>,
    /// The text was cut at `max_text_bytes`.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ExtractError {
    /// Not a format we extract (images, archives, executables …): skipped, not failed.
    #[error("{0}")]
    Unsupported(String),
    /// The file claims a format but cannot be parsed, or exceeds a budget.
    #[error("{0}")]
    Failed(String),
}

fn failed(format: &str, e: impl std::fmt::Display) -> ExtractError {
    ExtractError::Failed(format!("{format}: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pdf,
    Docx,
    Xlsx,
    Pptx,
    Html,
    Markdown,
    Csv,
    Text,
}

fn extension(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// Known binary types: skipped without looking further.
const BINARY_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "ico", "heic", "psd", "zip", "gz",
    "tgz", "bz2", "xz", "zst", "7z", "rar", "tar", "iso", "img", "dmg", "exe", "dll", "so",
    "dylib", "bin", "o", "a", "class", "jar", "mp3", "mp4", "m4a", "mov", "avi", "mkv", "wav",
    "flac", "ogg", "webm", "woff", "woff2", "ttf", "otf", "sqlite", "db", "mdb", "pst", "ost",
    "doc", "xls", "ppt", "msg", "vsd", "pyc",
];

fn detect(name: &str, bytes: &[u8]) -> Result<Format, ExtractError> {
    let ext = extension(name);
    if bytes.starts_with(b"%PDF-") || ext == "pdf" {
        return Ok(Format::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return match ext.as_str() {
            "docx" | "docm" | "dotx" => Ok(Format::Docx),
            "xlsx" | "xlsm" | "xltx" => Ok(Format::Xlsx),
            "pptx" | "pptm" | "potx" => Ok(Format::Pptx),
            _ => ooxml_kind(bytes).ok_or_else(|| {
                ExtractError::Unsupported(format!("zip archive ({ext}) is not a document type"))
            }),
        };
    }
    match ext.as_str() {
        "docx" | "docm" | "xlsx" | "xlsm" | "pptx" | "pptm" => {
            return Err(ExtractError::Failed(format!(
                "{ext}: not a valid Office Open XML file (no zip signature)"
            )));
        }
        "html" | "htm" | "xhtml" => return Ok(Format::Html),
        "md" | "markdown" | "mdown" | "mkd" => return Ok(Format::Markdown),
        "csv" | "tsv" => return Ok(Format::Csv),
        e if BINARY_EXTENSIONS.contains(&e) => {
            return Err(ExtractError::Unsupported(format!(
                "{e} files are not extracted"
            )));
        }
        _ => {}
    }
    let head = &bytes[..bytes.len().min(8192)];
    let lower: Vec<u8> = head.iter().take(512).map(u8::to_ascii_lowercase).collect();
    let lower = String::from_utf8_lossy(&lower);
    let trimmed = lower.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
        return Ok(Format::Html);
    }
    if looks_textual(head) {
        Ok(Format::Text)
    } else {
        Err(ExtractError::Unsupported(format!(
            "binary content{}",
            if ext.is_empty() {
                String::new()
            } else {
                format!(" ({ext})")
            }
        )))
    }
}

fn looks_textual(head: &[u8]) -> bool {
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return true; // UTF-16 with BOM
    }
    if head.contains(&0) {
        return false;
    }
    let controls = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0C | 0x1B))
        .count();
    controls * 100 <= head.len()
}

fn ooxml_kind(bytes: &[u8]) -> Option<Format> {
    let zip = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if names.contains(&"word/document.xml") {
        Some(Format::Docx)
    } else if names.contains(&"xl/workbook.xml") {
        Some(Format::Xlsx)
    } else if names.contains(&"ppt/presentation.xml") {
        Some(Format::Pptx)
    } else {
        None
    }
}

/// Extracts the text of `bytes`, whose file is called `name` (its extension is a hint).
pub fn extract(name: &str, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let format = detect(name, bytes)?;
    let (label, sections) = match format {
        Format::Pdf => ("pdf", pdf(bytes)?),
        Format::Docx => ("docx", docx(bytes, limits)?),
        Format::Xlsx => ("xlsx", xlsx(bytes, limits)?),
        Format::Pptx => ("pptx", pptx(bytes, limits)?),
        Format::Html => ("html", html(&decode(bytes))),
        Format::Markdown => ("markdown", markdown(&decode(bytes))),
        Format::Csv => ("csv", plain(&decode(bytes))),
        Format::Text => ("text", plain(&decode(bytes))),
    };
    let mut out = Extracted {
        format: label.into(),
        sections: Vec::new(),
        truncated: false,
    };
    let mut budget = limits.max_text_bytes;
    for mut s in sections {
        s.text = normalize(&s.text);
        if s.text.trim().is_empty() {
            continue;
        }
        if s.text.len() > budget {
            let mut cut = budget;
            while !s.text.is_char_boundary(cut) {
                cut -= 1;
            }
            s.text.truncate(cut);
            out.truncated = true;
        }
        budget -= s.text.len();
        if !s.text.is_empty() {
            out.sections.push(s);
        }
        if budget == 0 {
            out.truncated = true;
            break;
        }
    }
    Ok(out)
}

/// `\r\n` and `\r` to `\n`, no NULs, no trailing spaces, at most one blank line in a row.
fn normalize(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace(['\r', '\u{c}'], "\n");
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.split('\n') {
        let line = line.trim_end().replace('\0', "");
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.trim_matches('\n').to_string()
}

/// Text in any common encoding: a BOM wins, then UTF-8 if valid, else the guess of
/// chardetng (the detector Firefox uses) decoded with encoding_rs.
pub fn decode(bytes: &[u8]) -> Cow<'_, str> {
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom..]);
        return text;
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(bytes, true);
    let enc = det.guess(None, chardetng::Utf8Detection::Allow);
    let (text, _, _) = enc.decode(bytes);
    text
}

fn plain(text: &str) -> Vec<Section> {
    vec![Section {
        location: None,
        text: text.to_string(),
    }]
}

// ---- PDF -----------------------------------------------------------------------------

fn pdf(bytes: &[u8]) -> Result<Vec<Section>, ExtractError> {
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|_| failed("pdf", "the PDF parser gave up on this file (malformed PDF)"))?
        .map_err(|e| failed("pdf", e))?;
    Ok(pages
        .into_iter()
        .enumerate()
        .map(|(n, text)| Section {
            location: Some(format!("page {}", n + 1)),
            text,
        })
        .collect())
}

// ---- Office Open XML -----------------------------------------------------------------

/// A zip archive whose entries are read through one decompression budget.
struct Archive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    budget: u64,
    format: &'static str,
}

impl<'a> Archive<'a> {
    fn open(bytes: &'a [u8], limits: &Limits, format: &'static str) -> Result<Self, ExtractError> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| failed(format, e))?;
        Ok(Archive {
            zip,
            budget: limits.max_decompressed_bytes,
            format,
        })
    }

    fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .collect()
    }

    /// The entry's bytes, or `None` when it does not exist.
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let format = self.format;
        let mut f = match self.zip.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(failed(format, e)),
        };
        let mut out = Vec::new();
        (&mut f)
            .take(self.budget + 1)
            .read_to_end(&mut out)
            .map_err(|e| failed(format, format!("{name}: {e}")))?;
        if out.len() as u64 > self.budget {
            return Err(failed(
                format,
                "decompresses to more than the limit (max_decompressed_bytes); a zip bomb?",
            ));
        }
        self.budget -= out.len() as u64;
        Ok(Some(out))
    }

    /// Decompresses every entry through the budget without keeping it: proves that a
    /// parser that reads the archive on its own (calamine) stays within the limit.
    fn check_budget(&mut self) -> Result<(), ExtractError> {
        let format = self.format;
        let mut total = 0u64;
        for i in 0..self.zip.len() {
            let f = self.zip.by_index(i).map_err(|e| failed(format, e))?;
            let n = std::io::copy(&mut f.take(self.budget + 1 - total), &mut std::io::sink())
                .map_err(|e| failed(format, e))?;
            total += n;
            if total > self.budget {
                return Err(failed(
                    format,
                    "decompresses to more than the limit (max_decompressed_bytes); a zip bomb?",
                ));
            }
        }
        Ok(())
    }
}

/// Paragraph text of WordprocessingML / DrawingML parts: the text runs (`t`), a tab for
/// `tab`, a line break for `br` and the end of a paragraph (`p`). When `headings` is
/// set, a paragraph whose style is `HeadingN`/`Title` is reported as a heading.
fn ooxml_paragraphs(xml: &[u8], format: &str) -> Result<Vec<(Option<u8>, String)>, ExtractError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut para = String::new();
    let mut level: Option<u8> = None;
    let mut in_text = false;
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| failed(format, format!("XML: {e}")))?;
        let empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name();
                match local_name(name.as_ref()) {
                    "t" => in_text = !empty,
                    "tab" => para.push('\t'),
                    "br" | "cr" => para.push('\n'),
                    "pStyle" => {
                        for a in e.attributes().flatten() {
                            if local_name(a.key.as_ref()) == "val" {
                                let v = a.value.to_ascii_lowercase();
                                level = heading_level(&v);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                let name = e.name();
                match local_name(name.as_ref()) {
                    "t" => in_text = false,
                    "p" => {
                        out.push((level.take(), std::mem::take(&mut para)));
                    }
                    _ => {}
                }
            }
            Event::Text(t) if in_text => {
                para.push_str(&t.xml10_content());
            }
            Event::CData(t) if in_text => {
                para.push_str(&t);
            }
            Event::GeneralRef(r) if in_text => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    para.push(c);
                } else {
                    para.push_str(match &*r {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !para.is_empty() {
        out.push((level, para));
    }
    Ok(out)
}

fn local_name(name: &str) -> &str {
    match name.rfind(':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn heading_level(style: &str) -> Option<u8> {
    if style == "title" {
        return Some(1);
    }
    let rest = style.strip_prefix("heading")?;
    let n: u8 = rest.trim().parse().ok()?;
    (1..=9).contains(&n).then_some(n)
}

/// `Install > Linux`: the heading path of a section, if any.
fn location(path: &[(u8, String)]) -> Option<String> {
    (!path.is_empty()).then(|| {
        path.iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(" > ")
    })
}

/// Groups paragraphs into sections under their heading path.
fn sections_by_heading(paras: Vec<(Option<u8>, String)>) -> Vec<Section> {
    let mut out = Vec::new();
    let mut path: Vec<(u8, String)> = Vec::new();
    let mut text = String::new();
    for (level, para) in paras {
        match level {
            Some(l) if !para.trim().is_empty() => {
                if !text.trim().is_empty() {
                    out.push(Section {
                        location: location(&path),
                        text: std::mem::take(&mut text),
                    });
                }
                text.clear();
                path.retain(|(pl, _)| *pl < l);
                path.push((l, para.trim().to_string()));
                text.push_str(para.trim());
                text.push('\n');
            }
            _ => {
                text.push_str(&para);
                text.push('\n');
            }
        }
    }
    if !text.trim().is_empty() {
        out.push(Section {
            location: location(&path),
            text,
        });
    }
    out
}

fn docx(bytes: &[u8], limits: &Limits) -> Result<Vec<Section>, ExtractError> {
    let mut zip = Archive::open(bytes, limits, "docx")?;
    let xml = zip
        .read("word/document.xml")?
        .ok_or_else(|| failed("docx", "word/document.xml is missing"))?;
    Ok(sections_by_heading(ooxml_paragraphs(&xml, "docx")?))
}

fn pptx(bytes: &[u8], limits: &Limits) -> Result<Vec<Section>, ExtractError> {
    let mut zip = Archive::open(bytes, limits, "pptx")?;
    let numbered = |prefix: &str, names: &[String]| {
        let mut v: Vec<(u32, String)> = names
            .iter()
            .filter_map(|n| {
                let num = n.strip_prefix(prefix)?.strip_suffix(".xml")?.parse().ok()?;
                Some((num, n.clone()))
            })
            .collect();
        v.sort();
        v
    };
    let names = zip.names();
    let slides = numbered("ppt/slides/slide", &names);
    if slides.is_empty() && !names.iter().any(|n| n == "ppt/presentation.xml") {
        return Err(failed("pptx", "ppt/presentation.xml is missing"));
    }
    let mut out = Vec::new();
    for (n, name) in slides {
        let xml = zip.read(&name)?.unwrap_or_default();
        let text = join_paras(ooxml_paragraphs(&xml, "pptx")?);
        out.push(Section {
            location: Some(format!("slide {n}")),
            text,
        });
    }
    for (n, name) in numbered("ppt/notesSlides/notesSlide", &names) {
        let xml = zip.read(&name)?.unwrap_or_default();
        // Notes pages repeat the slide number as a text field: drop bare numbers.
        let paras: Vec<_> = ooxml_paragraphs(&xml, "pptx")?
            .into_iter()
            .filter(|(_, p)| p.trim().parse::<u32>().is_err())
            .collect();
        out.push(Section {
            location: Some(format!("slide {n} notes")),
            text: join_paras(paras),
        });
    }
    Ok(out)
}

fn join_paras(paras: Vec<(Option<u8>, String)>) -> String {
    paras
        .into_iter()
        .map(|(_, p)| p)
        .collect::<Vec<_>>()
        .join("\n")
}

fn xlsx(bytes: &[u8], limits: &Limits) -> Result<Vec<Section>, ExtractError> {
    use calamine::{Data, Reader};
    Archive::open(bytes, limits, "xlsx")?.check_budget()?;
    let mut wb = calamine::Xlsx::new(Cursor::new(bytes)).map_err(|e| failed("xlsx", e))?;
    let mut out = Vec::new();
    for name in wb.sheet_names() {
        let range = wb
            .worksheet_range(&name)
            .map_err(|e| failed("xlsx", format!("sheet {name}: {e}")))?;
        let mut text = String::new();
        for row in range.rows() {
            let cells: Vec<String> = row
                .iter()
                .map(|c| match c {
                    Data::Empty => String::new(),
                    Data::String(s) => s.replace(['\t', '\n'], " "),
                    Data::Float(f) => format_number(*f),
                    Data::Int(i) => i.to_string(),
                    Data::Bool(b) => b.to_string(),
                    Data::DateTime(d) => {
                        let (y, mo, da, h, mi, se, _) = d.to_ymd_hms_milli();
                        if (h, mi, se) == (0, 0, 0) {
                            format!("{y:04}-{mo:02}-{da:02}")
                        } else {
                            format!("{y:04}-{mo:02}-{da:02} {h:02}:{mi:02}:{se:02}")
                        }
                    }
                    Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
                    Data::Error(e) => format!("#{e:?}"),
                })
                .collect();
            let line = cells.join("\t");
            let line = line.trim_end_matches('\t');
            if !line.is_empty() {
                text.push_str(line);
                text.push('\n');
            }
        }
        out.push(Section {
            location: Some(format!("sheet {name}")),
            text,
        });
    }
    Ok(out)
}

fn format_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

// ---- HTML and Markdown ---------------------------------------------------------------

fn html(src: &str) -> Vec<Section> {
    use scraper::{Html, Node};
    let doc = Html::parse_document(src);
    let mut out = Vec::new();
    let mut path: Vec<(u8, String)> = Vec::new();
    let mut text = String::new();
    let title = doc
        .select(&scraper::Selector::parse("title").expect("valid selector"))
        .next()
        .map(|t| t.text().collect::<String>().trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(t) = &title {
        text.push_str(t);
        text.push('\n');
    }
    let flush = |out: &mut Vec<Section>, path: &[(u8, String)], text: &mut String| {
        if !text.trim().is_empty() {
            out.push(Section {
                location: location(path),
                text: std::mem::take(text),
            });
        }
        text.clear();
    };
    // Depth-first walk over visible text; block elements end lines.
    let root = *doc.root_element();
    let mut stack = vec![(root, false)];
    while let Some((node, closing)) = stack.pop() {
        let Some(el) = node.value().as_element() else {
            if let Node::Text(t) = node.value()
                && !closing
            {
                let collapsed: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
                if !collapsed.is_empty() {
                    if !text.is_empty() && !text.ends_with(['\n', ' ']) {
                        text.push(' ');
                    }
                    text.push_str(&collapsed);
                }
            }
            continue;
        };
        let tag = el.name();
        if matches!(
            tag,
            "script" | "style" | "noscript" | "template" | "head" | "svg" | "iframe"
        ) {
            continue;
        }
        let level = match tag {
            "h1" => Some(1),
            "h2" => Some(2),
            "h3" => Some(3),
            "h4" => Some(4),
            "h5" => Some(5),
            "h6" => Some(6),
            _ => None,
        };
        let block = level.is_some()
            || matches!(
                tag,
                "p" | "div"
                    | "br"
                    | "li"
                    | "tr"
                    | "table"
                    | "section"
                    | "article"
                    | "header"
                    | "footer"
                    | "ul"
                    | "ol"
                    | "pre"
                    | "blockquote"
                    | "td"
                    | "th"
                    | "dd"
                    | "dt"
                    | "main"
                    | "nav"
                    | "aside"
                    | "hr"
                    | "figcaption"
            );
        if closing {
            if block && !text.ends_with('\n') {
                text.push('\n');
            }
            continue;
        }
        if let Some(l) = level {
            flush(&mut out, &path, &mut text);
            let heading: String = scraper::ElementRef::wrap(node)
                .map(|e| e.text().collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            let heading = heading.split_whitespace().collect::<Vec<_>>().join(" ");
            path.retain(|(pl, _)| *pl < l);
            if !heading.is_empty() {
                path.push((l, heading));
            }
        } else if block && !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        stack.push((node, true));
        let children: Vec<_> = node.children().collect();
        for c in children.into_iter().rev() {
            stack.push((c, false));
        }
    }
    flush(&mut out, &path, &mut text);
    out
}

fn markdown(src: &str) -> Vec<Section> {
    use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
    let mut out = Vec::new();
    let mut path: Vec<(u8, String)> = Vec::new();
    let mut text = String::new();
    let mut heading: Option<(u8, String)> = None;
    for ev in Parser::new(src) {
        match ev {
            Event::Start(Tag::Heading { level, .. }) => {
                if !text.trim().is_empty() {
                    out.push(Section {
                        location: location(&path),
                        text: std::mem::take(&mut text),
                    });
                }
                text.clear();
                let l = match level {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    HeadingLevel::H3 => 3,
                    HeadingLevel::H4 => 4,
                    HeadingLevel::H5 => 5,
                    HeadingLevel::H6 => 6,
                };
                heading = Some((l, String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((l, h)) = heading.take() {
                    path.retain(|(pl, _)| *pl < l);
                    text.push_str(h.trim());
                    text.push('\n');
                    path.push((l, h.trim().to_string()));
                }
            }
            Event::Text(t) | Event::Code(t) => match &mut heading {
                Some((_, h)) => h.push_str(&t),
                None => text.push_str(&t),
            },
            Event::SoftBreak => text.push(' '),
            Event::HardBreak => text.push('\n'),
            Event::End(TagEnd::Paragraph | TagEnd::Item | TagEnd::CodeBlock | TagEnd::TableRow) => {
                text.push('\n')
            }
            Event::End(TagEnd::TableCell) => text.push('\t'),
            _ => {}
        }
    }
    if !text.trim().is_empty() {
        out.push(Section {
            location: location(&path),
            text,
        });
    }
    out
}
