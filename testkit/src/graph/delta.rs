//! driveItem JSON and delta pages: opaque next/delta links, `resyncRequired`, the
//! page size and order knobs.

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::*;

pub(super) fn item_json(drive: &str, it: &Item, with_ctag: bool) -> Value {
    if it.deleted || it.hidden {
        return json!({
            "id": it.id,
            "deleted": {"state": "deleted"},
            "parentReference": {"driveId": drive, "id": it.parent},
            "lastModifiedDateTime": now_iso(it.modified),
        });
    }
    let mut v = json!({
        "id": it.id,
        "name": it.name,
        "eTag": format!("\"{{{}}},{}\"", it.id, it.etag),
        "lastModifiedDateTime": now_iso(it.modified),
        "createdDateTime": now_iso(it.modified),
        "parentReference": {"driveId": drive, "driveType": "documentLibrary", "id": it.parent},
    });
    if it.parent.is_none() {
        v["root"] = json!({});
        v.as_object_mut().unwrap().remove("parentReference");
    }
    if it.package {
        v["package"] = json!({"type": "oneNote"});
    } else if it.folder {
        v["folder"] = json!({"childCount": 0});
    } else {
        v["size"] = json!(it.content.len());
        v["file"] = json!({"mimeType": "application/octet-stream", "hashes": {"quickXorHash": quick_xor_hash(&it.content)}});
        if with_ctag {
            v["cTag"] = json!(format!("\"c:{{{}}},{}\"", it.id, it.ctag));
        }
    }
    v
}

/// Tokens: `e<epoch>.s<since>` (a delta link) and `e<epoch>.s<since>.u<upto>.o<offset>`
/// (a next link inside one round).
pub(super) fn delta_page(
    s: &mut St,
    d: &str,
    token: Option<String>,
    q: &HashMap<String, String>,
    sharing: bool,
    removed: bool,
) -> Response {
    let Some(drive) = s.drives.iter().find(|x| x.id == d) else {
        return graph_error(StatusCode::NOT_FOUND, "itemNotFound", "drive not found");
    };
    let (since, upto, offset) = match token.as_deref() {
        None => (0, s.seq, 0),
        Some("latest") => (s.seq, s.seq, 0),
        Some(t) => {
            let f: Vec<&str> = t.split('.').collect();
            let num = |p: &str, k: char| p.strip_prefix(k).and_then(|x| x.parse::<u64>().ok());
            let epoch = f.first().and_then(|p| num(p, 'e'));
            let since = f.get(1).and_then(|p| num(p, 's'));
            let (Some(epoch), Some(since)) = (epoch, since) else {
                return graph_error(StatusCode::BAD_REQUEST, "invalidRequest", "Invalid token");
            };
            if epoch != s.epoch {
                let loc = format!("{}/drives/{d}/root/delta", s.base);
                let mut r = graph_error(
                    StatusCode::GONE,
                    "resyncRequired",
                    "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd.",
                );
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_str(&loc).unwrap());
                return r;
            }
            let upto = f.get(2).and_then(|p| num(p, 'u')).unwrap_or(s.seq);
            let offset = f.get(3).and_then(|p| num(p, 'o')).unwrap_or(0);
            (since, upto, offset as usize)
        }
    };
    // the changed items, parents first (by depth), each once in its latest state
    let depth = |it: &Item| {
        let mut n = 0;
        let mut p = it.parent.clone();
        while let Some(x) = p {
            n += 1;
            p = drive.items.get(&x).and_then(|i| i.parent.clone());
        }
        n
    };
    // a full enumeration: every live item in its latest state; a round of changes: the
    // items changed in (since, upto] and their live ancestor folders
    let mut changed: Vec<&Item> = if since == 0 {
        drive
            .items
            .values()
            .filter(|it| !it.deleted && !it.hidden)
            .collect()
    } else {
        let mut v: Vec<&Item> = drive
            .items
            .values()
            .filter(|it| it.seq > since && it.seq <= upto)
            .filter(|it| removed || !it.hidden)
            .collect();
        let mut ancestors = Vec::new();
        for it in &v {
            let mut p = it.parent.clone();
            while let Some(x) = p {
                match drive.items.get(&x) {
                    Some(a) if !a.deleted => {
                        ancestors.push(a);
                        p = a.parent.clone();
                    }
                    _ => break,
                }
            }
        }
        for a in ancestors {
            if !v.iter().any(|x| x.id == a.id) {
                v.push(a);
            }
        }
        v
    };
    if s.children_first {
        changed.sort_by_key(|it| (std::cmp::Reverse(depth(it)), it.id.clone()));
    } else {
        changed.sort_by_key(|it| (depth(it), it.id.clone()));
    }
    let top = q
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(usize::MAX)
        .min(s.page_size);
    let mut pages: Vec<Vec<&Item>> = changed.chunks(top).map(|c| c.to_vec()).collect();
    if pages.is_empty() {
        pages.push(Vec::new());
    }
    if s.empty_page && pages.len() > 1 {
        pages.insert(1, Vec::new());
    }
    let page = offset.min(pages.len() - 1);
    let value: Vec<Value> = pages[page]
        .iter()
        .map(|it| {
            let mut v = item_json(&drive.id, it, false);
            if sharing && it.shared_seq == it.seq && !it.deleted {
                v["@microsoft.graph.sharedChanged"] = json!("True");
            }
            v
        })
        .collect();
    let base = format!("{}/drives/{d}/root/delta", s.base);
    let select = q
        .get("$select")
        .map(|x| format!("&%24select={}", x.replace(',', "%2C")))
        .unwrap_or_default();
    let mut body = json!({"value": value});
    if page + 1 < pages.len() {
        let mut link = format!(
            "{base}?token=e{}.s{since}.u{upto}.o{}{select}",
            s.epoch,
            page + 1
        );
        if let Some(host) = &s.foreign_next_link {
            let own = s.base.trim_end_matches("/v1.0");
            link = link.replacen(own, host, 1);
        }
        body["@odata.nextLink"] = json!(link);
    } else {
        body["@odata.deltaLink"] = json!(format!("{base}?token=e{}.s{upto}{select}", s.epoch));
    }
    json_ok(body)
}
