//! Connectors created over the API, from the command line: `connectors export` (from the
//! catalog) and the `ctl` verbs `add`, `edit`, `delete` and `test` (through the API,
//! as an admin).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::wiring;

/// The connectors of the catalog as a configuration's `connectors:` section: each
/// spec as stored (no secret is stored in it); a connector with sealed secrets gets a
/// comment saying how to give them in a file.
pub(super) fn export_yaml(
    rows: &[tributary_catalog::api_connectors::StoredConnector],
) -> anyhow::Result<String> {
    let mut out = String::from("connectors:\n");
    for r in rows {
        let spec: Value = serde_json::from_str(&r.spec)
            .with_context(|| format!("connector {}: unreadable spec", r.id))?;
        out.push_str(&format!(
            "  # {} (revision {}) created over the API\n",
            r.id, r.revision
        ));
        if r.secrets.is_some() {
            out.push_str("  # its secrets are sealed in the catalog and not exported: give them as `password_file` or `client_secret_file`\n");
        }
        let yaml = serde_yaml::to_string(&vec![spec])?;
        for line in yaml.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

pub(super) async fn export(path: PathBuf, id: Option<String>) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let catalog = wiring::connect_catalog(&cfg).await?;
    let mut rows = catalog.list_api_connectors().await?;
    if let Some(id) = &id {
        rows.retain(|r| &r.id == id);
        if rows.is_empty() {
            bail!("no connector `{id}` was created over the API");
        }
    }
    print!("{}", export_yaml(&rows)?);
    Ok(ExitCode::SUCCESS)
}

/// One connector read from a YAML file (`-`: standard input): a mapping, or a list of
/// one, as written under `connectors:`.
pub(super) fn read_connector(file: &Path) -> anyhow::Result<Value> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("read standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?
    };
    let v: Value = serde_yaml::from_str(&text).with_context(|| format!("{}", file.display()))?;
    match v {
        Value::Object(_) => Ok(v),
        Value::Array(mut a) if a.len() == 1 && a[0].is_object() => Ok(a.remove(0)),
        _ => bail!(
            "{}: expected one connector (a mapping with `id` and `kind`)",
            file.display()
        ),
    }
}

/// A connector as `GET /connectors/{id}` shows it, without what is not a setting.
pub(super) fn editable(mut shown: Value) -> Value {
    if let Value::Object(m) = &mut shown {
        for k in tributary_config::api_connector::READ_ONLY_KEYS {
            m.remove(*k);
        }
    }
    shown
}

/// Opens `file` in $VISUAL or $EDITOR (else `vi`), through the shell so that either may
/// carry arguments.
pub(super) fn run_editor(file: &Path) -> anyhow::Result<()> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("editor")
        .arg(file)
        .status()
        .with_context(|| format!("start the editor `{editor}`"))?;
    if !status.success() {
        bail!("the editor `{editor}` failed ({status}); nothing was changed");
    }
    Ok(())
}

/// A private file for the connector being edited.
pub(super) fn edit_file(id: &str, yaml: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let path =
        std::env::temp_dir().join(format!("tributary-{id}-{:08x}.yaml", rand::random::<u32>()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(yaml.as_bytes())?;
    Ok(path)
}

/// An answer of the API, printed; success or not as the exit code.
async fn printed(resp: reqwest::Response) -> anyhow::Result<ExitCode> {
    let ok = resp.status().is_success();
    let text = resp.text().await.unwrap_or_default();
    println!("{text}");
    if !ok {
        super::remote::explain_refusal(&text);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The `ctl` verbs on connectors: `add`, `edit`, `delete`, `test`.
pub(super) async fn ctl(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    action: &super::args::CtlAction,
) -> anyhow::Result<ExitCode> {
    use super::args::CtlAction;
    let reach = |e: reqwest::Error| {
        anyhow::anyhow!("reach the daemon at {base} (is `tributary run` running?): {e}")
    };
    match action {
        CtlAction::Add { file } => {
            let body = read_connector(file)?;
            let resp = client
                .post(format!("{base}/connectors"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .map_err(reach)?;
            printed(resp).await
        }
        CtlAction::Delete {
            connector,
            delete_data,
            allow_mass_delete,
        } => {
            let query = match (delete_data, allow_mass_delete) {
                (false, _) => "data=keep",
                (true, false) => "data=delete",
                (true, true) => "data=delete&allow_mass_delete=true",
            };
            let resp = client
                .delete(format!("{base}/connectors/{connector}?{query}"))
                .bearer_auth(token)
                .send()
                .await
                .map_err(reach)?;
            if resp.status().is_success() {
                if *delete_data {
                    let v: serde_json::Value = resp.json().await.unwrap_or_default();
                    println!(
                        "deleted connector {connector} and its data: {} item(s) deleted by job {}",
                        v["items_deleted"], v["job_id"]
                    );
                } else {
                    println!("deleted connector {connector}; what it stored is kept");
                }
                return Ok(ExitCode::SUCCESS);
            }
            printed(resp).await
        }
        CtlAction::Test { connector, file } => {
            let req = match (connector, file) {
                (Some(id), _) => client.post(format!("{base}/connectors/{id}/test")),
                (None, Some(f)) => client
                    .post(format!("{base}/connector-tests"))
                    .json(&read_connector(f)?),
                (None, None) => bail!("name a connector, or give --file"),
            };
            let resp = req.bearer_auth(token).send().await.map_err(reach)?;
            let status = resp.status();
            let v: Value = resp.json().await.unwrap_or_default();
            println!("{v}");
            Ok(if status.is_success() && v["ok"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        CtlAction::Edit { connector } => {
            let resp = client
                .get(format!("{base}/connectors/{connector}"))
                .bearer_auth(token)
                .send()
                .await
                .map_err(reach)?;
            if !resp.status().is_success() {
                return printed(resp).await;
            }
            let etag = resp
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let shown: Value = resp.json().await?;
            if shown["source"] == "file" {
                bail!(
                    "connector {connector} is defined in {}: edit it there and reload",
                    shown["file"].as_str().unwrap_or("the configuration file")
                );
            }
            let before = serde_yaml::to_string(&editable(shown))?;
            let file = edit_file(connector, &before)?;
            let edited = run_editor(&file).and_then(|()| {
                std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))
            });
            let _ = std::fs::remove_file(&file);
            let edited = edited?;
            if edited == before {
                println!("connector {connector} left as it was");
                return Ok(ExitCode::SUCCESS);
            }
            let body: Value = serde_yaml::from_str(&edited).context("the edited connector")?;
            let mut req = client
                .put(format!("{base}/connectors/{connector}"))
                .bearer_auth(token)
                .json(&body);
            if let Some(tag) = etag {
                req = req.header(reqwest::header::IF_MATCH, tag);
            }
            printed(req.send().await.map_err(reach)?).await
        }
        _ => unreachable!("the other verbs are posts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_is_a_connectors_section_the_loader_reads_back() {
        let row = |id: &str, spec: &str, sealed: bool| {
            tributary_catalog::api_connectors::StoredConnector {
                id: id.into(),
                revision: 3,
                spec: spec.into(),
                secrets: sealed.then(|| vec![1, 2, 3]),
                key_id: None,
                created_at: 0,
                created_by: None,
                updated_at: 0,
                updated_by: None,
            }
        };
        let text = export_yaml(&[
            row("a", r#"{"id":"a","kind":"local","path":"/srv/a","schedule":"0 3 * * *","exclude":["*.tmp"]}"#, false),
            row("s", r#"{"id":"s","kind":"smb","server":"h","share":"d","username":"u"}"#, true),
        ])
        .unwrap();
        assert!(text.contains("# its secrets are sealed"), "{text}");
        let cfg = format!(
            "version: 1\nstate_dir: /tmp/x\n{}",
            text.replace(
                "\n  - id: s\n",
                "\n  - id: s\n    password_file: /dev/null\n"
            )
        );
        let loaded =
            tributary_config::load_str(Path::new("/tmp/t.yaml"), &cfg, &Default::default())
                .unwrap_or_else(|e| panic!("{e}\n{cfg}"));
        let ids: Vec<&str> = loaded
            .config
            .connectors
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "s"]);
        assert_eq!(loaded.config.connectors[0].exclude, ["*.tmp"]);
    }

    #[test]
    fn a_connector_file_holds_one_mapping_or_a_list_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(&f, "id: a\nkind: local\npath: /srv/a\n").unwrap();
        assert_eq!(read_connector(&f).unwrap()["id"], "a");
        std::fs::write(&f, "- id: a\n  kind: local\n").unwrap();
        assert_eq!(read_connector(&f).unwrap()["kind"], "local");
        std::fs::write(&f, "- id: a\n- id: b\n").unwrap();
        assert!(read_connector(&f).is_err());
        let shown = serde_json::json!({"id": "a", "source": "api", "revision": 2, "status": {}});
        assert_eq!(editable(shown), serde_json::json!({"id": "a"}));
    }
}
