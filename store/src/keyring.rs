//! The bucket side of encryption: the store's data key, kept wrapped by each key file
//! that may open the store (`keys/<key id>`, like restic's key files), and [`open`],
//! which every command that reads or writes a bucket goes through: it reads the
//! store's marker, unlocks the data key with the configured key file and hands back
//! the store as its callers must see it ([`SealedStore`] when encrypted).
//!
//! A store is never mixed: a key file for a store whose objects are in the clear is
//! refused (a new or empty store is encrypted from its first object on), as is a store
//! whose marker says encrypted when no key file is configured.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::crypt::{self, Crypt, DataKey, Kek};
use crate::format::{self, CIPHER, Encryption, StoreFormat};
use crate::sealed::SealedStore;
use crate::{ErrorClass, ObjectStore, PutMode, StoreError};

/// Where wrapped data keys live.
pub const PREFIX: &str = "keys/";

/// The object of the data key wrapped by key file `id`.
pub fn key_object(id: &str) -> String {
    format!("{PREFIX}{id}")
}

#[derive(Serialize, Deserialize)]
struct KeyObject {
    format: u32,
    id: String,
    /// RFC 3339.
    created: String,
    /// The data key sealed by the key file, hex.
    wrapped: String,
}

/// A key file the store knows, as `tributary key list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created: String,
}

fn error(class: ErrorClass, message: String) -> StoreError {
    StoreError::new(class, message)
}

/// Opens a store for reading and writing: its format (a store without a marker is
/// marked: a new one encrypted when `kek` is given) and, when it is encrypted, the
/// store wrapped so that every object is sealed and opened on the way. Fails with one
/// clear message, before anything is written, when the key file is missing, is not one
/// of the store's, or is given for a store that holds clear objects.
pub async fn open(
    store: Arc<dyn ObjectStore>,
    kek: Option<&Kek>,
) -> Result<(Arc<dyn ObjectStore>, StoreFormat), StoreError> {
    if format::read(&*store).await?.is_some_and(|f| f.encrypting) {
        return Err(error(
            ErrorClass::Permanent,
            format!(
                "the store {} is being encrypted by `tributary migrate-store --encrypt`, which has not finished: run it again (it carries on where it stopped)",
                store.describe()
            ),
        ));
    }
    let Some(kek) = kek else {
        let f = format::open(&*store, StoreFormat::current()).await?;
        if f.encryption.is_some() {
            return Err(error(
                ErrorClass::Auth,
                format!(
                    "the store {} is encrypted ({}): set object_store.encryption.key_file to one of its key files",
                    store.describe(),
                    format::MARKER_KEY
                ),
            ));
        }
        return Ok((store, f));
    };
    let f = match format::read(&*store).await? {
        // a first opening that stopped between marking the store and storing its key
        // left a marker no key opens, and nothing sealed with it: begun again
        Some(f)
            if f.encryption.is_some()
                && list(&*store).await?.is_empty()
                && !holds_data(&*store).await? =>
        {
            init(&*store, kek, true).await?
        }
        Some(f) if f.encryption.is_some() => f,
        Some(f) if holds_data(&*store).await? => {
            return Err(clear_store(&*store, &f));
        }
        // marked in the clear, and nothing written yet: encrypted from now on
        Some(_) => init(&*store, kek, true).await?,
        None if format::holds_legacy_chunks(&*store).await? => {
            return Err(clear_store(
                &*store,
                &StoreFormat {
                    format: 1,
                    encryption: None,
                    encrypting: false,
                },
            ));
        }
        None => init(&*store, kek, false).await?,
    };
    let crypt = unlock(&*store, &f, kek).await?;
    Ok((Arc::new(SealedStore::new(store, Arc::new(crypt))), f))
}

fn clear_store(store: &dyn ObjectStore, f: &StoreFormat) -> StoreError {
    error(
        ErrorClass::Permanent,
        format!(
            "the store {} holds objects in the clear (format {}): it is never mixed with sealed ones; `tributary migrate-store --encrypt` rewrites it sealed, or remove object_store.encryption to use it as it is",
            store.describe(),
            f.format
        ),
    )
}

/// Whether the store holds anything besides its marker and keys.
async fn holds_data(store: &dyn ObjectStore) -> Result<bool, StoreError> {
    Ok(store
        .list("")
        .await?
        .iter()
        .any(|m| m.key != format::MARKER_KEY && !m.key.starts_with(PREFIX)))
}

/// Makes a new store's data key, marks the store encrypted and wraps the key with
/// `kek`. When another writer marked the store first, its marker holds (and `kek`
/// must then be one of its keys).
async fn init(
    store: &dyn ObjectStore,
    kek: &Kek,
    replace_clear: bool,
) -> Result<StoreFormat, StoreError> {
    let data_key = DataKey::generate();
    let wanted = sealed_format(&data_key, false);
    let f = if replace_clear {
        format::set(store, &wanted).await?;
        wanted.clone()
    } else {
        format::create(store, wanted.clone()).await?
    };
    if f == wanted {
        put_wrapped(store, kek, &data_key).await?;
    }
    Ok(f)
}

async fn put_wrapped(
    store: &dyn ObjectStore,
    kek: &Kek,
    data_key: &DataKey,
) -> Result<(), StoreError> {
    let id = kek.id();
    let body = serde_json::to_vec_pretty(&KeyObject {
        format: 1,
        id: id.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        wrapped: hex::encode(crypt::wrap(kek, data_key)),
    })
    .expect("a plain struct serializes");
    store
        .put(&key_object(&id), body.into(), PutMode::IfAbsent)
        .await
        .map_err(|e| match e.class {
            ErrorClass::AlreadyExists => error(
                ErrorClass::AlreadyExists,
                format!("key {id} is already a key of the store"),
            ),
            _ => e,
        })
}

fn sealed_format(data_key: &DataKey, encrypting: bool) -> StoreFormat {
    StoreFormat {
        format: format::CURRENT,
        encryption: Some(Encryption {
            cipher: CIPHER.into(),
            key_check: data_key.check(),
        }),
        encrypting,
    }
}

/// Starts (or resumes) rewriting the clear store `raw` sealed: makes its data key and
/// marks the store `encrypting`, so that nothing else uses it meanwhile (a rerun finds
/// the mark and unlocks the same key). Returns the store sealed, for the rewrite to
/// write into, and whether it was already encrypted (nothing to do).
pub async fn begin_encryption(
    raw: Arc<dyn ObjectStore>,
    kek: &Kek,
) -> Result<(Arc<dyn ObjectStore>, bool), StoreError> {
    let f = match format::read(&*raw).await? {
        Some(f) if f.encryption.is_some() => f,
        _ => {
            // a clear store holds no keys: any here were left by a run that stopped
            // before marking the store, and nothing was sealed with them
            for m in raw.list(PREFIX).await? {
                raw.delete(&m.key).await?;
            }
            let data_key = DataKey::generate();
            put_wrapped(&*raw, kek, &data_key).await?;
            let f = sealed_format(&data_key, true);
            format::set(&*raw, &f).await?;
            f
        }
    };
    let done = !f.encrypting;
    let crypt = unlock(&*raw, &f, kek).await?;
    Ok((Arc::new(SealedStore::new(raw, Arc::new(crypt))), done))
}

/// Marks a store whose rewrite is done as encrypted and usable.
pub async fn finish_encryption(raw: &dyn ObjectStore) -> Result<(), StoreError> {
    let Some(mut f) = format::read(raw).await? else {
        return Err(error(
            ErrorClass::NotFound,
            "the store marker is gone".into(),
        ));
    };
    f.encrypting = false;
    format::set(raw, &f).await
}

/// The data key, unwrapped with `kek` and checked against the marker.
async fn unlock(store: &dyn ObjectStore, f: &StoreFormat, kek: &Kek) -> Result<Crypt, StoreError> {
    let id = kek.id();
    let key = key_object(&id);
    let body = match store.get(&key).await {
        Ok(b) => b,
        Err(e) if e.class == ErrorClass::NotFound => {
            let known = list(store).await?;
            return Err(error(
                ErrorClass::Auth,
                format!(
                    "the key file (key {id}) does not open the store {}: it is not one of its {} key(s) ({})",
                    store.describe(),
                    known.len(),
                    known
                        .iter()
                        .map(|k| k.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Err(e) => return Err(e),
    };
    let altered = |why: &str| {
        error(
            ErrorClass::Auth,
            format!("{key} in {} {why}", store.describe()),
        )
    };
    let object: KeyObject =
        serde_json::from_slice(&body).map_err(|_| altered("is not a key object"))?;
    let wrapped = hex::decode(&object.wrapped).map_err(|_| altered("is not a key object"))?;
    let data_key = crypt::unwrap(kek, &wrapped)
        .map_err(|_| altered("does not open with the key file: one of them was altered"))?;
    let check = f.encryption.as_ref().map(|e| e.key_check.as_str());
    if check != Some(data_key.check().as_str()) {
        return Err(altered(
            "holds a data key that is not this store's (copied from another store?)",
        ));
    }
    Ok(Crypt::new(data_key))
}

/// The key files the store knows, by id.
pub async fn list(store: &dyn ObjectStore) -> Result<Vec<KeyInfo>, StoreError> {
    let mut out = Vec::new();
    for m in store.list(PREFIX).await? {
        let id = m.key[PREFIX.len()..].to_string();
        let created = match store.get(&m.key).await {
            Ok(body) => serde_json::from_slice::<KeyObject>(&body)
                .map(|o| o.created)
                .unwrap_or_else(|_| "(unreadable)".into()),
            Err(e) if e.class == ErrorClass::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.push(KeyInfo { id, created });
    }
    Ok(out)
}

/// Lets key file `new` open the store too (the store opened with another key).
pub async fn add(store: &dyn ObjectStore, new: &Kek) -> Result<KeyInfo, StoreError> {
    let crypt = store.crypt().ok_or_else(|| {
        error(
            ErrorClass::Permanent,
            format!("the store {} is not encrypted", store.describe()),
        )
    })?;
    put_wrapped(store, new, crypt.data_key()).await?;
    list(store)
        .await?
        .into_iter()
        .find(|k| k.id == new.id())
        .ok_or_else(|| error(ErrorClass::Permanent, format!("key {} vanished", new.id())))
}

/// Removes key `id` from the store; the last key is never removed (without one, no
/// one could read the store again).
pub async fn remove(store: &dyn ObjectStore, id: &str) -> Result<(), StoreError> {
    let known = list(store).await?;
    if !known.iter().any(|k| k.id == id) {
        return Err(error(
            ErrorClass::NotFound,
            format!("the store {} has no key {id}", store.describe()),
        ));
    }
    if known.len() == 1 {
        return Err(error(
            ErrorClass::Permanent,
            format!(
                "key {id} is the store's last key: removing it would leave no way to read the store (add another key first)"
            ),
        ));
    }
    store.delete(&key_object(id)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalStore;
    use bytes::Bytes;

    fn local(dir: &std::path::Path) -> Arc<dyn ObjectStore> {
        Arc::new(LocalStore::new(dir).unwrap())
    }

    fn refused<T>(r: Result<T, StoreError>) -> StoreError {
        match r {
            Ok(_) => panic!("opened"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn a_new_store_opens_with_its_key_files_and_with_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let (kek, other) = (Kek::generate(), Kek::generate());
        let (store, f) = open(local(dir.path()), Some(&kek)).await.unwrap();
        assert!(f.encryption.is_some() && f.packed());
        store
            .put(
                "manifests/x",
                Bytes::from_static(b"secret"),
                PutMode::IfAbsent,
            )
            .await
            .unwrap();
        let raw = std::fs::read(dir.path().join("manifests/x")).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"secret"));

        let (again, _) = open(local(dir.path()), Some(&kek)).await.unwrap();
        assert_eq!(again.get("manifests/x").await.unwrap(), "secret");

        let e = refused(open(local(dir.path()), Some(&other)).await);
        assert_eq!(e.class, ErrorClass::Auth);
        assert!(
            e.message.contains(&other.id()) && e.message.contains(&kek.id()),
            "{e}"
        );
        let e = refused(open(local(dir.path()), None).await);
        assert!(
            e.message.contains("object_store.encryption.key_file"),
            "{e}"
        );

        // another key added opens it; the first removed does not any more
        add(&*store, &other).await.unwrap();
        assert_eq!(list(&*store).await.unwrap().len(), 2);
        let e = add(&*store, &other).await.unwrap_err();
        assert!(e.message.contains("already"), "{e}");
        remove(&*store, &kek.id()).await.unwrap();
        let (by_other, _) = open(local(dir.path()), Some(&other)).await.unwrap();
        assert_eq!(by_other.get("manifests/x").await.unwrap(), "secret");
        refused(open(local(dir.path()), Some(&kek)).await);
        let e = remove(&*store, &other.id()).await.unwrap_err();
        assert!(e.message.contains("last key"), "{e}");
        assert!(remove(&*store, "0000").await.is_err());
    }

    #[tokio::test]
    async fn a_first_opening_cut_before_its_key_was_stored_is_begun_again() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Kek::generate();
        let raw = local(dir.path());
        // the marker of a first opening whose key never reached the store
        format::create(&*raw, sealed_format(&DataKey::generate(), false))
            .await
            .unwrap();
        let (store, f) = open(raw.clone(), Some(&kek)).await.unwrap();
        assert!(f.encryption.is_some());
        store
            .put(
                "manifests/x",
                Bytes::from_static(b"kept"),
                PutMode::IfAbsent,
            )
            .await
            .unwrap();
        let (again, f2) = open(local(dir.path()), Some(&kek)).await.unwrap();
        assert_eq!(
            (f, again.get("manifests/x").await.unwrap()),
            (f2, Bytes::from_static(b"kept"))
        );

        // once something is sealed, a store without keys is never begun again
        let dir = tempfile::tempdir().unwrap();
        let raw = local(dir.path());
        format::create(&*raw, sealed_format(&DataKey::generate(), false))
            .await
            .unwrap();
        raw.put(
            "manifests/y",
            Bytes::from_static(b"sealed"),
            PutMode::IfAbsent,
        )
        .await
        .unwrap();
        let e = refused(open(raw, Some(&kek)).await);
        assert_eq!(e.class, ErrorClass::Auth);
        assert!(e.message.contains("0 key(s)"), "{e}");
    }

    #[tokio::test]
    async fn clear_stores_are_never_mixed_with_sealed_objects() {
        let kek = Kek::generate();
        // a store used in the clear
        let dir = tempfile::tempdir().unwrap();
        let (clear, f) = open(local(dir.path()), None).await.unwrap();
        assert!(f.encryption.is_none());
        assert!(clear.crypt().is_none());
        // still empty: encryption may be turned on
        let (sealed, f) = open(local(dir.path()), Some(&kek)).await.unwrap();
        assert!(f.encryption.is_some() && sealed.crypt().is_some());

        let dir = tempfile::tempdir().unwrap();
        let (clear, _) = open(local(dir.path()), None).await.unwrap();
        clear
            .put("packs/ab/ab", Bytes::from_static(b"x"), PutMode::Overwrite)
            .await
            .unwrap();
        let e = refused(open(local(dir.path()), Some(&kek)).await);
        assert!(e.message.contains("in the clear"), "{e}");

        let v1 = tempfile::tempdir().unwrap();
        local(v1.path())
            .put("chunks/ab/ab", Bytes::from_static(b"x"), PutMode::Overwrite)
            .await
            .unwrap();
        let e = refused(open(local(v1.path()), Some(&kek)).await);
        assert!(e.message.contains("format 1"), "{e}");
    }

    #[tokio::test]
    async fn a_key_object_from_another_store_or_altered_is_refused() {
        let kek = Kek::generate();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        open(local(a.path()), Some(&kek)).await.unwrap();
        open(local(b.path()), Some(&kek)).await.unwrap();
        let name = key_object(&kek.id());
        std::fs::copy(a.path().join(&name), b.path().join(&name)).unwrap();
        let e = refused(open(local(b.path()), Some(&kek)).await);
        assert!(e.message.contains("another store"), "{e}");

        let mut text = std::fs::read_to_string(a.path().join(&name)).unwrap();
        let at = text.find("\"wrapped\": \"").unwrap() + 20;
        let flipped = if &text[at..at + 1] == "0" { "1" } else { "0" };
        text.replace_range(at..at + 1, flipped);
        std::fs::write(a.path().join(&name), text).unwrap();
        let e = refused(open(local(a.path()), Some(&kek)).await);
        assert!(e.message.contains("altered"), "{e}");
    }
}
