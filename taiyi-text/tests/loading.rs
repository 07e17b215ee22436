//! Loading the published layouts (.bin, .safetensors, shards, `bert.` prefix + heads, fp16) and
//! every failure: missing / unused / mis-shaped tensors (the error names the key), unsupported
//! configs, missing files, invalid inputs. Parity of loaded weights is checked against the
//! PyTorch outputs of `fixtures/text/expected.safetensors` (tolerance as in `parity.rs`: 2e-5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use burn::backend::Flex;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use common::{assert_close, expected, fixtures, ints, tempdir};
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;
use taiyi_store::StoreError;
use taiyi_text::{BertConfig, BertModel, HfBertConfig, TextError, TextMode};

const TOL: f32 = 2e-5;
type B = Flex;

fn tiny_dir() -> std::path::PathBuf {
    fixtures().join("tiny")
}

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
    let pooled = model.pooled(ids, Some(mask));
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

fn load_err(dir: &Path) -> TextError {
    match BertModel::<B>::from_pretrained_dir(dir, &Default::default()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e,
    }
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

fn tiny_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("config.json")).unwrap()).unwrap()
}

#[test]
fn unsupported_configs_are_rejected() {
    for (field, value, needle) in [
        ("hidden_act", serde_json::json!("relu"), "hidden_act"),
        ("hidden_act", serde_json::json!("gelu_new"), "hidden_act"),
        (
            "position_embedding_type",
            serde_json::json!("relative_key"),
            "position_embedding_type",
        ),
        ("is_decoder", serde_json::json!(true), "is_decoder"),
        (
            "add_cross_attention",
            serde_json::json!(true),
            "add_cross_attention",
        ),
        ("model_type", serde_json::json!("roberta"), "model_type"),
        (
            "num_attention_heads",
            serde_json::json!(5),
            "num_attention_heads",
        ),
        ("hidden_size", serde_json::json!(0), "hidden_size"),
    ] {
        let mut json = tiny_json();
        json[field] = value;
        let dir = tempdir();
        std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
        std::fs::copy(
            tiny_dir().join("model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        match load_err(dir.path()) {
            TextError::UnsupportedConfig { message } => {
                assert!(message.contains(needle), "{field}: {message}");
                assert!(message.contains("config.json"), "{field}: {message}");
            }
            e => panic!("{field}: expected UnsupportedConfig, got {e}"),
        }
    }
}

#[test]
fn hf_config_accepts_unknown_fields_and_defaults() {
    let hf: HfBertConfig = HfBertConfig::from_json(
        r#"{"vocab_size": 21128, "hidden_size": 1024, "num_hidden_layers": 24,
            "num_attention_heads": 16, "intermediate_size": 4096, "directionality": "bidi",
            "pooler_fc_size": 768, "output_past": true}"#,
    )
    .unwrap();
    assert_eq!(
        BertConfig::try_from(hf).unwrap(),
        BertConfig::taiyi_roberta_large()
    );
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
        matches!(&err, TextError::Io { path, .. } if path.ends_with("config.json")),
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

fn tiny_model() -> BertModel<B> {
    BertModel::<B>::from_pretrained_dir(&tiny_dir(), &Default::default())
        .unwrap()
        .0
}

fn ids(rows: &[&[i64]]) -> Tensor<B, 2, Int> {
    let seq = rows[0].len();
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(
        burn::tensor::TensorData::new(flat, [rows.len(), seq]),
        &Default::default(),
    )
}

#[test]
fn invalid_inputs_are_errors_not_panics() {
    let model = tiny_model();
    let device = Default::default();
    // 97 tokens > 96 positions.
    let long: Vec<i64> = (0..97).map(|i| if i == 0 { 101 } else { 671 }).collect();
    match model.try_forward(ids(&[&long]), None) {
        Err(TextError::SequenceTooLong { len: 97, max: 96 }) => {}
        r => panic!("expected SequenceTooLong, got {:?}", r.err()),
    }
    let mask = Tensor::<B, 2, Int>::ones([1, 97], &device);
    assert!(matches!(
        model.text_features(ids(&[&long]), mask.clone(), TextMode::ModelCard),
        Err(TextError::SequenceTooLong { .. })
    ));
    // Fixed77 truncates the same input instead (first 76 tokens + the last one).
    let f = model
        .text_features(ids(&[&long]), mask, TextMode::Fixed77)
        .unwrap();
    assert_eq!(f.dims(), [1, 16]);
    // Ids outside the vocabulary.
    match model.try_forward(ids(&[&[101, 21128, 102]]), None) {
        Err(TextError::TokenOutOfRange {
            id: 21128,
            row: 0,
            col: 1,
            ..
        }) => {}
        r => panic!("expected TokenOutOfRange, got {:?}", r.err()),
    }
    assert!(matches!(
        model.try_forward(ids(&[&[101, -1, 102]]), None),
        Err(TextError::TokenOutOfRange { id: -1, .. })
    ));
    // Mask shape / values / layout.
    let x = ids(&[&[101, 671, 102]]);
    assert!(matches!(
        model.try_forward(x.clone(), Some(Tensor::ones([1, 4], &device))),
        Err(TextError::MaskShape { .. })
    ));
    assert!(matches!(
        model.text_features(
            x.clone(),
            Tensor::ones([1, 3], &device).mul_scalar(2),
            TextMode::Masked
        ),
        Err(TextError::MaskValue { value: 2 })
    ));
    assert!(matches!(
        model.text_features(x.clone(), Tensor::zeros([1, 3], &device), TextMode::Masked),
        Err(TextError::EmptyText { row: 0 })
    ));
    assert!(matches!(
        model.text_features(x.clone(), ids(&[&[1, 0, 1]]), TextMode::ModelCard),
        Err(TextError::NotRightPadded { row: 0 })
    ));
    // Empty batch / sequence.
    let empty = Tensor::<B, 2, Int>::zeros([0, 3], &device);
    assert!(matches!(
        model.try_forward(empty.clone(), None),
        Err(TextError::EmptyInput { batch: 0, seq: 3 })
    ));
    assert!(matches!(
        model.text_features(empty.clone(), empty, TextMode::Fixed77),
        Err(TextError::EmptyInput { .. })
    ));
}

#[test]
fn text_mode_helpers() {
    assert_eq!(TextMode::default(), TextMode::ModelCard);
    assert_eq!(TextMode::ModelCard.pad_to(), None);
    assert_eq!(TextMode::Masked.pad_to(), None);
    assert_eq!(TextMode::Fixed77.pad_to(), Some(77));
    assert!(TextMode::Masked.uses_mask());
    assert!(!TextMode::ModelCard.uses_mask() && !TextMode::Fixed77.uses_mask());
    for m in [TextMode::ModelCard, TextMode::Fixed77, TextMode::Masked] {
        assert_eq!(m.name().parse::<TextMode>().unwrap(), m);
    }
    assert!(matches!(
        "sdpa".parse::<TextMode>(),
        Err(TextError::UnknownMode { .. })
    ));
    // Layout: [CLS] a b [SEP] + 2 pads, [CLS] c [SEP] + 3 pads.
    let ids = [101, 1, 2, 102, 0, 0, 101, 3, 102, 0, 0, 0];
    let mask = [1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0];
    let mc = TextMode::ModelCard.layout(&ids, &mask, 2, 6, 0).unwrap();
    assert_eq!(
        (mc.seq, &mc.ids[..]),
        (4, &[101, 1, 2, 102, 101, 3, 102, 0][..])
    );
    let f = TextMode::Fixed77.layout(&ids, &mask, 2, 6, 0).unwrap();
    assert_eq!(f.seq, 77);
    assert_eq!(&f.ids[..5], &[101, 1, 2, 102, 0]);
    assert_eq!(f.mask.iter().sum::<i64>(), 7);
}

/// Counts parameters and how many are materialised.
struct Census {
    params: usize,
    elements: usize,
    initialized: usize,
}

impl<Bk: Backend> ModuleVisitor<Bk> for Census {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
        self.params += 1;
        self.elements += param.lazy_shape().num_elements();
        self.initialized += usize::from(param.is_initialized());
    }
}

/// burn params are lazy: building the full-size Taiyi tower allocates nothing (no random init
/// runs), and loading overwrites every param without initialising it first. Also checks the
/// parameter count against REFERENCE.md §4 (391 tensors, 325,522,432 params).
#[test]
fn init_is_lazy_and_full_size_param_count_matches_reference() {
    let device = Default::default();
    let full = BertConfig::taiyi_roberta_large();
    assert_eq!(full.num_params(), 325_522_432);
    let t = std::time::Instant::now();
    let model = full.init::<B>(&device);
    let built = t.elapsed();
    let mut c = Census {
        params: 0,
        elements: 0,
        initialized: 0,
    };
    model.visit(&mut c);
    assert_eq!(c.params, 391);
    assert_eq!(c.elements, 325_522_432);
    assert_eq!(c.initialized, 0, "init must stay lazy");
    assert!(built.as_secs_f64() < 2.0, "building took {built:?}");
    eprintln!("full-size BertModel built lazily in {built:?}");
    // Loaded tiny model: every param materialised (by the loader, from the checkpoint).
    let tiny = tiny_model();
    let mut c = Census {
        params: 0,
        elements: 0,
        initialized: 0,
    };
    tiny.visit(&mut c);
    assert_eq!(c.initialized, c.params);
    assert_eq!(c.elements, BertConfig::tiny().num_params());
}
