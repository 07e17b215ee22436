//! The text tower's configs and inputs: `config.json` fields that are refused or defaulted,
//! invalid ids and masks (errors, not panics), the text modes' layout, lazy init and the
//! full-size parameter count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use burn::backend::Flex;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use common::{load_err, tempdir, tiny_dir, tiny_json};
use taiyi_text::{BertConfig, BertModel, HfBertConfig, TextError, TextMode};

type B = Flex;

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
    // Mask shape / values.
    let x = ids(&[&[101, 671, 102]]);
    assert!(matches!(
        model.try_forward(x.clone(), Some(Tensor::ones([1, 4], &device))),
        Err(TextError::MaskShape { .. })
    ));
    assert!(matches!(
        model.try_forward(x.clone(), Some(Tensor::ones([1, 3], &device).mul_scalar(2))),
        Err(TextError::MaskValue { value: 2 })
    ));
    // Empty batch / sequence.
    let empty = Tensor::<B, 2, Int>::zeros([0, 3], &device);
    assert!(matches!(
        model.try_forward(empty.clone(), None),
        Err(TextError::EmptyInput { batch: 0, seq: 3 })
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
    assert!(TextMode::Masked.batch_invariant() && TextMode::Fixed77.batch_invariant());
    assert!(!TextMode::ModelCard.batch_invariant());
    for m in [TextMode::ModelCard, TextMode::Fixed77, TextMode::Masked] {
        assert_eq!(m.name().parse::<TextMode>().unwrap(), m);
    }
    // One spelling, `card`, everywhere; `model-card` still parses.
    assert_eq!(TextMode::ModelCard.to_string(), "card");
    assert_eq!(
        "model-card".parse::<TextMode>().unwrap(),
        TextMode::ModelCard
    );
    assert!(matches!(
        "sdpa".parse::<TextMode>(),
        Err(TextError::UnknownMode { .. })
    ));
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
