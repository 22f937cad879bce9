//! The shared suite of the vector stores: the in-memory index and pgvector on a real
//! PostgreSQL with the pgvector extension (testkit starts one on loopback).

use std::collections::HashSet;

use tributary_catalog::pgvector::StoredVector;
use tributary_vectorize::{MemoryStore, PgStore, VectorStore};

const DIM: usize = 32;

fn vector(seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..DIM)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn row(id: i64, item: i64, connector: &str) -> StoredVector {
    StoredVector {
        id,
        item_id: item,
        version_id: item * 100,
        connector: connector.into(),
        embedding: vector(id as u64),
    }
}

async fn suite(store: &dyn VectorStore) {
    let catalog_dir = tempfile::tempdir().unwrap();
    let catalog = tributary_catalog::Catalog::open_sqlite(&catalog_dir.path().join("c.db"))
        .await
        .unwrap();
    // An empty catalog syncs to an empty store.
    assert_eq!(store.sync(&catalog, DIM).await.unwrap(), 0);
    let rows: Vec<StoredVector> = (1..=60)
        .map(|id| {
            row(
                id,
                (id - 1) / 10 + 1,
                if id % 2 == 0 { "even" } else { "odd" },
            )
        })
        .collect();
    store.add(rows).await.unwrap();
    assert_eq!(store.size().await.0, 60);
    // The nearest vector to a stored one is itself, with similarity ~1.
    let c = store.candidates(&vector(17), 5, None, None).await.unwrap();
    assert_eq!(c[0].0, 17);
    assert!(c[0].1 > 0.95, "{c:?}");
    assert!(c.windows(2).all(|w| w[0].1 >= w[1].1), "best first: {c:?}");
    // Filters: connector, items.
    let c = store
        .candidates(&vector(17), 10, Some("even"), None)
        .await
        .unwrap();
    assert!(
        !c.is_empty() && c.iter().all(|(id, _)| id % 2 == 0),
        "{c:?}"
    );
    let items: HashSet<i64> = [3].into_iter().collect();
    let c = store
        .candidates(&vector(17), 20, None, Some(&items))
        .await
        .unwrap();
    let ids: Vec<i64> = c.iter().map(|x| x.0).collect();
    assert_eq!(ids.len(), 10, "{ids:?}");
    assert!(ids.iter().all(|id| (21..=30).contains(id)), "{ids:?}");
    assert!(
        store
            .candidates(&vector(17), 5, Some("nope"), None)
            .await
            .unwrap()
            .is_empty()
    );
    // Removing a version (item 2 = ids 11..=20) removes its vectors.
    store.remove_versions(&[200]).await.unwrap();
    assert_eq!(store.size().await.0, 50);
    let c = store.candidates(&vector(15), 60, None, None).await.unwrap();
    assert!(c.iter().all(|(id, _)| !(11..=20).contains(id)));
    // Re-adding an id replaces it.
    store.add(vec![row(5, 1, "odd")]).await.unwrap();
    assert_eq!(store.size().await.0, 50);
    // Clear empties it.
    store.clear().await.unwrap();
    assert!(
        store
            .candidates(&vector(17), 5, None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn memory_store() {
    suite(&MemoryStore::default()).await;
}

#[tokio::test]
async fn pgvector_store_on_a_real_postgresql() {
    let url = tributary_testkit::postgres::shared().database();
    let store = PgStore::connect(&url, "tributary_passages").await.unwrap();
    suite(&store).await;
    // The table is made for the dimension and searched through its HNSW index.
    store.add(vec![row(1, 1, "odd")]).await.unwrap();
    assert_eq!(store.inner().dim().await.unwrap(), Some(DIM));
    assert!(store.inner().uses_index(DIM).await.unwrap());
    // Another dimension is refused with a message that names the way out.
    let catalog_dir = tempfile::tempdir().unwrap();
    let catalog = tributary_catalog::Catalog::open_sqlite(&catalog_dir.path().join("c.db"))
        .await
        .unwrap();
    let e = store.sync(&catalog, DIM * 2).await.unwrap_err().to_string();
    assert!(e.contains("tributary reindex"), "{e}");
    // Bad table names and unreachable servers are clear errors.
    let e = PgStore::connect(&url, "bad-name")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("bad-name"), "{e}");
    let e = PgStore::connect("postgres://postgres:hunter2@127.0.0.1:1/x", "t")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("127.0.0.1:1"), "{e}");
    assert!(!e.contains("hunter2"), "the password leaked: {e}");
}
