//! The error-code catalog: every `error.code` the API answers with, its HTTP status,
//! what it means and what to do; the codes of a connector test's findings; the
//! WebSocket close codes. `docs/errors.md` is [`markdown`]; a test checks that every
//! code the sources produce is here and every code here is produced somewhere.

/// One error code of the API's envelope.
pub struct ErrorCode {
    pub code: &'static str,
    pub status: u16,
    pub meaning: &'static str,
    pub fix: &'static str,
}

macro_rules! codes {
    ($($code:literal $status:literal $meaning:literal $fix:literal;)*) => {
        /// Every error code of the API, by code.
        pub const API_ERRORS: &[ErrorCode] = &[$(ErrorCode {
            code: $code,
            status: $status,
            meaning: $meaning,
            fix: $fix,
        }),*];
    };
}

codes! {
    "ACCESS_DENIED" 200 "A connector test (`POST /api/v1/connectors/{id}/test`) was refused by the source: wrong credentials or no permission." "Correct the connector's user, password or app registration and test again.";
    "AUTHZ_FORBIDDEN" 403 "The caller is authenticated but its role may not do this (or an OpenID Connect token maps to no role)." "Use a token of the role the message names; for OpenID Connect, assign a role that `api.oidc.role_map` knows.";
    "AUTH_TOKEN_INVALID" 401 "No token, a wrong or expired one, or a browser session that ended." "Send `Authorization: Bearer TOKEN` with a token of `api.tokens` or a fresh access token of the identity provider; sign in to the dashboard again.";
    "BAD_REQUEST" 400 "The request could not be parsed as HTTP." "Fix the client; the message says what was wrong.";
    "BODY_TIMEOUT" 408 "The request body did not arrive within `api.body_read_timeout`." "Send the body at once, or raise `api.body_read_timeout`.";
    "CONFIG_INVALID" 422 "`POST /api/v1/config/reload`: the configuration file on disk has errors; the running configuration is kept." "Run `tributary check -c FILE`, fix what it names, reload again.";
    "CONFLICT_ALREADY_RESOLVED" 409 "The conflict was resolved already (by someone else, or by a later job)." "Read it again (`GET /api/v1/conflicts/{id}`): nothing is left to do.";
    "CONFLICT_NOT_FOUND" 404 "No conflict with this id." "List them with `GET /api/v1/conflicts`.";
    "CONNECTOR_EXISTS" 409 "A connector with this id exists already." "Choose another id, or change the existing one with `PUT`/`PATCH`.";
    "CONNECTOR_INVALID" 422 "The connector sent to the API is not valid: each problem is in `details`." "Fix the fields named; `GET /api/v1/openapi.json` describes the body.";
    "CONNECTOR_MANAGED_BY_FILE" 409 "The connector is defined in the configuration file: the API may not change or delete it." "Change it in the file and reload (`POST /api/v1/config/reload`).";
    "CONNECTOR_NOT_FOUND" 404 "No connector with this id." "List them with `GET /api/v1/connectors`.";
    "CONNECTOR_PAUSED" 409 "The connector is paused: it runs no job." "Resume it (`POST /api/v1/connectors/{id}/resume`), then run it.";
    "CSRF_TOKEN_INVALID" 403 "A change made with the dashboard's session cookie lacks the session's anti-CSRF token." "Send the session's `csrf_token` in `X-CSRF-Token`; scripts should use a bearer token.";
    "INSTANCE_NOT_FOUND" 404 "No daemon instance with this id uses the catalog." "List them with `GET /api/v1/instances`.";
    "INTERNAL" 500 "An internal error; its cause is in the daemon's log only." "Find the `request_id` in the log (`journalctl -u tributary`) and report it.";
    "INVALID_BODY" 422 "The request body is not the JSON the route takes." "Fix the fields the message names.";
    "INVALID_HEADER" 400 "A request header has a value the route cannot use (e.g. `If-Match`)." "Send the header as the message describes.";
    "INVALID_PARAMETER" 400 "Sign-in through the identity provider: the request's Host header is not a host name." "Set `api.oidc.sign_in.redirect_url` to this API's URL as browsers reach it.";
    "INVALID_PATH" 400 "A path segment is not valid (e.g. an id that is not a number)." "Use the ids the listings give.";
    "INVALID_QUERY" 400 "Query parameters are not valid; each one in `details.fields`." "Fix the parameters named.";
    "ITEM_DELETED" 410 "The version asked for is a delete (a tombstone): it has no content." "Ask for an earlier version of the item (`GET /api/v1/items/{id}` lists them).";
    "ITEM_NOT_FOUND" 404 "No item with this id." "List items with `GET /api/v1/items`.";
    "JOB_ALREADY_RUNNING" 409 "The connector has a job queued or running already (`details` names it)." "Follow that job (`GET /api/v1/jobs/{id}`), or cancel it first.";
    "JOB_NOT_FOUND" 404 "No job with this id." "List jobs with `GET /api/v1/jobs`.";
    "JOB_NOT_RUNNING" 409 "The job is not queued or running: there is nothing to cancel." "Nothing to do; `GET /api/v1/jobs/{id}` shows how it ended.";
    "MASS_DELETE_HELD" 409 "A job would delete more than the connector's `max_delete_percent`: nothing was deleted and a `mass_delete` conflict waits." "Allow or reject it (`POST /api/v1/conflicts/{id}/resolve`), or run `tributary once --allow-mass-delete`; see troubleshooting.md.";
    "METHOD_NOT_ALLOWED" 405 "The route exists but not with this method; `Allow` lists the methods." "Use one of the methods in `Allow`.";
    "NOT_FOUND" 404 "The feature the route serves is not configured (e.g. sign-in through an OpenID provider without `api.oidc.sign_in`)." "Configure it, or do not call the route.";
    "NOT_READY" 503 "`GET /api/v1/health/ready`: a backend (catalog, store, vectorizer) is not ready; `checks` says which." "Fix the backend named; see troubleshooting.md.";
    "PAYLOAD_TOO_LARGE" 413 "The request body is larger than `api.max_body_size`." "Send less, or raise `api.max_body_size`.";
    "PRECONDITION_FAILED" 412 "`If-Match` names a revision that is no longer the connector's (someone changed it)." "Read it again (`GET`), apply your change to the new revision.";
    "RANGE_NOT_SATISFIABLE" 416 "The `Range` asked for is outside the content." "Ask for a range within the content's size.";
    "RATE_LIMITED" 429 "Too many requests from this address or principal, or too many failed authentications (`api.rate_limits`)." "Wait `Retry-After` seconds (also `details.wait_seconds`); raise the limit for a busy integration.";
    "RESOLUTION_INVALID" 422 "The resolution is not one this conflict's kind allows." "Use one of the conflict's `resolutions`.";
    "ROUTE_NOT_FOUND" 404 "No such route." "See `GET /api/v1/openapi.json` (or `/api/v1/docs`) for the routes.";
    "SHUTTING_DOWN" 503 "The daemon is stopping and takes no new work." "Retry against another instance, or after it restarted.";
    "SOURCE_ERROR" 200 "A connector test found the source answering with an error other than a refusal or an outage." "The message says what the source answered.";
    "SOURCE_UNAVAILABLE" 200 "A connector test could not reach the source (DNS, network, server down, throttled)." "Check the server name, port and network path from the daemon's host.";
    "SYNC_CURSOR_INVALID" 410 "The change-feed cursor is older than what the feed keeps (`daemon.change_retention`)." "Read the state again (`GET /api/v1/items`), then follow the feed from its current cursor.";
    "TOO_MANY_EVENT_STREAMS" 429 "Too many live event streams are open (`api.max_event_connections`, in all or per principal)." "Close streams you do not read, or raise the limits.";
    "UNAVAILABLE" 503 "A backing service (catalog, store) is unavailable; the cause is in the log." "See `GET /api/v1/health/ready` and troubleshooting.md.";
    "UNSUPPORTED_MEDIA_TYPE" 415 "The body is not `application/json`." "Send `Content-Type: application/json`.";
    "UPGRADE_REQUIRED" 426 "`/api/v1/ws` was called without a WebSocket handshake." "Connect with a WebSocket client.";
    "URI_TOO_LONG" 414 "The request's URI is too long." "Send fewer or shorter query parameters.";
    "HEADERS_TOO_LARGE" 431 "The request's headers are too large." "Send smaller headers (cookies, tokens).";
    "VALIDATION_FAILED" 400 "An event stream's filter names an unknown event type (`details.fields`)." "Use the types and families `GET /api/v1/openapi.json` lists for `/api/v1/events` (e.g. `job`, `conflict.opened`).";
    "VECTORS_UNAVAILABLE" 503 "Search cannot answer: no connector is vectorized, the model is loading or missing, or the index was built by another model." "See `GET /api/v1/queue`; after changing the model, `tributary reindex`.";
    "VERSION_NOT_FOUND" 404 "The item has no version with this id." "List its versions with `GET /api/v1/items/{id}`.";
}

/// The catalog's entry for an API error answer (the envelope's `code`), as one line
/// for a command-line user: what it means, what to do, and where the catalog is. `None`
/// when the body is not an envelope or names a code the catalog does not list.
pub fn explain(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let code = v["error"]["code"].as_str()?;
    let e = API_ERRORS.iter().find(|e| e.code == code)?;
    Some(format!(
        "{code}: {} {} (docs/errors.md; `tributary config errors`)",
        e.meaning, e.fix
    ))
}

/// What each job status means (`GET /api/v1/jobs`, `status`), and what to do about it;
/// a test checks these are exactly the statuses the API filters on.
pub const JOB_STATUS_DOCS: &[(&str, &str, &str)] = &[
    (
        "queued",
        "Waiting for a free job slot (`daemon.max_concurrent_jobs`) on an instance that may run the connector.",
        "Nothing; a job queued for long means every slot is busy, or the connector's `instances` are all down or drained (`GET /api/v1/instances`).",
    ),
    (
        "running",
        "Listing, reading, uploading and committing; `progress` counts as it goes.",
        "Follow it (`GET /api/v1/jobs/{id}`, the event `job.progress`), or cancel it (`POST /api/v1/jobs/{id}/cancel`).",
    ),
    (
        "succeeded",
        "The job ran to its end. Files that failed alone are counted in `error_count` and listed as failed items; they do not fail the job.",
        "Look at `error_count` and `GET /api/v1/items?status=failed`.",
    ),
    (
        "failed",
        "A problem of the whole source or of the daemon stopped it (`last_error`): the source unreachable or refusing the log-on (`source unavailable: …`, `access denied: …`), the object store failing after its retries (`object store …`), the catalog (`catalog: …`). What it committed before stays committed.",
        "Fix what `last_error` names (troubleshooting.md has the messages); the next scheduled run, or `POST /api/v1/connectors/{id}/runs`, continues.",
    ),
    (
        "cancelled",
        "An operator cancelled it; what it committed stays.",
        "Run it again when you want.",
    ),
    (
        "interrupted",
        "The daemon stopped (SIGTERM, a crash) or the instance lost the connector's lease (`lost the connector's lease …`) before the job ended; what it committed stays.",
        "Nothing: the next start, or another instance, continues the connector with an incremental job.",
    ),
];

/// What each item status means (`GET /api/v1/items`, `status`); checked against the
/// statuses the API filters on.
pub const ITEM_STATUS_DOCS: &[(&str, &str, &str)] = &[
    (
        "completed",
        "The file's current version is stored.",
        "Nothing.",
    ),
    (
        "deleted",
        "The file was deleted at the source; its versions are kept for `daemon.version_retention`.",
        "Restore an earlier version if the delete was a mistake (`tributary restore --at`, `GET /api/v1/items/{id}/content?version=`).",
    ),
    (
        "failed",
        "The file could not be stored in its last run; `last_error` says why: `vanished before it could be read` (deleted or renamed during the run), `permission denied: …` (the connector's user may not read it), `… deleted at the source before it could be read`, a file that kept changing while it was read (after `pipeline.torn_read_retries` attempts it becomes a `torn_read` conflict), an upload that failed `pipeline.upload_max_attempts` times (`object store …`), or a read error of the source (an SMB or Graph error, a locked file). Retried with backoff (`daemon.max_retries`, `daemon.retry_backoff`), then left until it changes.",
        "Fix the cause `last_error` names; the next run stores it (the event `item.recovered`).",
    ),
    (
        "conflict",
        "A claim of this file waits in an open conflict (another connector owns the path, or a torn read): its bytes are stored, not visible.",
        "Resolve the conflict (`GET /api/v1/conflicts`).",
    ),
];

/// What each conflict kind is; its resolutions come from the catalog
/// (`resolutions_for`), and a test checks that every kind is here.
pub const CONFLICT_KIND_DOCS: &[(&str, &str)] = &[
    (
        "path_claim",
        "Two connectors sharing a `target` claim the same path.",
    ),
    (
        "name_collision",
        "Two names that differ only by Unicode normalization, or by case where a connector is `case_sensitive: false`, claim one path.",
    ),
    (
        "diverged",
        "A connector's path was taken over by another connector since it last wrote it, and it changed again.",
    ),
    (
        "torn_read",
        "A file changed during every read attempt of a run: it is left alone until resolved.",
    ),
    (
        "mass_delete",
        "A job would delete more than the connector's `max_delete_percent` of its items: it deleted nothing.",
    ),
];

/// The catalog as Markdown (`docs/errors.md`).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Error codes\n\n\
         <!-- Generated from api/src/error_codes.rs by `tributary config errors`; a test fails \
         when this file is out of date. -->\n\n\
         Every error of the API answers with the envelope \
         `{\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}`; the `request_id` \
         is in the daemon's log line of the same request. See also \
         [troubleshooting.md](troubleshooting.md), by symptom.\n\n\
         ## API error codes\n\n| Code | HTTP | Meaning | What to do |\n|---|---|---|---|\n",
    );
    let mut codes: Vec<&ErrorCode> = API_ERRORS.iter().filter(|c| c.status != 200).collect();
    codes.sort_by_key(|c| c.code);
    for c in codes {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            c.code, c.status, c.meaning, c.fix
        ));
    }
    out.push_str(
        "\n## A connector test's findings\n\n\
         `POST /api/v1/connectors/{id}/test` and `POST /api/v1/connector-tests` answer 200 \
         with `ok: false` and one of these codes when the source refuses or fails.\n\n\
         | Code | Meaning | What to do |\n|---|---|---|\n",
    );
    for c in API_ERRORS.iter().filter(|c| c.status == 200) {
        out.push_str(&format!("| `{}` | {} | {} |\n", c.code, c.meaning, c.fix));
    }
    out.push_str(
        "\n## Job statuses\n\nA job's `status` (`GET /api/v1/jobs/{id}`); a failed job's \
         cause is in `last_error`.\n\n| Status | Meaning | What to do |\n|---|---|---|\n",
    );
    for (status, meaning, fix) in JOB_STATUS_DOCS {
        out.push_str(&format!("| `{status}` | {meaning} | {fix} |\n"));
    }
    out.push_str(
        "\n## Item statuses and failures\n\nAn item's `status` (`GET /api/v1/items`); a \
         failed item's cause is in `last_error`. One file failing never fails its job.\n\n\
         | Status | Meaning | What to do |\n|---|---|---|\n",
    );
    for (status, meaning, fix) in ITEM_STATUS_DOCS {
        out.push_str(&format!("| `{status}` | {meaning} | {fix} |\n"));
    }
    out.push_str(
        "\n## Conflict kinds\n\nResolve an open conflict with `POST \
         /api/v1/conflicts/{id}/resolve` and one of its resolutions.\n\n\
         | Kind | Meaning | Resolutions |\n|---|---|---|\n",
    );
    for (kind, meaning) in CONFLICT_KIND_DOCS {
        let res: Vec<String> = tributary_catalog::conflicts::resolutions_for(kind)
            .iter()
            .map(|r| format!("`{r}`"))
            .collect();
        out.push_str(&format!("| `{kind}` | {meaning} | {} |\n", res.join(", ")));
    }
    out.push_str("\n## WebSocket close codes (`/api/v1/ws`)\n\n| Code | Meaning |\n|---|---|\n");
    for (code, meaning) in crate::events_http::CLOSE_CODES {
        out.push_str(&format!("| {code} | {meaning} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;
    use tributary_testkit::tree::rust_sources;

    /// The string literals of Rust source (escapes, raw strings and `'"'` understood).
    fn strings(text: &str) -> Vec<String> {
        let b = text.as_bytes();
        let (mut out, mut i) = (Vec::new(), 0);
        while i < b.len() {
            if b[i..].starts_with(b"'\"'") {
                i += 3;
            } else if b[i..].starts_with(b"'\\\"'") {
                i += 4;
            } else if b[i..].starts_with(b"r#\"") {
                let end = text[i + 3..].find("\"#").map_or(b.len(), |e| i + 3 + e);
                out.push(text[i + 3..end].to_string());
                i = end + 2;
            } else if b[i] == b'"' {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                out.push(text[i + 1..j.min(b.len())].to_string());
                i = j + 1;
            } else {
                i += 1;
            }
        }
        out
    }

    /// String literals that look like error codes (`"SOME_CODE"`, or `code: "WORD"`).
    fn literals(text: &str) -> BTreeSet<String> {
        let mut found: BTreeSet<String> = strings(text)
            .into_iter()
            .filter(|s| {
                s.len() >= 3
                    && s.contains('_')
                    && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                    && !s.starts_with('_')
                    && !s.ends_with('_')
            })
            .collect();
        for w in ["INTERNAL", "UNAVAILABLE"] {
            if text.contains(&format!("code: \"{w}\"")) {
                found.insert(w.to_string());
            }
        }
        found
    }

    #[test]
    fn an_error_answer_is_explained_by_its_catalog_entry() {
        let body = r#"{"error":{"code":"JOB_ALREADY_RUNNING","message":"job 4 of this connector is already queued or running","details":{"job_id":4},"request_id":"r1"}}"#;
        let line = explain(body).unwrap();
        assert!(line.starts_with("JOB_ALREADY_RUNNING: "), "{line}");
        assert!(line.contains("Follow that job"), "the fix: {line}");
        assert!(
            line.contains("docs/errors.md"),
            "where the catalog is: {line}"
        );
        assert_eq!(explain(r#"{"error":{"code":"NO_SUCH_CODE"}}"#), None);
        assert_eq!(explain("not json"), None);
    }

    #[test]
    fn every_job_and_item_status_and_conflict_kind_is_documented_and_nothing_else() {
        let keys = |t: &[(&str, &str, &str)]| -> Vec<String> {
            t.iter().map(|(k, _, _)| k.to_string()).collect()
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(
            sorted(keys(JOB_STATUS_DOCS)),
            sorted(
                crate::handlers::JOB_STATUSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            )
        );
        assert_eq!(
            sorted(keys(ITEM_STATUS_DOCS)),
            sorted(
                crate::handlers::ITEM_STATUSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            )
        );
        assert_eq!(
            sorted(
                CONFLICT_KIND_DOCS
                    .iter()
                    .map(|(k, _)| k.to_string())
                    .collect()
            ),
            sorted(
                tributary_catalog::conflicts::KINDS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            )
        );
        let md = markdown();
        assert!(md.contains("| `mass_delete` | A job would delete"));
        assert!(md.contains("`allow`, `reject`"));
    }

    #[test]
    fn every_code_the_sources_produce_is_in_the_catalog_and_back() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = rust_sources(&root.join("src"));
        files.extend(rust_sources(&root.join("../daemon/src/server")));
        let mut used = BTreeSet::new();
        for f in files.iter().filter(|f| !f.ends_with("error_codes.rs")) {
            used.extend(literals(&std::fs::read_to_string(f).unwrap()));
        }
        // literals of that shape that are not error codes
        for not_a_code in ["CARGO_PKG_VERSION", "TIMEOUT"] {
            used.remove(not_a_code);
        }
        used.retain(|c| !c.starts_with("TRIBUTARY_"));
        let listed: BTreeSet<String> = API_ERRORS.iter().map(|c| c.code.to_string()).collect();
        let missing: Vec<&String> = used.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "codes the sources produce but the catalog lacks: {missing:?}"
        );
        let unused: Vec<&String> = listed.difference(&used).collect();
        assert!(
            unused.is_empty(),
            "codes in the catalog that nothing produces: {unused:?}"
        );
    }

    #[test]
    fn docs_errors_md_is_up_to_date() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors.md");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == markdown(),
            "docs/errors.md is out of date: run `tributary config errors > docs/errors.md`"
        );
    }

    #[test]
    fn literals_are_found_in_code() {
        let found = literals(
            r#"let q = '"'; ApiError::new(S, "JOB_NOT_FOUND", "x \" y"); code: "INTERNAL", "lower_case", "A_", "ITEM_DELETED""#,
        );
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            ["INTERNAL", "ITEM_DELETED", "JOB_NOT_FOUND"]
        );
    }
}
