//! Raw file → [`Config`]: every semantic check, all errors collected.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

mod api;
mod catalog;
mod connectors;
mod vectorize;

use crate::positions::Positions;
use crate::raw::{self, ConnectorKind, RawConfig, StoreKind};
use crate::units::RawSize;
use crate::{
    ApiConfig, ApiToken, CatalogConfig, Config, ConfigError, ConfigErrors, ConnectorConfig,
    DaemonConfig, EmbedderConfig, EmbedderKind, Loaded, ObjectStoreConfig, PipelineConfig,
    PostgresCatalog, Quota, RateLimits, S3Config, Schedule, Secret, SourceConfig,
    VectorStoreConfig, VectorizeConfig,
};
use api::{api, https_or_loopback};
use catalog::catalog;
use connectors::connector;
use vectorize::vectorize;

struct Ctx<'a> {
    file: &'a Path,
    base: PathBuf,
    positions: &'a Positions,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            pos: self.positions.get(&path),
            path,
            message: message.into(),
        });
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn size(&mut self, path: &str, v: &Option<RawSize>) -> Option<u64> {
        match v.as_ref()?.bytes() {
            Ok(b) => Some(b),
            Err(m) => {
                self.error(path, m);
                None
            }
        }
    }

    /// A duration that must be more than 0; `dflt` when unset or invalid (reported).
    fn positive_duration(
        &mut self,
        path: &str,
        v: &Option<crate::units::RawDuration>,
        dflt: Duration,
    ) -> Duration {
        match v.as_ref().map(|v| v.duration()) {
            None => dflt,
            Some(Ok(x)) if !x.is_zero() => x,
            Some(Ok(_)) => {
                self.error(path, "must be more than 0");
                dflt
            }
            Some(Err(m)) => {
                self.error(path, m);
                dflt
            }
        }
    }

    /// A secret given inline or as `<key>_file`; exactly one may be set.
    fn secret(
        &mut self,
        path: &str,
        key: &str,
        inline: &Option<String>,
        file: &Option<String>,
    ) -> Option<Secret> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.error(
                    format!("{path}.{key}_file"),
                    format!("give either `{key}` or `{key}_file`, not both"),
                );
                None
            }
            (Some(v), None) => {
                // an access key id names the key; only its secret half is one
                if key != "access_key_id" && is_world_readable(self.file) {
                    self.warnings.push(format!(
                        "`{path}.{key}` is written inline in `{}`, which is readable by every user; move it to `{key}_file` or restrict the file with `chmod o-r`",
                        self.file.display()
                    ));
                }
                Some(Secret::new(v.clone()))
            }
            (None, Some(f)) => {
                let fpath = self.resolve(f);
                match std::fs::read_to_string(&fpath) {
                    Ok(mut s) => {
                        if s.ends_with('\n') {
                            s.pop();
                            if s.ends_with('\r') {
                                s.pop();
                            }
                        }
                        warn_if_world_readable(&fpath, &mut self.warnings);
                        Some(Secret::new(s))
                    }
                    Err(e) => {
                        self.error(
                            format!("{path}.{key}_file"),
                            format!("cannot read secret file `{}`: {e}", fpath.display()),
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

fn warn_if_world_readable(path: &Path, warnings: &mut Vec<String>) {
    if is_world_readable(path) {
        warnings.push(format!(
            "secret file `{}` is readable by every user; restrict it with `chmod o-r`",
            path.display()
        ));
    }
}

#[cfg(unix)]
fn is_world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|md| md.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn is_world_readable(_: &Path) -> bool {
    false
}

pub(crate) fn validate(
    file: &Path,
    raw: RawConfig,
    positions: &Positions,
) -> Result<Loaded, ConfigErrors> {
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut cx = Ctx {
        file,
        base,
        positions,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    if raw.version != 1 {
        cx.error(
            "version",
            format!("unsupported version {}, expected 1", raw.version),
        );
    }
    let state_dir = cx.resolve(raw.state_dir.as_deref().unwrap_or("var"));
    let catalog = catalog(&mut cx, raw.catalog.as_ref(), &state_dir);
    let object_store = object_store(&mut cx, raw.object_store.as_ref(), &state_dir);
    let store_key_file = store_key_file(&mut cx, raw.object_store.as_ref(), object_store.as_ref());
    let pipeline = pipeline(
        &mut cx,
        raw.pipeline.as_ref().unwrap_or(&Default::default()),
    );
    let api = api(&mut cx, raw.api.as_ref());
    let daemon = daemon(&mut cx, raw.daemon.as_ref().unwrap_or(&Default::default()));
    let vectorize = vectorize(
        &mut cx,
        raw.vectorize.as_ref().unwrap_or(&Default::default()),
        &state_dir,
    );
    let secrets_key_file = raw.secrets.as_ref().map(|s| {
        let file = cx.resolve(&s.key_file);
        if !file.is_file() {
            cx.error(
                "secrets.key_file",
                format!(
                    "{} is not a file (`tributary key generate --out {}` writes one)",
                    file.display(),
                    file.display()
                ),
            );
        }
        file
    });
    let mut connectors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, rc) in raw.connectors.iter().enumerate() {
        let path = format!("connectors[{i}]");
        if let Some(first) = seen.get(&rc.id) {
            let line = positions
                .get(&format!("connectors[{first}].id"))
                .map(|p| format!(" (first defined at line {})", p.line))
                .unwrap_or_default();
            cx.error(
                format!("{path}.id"),
                format!("duplicate connector id `{}`{line}", rc.id),
            );
        } else {
            seen.insert(rc.id.clone(), i);
        }
        if let Some(c) = connector(&mut cx, &path, rc) {
            connectors.push(c);
        }
    }
    if cx.errors.is_empty() {
        return Ok(Loaded {
            config: Config {
                source: file.to_path_buf(),
                state_dir,
                catalog: catalog.expect("no errors"),
                object_store: object_store.expect("no errors"),
                store_key_file,
                pipeline,
                api,
                daemon,
                vectorize,
                connectors,
                secrets_key_file,
            },
            warnings: cx.warnings,
        });
    }
    // in file order, as an editor would list them
    cx.errors.sort_by_key(|e| e.pos.map(|p| (p.line, p.column)));
    Err(ConfigErrors(cx.errors))
}

/// One connector written over the API, by the same checks as the file's connectors;
/// each error names its key path within the connector (`schedule`, `include[1]`).
pub(crate) fn validate_one(
    rc: &raw::RawConnector,
) -> Result<ConnectorConfig, Vec<crate::api_connector::FieldError>> {
    let positions = Positions::index("");
    let mut cx = Ctx {
        file: Path::new("request body"),
        base: PathBuf::from("/"),
        positions: &positions,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let c = connector(&mut cx, "", rc);
    match c {
        Some(c) if cx.errors.is_empty() => Ok(c),
        _ => Err(cx
            .errors
            .into_iter()
            .map(|e| crate::api_connector::FieldError {
                path: e.path.trim_start_matches('.').to_string(),
                message: e.message,
            })
            .collect()),
    }
}

/// `object_store.encryption.key_file`: a file that exists, outside the store it
/// protects.
fn store_key_file(
    cx: &mut Ctx,
    raw: Option<&raw::RawObjectStore>,
    store: Option<&ObjectStoreConfig>,
) -> Option<PathBuf> {
    let file = cx.resolve(&raw?.encryption.as_ref()?.key_file);
    let p = "object_store.encryption.key_file";
    if !file.is_file() {
        cx.error(
            p,
            format!(
                "{} is not a file (`tributary key generate --out {}` writes one)",
                file.display(),
                file.display()
            ),
        );
    } else if let Some(ObjectStoreConfig::Local { path }) = store
        && file.starts_with(path)
    {
        cx.error(
            p,
            format!(
                "{} lies inside the object store it protects ({}): keep it apart",
                file.display(),
                path.display()
            ),
        );
    }
    Some(file)
}

fn object_store(
    cx: &mut Ctx,
    raw: Option<&raw::RawObjectStore>,
    state_dir: &Path,
) -> Option<ObjectStoreConfig> {
    let Some(raw) = raw else {
        return Some(ObjectStoreConfig::Local {
            path: state_dir.join("objects"),
        });
    };
    let p = "object_store";
    let s3_only: [(&str, bool); 10] = [
        ("endpoint", raw.endpoint.is_some()),
        ("bucket", raw.bucket.is_some()),
        ("prefix", raw.prefix.is_some()),
        ("region", raw.region.is_some()),
        ("path_style", raw.path_style.is_some()),
        (
            "access_key_id",
            raw.access_key_id.is_some() || raw.access_key_id_file.is_some(),
        ),
        (
            "secret_access_key",
            raw.secret_access_key.is_some() || raw.secret_access_key_file.is_some(),
        ),
        ("sse", raw.sse.is_some()),
        ("sse_kms_key_id", raw.sse_kms_key_id.is_some()),
        ("request_timeout", raw.request_timeout.is_some()),
    ];
    match raw.kind {
        StoreKind::Local => {
            for (key, set) in s3_only {
                if set {
                    cx.error(format!("{p}.{key}"), "only valid for `kind: s3`");
                }
            }
            let Some(path) = &raw.path else {
                cx.error(format!("{p}.path"), "missing: `kind: local` needs `path`");
                return None;
            };
            Some(ObjectStoreConfig::Local {
                path: cx.resolve(path),
            })
        }
        StoreKind::S3 => {
            if raw.path.is_some() {
                cx.error(format!("{p}.path"), "only valid for `kind: local`");
            }
            let bucket = match &raw.bucket {
                Some(b) if valid_bucket(b) => Some(b.clone()),
                Some(b) => {
                    cx.error(
                        format!("{p}.bucket"),
                        format!("invalid bucket name `{b}`: expected 3-63 lowercase letters, digits, `.` and `-`"),
                    );
                    None
                }
                None => {
                    cx.error(format!("{p}.bucket"), "missing: `kind: s3` needs `bucket`");
                    None
                }
            };
            if let Some(ep) = &raw.endpoint
                && !(ep.starts_with("http://") || ep.starts_with("https://"))
            {
                cx.error(
                    format!("{p}.endpoint"),
                    format!("expected an http:// or https:// URL, got `{ep}`"),
                );
            }
            let key = cx.secret(
                p,
                "access_key_id",
                &raw.access_key_id,
                &raw.access_key_id_file,
            );
            let secret = cx.secret(
                p,
                "secret_access_key",
                &raw.secret_access_key,
                &raw.secret_access_key_file,
            );
            let credentials = match (key, secret) {
                (Some(k), Some(s)) => Some((k.expose().to_string(), s)),
                (None, None) => None,
                (Some(_), None) => {
                    if raw.secret_access_key_file.is_none() {
                        cx.error(format!("{p}.secret_access_key"), "missing: `access_key_id` is set, so `secret_access_key` (or `secret_access_key_file`) is needed");
                    }
                    None
                }
                (None, Some(_)) => {
                    if raw.access_key_id_file.is_none() {
                        cx.error(format!("{p}.access_key_id"), "missing: `secret_access_key` is set, so `access_key_id` (or `access_key_id_file`) is needed");
                    }
                    None
                }
            };
            if raw.sse == Some(raw::SseKind::Kms) && raw.sse_kms_key_id.is_none() {
                cx.error(
                    format!("{p}.sse_kms_key_id"),
                    "missing: `sse: kms` needs `sse_kms_key_id`",
                );
            }
            if raw.sse != Some(raw::SseKind::Kms) && raw.sse_kms_key_id.is_some() {
                cx.error(format!("{p}.sse_kms_key_id"), "only valid with `sse: kms`");
            }
            let request_timeout = match &raw.request_timeout {
                None => Duration::from_secs(60),
                Some(d) => match d.duration() {
                    Ok(d) if d >= Duration::from_secs(1) => d,
                    Ok(_) => {
                        cx.error(format!("{p}.request_timeout"), "must be at least 1s");
                        Duration::ZERO
                    }
                    Err(m) => {
                        cx.error(format!("{p}.request_timeout"), m);
                        Duration::ZERO
                    }
                },
            };
            let mut prefix = raw.prefix.clone().unwrap_or_default();
            while prefix.starts_with('/') {
                prefix.remove(0);
            }
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            Some(ObjectStoreConfig::S3(S3Config {
                path_style: raw.path_style.unwrap_or(raw.endpoint.is_some()),
                endpoint: raw.endpoint.clone(),
                bucket: bucket?,
                prefix,
                region: raw.region.clone().unwrap_or_else(|| "us-east-1".into()),
                credentials,
                sse: raw.sse,
                sse_kms_key_id: raw.sse_kms_key_id.clone(),
                request_timeout,
            }))
        }
    }
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn daemon(cx: &mut Ctx, raw: &raw::RawDaemon) -> DaemonConfig {
    let d = DaemonConfig::default();
    let p = "daemon";
    let dur =
        |cx: &mut Ctx, key: &str, v: &Option<crate::units::RawDuration>, dflt: Duration| match v {
            None => dflt,
            Some(v) => match v.duration() {
                Ok(x) => x,
                Err(m) => {
                    cx.error(format!("{p}.{key}"), m);
                    dflt
                }
            },
        };
    let shutdown_deadline = dur(
        cx,
        "shutdown_deadline",
        &raw.shutdown_deadline,
        d.shutdown_deadline,
    );
    let retry_backoff = dur(cx, "retry_backoff", &raw.retry_backoff, d.retry_backoff);
    let change_retention = dur(
        cx,
        "change_retention",
        &raw.change_retention,
        d.change_retention,
    );
    let watch_debounce = dur(cx, "watch_debounce", &raw.watch_debounce, d.watch_debounce);
    let mut lease_ttl = dur(cx, "lease_ttl", &raw.lease_ttl, d.lease_ttl);
    if !(Duration::from_secs(3)..=Duration::from_secs(3600)).contains(&lease_ttl) {
        cx.error(
            format!("{p}.lease_ttl"),
            "must be between 3s and 1h (it is renewed every sixth of it)",
        );
        lease_ttl = d.lease_ttl;
    }
    let version_retention = dur(
        cx,
        "version_retention",
        &raw.version_retention,
        d.version_retention,
    );
    let max_concurrent_jobs = match raw.max_concurrent_jobs {
        Some(0) => {
            cx.error(format!("{p}.max_concurrent_jobs"), "must be at least 1");
            d.max_concurrent_jobs
        }
        Some(n) => n,
        None => d.max_concurrent_jobs,
    };
    let instance_id = raw.instance_id.as_ref().and_then(|id| {
        if valid_instance_id(id) {
            Some(id.clone())
        } else {
            cx.error(
                format!("{p}.instance_id"),
                format!("`{id}`: expected 1 to 64 letters, digits, `.`, `_` or `-`"),
            );
            None
        }
    });
    DaemonConfig {
        instance_id,
        max_concurrent_jobs,
        shutdown_deadline,
        max_retries: raw.max_retries.unwrap_or(d.max_retries),
        retry_backoff,
        change_retention,
        version_retention,
        watch_debounce,
        lease_ttl,
    }
}

/// An instance id: 1 to 64 ASCII letters, digits, `.`, `_` or `-` (a hostname fits).
pub fn valid_instance_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `UTC`, `Z` or a fixed offset `±HH:MM`.
fn parse_offset(tz: &str) -> Option<chrono::FixedOffset> {
    let t = tz.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return chrono::FixedOffset::east_opt(0);
    }
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// FastCDC (2020) limits.
const CDC_MIN: (u64, u64) = (64, 1 << 20);
const CDC_AVG: (u64, u64) = (256, 4 << 20);
const CDC_MAX: (u64, u64) = (1024, 16 << 20);

fn pipeline(cx: &mut Ctx, raw: &raw::RawPipeline) -> PipelineConfig {
    let d = PipelineConfig::default();
    let p = "pipeline";
    let bounded =
        |cx: &mut Ctx, key: &str, v: &Option<RawSize>, dflt: u32, (lo, hi): (u64, u64)| {
            let path = format!("{p}.{key}");
            match cx.size(&path, v) {
                None => dflt,
                Some(b) if (lo..=hi).contains(&b) => b as u32,
                Some(b) => {
                    cx.error(
                        path,
                        format!("{b} bytes is out of range: expected {lo} to {hi} bytes"),
                    );
                    dflt
                }
            }
        };
    let min = bounded(
        cx,
        "chunk_min_size",
        &raw.chunk_min_size,
        d.chunk_min_size,
        CDC_MIN,
    );
    let avg = bounded(
        cx,
        "chunk_avg_size",
        &raw.chunk_avg_size,
        d.chunk_avg_size,
        CDC_AVG,
    );
    let max = bounded(
        cx,
        "chunk_max_size",
        &raw.chunk_max_size,
        d.chunk_max_size,
        CDC_MAX,
    );
    if !(min <= avg && avg <= max) {
        cx.error(
            format!("{p}.chunk_avg_size"),
            format!("chunk sizes must satisfy min ≤ avg ≤ max, got {min} / {avg} / {max}"),
        );
    }
    let positive = |cx: &mut Ctx, key: &str, v: Option<usize>, dflt: usize| match v {
        Some(0) => {
            cx.error(format!("{p}.{key}"), "must be at least 1");
            dflt
        }
        Some(n) => n,
        None => dflt,
    };
    let file_concurrency = positive(
        cx,
        "file_concurrency",
        raw.file_concurrency,
        d.file_concurrency,
    );
    let upload_concurrency = positive(
        cx,
        "upload_concurrency",
        raw.upload_concurrency,
        d.upload_concurrency,
    );
    let commit_batch_size = positive(
        cx,
        "commit_batch_size",
        raw.commit_batch_size,
        d.commit_batch_size,
    );
    let upload_max_attempts = positive(
        cx,
        "upload_max_attempts",
        raw.upload_max_attempts.map(|n| n as usize),
        d.upload_max_attempts as usize,
    ) as u32;
    let max_bytes_in_flight = match cx.size(
        &format!("{p}.max_bytes_in_flight"),
        &raw.max_bytes_in_flight,
    ) {
        Some(b) if b < 2 * max as u64 => {
            cx.error(
                format!("{p}.max_bytes_in_flight"),
                format!(
                    "must be at least twice chunk_max_size ({} bytes)",
                    2 * max as u64
                ),
            );
            d.max_bytes_in_flight
        }
        Some(b) => b,
        None => d.max_bytes_in_flight,
    };
    let pack_size = match cx.size(&format!("{p}.pack_size"), &raw.pack_size) {
        Some(b) if !((1 << 20)..=(128 << 20)).contains(&b) => {
            cx.error(
                format!("{p}.pack_size"),
                format!("expected 1MiB to 128MiB, got {b} bytes"),
            );
            d.pack_size
        }
        Some(b) => b,
        None => d.pack_size,
    };
    let zstd_level = match raw.zstd_level {
        Some(l) if !(1..=19).contains(&l) => {
            cx.error(
                format!("{p}.zstd_level"),
                format!("expected 1 to 19, got {l}"),
            );
            d.zstd_level
        }
        Some(l) => l,
        None => d.zstd_level,
    };
    PipelineConfig {
        chunk_min_size: min,
        chunk_avg_size: avg,
        chunk_max_size: max,
        compression: raw.compression.unwrap_or(d.compression),
        zstd_level,
        file_concurrency,
        upload_concurrency,
        max_bytes_in_flight,
        pack_size,
        commit_batch_size,
        torn_read_retries: raw.torn_read_retries.unwrap_or(d.torn_read_retries),
        upload_max_attempts,
    }
}

/// Accepts 5-field crontab lines (a seconds field of `0` is prepended) and the 6/7-field
/// forms and `@daily`-style shorthands of the `cron` crate.
pub fn parse_schedule(expr: &str) -> Result<Schedule, String> {
    let trimmed = expr.trim();
    let fields = trimmed.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {trimmed}")
    } else {
        trimmed.to_string()
    };
    if !(trimmed.starts_with('@') || (6..=7).contains(&fields) || fields == 5) {
        return Err(format!(
            "invalid cron expression `{expr}`: expected 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or a shorthand like `@daily`"
        ));
    }
    cron::Schedule::from_str(&full)
        .map(|cron| Schedule {
            expression: expr.to_string(),
            cron,
            zone: crate::Zone::Fixed(chrono::FixedOffset::east_opt(0).expect("zero offset")),
        })
        .map_err(|e| {
            // the cron crate draws a caret under the bad field; keep only its sentence
            let text = e.to_string();
            let reason = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            format!(
                "invalid cron expression `{expr}`: {reason}; expected minute hour day-of-month month day-of-week (5 fields) or seconds first (6 fields)"
            )
        })
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://login.example.com/t/v2.0",
            "http://127.0.0.1:8080/x",
            "http://localhost:9/",
            "http://[::1]:80",
            "http://127.0.0.2",
        ] {
            assert!(super::https_or_loopback(ok), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "http://127.0.0.1.evil.com:80/",
            "http://localhost.evil.com",
            "ftp://127.0.0.1",
            "127.0.0.1:80",
            "http://10.0.0.1:80",
        ] {
            assert!(!super::https_or_loopback(bad), "{bad}");
        }
    }
}
