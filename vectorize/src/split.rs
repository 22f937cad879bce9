//! Token-aware passage splitting with overlap.
//!
//! Each section of a document (a page, a sheet, a slide, the text under a heading) is
//! measured with the embedder's own tokenizer and cut into passages of at most
//! `max_tokens` word pieces. A cut prefers, in this order, a paragraph break, a line
//! break, the end of a sentence and a space, in the second half of the window; it never
//! falls inside a word. Consecutive passages of a section share about `overlap` tokens,
//! starting at a word boundary. Passages keep their section's location.

use tributary_extract::Section;

/// Measures text in the embedder's tokens: the byte span of each token.
pub trait Sizer: Send + Sync {
    fn spans(&self, text: &str) -> Vec<(usize, usize)>;
}

/// A stand-in measure for embedders whose tokenizer is not at hand (HTTP providers):
/// every run of letters/digits (split every 6 characters, as word pieces would be) and
/// every other non-space character is a token. It overestimates slightly, which is the
/// safe side for a model's input limit.
pub struct ApproxSizer;

impl Sizer for ApproxSizer {
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut word: Option<(usize, usize)> = None; // (start, chars)
        for (i, c) in text.char_indices() {
            if c.is_alphanumeric() {
                match &mut word {
                    Some((_, n)) if *n < 6 => *n += 1,
                    Some((s, _)) => {
                        out.push((*s, i));
                        word = Some((i, 1));
                    }
                    None => word = Some((i, 1)),
                }
                continue;
            }
            if let Some((s, _)) = word.take() {
                out.push((s, i));
            }
            if !c.is_whitespace() {
                out.push((i, i + c.len_utf8()));
            }
        }
        if let Some((s, _)) = word {
            out.push((s, text.len()));
        }
        out
    }
}

/// One passage to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    pub location: Option<String>,
    pub text: String,
}

/// Splits `sections` into passages of at most `max_tokens` tokens sharing `overlap`.
pub fn split(
    sections: &[Section],
    sizer: &dyn Sizer,
    max_tokens: usize,
    overlap: usize,
) -> Vec<Passage> {
    let max_tokens = max_tokens.max(8);
    let overlap = overlap.min(max_tokens / 2);
    let mut out = Vec::new();
    for s in sections {
        let text = s.text.as_str();
        let spans = sizer.spans(text);
        if spans.is_empty() {
            continue;
        }
        let n = spans.len();
        let mut start = 0;
        loop {
            let limit = (start + max_tokens).min(n);
            let end = if limit == n {
                n
            } else {
                best_break(text, &spans, start + max_tokens / 2, limit)
            };
            let piece = text[spans[start].0..spans[end - 1].1].trim();
            if !piece.is_empty() {
                out.push(Passage {
                    location: s.location.clone(),
                    text: piece.to_string(),
                });
            }
            if end >= n {
                break;
            }
            // Next window: `overlap` tokens back, moved forward to a word start.
            let mut next = end.saturating_sub(overlap).max(start + 1);
            while next < end && quality(text, &spans, next) == 0 {
                next += 1;
            }
            start = next;
        }
    }
    out
}

/// How good a cut before token `b` is: 4 paragraph, 3 line, 2 sentence, 1 space,
/// 0 inside a word.
fn quality(text: &str, spans: &[(usize, usize)], b: usize) -> u8 {
    if b == 0 || b >= spans.len() {
        return 4;
    }
    let gap = &text[spans[b - 1].1..spans[b].0];
    if gap.contains("\n\n") {
        4
    } else if gap.contains('\n') {
        3
    } else if !gap.is_empty() {
        let prev = &text[spans[b - 1].0..spans[b - 1].1];
        if matches!(prev, "." | "!" | "?" | ";" | ":") {
            2
        } else {
            1
        }
    } else {
        let prev = &text[spans[b - 1].0..spans[b - 1].1];
        // CJK sentence ends carry no space.
        if matches!(prev, "。" | "！" | "？") {
            2
        } else {
            0
        }
    }
}

/// The best cut in `lo..=hi` (token indexes; the passage ends before the cut); later
/// wins among equals. Falls back to `hi` when nothing breaks (one huge word).
fn best_break(text: &str, spans: &[(usize, usize)], lo: usize, hi: usize) -> usize {
    let mut best = (0u8, hi);
    for b in lo.max(1)..=hi {
        let q = quality(text, spans, b);
        if q >= best.0 {
            best = (q, b);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(text: &str) -> Vec<Section> {
        vec![Section {
            location: Some("page 1".into()),
            text: text.into(),
        }]
    }

    #[test]
    fn short_text_is_one_passage() {
        let p = split(&sec("Hello world."), &ApproxSizer, 128, 16);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].text, "Hello world.");
        assert_eq!(p[0].location.as_deref(), Some("page 1"));
    }

    #[test]
    fn long_text_is_cut_at_sentences_with_overlap_and_no_passage_is_too_long() {
        let text: String = (0..200)
            .map(|i| format!("Sentence number {i} talks about storage."))
            .collect::<Vec<_>>()
            .join(" ");
        let p = split(&sec(&text), &ApproxSizer, 64, 8);
        assert!(p.len() > 5);
        for x in &p {
            assert!(ApproxSizer.spans(&x.text).len() <= 64, "{}", x.text);
            assert!(x.text.ends_with('.'), "cut mid-sentence: {:?}", x.text);
        }
        // Overlap: each passage starts with words the previous one ended with.
        for w in p.windows(2) {
            let first_word = w[1].text.split_whitespace().next().unwrap();
            assert!(w[0].text.contains(first_word));
        }
        // Nothing is lost: every sentence number appears.
        let all = p
            .iter()
            .map(|x| x.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        for i in 0..200 {
            assert!(all.contains(&format!("number {i} ")), "{i}");
        }
    }

    #[test]
    fn paragraph_breaks_are_preferred() {
        let para = "word ".repeat(40);
        let text = format!("{para}\n\n{para}\n\n{para}");
        let p = split(&sec(&text), &ApproxSizer, 60, 0);
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|x| x.text.split_whitespace().count() == 40));
    }

    #[test]
    fn a_huge_word_is_cut_anyway() {
        let text = "x".repeat(10_000);
        let p = split(&sec(&text), &ApproxSizer, 32, 4);
        assert!(p.len() > 10);
        assert!(p.iter().all(|x| x.text.len() <= 32 * 6));
    }
}
