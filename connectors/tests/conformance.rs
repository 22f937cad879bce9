//! Every connector of this crate passes the shared conformance suite.

use async_trait::async_trait;
use tributary_connectors::Connector;
use tributary_connectors::filter::Filter;
use tributary_connectors::local::{LocalConnector, LocalSettings};
use tributary_connectors::memory::MemoryConnector;
use tributary_connectors::testsuite::{Fixture, run};

struct LocalFx {
    dir: tempfile::TempDir,
    c: LocalConnector,
}

#[async_trait]
impl Fixture for LocalFx {
    fn connector(&self) -> &dyn Connector {
        &self.c
    }
    async fn write(&self, rel: &[u8], data: &[u8]) {
        use std::os::unix::ffi::OsStrExt;
        let p = self.dir.path().join(std::ffi::OsStr::from_bytes(rel));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    async fn remove(&self, rel: &[u8]) {
        use std::os::unix::ffi::OsStrExt;
        std::fs::remove_file(self.dir.path().join(std::ffi::OsStr::from_bytes(rel))).unwrap();
    }
    fn supports_non_utf8(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn local_connector_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let c = LocalConnector::new(
        "local",
        LocalSettings {
            root: dir.path().to_path_buf(),
            filter: Filter::all(),
            max_file_size: None,
            follow_symlinks: false,
            one_file_system: true,
        },
    );
    run(&LocalFx { dir, c }).await;
}

struct MemFx(MemoryConnector);

#[async_trait]
impl Fixture for MemFx {
    fn connector(&self) -> &dyn Connector {
        &self.0
    }
    async fn write(&self, rel: &[u8], data: &[u8]) {
        self.0.write(rel, data)
    }
    async fn remove(&self, rel: &[u8]) {
        self.0.remove(rel)
    }
    fn supports_non_utf8(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn memory_connector_conforms() {
    run(&MemFx(MemoryConnector::new("mem"))).await;
}
