//! An S3 server that stops for 10 s in the middle of a run makes the run slower, not
//! wrong. Its own test binary, so that its private SeaweedFS runs alone.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_same_tree, s3_store};
use tributary_catalog::Catalog;
use tributary_pipeline::{JobStatus, Pipeline, Progress, Settings, maintenance};
use tributary_store::retry::RetryPolicy;
use tributary_testkit::{tree, weed::Weed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_stopped_for_ten_seconds_mid_run_slows_the_run_but_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w = Weed::start(&dir.path().join("weed"));
    let src = dir.path().join("src");
    for i in 0..120u64 {
        let p = src.join(format!("d{}/f{i}.bin", i % 6));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, tree::random_bytes(i, 300_000)).unwrap();
    }
    let settings = Settings {
        file_concurrency: 1,
        upload_concurrency: 1,
        commit_batch_size: 10,
        retry: RetryPolicy {
            max_attempts: 30,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(4),
            ..RetryPolicy::default()
        },
        ..common::small_chunks()
    };
    let catalog = Catalog::open_sqlite(&dir.path().join("catalog.db"))
        .await
        .unwrap();
    let store = s3_store(w.endpoint(), "outage/".into()).await;
    let pipeline = Pipeline::new(catalog, store, settings);
    let h = common::Harness { dir, pipeline };
    let progress = Arc::new(Progress::default());
    let job = {
        let (p, c, spec, progress) = (
            h.pipeline.clone(),
            h.connector(),
            h.spec(),
            progress.clone(),
        );
        tokio::spawn(async move {
            p.run_job(c, &spec, progress, Default::default())
                .await
                .unwrap()
        })
    };
    // stop the server as soon as the run is under way, for 10 s
    while progress.snapshot().chunks_new == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let w = tokio::task::spawn_blocking(move || {
        let mut w = w;
        w.stop();
        std::thread::sleep(Duration::from_secs(10));
        w.restart();
        w
    })
    .await
    .unwrap();
    let r = job.await.unwrap();
    assert_eq!(r.status, JobStatus::Succeeded, "{:?}", r.error);
    assert_eq!(r.stats.files_done, 120);
    assert!(
        r.stats.upload_retries > 0,
        "the outage was felt: {:?}",
        r.stats
    );
    assert!(
        r.elapsed >= Duration::from_secs(9),
        "the run waited for the server"
    );
    let v = maintenance::verify(&h.pipeline.catalog, h.pipeline.store.clone())
        .await
        .unwrap();
    assert!(v.ok(), "{v:?}");
    assert_same_tree(&src, &h.restore(None).await);
    drop(w);
}
