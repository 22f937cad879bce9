//! An in-memory connector: a map of paths to bytes that tests change at will.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use crate::{
    Batch, Change, ChangeTx, Connector, ConnectorError, Entry, Fingerprint, ItemError, ListMode,
    ListOutcome, SourceFile,
};
use async_trait::async_trait;

/// Path → (bytes, mtime in ns).
type Files = Arc<Mutex<BTreeMap<Vec<u8>, (Vec<u8>, i64)>>>;

#[derive(Clone, Default)]
pub struct MemoryConnector {
    id: String,
    files: Files,
    clock: Arc<Mutex<i64>>,
}

impl MemoryConnector {
    pub fn new(id: impl Into<String>) -> MemoryConnector {
        MemoryConnector {
            id: id.into(),
            ..Default::default()
        }
    }

    /// Creates or replaces a file; each write gets a later mtime.
    pub fn write(&self, rel: &[u8], data: &[u8]) {
        let mut clock = self.clock.lock().unwrap();
        *clock += 1_000_000_000;
        self.files
            .lock()
            .unwrap()
            .insert(rel.to_vec(), (data.to_vec(), *clock));
    }

    pub fn remove(&self, rel: &[u8]) {
        self.files.lock().unwrap().remove(rel);
    }

    fn entry(rel: &[u8], data: &[u8], mtime: i64) -> Entry {
        Entry {
            source_id: rel.to_vec(),
            rel_path: rel.to_vec(),
            size: data.len() as u64,
            mtime_ns: mtime,
            inode: None,
            change_tag: None,
            principals: None,
        }
    }
}

struct MemFile {
    data: Cursor<Vec<u8>>,
    rel: Vec<u8>,
    files: Files,
}

impl std::io::Read for MemFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.data.read(buf)
    }
}

impl SourceFile for MemFile {
    fn fingerprint(&mut self) -> std::io::Result<Fingerprint> {
        let files = self.files.lock().unwrap();
        let (d, m) = files
            .get(&self.rel)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        Ok(MemoryConnector::entry(&self.rel, d, *m).fingerprint())
    }
}

#[async_trait]
impl Connector for MemoryConnector {
    fn id(&self) -> &str {
        &self.id
    }

    async fn list(
        &self,
        _mode: ListMode,
        _checkpoint: Option<String>,
        tx: ChangeTx,
    ) -> Result<ListOutcome, ConnectorError> {
        let snapshot: Vec<Entry> = self
            .files
            .lock()
            .unwrap()
            .iter()
            .map(|(k, (d, m))| Self::entry(k, d, *m))
            .collect();
        let mut batch = Batch::new(&tx);
        for e in snapshot {
            if !batch.push(Change::Upsert(e)).await {
                return Ok(ListOutcome { complete: false });
            }
        }
        Ok(ListOutcome {
            complete: batch.flush().await,
        })
    }

    async fn stat(&self, source_id: &[u8]) -> Result<Option<Entry>, ItemError> {
        Ok(self
            .files
            .lock()
            .unwrap()
            .get(source_id)
            .map(|(d, m)| Self::entry(source_id, d, *m)))
    }

    async fn open(&self, entry: &Entry) -> Result<Box<dyn SourceFile>, ItemError> {
        let data = self
            .files
            .lock()
            .unwrap()
            .get(&entry.source_id)
            .map(|(d, _)| d.clone())
            .ok_or(ItemError::Vanished)?;
        Ok(Box::new(MemFile {
            data: Cursor::new(data),
            rel: entry.source_id.clone(),
            files: self.files.clone(),
        }))
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        Ok(format!(
            "{} files in memory",
            self.files.lock().unwrap().len()
        ))
    }
}
