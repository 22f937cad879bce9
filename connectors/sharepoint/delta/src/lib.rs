//! Microsoft Graph driveItem delta as data: what the SharePoint connector remembers of
//! a drive ([`Known`] items by id), a delta round applied to it ([`apply`]), the paths of
//! its files ([`file_paths`]), the principals of a permission ([`principals_of`]) and
//! Graph's times ([`rfc3339_ns`]).
//!
//! Every input here comes from a server: pure functions, no I/O and no SDK, so that the
//! fuzz target `graph_delta` reaches them without graph-rs-sdk.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// One item as the connector remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "d", default)]
    pub folder: bool,
    #[serde(rename = "s", default)]
    pub size: u64,
    #[serde(rename = "m", default)]
    pub mtime_ns: i64,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Principals who may read it (with `permissions: true`).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<String>>,
}

/// The principals a Graph permission grants read access to: `user:`, `group:`,
/// `siteUser:`, `siteGroup:`, `app:` + id, `anyone` (anonymous link) or
/// `organization` (organization-wide link). Roles other than read, write and owner
/// grant nothing.
pub fn principals_of(p: &serde_json::Value) -> Vec<String> {
    let roles: Vec<&str> = p["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
        .collect();
    if !roles
        .iter()
        .any(|r| matches!(*r, "read" | "write" | "owner"))
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut identity_set = |set: &serde_json::Value| {
        for (kind, name) in [
            ("user", "user"),
            ("group", "group"),
            ("siteUser", "siteUser"),
            ("siteGroup", "siteGroup"),
            ("application", "app"),
        ] {
            if let Some(id) = set[kind]["id"].as_str().filter(|i| !i.is_empty()) {
                out.push(format!("{name}:{id}"));
            }
        }
    };
    identity_set(&p["grantedToV2"]);
    for set in p["grantedToIdentitiesV2"].as_array().into_iter().flatten() {
        identity_set(set);
    }
    match p["link"]["scope"].as_str() {
        Some("anonymous") => out.push("anyone".into()),
        Some("organization") => out.push("organization".into()),
        _ => {}
    }
    out
}

/// An RFC 3339 time of Graph (`2026-01-03T04:05:06Z`, fractions allowed) as Unix
/// nanoseconds; 0 for text that is not one (an item then looks changed, never lost).
pub fn rfc3339_ns(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

/// Applies a round to a map: the last occurrence of an item wins; a deleted folder
/// takes its descendants with it.
pub fn apply(items: &mut HashMap<String, Known>, round: &[serde_json::Value]) {
    for it in round {
        let Some(id) = it["id"].as_str() else {
            continue;
        };
        if it.get("deleted").is_some_and(|d| !d.is_null()) {
            // each item once, so that parents that name each other (a server's
            // mistake) cannot make the walk go round for ever
            let mut doomed = vec![id.to_string()];
            let mut seen: HashSet<String> = doomed.iter().cloned().collect();
            let mut i = 0;
            while i < doomed.len() {
                let p = doomed[i].clone();
                let children: Vec<String> = items
                    .iter()
                    .filter(|(id, k)| k.parent.as_deref() == Some(&p) && !seen.contains(*id))
                    .map(|(id, _)| id.clone())
                    .collect();
                seen.extend(children.iter().cloned());
                doomed.extend(children);
                i += 1;
            }
            for d in doomed {
                items.remove(&d);
            }
            continue;
        }
        if it.get("package").is_some_and(|p| !p.is_null()) {
            continue; // OneNote notebooks and the like: neither file nor folder
        }
        let root = it.get("root").is_some_and(|r| !r.is_null());
        items.insert(
            id.to_string(),
            Known {
                parent: if root {
                    None
                } else {
                    it["parentReference"]["id"].as_str().map(str::to_string)
                },
                name: if root {
                    String::new()
                } else {
                    it["name"].as_str().unwrap_or_default().to_string()
                },
                folder: root || it.get("folder").is_some_and(|f| !f.is_null()),
                size: it["size"].as_u64().unwrap_or(0),
                mtime_ns: rfc3339_ns(it["lastModifiedDateTime"].as_str().unwrap_or("")),
                hash: it["file"]["hashes"]["quickXorHash"]
                    .as_str()
                    .map(str::to_string),
                acl: None,
            },
        );
    }
}

/// The path of every file of a map, below the drive's name; files whose ancestry is
/// incomplete are left out.
pub fn file_paths(drive_name: &str, items: &HashMap<String, Known>) -> HashMap<String, Vec<u8>> {
    let mut memo: HashMap<String, Option<String>> = HashMap::new();
    fn path_of(
        id: &str,
        items: &HashMap<String, Known>,
        memo: &mut HashMap<String, Option<String>>,
        depth: usize,
    ) -> Option<String> {
        if let Some(p) = memo.get(id) {
            return p.clone();
        }
        let k = items.get(id)?;
        let p = match &k.parent {
            None => Some(String::new()),
            Some(_) if depth > 1000 => None,
            Some(parent) => path_of(parent, items, memo, depth + 1).map(|pp| {
                if pp.is_empty() {
                    k.name.clone()
                } else {
                    format!("{pp}/{}", k.name)
                }
            }),
        };
        memo.insert(id.to_string(), p.clone());
        p
    }
    items
        .iter()
        .filter(|(_, k)| !k.folder)
        .filter_map(|(id, _)| {
            path_of(id, items, &mut memo, 0)
                .map(|p| (id.clone(), format!("{drive_name}/{p}").into_bytes()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:01Z"), 1_000_000_000);
        assert_eq!(
            rfc3339_ns("2023-11-14T22:13:20.5Z"),
            1_700_000_000_500_000_000
        );
        assert_eq!(rfc3339_ns("yesterday"), 0);
    }

    #[test]
    fn rounds_apply_by_id_and_deleted_folders_take_their_files() {
        let mut m = HashMap::new();
        let round: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"id":"r","root":{},"folder":{}},
                {"id":"f2","name":"b.txt","parentReference":{"id":"d"},"file":{},"size":2},
                {"id":"d","name":"docs","parentReference":{"id":"r"},"folder":{}},
                {"id":"f1","name":"a.txt","parentReference":{"id":"r"},"file":{},"size":1},
                {"id":"f1","name":"a2.txt","parentReference":{"id":"r"},"file":{},"size":1}]"#,
        )
        .unwrap();
        apply(&mut m, &round);
        let p = file_paths("Docs", &m);
        assert_eq!(p["f1"], b"Docs/a2.txt".to_vec(), "the last occurrence wins");
        assert_eq!(p["f2"], b"Docs/docs/b.txt".to_vec(), "child before parent");
        apply(
            &mut m,
            &serde_json::from_str::<Vec<serde_json::Value>>(
                r#"[{"id":"d","deleted":{"state":"deleted"}}]"#,
            )
            .unwrap(),
        );
        let p = file_paths("Docs", &m);
        assert!(!p.contains_key("f2"), "a deleted folder takes its files");
        assert!(p.contains_key("f1"));
    }

    #[test]
    fn a_deleted_item_whose_parents_name_each_other_ends() {
        let mut m = HashMap::new();
        let round: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"id":"a","name":"a","parentReference":{"id":"b"},"folder":{}},
                {"id":"b","name":"b","parentReference":{"id":"a"},"folder":{}},
                {"id":"f","name":"f.txt","parentReference":{"id":"a"},"file":{}},
                {"id":"g","name":"g.txt","parentReference":{"id":"g"},"file":{}}]"#,
        )
        .unwrap();
        apply(&mut m, &round);
        assert!(file_paths("Docs", &m).is_empty(), "no path without a root");
        apply(
            &mut m,
            &serde_json::from_str::<Vec<serde_json::Value>>(r#"[{"id":"a","deleted":{}}]"#)
                .unwrap(),
        );
        let mut left: Vec<&String> = m.keys().collect();
        left.sort();
        assert_eq!(left, ["g"]);
    }
}
