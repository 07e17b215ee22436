//! PyTorch checkpoints read as `torch.load` reads them (fixtures from
//! `scripts/fixtures/store.py`): strided views, shared storages, the legacy format, damaged
//! storage records; and the strict apply's dtype and finiteness checks.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use burn::backend::Flex;
use burn::module::{Module, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use burn_store::TensorSnapshot;
use taiyi_store::{Checkpoint, LoadSpec, StoreError, TorchError};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/store")
        .join(name)
}

/// Every tensor of `file` against `expected.json` (torch.load's values): dtype, shape, values
/// bit-exact in f32 (the values are copied, never computed).
fn check_against_torch(file: &str) {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut ckpt = Checkpoint::open(fixture(file)).unwrap();
    let expected = expected.as_object().unwrap();
    assert_eq!(ckpt.len(), expected.len(), "{file}: tensor count");
    for (key, want) in expected {
        let data = ckpt
            .take(key)
            .unwrap_or_else(|e| panic!("{file} {key}: {e}"));
        let dtype = match want["dtype"].as_str().unwrap() {
            "float32" => DType::F32,
            "float16" => DType::F16,
            "int64" => DType::I64,
            "bool" => DType::Bool(burn::tensor::BoolStore::Native),
            other => panic!("dtype {other}"),
        };
        assert_eq!(data.dtype, dtype, "{file} {key}");
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(data.shape.to_vec(), shape, "{file} {key}");
        // Every value is an f32 (or a small int): compare in f32, which also absorbs serde_json's
        // last-bit f64 parsing error (its default parser is not correctly rounded).
        let got: Vec<f32> = match dtype {
            DType::Bool(_) => data.as_bytes().iter().map(|&b| f32::from(b)).collect(),
            _ => data.convert_dtype(DType::F32).into_vec::<f32>().unwrap(),
        };
        let want: Vec<f32> = want["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().or(v.as_bool().map(f64::from)).unwrap() as f32)
            .collect();
        assert_eq!(got, want, "{file} {key}");
    }
}

#[test]
fn strided_views_read_as_torch_load_reads_them() {
    check_against_torch("views.bin");
}

#[test]
fn legacy_format_reads_as_torch_load_reads_it() {
    check_against_torch("views_legacy.bin");
}

#[test]
fn pickle_protocol_4_reads_as_torch_load_reads_it() {
    check_against_torch("views_p4.bin");
}

fn torch_error(file: &str) -> TorchError {
    match Checkpoint::open(fixture(file)) {
        Err(StoreError::Pytorch { source, .. }) => *source,
        Err(e) => panic!("{file}: unexpected error {e}"),
        Ok(_) => panic!("{file} opened"),
    }
}

/// The tensors viewing the damaged storage (`base` in the script).
const SHARING: &[&str] = &["offset", "slice", "t"];

#[test]
fn damaged_storage_records_are_errors_naming_the_tensor() {
    for (file, found) in [("truncated_record.bin", 88), ("padded_record.bin", 104)] {
        match torch_error(file) {
            TorchError::RecordSize {
                key,
                found: f,
                expected: 96,
                ..
            } => {
                assert!(SHARING.contains(&key.as_str()), "{file}: {key}");
                assert_eq!(f, found, "{file}");
            }
            e => panic!("{file}: {e}"),
        }
    }
    match torch_error("missing_record.bin") {
        TorchError::MissingRecord { key, record } => {
            assert!(SHARING.contains(&key.as_str()), "{key}");
            assert!(record.ends_with("data/0"), "{record}");
        }
        e => panic!("missing_record.bin: {e}"),
    }
    assert!(matches!(
        torch_error("truncated_legacy.bin"),
        TorchError::RecordSize { .. }
    ));
}

#[derive(Module, Debug)]
struct W<B: Backend> {
    weight: Param<Tensor<B, 2>>,
}

fn w() -> W<B> {
    W {
        weight: Param::from_tensor(Tensor::zeros([2, 3], &Default::default())),
    }
}

#[test]
fn integer_tensor_for_a_float_parameter_is_a_typed_error() {
    let ckpt = Checkpoint::open(fixture("int_weight.bin")).unwrap();
    match ckpt.load_into::<B, _>(w(), &LoadSpec::default()) {
        Err(StoreError::DType {
            key,
            expected: "float",
            found: DType::I64,
            ..
        }) => assert_eq!(key, "weight"),
        other => panic!("{other:?}"),
    }
}

fn snapshot(values: Vec<f32>) -> TensorSnapshot {
    TensorSnapshot::from_data(
        TensorData::new(values, [2, 3]),
        vec!["weight".into()],
        Vec::new(),
        ParamId::new(),
    )
}

#[test]
fn non_finite_weights_are_errors_naming_the_key() {
    for (bad, index) in [(f32::NAN, 4), (f32::INFINITY, 0), (f32::NEG_INFINITY, 5)] {
        let mut v = vec![0.5f32; 6];
        v[index] = bad;
        let ckpt = Checkpoint::from_snapshots("mem", [snapshot(v)]);
        match ckpt.load_into::<B, _>(w(), &LoadSpec::default()) {
            Err(StoreError::NonFinite {
                key,
                index: i,
                overflow: None,
                ..
            }) => assert_eq!((key.as_str(), i), ("weight", index)),
            other => panic!("{bad}: {other:?}"),
        }
    }
    // Finite as stored, but beyond f16: an f16 model would get inf.
    let ckpt = Checkpoint::from_snapshots("mem", [snapshot(vec![1e5, 0., 0., 0., 0., 0.])]);
    match ckpt.load_into_with_dtype::<B, _>(w(), &LoadSpec::default(), DType::F16) {
        Err(StoreError::NonFinite {
            index: 0,
            value,
            overflow: Some(DType::F16),
            ..
        }) => assert_eq!(value, 1e5),
        other => panic!("{other:?}"),
    }
    let ok = Checkpoint::from_snapshots("mem", [snapshot(vec![0.25; 6])]);
    let loaded = ok.load_into::<B, _>(w(), &LoadSpec::default()).unwrap();
    let got = loaded.weight.val().into_data().into_vec::<f32>().unwrap();
    assert_eq!(got, vec![0.25; 6]);
}

#[derive(Module, Debug)]
struct Mixed<B: Backend> {
    lin: burn::nn::Linear<B>,
    other: Param<Tensor<B, 2>>,
}

fn mixed() -> Mixed<B> {
    Mixed {
        lin: burn::nn::LinearConfig::new(2, 3).init(&Default::default()),
        other: Param::from_tensor(Tensor::zeros([2, 3], &Default::default())),
    }
}

fn named(name: &str, values: Vec<f32>, shape: [usize; 2]) -> TensorSnapshot {
    TensorSnapshot::from_data(
        TensorData::new(values, shape),
        name.split('.').map(String::from).collect(),
        Vec::new(),
        ParamId::new(),
    )
}

#[test]
fn linear_weights_take_their_own_dtype() {
    // PyTorch layout [out, in]: 1 + 2^-8 rounds to 1 in bf16 (ties to even); the bias and the
    // other parameter stay f32, exactly.
    let lin = vec![1.0 + 1.0 / 256.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let bias = TensorSnapshot::from_data(
        TensorData::new(vec![0.1f32, 0.2, 0.3], [3]),
        vec!["lin".into(), "bias".into()],
        Vec::new(),
        ParamId::new(),
    );
    let other = vec![1.0 + 1.0 / 256.0; 6];
    let ckpt = Checkpoint::from_snapshots(
        "mem",
        [
            named("lin.weight", lin, [3, 2]),
            bias,
            named("other", other.clone(), [2, 3]),
        ],
    );
    let m = ckpt
        .load_into_with_dtypes::<B, _>(mixed(), &LoadSpec::default(), DType::F32, DType::BF16)
        .unwrap();
    let w = m.lin.weight.val();
    assert_eq!(w.dtype(), DType::BF16);
    assert_eq!(w.dims(), [2, 3], "transposed to burn's [in, out]");
    let w: Vec<f32> = w.cast(DType::F32).into_data().into_vec::<f32>().unwrap();
    assert_eq!(w, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    let b = m.lin.bias.as_ref().unwrap().val();
    assert_eq!(b.dtype(), DType::F32);
    assert_eq!(
        b.into_data().into_vec::<f32>().unwrap(),
        vec![0.1, 0.2, 0.3]
    );
    assert_eq!(m.other.val().dtype(), DType::F32);
    assert_eq!(m.other.val().into_data().into_vec::<f32>().unwrap(), other);

    // Finite in f32, beyond bf16's range: the cast would make it infinite.
    let ckpt = Checkpoint::from_snapshots(
        "mem",
        [named(
            "lin.weight",
            vec![0.0, 0.0, 3.4e38, 0.0, 0.0, 0.0],
            [3, 2],
        )],
    );
    match ckpt.load_into_with_dtypes::<B, _>(mixed(), &LoadSpec::default(), DType::F32, DType::BF16)
    {
        Err(StoreError::NonFinite {
            key,
            index: 2,
            overflow: Some(DType::BF16),
            ..
        }) => assert_eq!(key, "lin.weight"),
        other => panic!("{other:?}"),
    }
}
