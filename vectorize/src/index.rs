//! The in-memory index of the catalog vector store: every stored passage vector,
//! quantized to 8 bits with a per-vector scale (384 bytes for a 384-d vector), scanned
//! exhaustively with SIMD integer dot products. The best candidates are then re-ranked
//! on their full-precision vectors from the catalog, so the order of the final hits is
//! exact; quantization only decides which few hundred candidates get re-ranked.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// A stored vector's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub item_id: i64,
    pub version_id: i64,
    pub connector: u16,
    live: bool,
}

#[derive(Debug, Default)]
pub struct VectorIndex {
    dim: usize,
    entries: Vec<Entry>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    connectors: Vec<String>,
    by_version: HashMap<i64, Vec<usize>>,
    by_id: HashMap<i64, usize>,
    dead: usize,
}

fn quantize(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    out.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

#[derive(PartialEq)]
struct Scored(f32, usize);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    // Reversed: a BinaryHeap of these is a min-heap on the score.
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

impl VectorIndex {
    pub fn new(dim: usize) -> VectorIndex {
        VectorIndex {
            dim,
            ..Default::default()
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.entries.len() - self.dead
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the vectors.
    pub fn memory_bytes(&self) -> usize {
        self.codes.capacity()
            + self.scales.capacity() * 4
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.by_id.capacity() * 16
    }

    pub fn connector_id(&mut self, name: &str) -> u16 {
        match self.connectors.iter().position(|c| c == name) {
            Some(i) => i as u16,
            None => {
                self.connectors.push(name.to_string());
                (self.connectors.len() - 1) as u16
            }
        }
    }

    fn find_connector(&self, name: &str) -> Option<u16> {
        self.connectors
            .iter()
            .position(|c| c == name)
            .map(|i| i as u16)
    }

    /// Adds a vector (replacing one with the same id). Vectors of another dimension are
    /// refused.
    pub fn insert(&mut self, id: i64, item_id: i64, version_id: i64, connector: &str, v: &[f32]) {
        if v.len() != self.dim {
            return;
        }
        if let Some(&old) = self.by_id.get(&id)
            && self.entries[old].live
        {
            self.entries[old].live = false;
            self.dead += 1;
        }
        self.by_id.insert(id, self.entries.len());
        let connector = self.connector_id(connector);
        let scale = quantize(v, &mut self.codes);
        self.scales.push(scale);
        self.by_version
            .entry(version_id)
            .or_default()
            .push(self.entries.len());
        self.entries.push(Entry {
            id,
            item_id,
            version_id,
            connector,
            live: true,
        });
    }

    /// Forgets the vectors of a version; returns how many.
    pub fn remove_version(&mut self, version_id: i64) -> usize {
        let Some(rows) = self.by_version.remove(&version_id) else {
            return 0;
        };
        for &r in &rows {
            if self.entries[r].live {
                self.entries[r].live = false;
                self.dead += 1;
                self.by_id.remove(&self.entries[r].id);
            }
        }
        if self.dead > 1024 && self.dead * 4 > self.entries.len() {
            self.compact();
        }
        rows.len()
    }

    fn compact(&mut self) {
        let dim = self.dim;
        let mut codes = Vec::with_capacity(self.len() * dim);
        let mut scales = Vec::with_capacity(self.len());
        let mut entries = Vec::with_capacity(self.len());
        let mut by_version: HashMap<i64, Vec<usize>> = HashMap::new();
        let mut by_id = HashMap::with_capacity(self.len());
        for (r, e) in self.entries.iter().enumerate() {
            if !e.live {
                continue;
            }
            codes.extend_from_slice(&self.codes[r * dim..(r + 1) * dim]);
            scales.push(self.scales[r]);
            by_version
                .entry(e.version_id)
                .or_default()
                .push(entries.len());
            by_id.insert(e.id, entries.len());
            entries.push(*e);
        }
        self.codes = codes;
        self.scales = scales;
        self.entries = entries;
        self.by_version = by_version;
        self.by_id = by_id;
        self.dead = 0;
    }

    /// The `n` live vectors with the highest approximate dot product with `query`,
    /// best first, among those of `connector` (if given) and whose item passes
    /// `item_filter`.
    pub fn candidates(
        &self,
        query: &[f32],
        n: usize,
        connector: Option<&str>,
        item_filter: Option<&dyn Fn(i64) -> bool>,
    ) -> Vec<(i64, f32)> {
        if query.len() != self.dim || n == 0 {
            return Vec::new();
        }
        let want_connector = match connector {
            Some(c) => match self.find_connector(c) {
                Some(id) => Some(id),
                None => return Vec::new(),
            },
            None => None,
        };
        let mut q = Vec::with_capacity(self.dim);
        let qscale = quantize(query, &mut q);
        let dot = dot_fn();
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(n + 1);
        for (r, e) in self.entries.iter().enumerate() {
            if !e.live || want_connector.is_some_and(|c| c != e.connector) {
                continue;
            }
            if let Some(f) = item_filter
                && !f(e.item_id)
            {
                continue;
            }
            let code = &self.codes[r * self.dim..(r + 1) * self.dim];
            let s = dot(&q, code) as f32 * self.scales[r] * qscale;
            if heap.len() < n {
                heap.push(Scored(s, r));
            } else if heap.peek().is_some_and(|m| s > m.0) {
                heap.pop();
                heap.push(Scored(s, r));
            }
        }
        let mut out: Vec<(i64, f32)> = heap
            .into_iter()
            .map(|Scored(s, r)| (self.entries[r].id, s))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

type DotFn = fn(&[i8], &[i8]) -> i32;

fn dot_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(x, y)| *x as i32 * *y as i32).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2_inner(a: &[i8], b: &[i8]) -> i32 {
    // The same loop; with AVX2 enabled LLVM vectorizes it 32 lanes wide.
    a.iter()
        .zip(b)
        .map(|(x, y)| *x as i16 as i32 * *y as i16 as i32)
        .sum()
}

#[cfg(target_arch = "x86_64")]
fn dot_avx2(a: &[i8], b: &[i8]) -> i32 {
    // SAFETY: only selected by `dot_fn` after AVX2 was detected at run time.
    #[allow(unsafe_code)]
    unsafe {
        dot_avx2_inner(a, b)
    }
}

fn dot_fn() -> DotFn {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        return dot_avx2;
    }
    dot_portable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn rng(seed: &mut u64) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % 10_000) as f32 / 5_000.0 - 1.0
    }

    #[test]
    fn finds_the_nearest_vectors_and_forgets_removed_versions() {
        let mut seed = 42u64;
        let mut idx = VectorIndex::new(64);
        let mut all = Vec::new();
        for i in 0..2000i64 {
            let v = unit((0..64).map(|_| rng(&mut seed)).collect());
            idx.insert(i, i / 10, i / 10, if i % 2 == 0 { "a" } else { "b" }, &v);
            all.push(v);
        }
        let q = all[777].clone();
        let c = idx.candidates(&q, 5, None, None);
        assert_eq!(c[0].0, 777);
        // Exact top-10 is within the top-50 candidates.
        let mut exact: Vec<(i64, f32)> = all
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.iter().zip(&q).map(|(a, b)| a * b).sum()))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let cand: Vec<i64> = idx
            .candidates(&q, 50, None, None)
            .iter()
            .map(|x| x.0)
            .collect();
        for (id, _) in &exact[..10] {
            assert!(cand.contains(id), "{id} missing");
        }
        // Connector filter.
        assert!(
            idx.candidates(&q, 5, Some("a"), None)
                .iter()
                .all(|x| x.0 % 2 == 0)
        );
        assert!(idx.candidates(&q, 5, Some("zzz"), None).is_empty());
        // Item filter.
        let f = |item: i64| item == 3;
        let only: Vec<i64> = idx
            .candidates(&q, 50, None, Some(&f))
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(only.len(), 10);
        assert!(only.iter().all(|id| id / 10 == 3));
        // Removing a version removes its vectors, compaction keeps the rest.
        assert_eq!(idx.remove_version(77), 10);
        assert!(
            idx.candidates(&q, 5, None, None)
                .iter()
                .all(|x| x.0 / 10 != 77)
        );
        for v in 0..150 {
            idx.remove_version(v);
        }
        assert_eq!(idx.len(), 500);
        assert_eq!(idx.candidates(&all[1999], 1, None, None)[0].0, 1999);
    }

    #[test]
    fn simd_and_portable_dot_products_agree() {
        let a: Vec<i8> = (0..384).map(|i| ((i * 37) % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..384).map(|i| ((i * 91) % 255 - 127) as i8).collect();
        assert_eq!(dot_fn()(&a, &b), dot_portable(&a, &b));
    }
}
