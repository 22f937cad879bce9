//! Shared harness of the pipeline tests: a pipeline over a local or S3 store, jobs
//! over a local folder, restore into a folder.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tributary_catalog::Catalog;
use tributary_connectors::Connector;
use tributary_connectors::filter::Filter;
use tributary_connectors::local::{LocalConnector, LocalSettings};
use tributary_pipeline::chunking::ChunkParams;
use tributary_pipeline::{JobKind, JobReport, JobSpec, Pipeline, Progress, Settings, maintenance};
use tributary_store::ObjectStore;
use tributary_store::local::LocalStore;
use tributary_store::s3::{S3Settings, S3Store};
use tributary_testkit::weed;

#[derive(Clone, Copy, Debug)]
pub enum StoreKind {
    Local,
    S3,
}

/// The catalog's backend: the pipeline tests run on both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A catalog of `backend` (a fresh PostgreSQL database, or a SQLite file in `dir`).
pub async fn open_catalog(backend: Backend, dir: &Path) -> Catalog {
    match backend {
        Backend::Sqlite => Catalog::open_sqlite(&dir.join("catalog.db")).await.unwrap(),
        Backend::Postgres => {
            let url = tributary_testkit::postgres::fresh_database();
            Catalog::open_postgres(&tributary_catalog::PgSettings::new(url))
                .await
                .unwrap()
        }
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub pipeline: Pipeline,
}

pub async fn s3_store(endpoint: String, prefix: String) -> Arc<dyn ObjectStore> {
    Arc::new(
        S3Store::new(S3Settings {
            endpoint: Some(endpoint),
            bucket: weed::BUCKET.into(),
            prefix,
            region: "us-east-1".into(),
            path_style: true,
            credentials: Some((weed::ACCESS_KEY.into(), weed::SECRET_KEY.into())),
            sse: None,
            request_timeout: Duration::from_secs(30),
        })
        .await,
    )
}

impl Harness {
    pub async fn new(kind: StoreKind) -> Harness {
        Harness::with_settings(kind, Settings::default()).await
    }

    pub async fn with_settings(kind: StoreKind, settings: Settings) -> Harness {
        Harness::on(kind, Backend::Sqlite, settings).await
    }

    /// A pipeline over a `kind` store and a `backend` catalog.
    pub async fn on(kind: StoreKind, backend: Backend, settings: Settings) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = match kind {
            StoreKind::Local => Arc::new(LocalStore::new(dir.path().join("objects")).unwrap()),
            StoreKind::S3 => {
                let w = weed::shared();
                let prefix = format!("run-{:016x}/", rand_u64());
                s3_store(w.endpoint(), prefix).await
            }
        };
        let catalog = open_catalog(backend, dir.path()).await;
        Harness {
            pipeline: Pipeline::new(catalog, store, settings),
            dir,
        }
    }

    pub fn src(&self) -> PathBuf {
        let p = self.dir.path().join("src");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn connector(&self) -> Arc<dyn Connector> {
        Arc::new(LocalConnector::new(
            "docs",
            LocalSettings {
                root: self.src(),
                filter: Filter::all(),
                max_file_size: None,
                follow_symlinks: false,
                one_file_system: true,
            },
        ))
    }

    pub fn spec(&self) -> JobSpec {
        JobSpec {
            job_id: None,
            max_retries: None,
            connector_id: "docs".into(),
            target: "/docs".into(),
            kind: JobKind::Full,
            trigger: "test".into(),
            max_delete_percent: 50.0,
            allow_mass_delete: false,
            namespace: Default::default(),
            dry_run: false,
            quota: Default::default(),
        }
    }

    /// Conflicts, open ones only unless `include_resolved`.
    pub async fn conflicts(&self, include_resolved: bool) -> Vec<tributary_catalog::ConflictRow> {
        let filter = tributary_catalog::ConflictFilter {
            include_resolved,
            ..Default::default()
        };
        self.pipeline
            .catalog
            .list_conflicts(&filter, 1, 500)
            .await
            .unwrap()
            .0
    }

    pub async fn run(&self) -> JobReport {
        self.run_with(self.connector(), self.spec()).await
    }

    pub async fn run_with(&self, c: Arc<dyn Connector>, spec: JobSpec) -> JobReport {
        self.pipeline
            .run_job(c, &spec, Arc::new(Progress::default()), Default::default())
            .await
            .unwrap()
    }

    /// Restores `/docs` as of `at` into a fresh folder and returns `<folder>/docs`.
    pub async fn restore(&self, at: Option<i64>) -> PathBuf {
        let out = self.dir.path().join(format!("restore-{:08x}", rand_u64()));
        let r = maintenance::restore(
            &self.pipeline.catalog,
            self.pipeline.store.clone(),
            b"/docs",
            &out,
            at,
        )
        .await
        .unwrap();
        assert!(r.errors.is_empty(), "restore errors: {:?}", r.errors);
        out.join("docs")
    }
}

pub fn rand_u64() -> u64 {
    rand::random()
}

pub fn small_chunks() -> Settings {
    Settings {
        chunk: ChunkParams {
            min: 16 << 10,
            avg: 64 << 10,
            max: 256 << 10,
        },
        ..Settings::default()
    }
}

/// Asserts that two trees hold the same files with the same bytes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let sa = tributary_testkit::tree::snapshot(a);
    let sb = tributary_testkit::tree::snapshot(b);
    let ka: Vec<_> = sa.keys().collect();
    let kb: Vec<_> = sb.keys().collect();
    assert_eq!(ka, kb, "same file names");
    for (k, v) in &sa {
        assert!(sb[k] == *v, "content of {} differs", k.display());
    }
}
