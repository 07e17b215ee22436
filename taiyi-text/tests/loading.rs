//! Loading the published layouts (.bin, .safetensors, shards, `bert.` prefix + heads, fp16) and
//! every failure: missing / unused / mis-shaped tensors (the error names the key, in the
//! checkpoint's spelling), missing files (configs and inputs: `inputs.rs`). Parity of loaded weights is checked against the
//! PyTorch outputs of `fixtures/text/expected.safetensors` (tolerance as in `parity.rs`: 2e-5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use burn::backend::Flex;
use common::{assert_close, expected, fixtures, ints, load_err, tempdir, tiny_dir, tiny_json};
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;
use taiyi_store::StoreError;
use taiyi_text::{BertConfig, BertModel, TextError};

const TOL: f32 = 2e-5;
type B = Flex;

/// Model-card and masked pooler outputs of `model` against the fixture `prefix` (`""` or `fp16.`).
fn check_outputs(model: &BertModel<B>, prefix: &str, what: &str) {
    let device = Default::default();
    let e = expected();
    let ids = ints::<B>(&e["longest.input_ids"], &device);
    let mask = ints::<B>(&e["longest.attention_mask"], &device);
    let out = model.try_forward(ids.clone(), None).unwrap();
    assert_close(
        &format!("{what} model card hidden"),
        out.last_hidden_state,
        &e[&format!("{prefix}model_card.batch.hidden")],
        TOL,
    );
    assert_close(
        &format!("{what} model card pooler"),
        out.pooler_output,
        &e[&format!("{prefix}model_card.batch.pooler")],
        TOL,
    );
    let pooled = model.forward(ids, Some(mask)).pooler_output;
    assert_close(
        &format!("{what} masked pooler"),
        pooled,
        &e[&format!("{prefix}masked.batch.pooler")],
        TOL,
    );
}

#[test]
fn pytorch_bin_loads_and_matches() {
    let device = Default::default();
    let config = BertConfig::tiny();
    let model =
        BertModel::<B>::load_file(&tiny_dir().join("pytorch_model.bin"), &config, &device).unwrap();
    check_outputs(&model, "", "pytorch_model.bin");
}

#[test]
fn safetensors_loads_and_matches() {
    let device = Default::default();
    let model = BertModel::<B>::load_file(
        &tiny_dir().join("model.safetensors"),
        &BertConfig::tiny(),
        &device,
    )
    .unwrap();
    check_outputs(&model, "", "model.safetensors");
}

#[test]
fn config_json_is_read_into_the_tiny_config() {
    let (_, config) =
        BertModel::<B>::from_pretrained_dir(&tiny_dir(), &Default::default()).unwrap();
    assert_eq!(config, BertConfig::tiny());
}

/// hfl/Taiyi published layout: `bert.` prefix, MLM/NSP heads `cls.*`, the legacy int64
/// `bert.embeddings.position_ids` buffer, fp16 weights; outputs match PyTorch run on the same
/// fp16 weights upcast to f32.
#[test]
fn prefixed_fp16_checkpoint_with_heads_loads_and_matches() {
    let device = Default::default();
    let (model, config) =
        BertModel::<B>::from_pretrained_dir(&fixtures().join("prefixed_fp16"), &device).unwrap();
    assert_eq!(config, BertConfig::tiny());
    check_outputs(&model, "fp16.", "prefixed fp16 .bin");
}

/// The fp16 fixture really differs from the f32 one (else the test above proves nothing new).
#[test]
fn fp16_fixture_differs_from_f32() {
    let e = expected();
    let d = common::max_diff(
        &e["fp16.model_card.batch.pooler"].f32,
        &e["model_card.batch.pooler"].f32,
    );
    assert!(d > 1e-4, "fp16 rounding should move the outputs, got {d}");
}

/// Read `model.safetensors` of the tiny fixture as (name → (dtype, shape, bytes)).
fn tiny_tensors() -> HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

fn write_st(path: &Path, tensors: &HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (d, s, b))| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, &None, path).unwrap();
}

/// A temp model dir with the tiny config and `tensors` as `model.safetensors`.
fn dir_with(
    tensors: &HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>,
) -> tempfile::TempDir {
    let dir = tempdir();
    std::fs::copy(
        tiny_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    write_st(&dir.path().join("model.safetensors"), tensors);
    dir
}

#[test]
fn sharded_safetensors_index_loads_and_matches() {
    let all = tiny_tensors();
    let dir = tempdir();
    std::fs::copy(
        tiny_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let (mut a, mut b) = (HashMap::new(), HashMap::new());
    let mut map = serde_json::Map::new();
    for (k, v) in all {
        let shard = if k.starts_with("encoder.layer.1.") || k.starts_with("pooler") {
            b.insert(k.clone(), v);
            "model-00002-of-00002.safetensors"
        } else {
            a.insert(k.clone(), v);
            "model-00001-of-00002.safetensors"
        };
        map.insert(k, serde_json::Value::String(shard.to_string()));
    }
    write_st(&dir.path().join("model-00001-of-00002.safetensors"), &a);
    write_st(&dir.path().join("model-00002-of-00002.safetensors"), &b);
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        serde_json::to_string(&index).unwrap(),
    )
    .unwrap();
    let (model, _) = BertModel::<B>::from_pretrained_dir(dir.path(), &Default::default()).unwrap();
    check_outputs(&model, "", "sharded safetensors");
}

/// `model.safetensors` is preferred over `pytorch_model.bin`: a broken `.bin` next to a good
/// safetensors file is never read; alone, it is (and fails with a parse error naming it).
#[test]
fn weights_file_preference_order() {
    let dir = dir_with(&tiny_tensors());
    std::fs::write(dir.path().join("pytorch_model.bin"), b"not a zip").unwrap();
    BertModel::<B>::from_pretrained_dir(dir.path(), &Default::default()).unwrap();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = load_err(dir.path());
    let msg = format!(
        "{err}: {:?}",
        std::error::Error::source(&err).map(|s| s.to_string())
    );
    assert!(
        matches!(
            &err,
            TextError::Store {
                source: StoreError::Pytorch { .. },
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("pytorch_model.bin"), "{msg}");
}

#[test]
fn missing_tensor_is_an_error_naming_the_key() {
    for key in [
        "encoder.layer.1.output.dense.bias",
        "embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.self.value.weight",
    ] {
        let mut t = tiny_tensors();
        assert!(t.remove(key).is_some(), "{key}");
        match load_err(dir_with(&t).path()) {
            TextError::Store {
                source: StoreError::Missing { keys, .. },
                ..
            } => assert_eq!(keys, vec![key.to_string()]),
            e => panic!("expected Missing for {key}, got {e}"),
        }
    }
}

#[test]
fn unused_tensor_is_an_error_naming_the_key() {
    let mut t = tiny_tensors();
    let bias = t["pooler.dense.bias"].clone();
    // A BertForSequenceClassification head: its features are the logits, not the pooler.
    t.insert("classifier.bias".to_string(), bias);
    match load_err(dir_with(&t).path()) {
        TextError::Store {
            source: StoreError::Unused { keys, .. },
            ..
        } => assert_eq!(keys, vec!["classifier.bias".to_string()]),
        e => panic!("expected Unused, got {e}"),
    }
}

#[test]
fn misshaped_tensor_is_an_error_naming_the_key() {
    let mut t = tiny_tensors();
    let (d, _, bytes) = t["pooler.dense.weight"].clone();
    t.insert(
        "pooler.dense.weight".to_string(),
        (d, vec![8, 32], bytes), // 16x16 elements as 8x32
    );
    let err = load_err(dir_with(&t).path());
    match &err {
        TextError::Store {
            source: StoreError::Shape { key, .. },
            ..
        } => assert_eq!(key, "pooler.dense.weight"),
        e => panic!("expected Shape, got {e}"),
    }
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

/// Config and weights disagree (3 layers asked, 2 stored): the missing layer is named.
#[test]
fn config_weights_mismatch_names_missing_layer() {
    let err = BertModel::<B>::load_file(
        &tiny_dir().join("model.safetensors"),
        &BertConfig::tiny().with_num_hidden_layers(3),
        &Default::default(),
    )
    .err()
    .unwrap();
    match err {
        TextError::Store {
            source: StoreError::Missing { keys, .. },
            ..
        } => {
            assert_eq!(keys.len(), 16, "{keys:?}");
            assert!(
                keys.iter().all(|k| k.starts_with("encoder.layer.2.")),
                "{keys:?}"
            );
        }
        e => panic!("expected Missing, got {e}"),
    }
}

#[test]
fn broken_or_missing_files_are_errors() {
    // Missing directory.
    let err = load_err(Path::new("/nonexistent/taiyi-text-model"));
    assert!(matches!(err, TextError::Io { .. }), "{err}");
    // Directory without config.json.
    let dir = tempdir();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, TextError::ConfigRead { path, .. } if path.ends_with("config.json")),
        "{err}"
    );
    // config.json that is not JSON / lacks a required field.
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    assert!(matches!(load_err(dir.path()), TextError::ConfigJson { .. }));
    let mut json = tiny_json();
    json.as_object_mut().unwrap().remove("hidden_size");
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    let err = load_err(dir.path());
    // The serde error (the cause) names the field.
    let cause = std::error::Error::source(&err).map(|s| s.to_string());
    assert!(
        cause.as_deref().is_some_and(|c| c.contains("hidden_size")),
        "{err}: {cause:?}"
    );
    // Valid config, no weights.
    std::fs::copy(
        tiny_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = load_err(dir.path());
    // The causes (the store's error, then the I/O error) name every file tried.
    let mut src = String::new();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        src.push_str(&format!("{c}; "));
        cause = c.source();
    }
    assert!(
        src.contains("model.safetensors") && src.contains("pytorch_model.bin"),
        "{src}"
    );
    // Truncated safetensors.
    std::fs::write(dir.path().join("model.safetensors"), b"\x10\x00\x00\x00").unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(
            &err,
            TextError::Store {
                source: StoreError::Safetensors { .. },
                ..
            }
        ),
        "{err}"
    );
}
