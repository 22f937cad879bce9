//! Both object stores pass the shared suite; the S3 store against a real SeaweedFS.

use std::time::Duration;

use tributary_store::local::LocalStore;
use tributary_store::s3::{S3Settings, S3Store};
use tributary_store::{ErrorClass, ObjectStore, testsuite};
use tributary_testkit::weed::{self, Weed};

#[tokio::test]
async fn local_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("objects")).unwrap();
    testsuite::run(&store, "suite/").await;
}

fn settings(w: &Weed, bucket: &str, key: &str, secret: &str) -> S3Settings {
    S3Settings {
        endpoint: Some(w.endpoint()),
        bucket: bucket.into(),
        prefix: "t/".into(),
        region: "us-east-1".into(),
        path_style: true,
        credentials: Some((key.into(), secret.into())),
        sse: None,
        request_timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_conforms_and_reports_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let w = Weed::start(dir.path());
    let store = S3Store::new(settings(
        &w,
        weed::BUCKET,
        weed::ACCESS_KEY,
        weed::SECRET_KEY,
    ))
    .await;
    testsuite::run(&store, "suite/").await;

    // a missing bucket
    let missing = S3Store::new(settings(
        &w,
        "no-such-bucket",
        weed::ACCESS_KEY,
        weed::SECRET_KEY,
    ))
    .await;
    let e = missing
        .check()
        .await
        .expect_err("missing bucket fails the check");
    assert_eq!(e.class, ErrorClass::NotFound, "{e}");
    assert!(
        e.message.contains("bucket `no-such-bucket` does not exist"),
        "{e}"
    );

    // wrong credentials: an auth error that never shows the secret
    let bad = S3Store::new(settings(
        &w,
        weed::BUCKET,
        weed::ACCESS_KEY,
        "wrong-secret-value",
    ))
    .await;
    let e = bad
        .put(
            "x",
            bytes::Bytes::from_static(b"x"),
            tributary_store::PutMode::Overwrite,
        )
        .await
        .expect_err("bad secret is rejected");
    assert_eq!(e.class, ErrorClass::Auth, "{e}");
    assert!(
        !e.message.contains("wrong-secret-value"),
        "the secret never appears: {e}"
    );

    // an unreachable endpoint is transient (retried by callers), with a clear message
    let mut s = settings(&w, weed::BUCKET, weed::ACCESS_KEY, weed::SECRET_KEY);
    s.endpoint = Some("http://127.0.0.1:9".into());
    let down = S3Store::new(s).await;
    let e = down.check().await.expect_err("nothing listens on port 9");
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
    assert!(e.message.contains("unreachable"), "{e}");
}
