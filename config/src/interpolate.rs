//! `${VAR}` interpolation of the raw YAML text, before it is parsed.
//!
//! Supported forms: `${VAR}`, `${VAR:-default}` (default when unset or empty),
//! `${VAR:?message}` (error when unset or empty) and `$$` for a literal `$`.
//! A `$` followed by anything else is kept as it is. Values containing a newline are
//! rejected: they would silently change the structure of the document. The environment
//! is an argument, never read here, and substituted values are never logged.

use std::collections::HashMap;

/// An interpolation failure, with the 1-based line and column of the `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Substitutes every reference in `text`; collects every failure instead of stopping
/// at the first one.
pub fn interpolate(
    text: &str,
    env: &HashMap<String, String>,
) -> Result<String, Vec<InterpolationError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let bytes = text.as_bytes();
    let (mut line, mut line_start) = (1usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
        if b != b'$' {
            // Copy the whole UTF-8 sequence starting here.
            let ch = text[i..].chars().next().expect("char boundary");
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let column = text[line_start..i].chars().count() + 1;
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let Some(close) = text[i + 2..].find('}') else {
                    errors.push(InterpolationError {
                        line,
                        column,
                        message: "unterminated `${`: expected `}`".into(),
                    });
                    out.push_str(&text[i..]);
                    break;
                };
                let inner = &text[i + 2..i + 2 + close];
                match resolve(inner, env) {
                    Ok(value) => out.push_str(&value),
                    Err(message) => errors.push(InterpolationError {
                        line,
                        column,
                        message,
                    }),
                }
                i += 2 + close + 1;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn resolve(inner: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let (name, op) = match inner.find(":-").or_else(|| inner.find(":?")) {
        Some(pos) => (
            &inner[..pos],
            Some((&inner[pos..pos + 2], &inner[pos + 2..])),
        ),
        None => (inner, None),
    };
    let valid_name = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!(
            "invalid variable name `{name}` in `${{{inner}}}`: expected letters, digits and `_`"
        ));
    }
    let value = env.get(name).filter(|v| !v.is_empty());
    let value = match (value, op) {
        (Some(v), _) => v.clone(),
        (None, Some((":-", default))) => default.to_string(),
        (None, Some((_, why))) => {
            return Err(format!("environment variable `{name}` is required: {why}"));
        }
        (None, None) => {
            return Err(format!(
                "environment variable `{name}` is not set (use `${{{name}:-default}}` to give a default)"
            ));
        }
    };
    if value.contains('\n') || value.contains('\r') {
        return Err(format!(
            "environment variable `{name}` contains a newline, which is not allowed in interpolated values"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        let e = env(&[("A", "x"), ("EMPTY", "")]);
        assert_eq!(
            interpolate("a=${A} b=${B:-dflt} c=${EMPTY:-d} $$HOME $5 ü${A}", &e).unwrap(),
            "a=x b=dflt c=d $HOME $5 üx"
        );
    }

    #[test]
    fn reports_every_failure_with_position() {
        let e = env(&[("NL", "a\nb")]);
        let errs = interpolate(
            "x: ${MISSING}\ny: ${NL}\nz: ${R:?set it}\nw: ${bad-name}",
            &e,
        )
        .unwrap_err();
        let pos: Vec<_> = errs.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(pos, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
        assert!(errs[0].message.contains("`MISSING` is not set"));
        assert!(errs[1].message.contains("newline"));
        assert!(errs[2].message.contains("required: set it"));
        assert!(errs[3].message.contains("invalid variable name"));
    }
}
