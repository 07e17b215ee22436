//! Strict loading through `taiyi-store`, on safetensors files written here in the PyTorch
//! layout (Linear weights `[out, in]`, LayerNorm `weight`/`bias`).

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, View};
use taiyi_store::{Checkpoint, LoadSpec, StoreError};

type B = Flex;

#[derive(Module, Debug)]
struct Block<B: burn::tensor::backend::Backend> {
    dense: Linear<B>,
    norm: LayerNorm<B>,
}

#[derive(Module, Debug)]
struct Net<B: burn::tensor::backend::Backend> {
    layer: Vec<Block<B>>,
}

fn net() -> Net<B> {
    let device = Default::default();
    Net {
        layer: (0..2)
            .map(|_| Block {
                dense: LinearConfig::new(3, 2).init(&device),
                norm: LayerNormConfig::new(2).init(&device),
            })
            .collect(),
    }
}

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.bytes[..]).into()
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn f32s(shape: &[usize], values: &dyn Fn(usize) -> f32) -> Raw {
    let n: usize = shape.iter().product();
    Raw {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: (0..n).flat_map(|i| values(i).to_le_bytes()).collect(),
    }
}

fn f16s(shape: &[usize], values: &dyn Fn(usize) -> f32) -> Raw {
    let n: usize = shape.iter().product();
    Raw {
        dtype: Dtype::F16,
        shape: shape.to_vec(),
        bytes: (0..n)
            .flat_map(|i| half::f16::from_f32(values(i)).to_le_bytes())
            .collect(),
    }
}

/// The PyTorch state dict of `Net`, with `prefix` on every key.
fn state_dict(prefix: &str, half: bool) -> Vec<(String, Raw)> {
    let make = if half { f16s } else { f32s };
    let mut out = Vec::new();
    for l in 0..2 {
        let base = l as f32 * 10.0;
        out.push((
            format!("{prefix}layer.{l}.dense.weight"),
            make(&[2, 3], &move |i| base + i as f32),
        ));
        out.push((
            format!("{prefix}layer.{l}.dense.bias"),
            make(&[2], &|i| -(i as f32)),
        ));
        out.push((
            format!("{prefix}layer.{l}.norm.weight"),
            make(&[2], &|i| 1.0 + i as f32),
        ));
        out.push((
            format!("{prefix}layer.{l}.norm.bias"),
            make(&[2], &|i| 0.5 * i as f32),
        ));
    }
    out
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taiyi-store-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name)
}

fn write(path: &Path, tensors: &[(String, Raw)]) {
    let views: Vec<(String, &Raw)> = tensors.iter().map(|(k, r)| (k.clone(), r)).collect();
    safetensors::serialize_to_file(views, &None::<HashMap<String, String>>, path)
        .expect("write safetensors");
}

fn check_values(net: &Net<B>) {
    // Linear weight [out=2, in=3] in PyTorch is stored transposed ([in, out]) in burn.
    let w: Tensor<B, 2> = net.layer[1].dense.weight.val();
    let expected = TensorData::from([[10.0f32, 13.0], [11.0, 14.0], [12.0, 15.0]]);
    w.to_data().assert_eq(&expected, false);
    let gamma: Tensor<B, 1> = net.layer[0].norm.gamma.val();
    gamma
        .to_data()
        .assert_eq(&TensorData::from([1.0f32, 2.0]), false);
    let beta = net.layer[0].norm.beta.as_ref().map(|b| b.val().to_data());
    beta.expect("beta")
        .assert_eq(&TensorData::from([0.0f32, 0.5]), false);
}

#[test]
fn loads_pytorch_layout_and_transposes_linear() -> Result<(), StoreError> {
    let p = tmp("plain.safetensors");
    write(&p, &state_dict("", false));
    let loaded = Checkpoint::open(&p)?.load_into::<B, _>(net(), &LoadSpec::default())?;
    check_values(&loaded);
    Ok(())
}

/// A non-finite value of a `Linear` weight is reported at its index as stored (`[out, in]`
/// row-major), not in the transposed layout the module holds.
#[test]
fn non_finite_linear_weight_is_reported_at_its_stored_index() -> Result<(), StoreError> {
    let p = tmp("linear-inf.safetensors");
    let sd: Vec<(String, Raw)> = state_dict("", false)
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            // Stored [2, 3]: index 4 is row 1, column 1 (index 3 once transposed).
            "layer.0.dense.weight" => (k, f32s(&[2, 3], &|i| 1.0 / (i as f32 - 4.0))),
            _ => (k, v),
        })
        .collect();
    write(&p, &sd);
    match Checkpoint::open(&p)?.load_into::<B, _>(net(), &LoadSpec::default()) {
        Err(StoreError::NonFinite { key, index, .. }) => {
            assert_eq!((key.as_str(), index), ("layer.0.dense.weight", 4));
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[test]
fn casts_fp16_to_the_model_dtype() -> Result<(), StoreError> {
    let p = tmp("half.safetensors");
    write(&p, &state_dict("", true));
    let ckpt = Checkpoint::open(&p)?;
    assert_eq!(
        ckpt.dtype("layer.0.dense.bias"),
        Some(burn::tensor::DType::F16)
    );
    let loaded = ckpt.load_into::<B, _>(net(), &LoadSpec::default())?;
    check_values(&loaded);
    assert_eq!(
        loaded.layer[0].dense.weight.val().dtype(),
        burn::tensor::DType::F32
    );
    Ok(())
}

#[test]
fn strips_wrappers_and_splits_prefixes() -> Result<(), StoreError> {
    let p = tmp("wrapped.safetensors");
    let mut sd = state_dict("module.visual.", false);
    sd.push(("module.logit_scale".into(), f32s(&[], &|_| 2.5)));
    write(&p, &sd);
    let mut ckpt = Checkpoint::open(&p)?;
    assert!(ckpt.contains("logit_scale"), "module. wrapper stripped");
    let visual = ckpt.split_prefix("visual.");
    assert_eq!(visual.len(), 8);
    assert_eq!(ckpt.take_f32("logit_scale")?, vec![2.5]);
    assert!(ckpt.is_empty());
    check_values(&visual.load_into::<B, _>(net(), &LoadSpec::default())?);
    Ok(())
}

#[test]
fn remap_table_renames_keys() -> Result<(), StoreError> {
    let p = tmp("renamed.safetensors");
    let sd: Vec<(String, Raw)> = state_dict("", false)
        .into_iter()
        .map(|(k, v)| (k.replace(".norm.", ".LayerNorm."), v))
        .collect();
    write(&p, &sd);
    let spec = LoadSpec {
        remap: &[(r"\.LayerNorm\.", ".norm.")],
        ..LoadSpec::default()
    };
    check_values(&Checkpoint::open(&p)?.load_into::<B, _>(net(), &spec)?);
    Ok(())
}

#[test]
fn missing_tensor_is_named() -> Result<(), StoreError> {
    let p = tmp("missing.safetensors");
    let sd: Vec<(String, Raw)> = state_dict("", false)
        .into_iter()
        .filter(|(k, _)| k != "layer.1.dense.bias")
        .collect();
    write(&p, &sd);
    let err = Checkpoint::open(&p)?
        .load_into::<B, _>(net(), &LoadSpec::default())
        .expect_err("must fail");
    match &err {
        StoreError::Missing { keys, .. } => assert_eq!(keys, &["layer.1.dense.bias"]),
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("layer.1.dense.bias"));
    Ok(())
}

#[test]
fn missing_norm_weight_is_named_as_in_the_checkpoint() -> Result<(), StoreError> {
    let p = tmp("missing-norm.safetensors");
    let sd: Vec<(String, Raw)> = state_dict("", false)
        .into_iter()
        .filter(|(k, _)| k != "layer.1.norm.weight")
        .collect();
    write(&p, &sd);
    let err = Checkpoint::open(&p)?
        .load_into::<B, _>(net(), &LoadSpec::default())
        .expect_err("must fail");
    assert!(
        matches!(&err, StoreError::Missing { keys, .. } if keys == &["layer.1.norm.weight"]),
        "{err}"
    );
    Ok(())
}

#[test]
fn unused_tensor_is_named_unless_ignored() -> Result<(), StoreError> {
    let p = tmp("unused.safetensors");
    let mut sd = state_dict("", false);
    sd.push(("extra.position_ids".into(), f32s(&[4], &|i| i as f32)));
    write(&p, &sd);
    let err = Checkpoint::open(&p)?
        .load_into::<B, _>(net(), &LoadSpec::default())
        .expect_err("must fail");
    assert!(
        matches!(&err, StoreError::Unused { keys, .. } if keys == &["extra.position_ids"]),
        "{err}"
    );
    let spec = LoadSpec {
        ignore: &[r"^extra\.position_ids$"],
        ..LoadSpec::default()
    };
    check_values(&Checkpoint::open(&p)?.load_into::<B, _>(net(), &spec)?);
    Ok(())
}

#[test]
fn misshaped_tensor_is_named() -> Result<(), StoreError> {
    let p = tmp("shape.safetensors");
    let sd: Vec<(String, Raw)> = state_dict("", false)
        .into_iter()
        .map(|(k, v)| {
            if k == "layer.0.norm.weight" {
                (k, f32s(&[3], &|_| 1.0))
            } else {
                (k, v)
            }
        })
        .collect();
    write(&p, &sd);
    let err = Checkpoint::open(&p)?
        .load_into::<B, _>(net(), &LoadSpec::default())
        .expect_err("must fail");
    match &err {
        StoreError::Shape {
            key,
            expected,
            found,
            ..
        } => {
            assert_eq!(key, "layer.0.norm.weight");
            assert_eq!(expected, &[2]);
            assert_eq!(found, &[3]);
        }
        other => panic!("unexpected error {other}"),
    }
    Ok(())
}

#[test]
fn shards_are_merged() -> Result<(), StoreError> {
    let sd = state_dict("", false);
    let (a, b): (Vec<_>, Vec<_>) = sd.into_iter().partition(|(k, _)| k.starts_with("layer.0"));
    write(&tmp("model-00001-of-00002.safetensors"), &a);
    write(&tmp("model-00002-of-00002.safetensors"), &b);
    let mut map = serde_json::Map::new();
    for (k, _) in &a {
        map.insert(k.clone(), "model-00001-of-00002.safetensors".into());
    }
    for (k, _) in &b {
        map.insert(k.clone(), "model-00002-of-00002.safetensors".into());
    }
    let index = tmp("model.safetensors.index.json");
    std::fs::write(
        &index,
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .expect("write index");
    check_values(&Checkpoint::open(&index)?.load_into::<B, _>(net(), &LoadSpec::default())?);

    let bad = tmp("bad.index.json");
    std::fs::write(&bad, r#"{"weight_map": {"x": "../etc/passwd"}}"#).expect("write");
    assert!(matches!(
        Checkpoint::open(&bad),
        Err(StoreError::ShardIndex { .. })
    ));
    Ok(())
}

#[test]
fn bad_files_are_errors_not_panics() {
    assert!(matches!(
        Checkpoint::open(tmp("does-not-exist.safetensors")),
        Err(StoreError::Open { .. })
    ));
    let txt = tmp("weights.txt");
    std::fs::write(&txt, "hello").expect("write");
    assert!(matches!(
        Checkpoint::open(&txt),
        Err(StoreError::UnsupportedFormat { .. })
    ));
    let garbage = tmp("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").expect("write");
    assert!(matches!(
        Checkpoint::open(&garbage),
        Err(StoreError::Safetensors { .. })
    ));
    let p = tmp("to-truncate.safetensors");
    write(&p, &state_dict("", false));
    let bytes = std::fs::read(&p).expect("read");
    let cut = tmp("truncated.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).expect("write");
    assert!(Checkpoint::open(&cut).is_err());
    let pickle = tmp("garbage.bin");
    std::fs::write(&pickle, b"PK\x03\x04 definitely not a zip").expect("write");
    assert!(matches!(
        Checkpoint::open(&pickle),
        Err(StoreError::Pytorch { .. })
    ));
    assert!(matches!(
        Checkpoint::open(std::env::temp_dir()),
        Err(StoreError::Open { .. })
    ));
}

/// Issue 25 item 3: a FIFO given as a checkpoint blocked forever in `open`, a device was read
/// as if it were one. Both are refused at once, naming the path; so is a FIFO as a shard.
#[cfg(unix)]
#[test]
fn special_files_are_refused_as_checkpoints_without_blocking() {
    use std::sync::mpsc;
    use std::time::Duration;
    let open_within_10s = |p: PathBuf| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(
                Checkpoint::open(&p)
                    .map(drop)
                    .map_err(|e| (e.to_string(), e)),
            );
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("opening the checkpoint blocked for 10 s")
    };
    let fifo = tmp("fifo-checkpoint.safetensors");
    let _ = std::fs::remove_file(&fifo);
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(st.success());
    let (_, err) = open_within_10s(fifo.clone()).expect_err("a FIFO is no checkpoint");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    let chain = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(
        chain,
        Some(format!("{} is a FIFO, not a regular file", fifo.display()))
    );
    let (_, err) = open_within_10s(PathBuf::from("/dev/zero")).expect_err("a device");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    // A shard index naming a FIFO as its shard.
    let dir = tmp("fifo-shards");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let st = std::process::Command::new("mkfifo")
        .arg(dir.join("model-00001.safetensors"))
        .status()
        .expect("mkfifo");
    assert!(st.success());
    let index = dir.join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"weight_map": {"x": "model-00001.safetensors"}}"#,
    )
    .expect("write");
    let (msg, err) = open_within_10s(index).expect_err("a FIFO shard");
    assert!(matches!(err, StoreError::Open { .. }), "{msg}");
}
