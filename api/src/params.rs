//! Query parameters, parsed by hand so that every bad field is reported at once.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::json;

use crate::error::ApiError;

pub struct Params {
    raw: HashMap<String, String>,
    errors: Vec<serde_json::Value>,
}

impl Params {
    pub fn new(raw: HashMap<String, String>) -> Params {
        Params {
            raw,
            errors: Vec::new(),
        }
    }

    pub fn string(&mut self, name: &str) -> Option<String> {
        self.raw.get(name).filter(|v| !v.is_empty()).cloned()
    }

    pub fn int(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.raw.get(name)?;
        match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.errors.push(json!({"field": name, "message": format!("expected an integer from {min} to {max}, got `{v}`")}));
                None
            }
        }
    }

    /// One of `allowed`; present but empty is an error too (as any other value).
    pub fn one_of(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let v = self.raw.get(name)?.clone();
        if allowed.contains(&v.as_str()) {
            Some(v)
        } else {
            self.errors.push(json!({"field": name, "message": format!("expected one of {}, got `{v}`", allowed.join(", "))}));
            None
        }
    }

    /// RFC 3339 or Unix seconds, as Unix nanoseconds.
    pub fn time(&mut self, name: &str) -> Option<i64> {
        let v = self.raw.get(name)?.clone();
        let digits = v.strip_prefix('-').unwrap_or(&v);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            // Unix seconds; beyond what nanoseconds count, the ends of time
            return Some(match v.parse::<i64>() {
                Ok(secs) => secs.saturating_mul(1_000_000_000),
                Err(_) if v.starts_with('-') => i64::MIN,
                Err(_) => i64::MAX,
            });
        }
        match chrono::DateTime::parse_from_rfc3339(&v) {
            // times nanoseconds cannot count (before 1677, after 2262) are the ends
            Ok(t) => Some(t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
                i64::MIN
            } else {
                i64::MAX
            })),
            Err(_) => {
                self.errors.push(json!({"field": name, "message": format!("expected RFC 3339 (2026-11-01T12:00:00Z) or Unix seconds, got `{v}`")}));
                None
            }
        }
    }

    /// `page` and `per_page` (default 1 and 50, at most 500).
    pub fn page(&mut self) -> (i64, i64) {
        let page = self.int("page", 1, crate::openapi::MAX_PAGE).unwrap_or(1);
        let per_page = self.int("per_page", 1, 500).unwrap_or(50);
        (page, per_page)
    }

    /// Fails with every invalid field, if any.
    pub fn done(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY",
                "invalid query parameters",
            )
            .details(json!({"fields": self.errors})))
        }
    }
}

/// The `meta` of every paginated list.
pub fn meta(page: i64, per_page: i64, total: i64) -> serde_json::Value {
    json!({
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": if total == 0 { 0 } else { (total + per_page - 1) / per_page },
    })
}

/// Whether `s` is empty or only whitespace as the API's document means it: the
/// `\s` of ECMA-262 regular expressions, which OpenAPI's `pattern` uses (so U+0085, which
/// Unicode counts as white space, is text here, as it is to the document's readers).
pub fn is_blank(s: &str) -> bool {
    s.chars().all(|c| {
        matches!(
            c,
            '\u{9}'..='\u{D}'
                | ' '
                | '\u{A0}'
                | '\u{1680}'
                | '\u{2000}'..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(v: &str) -> (Option<i64>, usize) {
        let mut p = Params::new(HashMap::from([("since".to_string(), v.to_string())]));
        (p.time("since"), p.errors.len())
    }

    #[test]
    fn times_are_rfc3339_or_any_integer_of_unix_seconds() {
        assert_eq!(time("1"), (Some(1_000_000_000), 0));
        assert_eq!(time("-2"), (Some(-2_000_000_000), 0));
        assert_eq!(time("1970-01-01T00:00:03Z"), (Some(3_000_000_000), 0));
        // any integer is a time: beyond nanoseconds' range, the ends
        assert_eq!(time("-18522200652775759544320"), (Some(i64::MIN), 0));
        assert_eq!(time("99999999999999999999999"), (Some(i64::MAX), 0));
        assert_eq!(time("9999999999"), (Some(i64::MAX), 0));
        for bad in ["", "-", "1.5", "soon", "12ab"] {
            assert_eq!(time(bad), (None, 1), "{bad}");
        }
    }

    #[test]
    fn blank_is_what_the_documents_pattern_calls_blank() {
        for blank in ["", " ", "\t\r\n", "\u{A0}\u{3000}\u{FEFF}", "\u{2028}"] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for text in ["a", " a ", "\u{85}", "\u{180E}", "\u{200B}"] {
            assert!(!is_blank(text), "{text:?}");
        }
    }
}
