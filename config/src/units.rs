//! Sizes (`64MiB`, `1.5GB`, `4096`) and durations (`30s`, `15m`, `1h30m`, `250ms`).
//!
//! The raw forms keep what the user wrote, so that validation can report every bad value
//! at once with its position instead of failing the parse at the first one.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A size as written in the file: a string with a unit or a plain number of bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RawSize {
    Text(String),
    Number(f64),
}

/// A duration as written in the file: a string with units or a number of seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RawDuration {
    Text(String),
    Number(f64),
}

struct NumOrStr<T>(fn(String) -> T, fn(f64) -> T, &'static str);

impl<'de, T> Visitor<'de> for NumOrStr<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.2)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.0)(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok((self.1)(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok((self.1)(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Ok((self.1)(v))
    }
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr(
            RawSize::Text,
            RawSize::Number,
            "a size like `64MiB` or a number of bytes",
        ))
    }
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr(
            RawDuration::Text,
            RawDuration::Number,
            "a duration like `30s` or a number of seconds",
        ))
    }
}

impl JsonSchema for RawSize {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: a number of bytes, or a number with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([KMGT]i?B|B)?\\s*$"}
            ]
        })
    }
}

impl JsonSchema for RawDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: a number of seconds, or values with units (ms, s, m, h, d), e.g. `1h30m`",
            "oneOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$"}
            ]
        })
    }
}

const SIZE_EXPECTED: &str =
    "expected a size like `64MiB`, `512KiB`, `1GB` or a whole number of bytes";

impl RawSize {
    /// The size in bytes, or a message saying what was expected.
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            RawSize::Number(n) => {
                if *n < 0.0 {
                    Err(format!("size must not be negative, got {n}"))
                } else if n.fract() != 0.0 {
                    Err(format!("{SIZE_EXPECTED}, got {n}"))
                } else {
                    Ok(*n as u64)
                }
            }
            RawSize::Text(s) => parse_size(s),
        }
    }
}

/// Parses `64MiB`, `1.5 GB`, `100` (bytes). Binary units are powers of 1024, decimal
/// units powers of 1000.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("size must not be negative, got `{s}`"));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{SIZE_EXPECTED}, got `{s}`"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit `{unit}` in `{s}`: {SIZE_EXPECTED}"
            ));
        }
    };
    let bytes = value * mult as f64;
    if bytes.fract() != 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{SIZE_EXPECTED}, got `{s}`"));
    }
    Ok(bytes as u64)
}

const DURATION_EXPECTED: &str = "expected a duration like `30s`, `15m`, `1h30m`, `250ms`";

impl RawDuration {
    pub fn duration(&self) -> Result<Duration, String> {
        match self {
            RawDuration::Number(n) if *n >= 0.0 && n.is_finite() => seconds(*n, &n.to_string()),
            RawDuration::Number(n) => Err(format!("duration must not be negative, got {n}")),
            RawDuration::Text(s) => parse_duration(s),
        }
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("duration must not be negative, got `{s}`"));
    }
    if let Ok(secs) = t.parse::<f64>() {
        return seconds(secs, s);
    }
    let mut total = 0f64;
    let mut rest = t;
    if rest.is_empty() {
        return Err(format!("{DURATION_EXPECTED}, got `{s}`"));
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in `{s}`: {DURATION_EXPECTED}"))?;
        let num: f64 = rest[..n_end]
            .parse()
            .map_err(|_| format!("{DURATION_EXPECTED}, got `{s}`"))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            u => {
                return Err(format!(
                    "unknown duration unit `{u}` in `{s}`: {DURATION_EXPECTED}"
                ));
            }
        };
        total += num * secs;
        rest = &rest[u_end..];
    }
    seconds(total, s)
}

/// Seconds as a duration; NaN, infinite or beyond what a duration holds (some 584
/// billion years) is an error, not a panic.
fn seconds(secs: f64, written: &str) -> Result<Duration, String> {
    if secs.is_nan() {
        return Err(format!("{DURATION_EXPECTED}, got `{written}`"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration `{written}` is out of range"))
}

const RATE_EXPECTED: &str = "expected a rate like `50/minute`, `10/s`, `1000/1h` (count per second, minute, hour or a duration) or `off`";

/// A rate limit: at most `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// `50/minute`, `10/s`, `1000/1h`; `off` is `None` (no limit).
pub fn parse_rate(s: &str) -> Result<Option<Rate>, String> {
    let t = s.trim();
    if t == "off" {
        return Ok(None);
    }
    let (n, per) = t
        .split_once('/')
        .ok_or_else(|| format!("{RATE_EXPECTED}, got `{s}`"))?;
    let count: u32 = match n.trim().parse() {
        Ok(c) if c > 0 => c,
        _ => return Err(format!("{RATE_EXPECTED}, got `{s}`")),
    };
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        d => parse_duration(d).map_err(|_| format!("{RATE_EXPECTED}, got `{s}`"))?,
    };
    if per.is_zero() {
        return Err(format!("{RATE_EXPECTED}, got `{s}`"));
    }
    Ok(Some(Rate { count, per }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_too_long_to_hold_are_errors_not_panics() {
        // found by the config_yaml fuzz target
        for bad in [
            "77777777777777777777777777777s",
            "1e400",
            "NaN",
            "inf",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_rate("10/77777777777777777777777777777s").is_err());
        assert!(RawDuration::Number(1e300).duration().is_err());
        assert_eq!(parse_duration("1e3").unwrap(), Duration::from_secs(1000));
    }

    #[test]
    fn rates() {
        let r = |count, secs| {
            Some(Rate {
                count,
                per: Duration::from_secs(secs),
            })
        };
        assert_eq!(parse_rate("50/minute").unwrap(), r(50, 60));
        assert_eq!(parse_rate("10/s").unwrap(), r(10, 1));
        assert_eq!(parse_rate(" 1000 / 1h ").unwrap(), r(1000, 3600));
        assert_eq!(parse_rate("5/90s").unwrap(), r(5, 90));
        assert_eq!(parse_rate("off").unwrap(), None);
        for bad in ["50", "0/minute", "-1/s", "ten/s", "5/fortnight", "5/0s"] {
            assert!(
                parse_rate(bad).unwrap_err().contains("expected a rate"),
                "{bad}"
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5 GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("-1MiB").unwrap_err().contains("negative"));
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(
            RawSize::Number(-3.0)
                .bytes()
                .unwrap_err()
                .contains("negative")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
    }
}
