//! The `vectorize` section: passages, extraction limits, retries, the embedder and
//! the vector store.

use super::*;

pub(super) fn vectorize(
    cx: &mut Ctx,
    raw: &raw::RawVectorize,
    state_dir: &Path,
) -> VectorizeConfig {
    let d = VectorizeConfig::with_state_dir(state_dir);
    let p = "vectorize";
    let dur = |cx: &mut Ctx, key: &str, v: &Option<crate::units::RawDuration>, dflt| {
        cx.positive_duration(&format!("{p}.{key}"), v, dflt)
    };
    let count = |cx: &mut Ctx, key: &str, v: Option<u32>, dflt: usize, min: u32, max: u32| match v {
        None => dflt,
        Some(n) if n >= min && n <= max => n as usize,
        Some(n) => {
            cx.error(
                format!("{p}.{key}"),
                format!("{n} is out of range, expected {min} to {max}"),
            );
            dflt
        }
    };
    let passage_tokens = count(
        cx,
        "passage_tokens",
        raw.passage_tokens,
        d.passage_tokens,
        16,
        8192,
    );
    let passage_overlap = count(
        cx,
        "passage_overlap",
        raw.passage_overlap,
        d.passage_overlap,
        0,
        4096,
    );
    if passage_overlap * 2 > passage_tokens {
        cx.error(
            format!("{p}.passage_overlap"),
            format!("{passage_overlap} is more than half of passage_tokens ({passage_tokens})"),
        );
    }
    let embedder = match &raw.embedder {
        None => d.embedder.clone(),
        Some(e) => embedder(cx, e, state_dir),
    };
    let store = match &raw.store {
        None => VectorStoreConfig::Catalog,
        Some(s) => match s.kind {
            raw::VectorStoreKind::Catalog => {
                if s.url.is_some() || s.url_file.is_some() || s.table.is_some() {
                    cx.error(
                        format!("{p}.store.kind"),
                        "the catalog store takes no url or table",
                    );
                }
                VectorStoreConfig::Catalog
            }
            raw::VectorStoreKind::Pgvector => {
                let url = cx.secret(&format!("{p}.store"), "url", &s.url, &s.url_file);
                let table = s
                    .table
                    .clone()
                    .unwrap_or_else(|| "tributary_passages".into());
                if table.is_empty()
                    || !table
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    || table.starts_with(|c: char| c.is_ascii_digit())
                {
                    cx.error(
                        format!("{p}.store.table"),
                        format!("`{table}`: use lower-case letters, digits and _"),
                    );
                }
                match url {
                    Some(u)
                        if u.expose().starts_with("postgres://")
                            || u.expose().starts_with("postgresql://") =>
                    {
                        VectorStoreConfig::Pgvector { url: u, table }
                    }
                    Some(_) => {
                        cx.error(
                            format!("{p}.store.url"),
                            "expected a `postgres://user@host:port/database` URL",
                        );
                        VectorStoreConfig::Catalog
                    }
                    None => {
                        cx.error(
                            format!("{p}.store.kind"),
                            "the pgvector store needs `url` (or `url_file`)",
                        );
                        VectorStoreConfig::Catalog
                    }
                }
            }
        },
    };
    VectorizeConfig {
        embedder,
        store,
        passage_tokens,
        passage_overlap,
        max_text_bytes: cx
            .size(&format!("{p}.max_text_size"), &raw.max_text_size)
            .map(|b| b as usize)
            .unwrap_or(d.max_text_bytes),
        max_file_size: cx
            .size(&format!("{p}.max_file_size"), &raw.max_file_size)
            .unwrap_or(d.max_file_size),
        extract_timeout: dur(
            cx,
            "extract_timeout",
            &raw.extract_timeout,
            d.extract_timeout,
        ),
        extract_memory: match cx.size(&format!("{p}.extract_memory"), &raw.extract_memory) {
            Some(b) if b < 64 << 20 => {
                cx.error(format!("{p}.extract_memory"), "must be at least 64MiB");
                d.extract_memory
            }
            Some(b) => b,
            None => d.extract_memory,
        },
        max_decompressed_bytes: cx
            .size(
                &format!("{p}.max_decompressed_size"),
                &raw.max_decompressed_size,
            )
            .unwrap_or(d.max_decompressed_bytes),
        extract_workers: count(
            cx,
            "extract_workers",
            raw.extract_workers,
            d.extract_workers,
            1,
            64,
        ),
        max_attempts: raw.max_attempts.unwrap_or(d.max_attempts),
        retry_backoff: dur(cx, "retry_backoff", &raw.retry_backoff, d.retry_backoff),
    }
}

pub(super) fn embedder(cx: &mut Ctx, raw: &raw::RawEmbedder, state_dir: &Path) -> EmbedderConfig {
    let p = "vectorize.embedder";
    let kind = raw.kind;
    let not_for = |cx: &mut Ctx, key: &str, set: bool, kinds: &str| {
        if set {
            cx.error(
                format!("{p}.{key}"),
                format!("`{key}` applies only to {kinds}"),
            );
        }
    };
    let batch_size = match raw.batch_size {
        None => 32,
        Some(n) if (1..=2048).contains(&n) => n as usize,
        Some(n) => {
            cx.error(
                format!("{p}.batch_size"),
                format!("{n} is out of range, expected 1 to 2048"),
            );
            32
        }
    };
    let timeout = cx.positive_duration(
        &format!("{p}.timeout"),
        &raw.timeout,
        Duration::from_secs(60),
    );
    let concurrency = raw
        .concurrency
        .map(|n| n.clamp(1, 64) as usize)
        .unwrap_or(2);
    let url = |cx: &mut Ctx, dflt: &str| {
        let u = raw.url.clone().unwrap_or_else(|| dflt.to_string());
        let u = u.trim_end_matches('/').to_string();
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            cx.error(
                format!("{p}.url"),
                format!("expected an http(s) URL, got `{u}`"),
            );
        }
        u
    };
    match kind {
        EmbedderKind::Local => {
            not_for(cx, "url", raw.url.is_some(), "openai and ollama");
            not_for(cx, "model", raw.model.is_some(), "openai and ollama");
            not_for(
                cx,
                "api_key",
                raw.api_key.is_some() || raw.api_key_file.is_some(),
                "openai",
            );
            not_for(cx, "dimensions", raw.dimensions.is_some(), "openai");
            EmbedderConfig::Local {
                model_dir: raw
                    .model_dir
                    .as_deref()
                    .map(|d| cx.resolve(d))
                    .unwrap_or_else(|| state_dir.join("models").join("all-MiniLM-L6-v2")),
                threads: raw.threads.map(|t| t as usize).unwrap_or(0),
                batch_size,
            }
        }
        EmbedderKind::Openai | EmbedderKind::Ollama => {
            not_for(cx, "model_dir", raw.model_dir.is_some(), "local");
            not_for(cx, "threads", raw.threads.is_some(), "local");
            let model = match &raw.model {
                Some(m) if !m.trim().is_empty() => m.trim().to_string(),
                _ => {
                    cx.error(format!("{p}.kind"), "`model` is required for this embedder");
                    String::new()
                }
            };
            if kind == EmbedderKind::Openai {
                EmbedderConfig::OpenAi {
                    url: url(cx, "https://api.openai.com"),
                    model,
                    dimensions: raw.dimensions.map(|d| d as usize),
                    api_key: cx.secret(p, "api_key", &raw.api_key, &raw.api_key_file),
                    batch_size,
                    timeout,
                    concurrency,
                }
            } else {
                not_for(
                    cx,
                    "api_key",
                    raw.api_key.is_some() || raw.api_key_file.is_some(),
                    "openai",
                );
                not_for(cx, "dimensions", raw.dimensions.is_some(), "openai");
                EmbedderConfig::Ollama {
                    url: url(cx, "http://127.0.0.1:11434"),
                    model,
                    batch_size,
                    timeout,
                    concurrency,
                }
            }
        }
    }
}
