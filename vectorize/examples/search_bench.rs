//! Search latency and recall of the catalog vector store at scale, on synthetic
//! clustered unit vectors (2000 centres, each point at cosine ~0.7 to its centre; uniform
//! random vectors would make every distance equal and say nothing).
//!
//!     cargo run --release -p tributary-vectorize --example search_bench -- 100000 [dir]
//!
//! Loads N passages into a real catalog (SQLite file in `dir`, default a temp dir), builds
//! the in-memory index from it as the daemon does, then runs 200 queries through the
//! same steps as a search (int8 scan for candidates, exact re-rank on the stored f32
//! vectors) and reports p50/p95/max latency and recall@10 against exact search.

use std::time::Instant;

use tributary_catalog::Catalog;
use tributary_catalog::vectors::{IndexTask, NewPassage};
use tributary_vectorize::VectorIndex;

const DIM: usize = 384;
const CENTRES: usize = 2000;
const QUERIES: usize = 200;
const K: usize = 10;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Roughly normal (sum of uniforms).
    fn gauss(&mut self) -> f32 {
        (0..4)
            .map(|_| (self.next() % 1_000_000) as f32 / 1e6)
            .sum::<f32>()
            - 2.0
    }
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn point(rng: &mut Rng, centre: &[f32]) -> Vec<f32> {
    // centre + noise with |noise| ≈ |centre|: cosine to the centre ≈ 0.7
    let noise = unit((0..DIM).map(|_| rng.gauss()).collect());
    unit(centre.iter().zip(&noise).map(|(c, n)| c + n).collect())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let centres: Vec<Vec<f32>> = (0..CENTRES)
        .map(|_| unit((0..DIM).map(|_| rng.gauss()).collect()))
        .collect();

    let db = dir.join("bench.db");
    let catalog = Catalog::open_sqlite(&db).await.unwrap();
    // The items and versions the passages belong to, written directly (the bench does
    // not ingest files); passages then go through the daemon's own write path.
    let items = n.div_ceil(50) as i64;
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
        for i in 1..=items {
            sqlx::query("INSERT INTO items (id, connector, source_id, path, current_version) VALUES ($1, 'bench', $2, $2, $1)")
                .bind(i)
                .bind(format!("/bench/{i}").into_bytes())
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO versions (id, item_id, deleted, size, mtime_ns, committed_at) VALUES ($1, $1, 0, 0, 0, 0)")
                .bind(i)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let t = Instant::now();
    let mut all: Vec<Vec<f32>> = Vec::with_capacity(n);
    let per_item = 50;
    let mut item = 0i64;
    while all.len() < n {
        let batch: Vec<NewPassage> = (0..per_item.min(n - all.len()))
            .map(|_| {
                let c = &centres[(rng.next() % CENTRES as u64) as usize];
                NewPassage {
                    location: None,
                    text: String::new(),
                    embedding: point(&mut rng, c),
                }
            })
            .collect();
        item += 1;
        let task = IndexTask {
            item_id: item,
            version_id: item,
            connector: "bench".into(),
            path: format!("/bench/{item}").into_bytes(),
            size: 0,
            digest: None,
            attempts: 0,
        };
        catalog
            .store_passages(&task, "text", &batch, None)
            .await
            .unwrap()
            .expect("current");
        all.extend(batch.into_iter().map(|p| p.embedding));
    }
    let insert = t.elapsed();

    let t = Instant::now();
    let mut index = VectorIndex::new(DIM);
    let mut after = 0;
    loop {
        let page = catalog.passage_vectors(after, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        for p in &page {
            index.insert(p.id, p.item_id, p.version_id, &p.connector, &p.embedding);
        }
    }
    let load = t.elapsed();
    assert_eq!(index.len(), n);

    let mut lat = Vec::with_capacity(QUERIES);
    let mut recall = 0.0;
    for _ in 0..QUERIES {
        let c = &centres[(rng.next() % CENTRES as u64) as usize];
        let q = point(&mut rng, c);
        let t = Instant::now();
        let cand = index.candidates(&q, (K * 8).max(64), None, None);
        let ids: Vec<i64> = cand.iter().map(|c| c.0).collect();
        let mut exact: Vec<(i64, f32)> = catalog
            .passage_embeddings(&ids)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, v)| (id, v.iter().zip(&q).map(|(a, b)| a * b).sum()))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got: Vec<i64> = exact.iter().take(K).map(|x| x.0).collect();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        // Truth: exact top-10 over everything (ids are 1-based insertion order).
        let mut truth: Vec<(usize, f32)> = all
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(&q).map(|(a, b)| a * b).sum()))
            .collect();
        truth.select_nth_unstable_by(K, |a, b| b.1.total_cmp(&a.1));
        let hit = truth[..K]
            .iter()
            .filter(|(i, _)| got.contains(&(*i as i64 + 1)))
            .count();
        recall += hit as f64 / K as f64;
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "passages={n} dim={DIM} insert={:.1}s load={:.1}s index_mem={}MiB p50={:.1}ms p95={:.1}ms max={:.1}ms recall@10={:.3}",
        insert.as_secs_f64(),
        load.as_secs_f64(),
        index.memory_bytes() >> 20,
        pct(0.5),
        pct(0.95),
        lat[lat.len() - 1],
        recall / QUERIES as f64
    );
}
