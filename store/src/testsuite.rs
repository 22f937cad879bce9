//! The conformance suite every [`ObjectStore`] must pass (feature `testsuite`).
//!
//! It works inside `prefix`, so one bucket or directory can host several runs.

use bytes::Bytes;
use futures::StreamExt;

use crate::{ErrorClass, ObjectStore, PutMode};

/// Runs every check; panics with a message naming the failed one.
pub async fn run(store: &dyn ObjectStore, prefix: &str) {
    store.check().await.expect("check passes on a usable store");

    // put / get round trip, binary and empty bodies, a multi-MiB body
    let big: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for (name, body) in [
        ("bin", Bytes::from_static(&[0, 1, 2, 255, 254])),
        ("empty", Bytes::new()),
        ("big", Bytes::from(big)),
    ] {
        let key = format!("{prefix}rt/{name}");
        store
            .put(&key, body.clone(), PutMode::Overwrite)
            .await
            .expect("put");
        assert_eq!(
            store.get(&key).await.expect("get"),
            body,
            "round trip of {name}"
        );
        let meta = store
            .head(&key)
            .await
            .expect("head")
            .expect("head finds the object");
        assert_eq!(meta.size, body.len() as u64, "head size of {name}");
        assert!(meta.modified_ns > 0, "head reports a modification time");
    }

    // ranged reads: inside, at the end, empty; past the end is an error, never less
    let key = format!("{prefix}rt/big");
    let whole = store.get(&key).await.unwrap();
    for (start, len) in [
        (0u64, 10u64),
        (1_000_003, 70_000),
        (whole.len() as u64 - 5, 5),
    ] {
        let got = store.get_range(&key, start, len).await.expect("get_range");
        assert_eq!(
            got,
            whole.slice(start as usize..(start + len) as usize),
            "range {start}+{len}"
        );
    }
    assert!(store.get_range(&key, 7, 0).await.unwrap().is_empty());
    for (start, len) in [(whole.len() as u64 - 5, 6), (whole.len() as u64 + 10, 1)] {
        let e = store
            .get_range(&key, start, len)
            .await
            .expect_err("a range past the end");
        assert_eq!(e.class, ErrorClass::Permanent, "range {start}+{len}: {e}");
    }
    let e = store
        .get_range(&format!("{prefix}rt/absent"), 0, 1)
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::NotFound, "{e}");

    // overwrite replaces
    let key = format!("{prefix}ow/x");
    store
        .put(&key, Bytes::from_static(b"one"), PutMode::Overwrite)
        .await
        .unwrap();
    store
        .put(&key, Bytes::from_static(b"two"), PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"two"));

    // conditional put refuses to overwrite and keeps the first bytes
    let key = format!("{prefix}cond/x");
    store
        .put(&key, Bytes::from_static(b"first"), PutMode::IfAbsent)
        .await
        .expect("first conditional put");
    let err = store
        .put(&key, Bytes::from_static(b"second"), PutMode::IfAbsent)
        .await
        .expect_err("second conditional put must fail");
    assert_eq!(err.class, ErrorClass::AlreadyExists, "{err}");
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"first"));

    // missing keys
    let missing = format!("{prefix}nope/missing");
    assert!(store.head(&missing).await.unwrap().is_none());
    let err = store
        .get(&missing)
        .await
        .expect_err("get of a missing key fails");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    store
        .delete(&missing)
        .await
        .expect("deleting a missing key is fine");

    // list: prefix filtering, order, more than one page on S3 (1000 keys per page)
    let lp = format!("{prefix}list/");
    let n = 1005;
    let puts = futures::stream::iter(0..n).map(|i| {
        let key = format!("{lp}{:02x}/k{i:05}", i % 7);
        async move {
            store
                .put(&key, Bytes::from(vec![1u8; i % 3]), PutMode::Overwrite)
                .await
        }
    });
    let results: Vec<_> = puts.buffer_unordered(32).collect().await;
    assert!(
        results.iter().all(|r| r.is_ok()),
        "every put for list succeeds"
    );
    store
        .put(
            &format!("{prefix}listx"),
            Bytes::from_static(b"x"),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    let listed = store.list(&lp).await.expect("list");
    assert_eq!(
        listed.len(),
        n,
        "list returns every key under the prefix, and nothing else"
    );
    let mut sorted = listed.clone();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(listed, sorted, "list is in key order");
    assert!(listed.iter().all(|m| m.key.starts_with(&lp)));
    let sub = store.list(&format!("{lp}03/")).await.unwrap();
    assert_eq!(sub.len(), (0..n).filter(|i| i % 7 == 3).count());
    assert_eq!(
        store.list(&format!("{prefix}list/zz")).await.unwrap().len(),
        0
    );

    // delete
    let key = format!("{prefix}del/x");
    store
        .put(&key, Bytes::from_static(b"x"), PutMode::Overwrite)
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    assert!(store.head(&key).await.unwrap().is_none());
}
