//! The model's vectors against the reference implementation (sentence-transformers on
//! PyTorch), produced once by `fixtures/make_reference.py` and committed.

use std::path::PathBuf;

use tributary_embed_local::Model;

fn model_dir() -> PathBuf {
    let dir = std::env::var_os("TRIBUTARY_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/tributary/models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "no model in {} (run scripts/fetch-model.sh {0} or set TRIBUTARY_MODEL_DIR)",
        dir.display()
    );
    dir
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

struct Reference {
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let raw = include_str!("fixtures/reference.json");
    let v: serde_json::Value = serde_json::from_str(raw).unwrap();
    let mut texts = Vec::new();
    let mut vectors = Vec::new();
    for item in v["items"].as_array().unwrap() {
        texts.push(item["text"].as_str().unwrap().to_string());
        vectors.push(
            item["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
        );
    }
    Reference { texts, vectors }
}

#[test]
fn vectors_match_the_reference_implementation() {
    let model = Model::load(&model_dir()).unwrap();
    assert_eq!(model.dim(), 384);
    assert_eq!(model.max_tokens(), 256);
    let r = reference();
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    let got = model.embed(&texts, 2).unwrap();
    assert_eq!(got.len(), texts.len());
    let mut worst = 1.0f64;
    for ((t, want), have) in texts.iter().zip(&r.vectors).zip(&got) {
        let c = cosine(want, have);
        worst = worst.min(c);
        assert!(c >= 0.999, "cosine {c} for {t:?}");
        let norm: f32 = have.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm} for {t:?}");
    }
    eprintln!("lowest cosine to the reference: {worst:.7}");
    // One at a time gives the same vectors as the batch.
    for (t, batched) in texts.iter().zip(&got) {
        let single = model.embed(&[t], 1).unwrap();
        assert!(cosine(&single[0], batched) > 0.99999, "{t:?}");
    }
}

#[test]
fn similar_sentences_score_higher_than_unrelated_ones() {
    let model = Model::load(&model_dir()).unwrap();
    let v = model
        .embed(
            &[
                "How do I change my password?",
                "Steps to reset a forgotten login password",
                "The recipe needs two cups of flour and an egg.",
            ],
            1,
        )
        .unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.3);
}

#[test]
fn token_spans_cover_words_without_special_tokens() {
    let model = Model::load(&model_dir()).unwrap();
    let text = "Tributary ingests documents.";
    let spans = model.token_spans(text).unwrap();
    assert!(spans.len() >= 4);
    assert_eq!(spans[0].0, 0);
    assert_eq!(spans.last().unwrap().1, text.len());
    // 1000 words are not truncated by the sizer.
    let long = "word ".repeat(1000);
    assert_eq!(model.token_spans(&long).unwrap().len(), 1000);
}

#[test]
fn a_missing_or_broken_model_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Model::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("config.json"), "{e}");
    std::fs::copy(
        model_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        model_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    let e = Model::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
}
