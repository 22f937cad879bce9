//! `tributary key`: the key files of an encrypted store. The store's data key is kept in
//! the bucket wrapped by each key file that may open it ([`tributary_store::keyring`]),
//! so adding, removing and rotating key files rewrites one small object each, never
//! data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use tributary_store::crypt::Kek;
use tributary_store::keyring;

use super::args::KeyCommand;
use super::shown;
use crate::wiring;

pub(super) async fn run(command: KeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Generate { out } => {
            let kek = Kek::generate();
            kek.write_new(&out).map_err(anyhow::Error::msg)?;
            println!(
                "wrote key {} to {} (mode 0600): keep a copy apart from the store",
                kek.id(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::List { config, json } => {
            let cfg = load!(config);
            let (store, current) = open(&cfg).await?;
            let keys = keyring::list(&*store).await.map_err(shown_err)?;
            if json {
                println!("{}", serde_json::to_string(&keys)?);
            } else {
                for k in &keys {
                    let mark = if k.id == current {
                        "  (this configuration's)"
                    } else {
                        ""
                    };
                    println!("{}  added {}{mark}", k.id, k.created);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Add {
            config,
            new_key_file,
        } => {
            let cfg = load!(config);
            let (store, _) = open(&cfg).await?;
            let new = load_or_create(&new_key_file)?;
            let k = keyring::add(&*store, &new).await.map_err(shown_err)?;
            println!(
                "key {} ({}) now opens the store {}",
                k.id,
                new_key_file.display(),
                store.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Remove { config, id } => {
            let cfg = load!(config);
            let (store, current) = open(&cfg).await?;
            keyring::remove(&*store, &id).await.map_err(shown_err)?;
            println!("key {id} no longer opens the store {}", store.describe());
            if id == current {
                println!(
                    "it was this configuration's key: point object_store.encryption.key_file at another of the store's key files"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Rotate {
            config,
            new_key_file,
        } => {
            let cfg = load!(config);
            let (store, current) = open(&cfg).await?;
            let new = load_or_create(&new_key_file)?;
            if new.id() == current {
                bail!(
                    "{} is the configured key file itself",
                    new_key_file.display()
                );
            }
            keyring::add(&*store, &new).await.map_err(shown_err)?;
            keyring::remove(&*store, &current)
                .await
                .map_err(shown_err)?;
            println!(
                "the store {} is now opened by key {} ({}); key {current} no longer opens it.\nset object_store.encryption.key_file: {} in {}",
                store.describe(),
                new.id(),
                new_key_file.display(),
                new_key_file.display(),
                cfg.source.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The store opened with the configured key file, and that key's id.
async fn open(
    cfg: &tributary_config::Config,
) -> anyhow::Result<(std::sync::Arc<dyn tributary_store::ObjectStore>, String)> {
    let Some(kek) = wiring::store_key(cfg)? else {
        bail!(
            "{}: object_store.encryption.key_file is not set: the store is not encrypted",
            cfg.source.display()
        );
    };
    let (store, _) = wiring::open_bucket(cfg).await?;
    Ok((store, kek.id()))
}

/// The key in `path`, or a new one written there.
fn load_or_create(path: &Path) -> anyhow::Result<Kek> {
    if path.exists() {
        return Kek::load(path).map_err(anyhow::Error::msg);
    }
    let kek = Kek::generate();
    kek.write_new(path)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("new key file {}", PathBuf::from(path).display()))?;
    println!(
        "wrote new key {} to {} (mode 0600)",
        kek.id(),
        path.display()
    );
    Ok(kek)
}

fn shown_err(e: tributary_store::StoreError) -> anyhow::Error {
    anyhow::anyhow!(shown(e))
}
