//! The embedded sentence-embedding model: a BERT encoder (all-MiniLM-L6-v2 and its
//! kin) evaluated in-process on the CPU, straight from the `model.safetensors`,
//! `config.json` and `tokenizer.json` that the model's distribution ships.
//!
//! The forward pass is the one sentence-transformers runs: word + position + token-type
//! embeddings and LayerNorm, then per layer self-attention (no padding: every sequence
//! attends only to itself), residual and LayerNorm, a GELU (erf) feed-forward, residual
//! and LayerNorm; then the mean of the token states and L2 normalisation. Every matrix
//! product runs through our own kernel (`gemm`: AVX2 + FMA when the CPU has them, a
//! portable one otherwise) over weights packed once at load time, and the element-wise
//! loops are compiled for AVX2 as well. Sequences of a batch are concatenated row-wise
//! so that the dense layers run as a few large products, and batches are split across
//! threads.
//!
//! Why not a general runtime: see ARCHITECTURE.md §8 (exact parity with the reference,
//! no C++ library or ONNX file to ship, a small build on 2 cores).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory {dir}: {message}")]
    Load { dir: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenize(String),
}

#[derive(Debug, Deserialize)]
struct BertConfig {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f32,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    model_type: Option<String>,
}

fn default_eps() -> f32 {
    1e-12
}

mod gemm;
use gemm::Packed;

struct Layer {
    /// Query, key and value projections as one product (`[3h × h]`).
    qkv_w: Packed,
    qkv_b: Vec<f32>,
    o_w: Packed,
    o_b: Vec<f32>,
    ln1_w: Vec<f32>,
    ln1_b: Vec<f32>,
    i_w: Packed,
    i_b: Vec<f32>,
    out_w: Packed,
    out_b: Vec<f32>,
    ln2_w: Vec<f32>,
    ln2_b: Vec<f32>,
}

/// A loaded model. Cheap to share (`&self` everywhere); thread-safe.
pub struct Model {
    cfg: BertConfig,
    name: String,
    fingerprint: String,
    /// Sizer: no padding, no truncation, no special tokens added by callers.
    sizer: Tokenizer,
    /// Embedding tokenizer: truncation at `max_tokens`, no padding.
    tokenizer: Tokenizer,
    max_tokens: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_ln_w: Vec<f32>,
    emb_ln_b: Vec<f32>,
    layers: Vec<Layer>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("dim", &self.cfg.hidden_size)
            .field("layers", &self.cfg.num_hidden_layers)
            .finish()
    }
}

/// The sequence length sentence-transformers truncates all-MiniLM-L6-v2 at
/// (`sentence_bert_config.json`), used when the directory does not say.
const DEFAULT_MAX_TOKENS: usize = 256;

/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The [`MODEL_FILES`] that `dir` lacks (all of them when it does not exist).
pub fn missing_files(dir: &Path) -> Vec<&'static str> {
    MODEL_FILES
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect()
}

impl Model {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Model, ModelError> {
        let err = |message: String| ModelError::Load {
            dir: dir.to_path_buf(),
            message,
        };
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| err(format!("cannot read {name}: {e}")))
        };
        let cfg: BertConfig = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| err(format!("config.json: {e}")))?;
        if cfg.model_type.as_deref().is_some_and(|t| t != "bert") {
            return Err(err(format!(
                "config.json: model_type {:?} is not supported (only BERT encoders are)",
                cfg.model_type.as_deref().unwrap_or("")
            )));
        }
        if cfg.hidden_act.as_deref().is_some_and(|a| a != "gelu") {
            return Err(err(
                "config.json: only hidden_act \"gelu\" is supported".into()
            ));
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err(err(
                "config.json: hidden_size is not a multiple of the heads".into(),
            ));
        }
        let max_tokens = std::fs::read(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("max_seq_length")?.as_u64())
            .map(|n| n as usize)
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .min(cfg.max_position_embeddings);

        let tok_path = dir.join("tokenizer.json");
        let mut sizer =
            Tokenizer::from_file(&tok_path).map_err(|e| err(format!("tokenizer.json: {e}")))?;
        // The shipped file pads and truncates to 128: wrong for both uses.
        sizer.with_padding(None);
        sizer
            .with_truncation(None)
            .map_err(|e| err(format!("tokenizer.json: {e}")))?;
        let mut tokenizer = sizer.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| err(format!("tokenizer.json: {e}")))?;

        let weights_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights_path)
            .map_err(|e| err(format!("cannot read model.safetensors: {e}")))?;
        let mut tensors =
            SafeTensors::parse(&bytes).map_err(|m| err(format!("model.safetensors: {m}")))?;
        let fingerprint = format!("{}", blake3::hash(&bytes).to_hex());
        let h = cfg.hidden_size;
        let i = cfg.intermediate_size;
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, ModelError> {
            tensors
                .take(name, shape)
                .map_err(|m| err(format!("model.safetensors: {m}")))
        };
        let word_rows = {
            let t = tensors_len(&bytes, "embeddings.word_embeddings.weight")
                .map_err(|m| err(format!("model.safetensors: {m}")))?;
            t / h
        };
        let word = take("embeddings.word_embeddings.weight", &[word_rows, h])?;
        let position = take(
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings, h],
        )?;
        let token_type = take("embeddings.token_type_embeddings.weight", &[0, h])?;
        let emb_ln_w = take("embeddings.LayerNorm.weight", &[h])?;
        let emb_ln_b = take("embeddings.LayerNorm.bias", &[h])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for n in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{n}.");
            let mut t = |s: &str, shape: &[usize]| take(&format!("{p}{s}"), shape);
            let q_w = t("attention.self.query.weight", &[h, h])?;
            let k_w = t("attention.self.key.weight", &[h, h])?;
            let v_w = t("attention.self.value.weight", &[h, h])?;
            let mut qkv_b = t("attention.self.query.bias", &[h])?;
            qkv_b.extend(t("attention.self.key.bias", &[h])?);
            qkv_b.extend(t("attention.self.value.bias", &[h])?);
            layers.push(Layer {
                qkv_w: Packed::new(&[&q_w, &k_w, &v_w], h),
                qkv_b,
                o_w: Packed::new(&[&t("attention.output.dense.weight", &[h, h])?], h),
                o_b: t("attention.output.dense.bias", &[h])?,
                ln1_w: t("attention.output.LayerNorm.weight", &[h])?,
                ln1_b: t("attention.output.LayerNorm.bias", &[h])?,
                i_w: Packed::new(&[&t("intermediate.dense.weight", &[i, h])?], h),
                i_b: t("intermediate.dense.bias", &[i])?,
                out_w: Packed::new(&[&t("output.dense.weight", &[h, i])?], i),
                out_b: t("output.dense.bias", &[h])?,
                ln2_w: t("output.LayerNorm.weight", &[h])?,
                ln2_b: t("output.LayerNorm.bias", &[h])?,
            });
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        Ok(Model {
            cfg,
            name,
            fingerprint,
            sizer,
            tokenizer,
            max_tokens,
            word,
            position,
            token_type,
            emb_ln_w,
            emb_ln_b,
            layers,
        })
    }

    /// Output dimension.
    pub fn dim(&self) -> usize {
        self.cfg.hidden_size
    }

    /// The directory name the model was loaded from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// BLAKE3 of the weights: vectors of two models are comparable only when equal.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Longest input in tokens (special tokens included); longer text is truncated.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Byte spans of the word pieces of `text` (no special tokens): the passage
    /// splitter's measure.
    pub fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>, ModelError> {
        let enc = self
            .sizer
            .encode(text, false)
            .map_err(|e| ModelError::Tokenize(e.to_string()))?;
        Ok(enc.get_offsets().to_vec())
    }

    /// Unit-length embeddings of `texts`, in order. Uses up to `threads` threads.
    pub fn embed(&self, texts: &[&str], threads: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut ids = Vec::with_capacity(texts.len());
        for t in texts {
            let enc = self
                .tokenizer
                .encode(*t, true)
                .map_err(|e| ModelError::Tokenize(e.to_string()))?;
            ids.push(enc.get_ids().to_vec());
        }
        let threads = threads.clamp(1, texts.len().max(1));
        if threads == 1 {
            return Ok(self.forward(&ids));
        }
        // Balance by tokens, keeping order.
        let total: usize = ids.iter().map(Vec::len).sum();
        let per = total.div_ceil(threads);
        let mut groups: Vec<&[Vec<u32>]> = Vec::new();
        let mut start = 0;
        let mut acc = 0;
        for (n, s) in ids.iter().enumerate() {
            acc += s.len();
            if acc >= per && groups.len() + 1 < threads {
                groups.push(&ids[start..=n]);
                start = n + 1;
                acc = 0;
            }
        }
        if start < ids.len() {
            groups.push(&ids[start..]);
        }
        let parts: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
            let handles: Vec<_> = groups
                .iter()
                .map(|g| s.spawn(move || self.forward(g)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("embedding thread panicked"))
                .collect()
        });
        Ok(parts.into_iter().flatten().collect())
    }

    fn forward(&self, seqs: &[Vec<u32>]) -> Vec<Vec<f32>> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            #[allow(unsafe_code)]
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { self.forward_avx2(seqs) };
        }
        self.forward_any(seqs)
    }

    /// The forward pass with the element-wise loops (LayerNorm, GELU, softmax,
    /// residuals) compiled for AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn forward_avx2(&self, seqs: &[Vec<u32>]) -> Vec<Vec<f32>> {
        self.forward_any(seqs)
    }

    #[inline(always)]
    fn forward_any(&self, seqs: &[Vec<u32>]) -> Vec<Vec<f32>> {
        let h = self.cfg.hidden_size;
        let inter = self.cfg.intermediate_size;
        let heads = self.cfg.num_attention_heads;
        let dh = h / heads;
        let rows: usize = seqs.iter().map(Vec::len).sum();
        if rows == 0 {
            return seqs.iter().map(|_| vec![0.0; h]).collect();
        }
        let vocab = self.word.len() / h;
        let mut x = vec![0f32; rows * h];
        let mut r = 0;
        for s in seqs {
            for (pos, &id) in s.iter().enumerate() {
                let id = (id as usize).min(vocab - 1);
                let row = &mut x[r * h..(r + 1) * h];
                let w = &self.word[id * h..(id + 1) * h];
                let p = &self.position[pos * h..(pos + 1) * h];
                let t = &self.token_type[..h];
                for j in 0..h {
                    row[j] = w[j] + p[j] + t[j];
                }
                r += 1;
            }
        }
        layer_norm(
            &mut x,
            h,
            &self.emb_ln_w,
            &self.emb_ln_b,
            self.cfg.layer_norm_eps,
        );

        let h3 = 3 * h;
        let mut qkv = vec![0f32; rows * h3];
        let mut ctx = vec![0f32; rows * h];
        let mut tmp = vec![0f32; rows * h];
        let mut mid = vec![0f32; rows * inter];
        let max_len = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut scores = vec![0f32; max_len * max_len];
        let scale = 1.0 / (dh as f32).sqrt();
        let (mut keys, mut values) = (Packed::empty(), Packed::empty());
        for l in &self.layers {
            gemm::linear(&x, rows, &l.qkv_w, &l.qkv_b, &mut qkv);
            let mut off = 0;
            for s in seqs {
                let n = s.len();
                for head in 0..heads {
                    let c = head * dh;
                    // scores = q_h · k_hᵀ, softmax(scale · scores) by row
                    keys.set_rows(dh, band(&qkv, off..off + n, h3, h + c, dh));
                    let sc = &mut scores[..n * n];
                    gemm::matmul(&qkv[off * h3 + c..], h3, n, &keys, None, sc, n);
                    for row in sc.chunks_exact_mut(n) {
                        softmax(row, scale);
                    }
                    // ctx_h = probabilities · v_h
                    values.set_cols(dh, band(&qkv, off..off + n, h3, 2 * h + c, dh));
                    gemm::matmul(sc, n, n, &values, None, &mut ctx[off * h + c..], h);
                }
                off += n;
            }
            gemm::linear(&ctx, rows, &l.o_w, &l.o_b, &mut tmp);
            for (t, xv) in tmp.iter_mut().zip(&x) {
                *t += *xv;
            }
            layer_norm(&mut tmp, h, &l.ln1_w, &l.ln1_b, self.cfg.layer_norm_eps);
            std::mem::swap(&mut x, &mut tmp);
            gemm::linear(&x, rows, &l.i_w, &l.i_b, &mut mid);
            mid.iter_mut().for_each(|m| *m = gelu(*m));
            gemm::linear(&mid, rows, &l.out_w, &l.out_b, &mut tmp);
            for (t, xv) in tmp.iter_mut().zip(&x) {
                *t += *xv;
            }
            layer_norm(&mut tmp, h, &l.ln2_w, &l.ln2_b, self.cfg.layer_norm_eps);
            std::mem::swap(&mut x, &mut tmp);
        }

        let mut out = Vec::with_capacity(seqs.len());
        let mut off = 0;
        for s in seqs {
            let n = s.len();
            let mut e = vec![0f32; h];
            for r in off..off + n {
                for (a, b) in e.iter_mut().zip(&x[r * h..(r + 1) * h]) {
                    *a += *b;
                }
            }
            let inv = 1.0 / n.max(1) as f32;
            e.iter_mut().for_each(|a| *a *= inv);
            let norm = e.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            e.iter_mut().for_each(|a| *a /= norm);
            out.push(e);
            off += n;
        }
        out
    }
}

/// Rows `rows` of a row-major matrix (stride `stride`), columns `base..base + width`.
#[inline(always)]
fn band(
    m: &[f32],
    rows: std::ops::Range<usize>,
    stride: usize,
    base: usize,
    width: usize,
) -> impl ExactSizeIterator<Item = &[f32]> {
    rows.map(move |r| &m[r * stride + base..r * stride + base + width])
}

#[inline(always)]
fn layer_norm(x: &mut [f32], h: usize, w: &[f32], b: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(h) {
        let mean = lanes(row, 0.0, |a, v| a + v, |a, b| a + b) / h as f32;
        let var = lanes(row, 0.0, |a, v| a + (v - mean) * (v - mean), |a, b| a + b) / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for j in 0..h {
            row[j] = (row[j] - mean) * inv * w[j] + b[j];
        }
    }
}

/// A reduction over 8 independent lanes (so that it vectorizes; a plain float fold is
/// one long dependency chain), then across the lanes.
#[inline(always)]
fn lanes(
    xs: &[f32],
    init: f32,
    step: impl Fn(f32, f32) -> f32,
    merge: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = step(*a, v);
        }
    }
    let mut out = acc.into_iter().fold(init, &merge);
    for &v in chunks.remainder() {
        out = step(out, v);
    }
    out
}

/// softmax(scale · row), in place.
#[inline(always)]
fn softmax(row: &mut [f32], scale: f32) {
    let max = lanes(row, f32::NEG_INFINITY, f32::max, f32::max);
    row.iter_mut()
        .for_each(|v| *v = exp_neg((*v - max) * scale));
    let sum = lanes(row, 0.0, |a, v| a + v, |a, b| a + b);
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// e^x for x ≤ 0 (softmax after subtracting the maximum), written so that the loop
/// vectorizes: x = n·ln2 + r with |r| ≤ ln2/2, a degree-6 polynomial for e^r, and
/// 2^n put into the exponent bits. Relative error below 3e-7 (checked by a test).
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    // ln 2 split in two so that n·ln2 is exact enough
    let r = (x - n * 0.693_145_75) - n * 1.428_606_8e-6;
    let mut p = 1.0 / 720.0_f32;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf(x) as a rational function of x (the approximation Eigen and XLA use for f32):
/// only multiplications, additions and one division, so the GELU loop vectorizes.
/// Absolute error below 5e-7 (4 ulp near 1) against libm's erff (checked by a test).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_474e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_erf_matches_libm() {
        let mut worst = 0f32;
        let mut x = -8.0f32;
        while x <= 8.0 {
            worst = worst.max((super::erf(x) - libm::erff(x)).abs());
            x += 0.0007;
        }
        assert!(worst < 5e-7, "max abs error {worst}");
    }

    #[test]
    fn fast_exp_matches_std() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let want = x.exp();
            worst = worst.max(((super::exp_neg(x) - want) / want).abs());
            x += 0.0011;
        }
        assert!(worst < 3e-7, "max relative error {worst}");
        assert_eq!(super::exp_neg(0.0), 1.0);
        assert!(super::exp_neg(-1000.0) < 1e-37);
    }
}

/// Byte count / 4 of an F32 tensor, from the header alone.
fn tensors_len(bytes: &[u8], name: &str) -> Result<usize, String> {
    let (header, _) = header(bytes)?;
    let t = header
        .get(name)
        .ok_or_else(|| format!("tensor {name} is missing"))?;
    Ok(t.shape.iter().product())
}

#[derive(Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

fn header(bytes: &[u8]) -> Result<(HashMap<String, TensorInfo>, usize), String> {
    if bytes.len() < 8 {
        return Err("file too short".into());
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let end = 8usize
        .checked_add(n)
        .filter(|e| *e <= bytes.len())
        .ok_or("header length beyond the file")?;
    let mut map: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..end]).map_err(|e| format!("header: {e}"))?;
    map.remove("__metadata__");
    let mut out = HashMap::new();
    for (k, v) in map {
        let info: TensorInfo = serde_json::from_value(v).map_err(|e| format!("{k}: {e}"))?;
        out.insert(k, info);
    }
    Ok((out, end))
}

/// The tensors of a `.safetensors` file (F32 only, which is what the model ships).
struct SafeTensors<'a> {
    bytes: &'a [u8],
    base: usize,
    infos: HashMap<String, TensorInfo>,
}

impl<'a> SafeTensors<'a> {
    fn parse(bytes: &'a [u8]) -> Result<SafeTensors<'a>, String> {
        let (infos, base) = header(bytes)?;
        Ok(SafeTensors { bytes, base, infos })
    }

    /// The tensor as f32s; a 0 in `shape` matches any size.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let t = self
            .infos
            .get(name)
            .ok_or_else(|| format!("tensor {name} is missing"))?;
        if t.dtype != "F32" {
            return Err(format!(
                "tensor {name} is {}, only F32 is supported",
                t.dtype
            ));
        }
        let ok = t.shape.len() == shape.len()
            && t.shape.iter().zip(shape).all(|(a, b)| *b == 0 || a == b);
        if !ok {
            return Err(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                t.shape
            ));
        }
        let (s, e) = t.data_offsets;
        let count: usize = t.shape.iter().product();
        let (s, e) = (self.base + s, self.base + e);
        if e > self.bytes.len() || e < s || e - s != count * 4 {
            return Err(format!("tensor {name} has bad data offsets"));
        }
        Ok(self.bytes[s..e]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
}
