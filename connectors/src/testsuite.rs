//! The conformance suite every [`Connector`] passes (feature `testsuite`).
//!
//! A [`Fixture`] owns a source and the connector reading it; the suite changes the
//! source through the fixture and checks what the connector reports.

use std::collections::BTreeMap;
use std::io::Read;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{Change, Connector, Entry, ListMode};

#[async_trait]
pub trait Fixture: Send + Sync {
    fn connector(&self) -> &dyn Connector;
    async fn write(&self, rel: &[u8], data: &[u8]);
    async fn remove(&self, rel: &[u8]);
    /// Whether names that are not UTF-8 can exist in this source.
    fn supports_non_utf8(&self) -> bool;
    /// The relative path the connector lists a file written at `rel` under (SharePoint
    /// puts the library's name first).
    fn listed_as(&self, rel: &[u8]) -> Vec<u8> {
        rel.to_vec()
    }
}

async fn list(c: &dyn Connector) -> BTreeMap<Vec<u8>, Entry> {
    let (tx, mut rx) = mpsc::channel(16);
    let (outcome, changes) = tokio::join!(c.list(ListMode::Full, None, tx), async {
        let mut v = Vec::new();
        while let Some(batch) = rx.recv().await {
            v.extend(batch);
        }
        v
    });
    assert!(
        outcome.expect("listing succeeds").complete,
        "listing is complete"
    );
    changes
        .into_iter()
        .filter_map(|c| match c {
            Change::Upsert(e) => Some((e.rel_path.clone(), e)),
            _ => None,
        })
        .collect()
}

async fn read_all(c: &dyn Connector, e: &Entry) -> Vec<u8> {
    let mut f = c.open(e).await.expect("open");
    tokio::task::spawn_blocking(move || {
        let mut v = Vec::new();
        f.read_to_end(&mut v).expect("read");
        v
    })
    .await
    .unwrap()
}

pub async fn run(fx: &dyn Fixture) {
    let c = fx.connector();
    c.check().await.expect("check passes");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut expected: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"a.txt".to_vec(), b"alpha".to_vec()),
        (b"empty".to_vec(), Vec::new()),
        (b"dir/sub/deep.bin".to_vec(), big.clone()),
        ("dir/Ünïcödé ✓.md".as_bytes().to_vec(), b"u".to_vec()),
    ];
    if fx.supports_non_utf8() {
        expected.push((b"dir/caf\xe9.txt".to_vec(), b"latin1".to_vec()));
    }
    for (rel, data) in &expected {
        fx.write(rel, data).await;
    }
    let listed = list(c).await;
    assert_eq!(
        listed.keys().cloned().collect::<Vec<_>>(),
        {
            let mut k: Vec<_> = expected.iter().map(|(r, _)| fx.listed_as(r)).collect();
            k.sort();
            k
        },
        "listing names every file exactly"
    );
    for (rel, data) in &expected {
        let e = &listed[&fx.listed_as(rel)];
        assert_eq!(
            e.size,
            data.len() as u64,
            "size of {}",
            String::from_utf8_lossy(rel)
        );
        assert_eq!(
            &read_all(c, e).await,
            data,
            "content of {}",
            String::from_utf8_lossy(rel)
        );
        assert_eq!(
            c.stat(&e.source_id).await.unwrap().as_ref(),
            Some(e),
            "stat agrees with the listing"
        );
    }

    // a change shows in size or mtime; a delete disappears; stat of it is None
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    fx.write(b"a.txt", b"alpha, longer").await;
    fx.remove(b"empty").await;
    let after = list(c).await;
    let a_txt = fx.listed_as(b"a.txt");
    let a = &after[&a_txt];
    assert!(
        a.fingerprint() != listed[&a_txt].fingerprint(),
        "a changed file has a new fingerprint"
    );
    assert_eq!(read_all(c, a).await, b"alpha, longer");
    // opened with the entry listed before the change, the state after the read is the
    // new one: the pipeline sees that the file is not what the listing said, and the
    // changed bytes are never passed off under the old state
    let mut f = c.open(&listed[&a_txt]).await.expect("open");
    let read = tokio::task::spawn_blocking(move || {
        let mut v = Vec::new();
        f.read_to_end(&mut v)?;
        Ok::<_, std::io::Error>((v, f.fingerprint()?))
    })
    .await
    .unwrap();
    let (data, end) = read.expect("read");
    assert_eq!(data, b"alpha, longer");
    assert_eq!(
        end,
        a.fingerprint(),
        "the state after a read is the file's own"
    );
    assert!(
        !after.contains_key(&fx.listed_as(b"empty")),
        "a removed file is not listed"
    );
    let gone = &listed[&fx.listed_as(b"empty")];
    assert!(c.stat(&gone.source_id).await.unwrap().is_none());
    assert!(c.open(gone).await.is_err(), "opening a vanished file fails");
    // unchanged files keep their fingerprint
    let deep = fx.listed_as(b"dir/sub/deep.bin");
    assert_eq!(after[&deep].fingerprint(), listed[&deep].fingerprint());
}
