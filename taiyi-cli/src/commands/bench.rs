//! `taiyi bench`: speed of the towers on the chosen `--device` / `--precision`, to pick a
//! backend on a machine without cargo.
//!
//! Each tower is built (random full-size weights by default, or real weights with
//! `--text-model` / `--vision-model`), every parameter is materialised on the device, and the
//! forward pass is timed on inputs made once on the device: `[batch, 3, S, S]` random normal
//! pixels through `VisionTransformer::forward`, `[batch, seq]` random ids (`[CLS]` first,
//! `[SEP]` last, mask all ones) through `BertModel::forward` in masked mode. Every timed section
//! ends with `Backend::sync`, so asynchronous GPU backends are measured to completion.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Element, Int, Tensor, TensorData};
use clap::{Args, ValueEnum};
use taiyi_core::{BackendTask, ClipError};
use taiyi_text::{BertConfig, BertModel};
use taiyi_vision::VisionTransformer;

use crate::error::CliError;

/// `[CLS]` of the Chinese BERT vocabulary.
const CLS: i64 = 101;
/// `[SEP]` of the Chinese BERT vocabulary.
const SEP: i64 = 102;

/// Arguments of `taiyi bench`.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// HF text-tower directory with real weights (default: random weights of --text-arch).
    #[arg(long, value_name = "DIR")]
    text_model: Option<PathBuf>,
    /// open_clip checkpoint with real weights (default: random weights of --vision-arch).
    #[arg(long, value_name = "FILE")]
    vision_model: Option<PathBuf>,
    /// Text-tower architecture for random weights: taiyi (RoBERTa-large, 326M) or tiny.
    #[arg(long, value_enum, default_value = "taiyi")]
    text_arch: TextArch,
    /// Image-tower architecture: an open_clip name (ViT-H-14, ViT-L-14, ViT-B-16, ViT-B-32,
    /// with -quickgelu), `tiny`, or an open_clip model-config JSON file.
    #[arg(long, default_value = "ViT-H-14", value_name = "NAME|FILE.json")]
    vision_arch: String,
    /// Which tower(s) to time.
    #[arg(long, value_enum, default_value = "both")]
    tower: TowerArg,
    /// Images (and texts, unless --text-batch) per forward pass [default: 64 on GPU devices,
    /// 4 on the CPU].
    #[arg(long, value_name = "N", value_parser = at_least_1)]
    batch: Option<usize>,
    /// Texts per forward pass [default: --batch].
    #[arg(long, value_name = "N", value_parser = at_least_1)]
    text_batch: Option<usize>,
    /// Tokens per text, [CLS] and [SEP] included.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = at_least_2)]
    seq: usize,
    /// Timed iterations after the first call.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = at_least_1)]
    iters: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// A count of at least `min` (clap value parser).
fn at_least(s: &str, min: usize) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        Ok(n) => Err(format!("{n} is too small: it must be at least {min}")),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

fn at_least_1(s: &str) -> Result<usize, String> {
    at_least(s, 1)
}

/// `[CLS]` and `[SEP]` take two tokens.
fn at_least_2(s: &str) -> Result<usize, String> {
    at_least(s, 2)
}

/// Text-tower architecture of the random-weight bench.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum TextArch {
    /// The Taiyi-CLIP RoBERTa-large text tower (24 layers, 1024 wide).
    Taiyi,
    /// The tiny test configuration.
    Tiny,
}

/// Which tower(s) `taiyi bench` times.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum TowerArg {
    /// The BERT text tower.
    Text,
    /// The ViT image tower.
    Image,
    /// Both, one after the other (text first).
    Both,
}

impl TowerArg {
    fn name(self) -> &'static str {
        match self {
            TowerArg::Text => "text",
            TowerArg::Image => "image",
            TowerArg::Both => "both",
        }
    }
}

/// Measurements of one tower.
struct TowerResult {
    tower: &'static str,
    model: String,
    weights: String,
    params: usize,
    param_dtype: String,
    output_dtype: String,
    batch: usize,
    /// Tokens per text (text tower) or image side in pixels (image tower).
    seq: Option<usize>,
    image_size: Option<usize>,
    load_s: f64,
    first_call_s: f64,
    iter_s: Vec<f64>,
    finite: bool,
}

impl TowerResult {
    fn min_s(&self) -> f64 {
        self.iter_s.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn mean_s(&self) -> f64 {
        self.iter_s.iter().sum::<f64>() / self.iter_s.len().max(1) as f64
    }

    fn median_s(&self) -> f64 {
        let mut v = self.iter_s.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// Items (images or texts) per second at the median iteration time.
    fn items_per_s(&self) -> f64 {
        self.batch as f64 / self.median_s()
    }

    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "model": self.model,
            "weights": self.weights,
            "params": self.params,
            "param_dtype": self.param_dtype,
            "output_dtype": self.output_dtype,
            "batch": self.batch,
            "load_s": self.load_s,
            "first_call_s": self.first_call_s,
            "min_s": self.min_s(),
            "median_s": self.median_s(),
            "mean_s": self.mean_s(),
            "iter_s": self.iter_s,
            "finite": self.finite,
        });
        let per_s = self.items_per_s();
        match (self.seq, self.image_size) {
            (Some(seq), _) => {
                v["seq"] = seq.into();
                v["texts_per_s"] = per_s.into();
                v["tokens_per_s"] = (per_s * seq as f64).into();
            }
            (None, size) => {
                v["image_size"] = size.into();
                v["images_per_s"] = per_s.into();
            }
        }
        v
    }

    fn throughput(&self) -> String {
        let per_s = self.items_per_s();
        match self.seq {
            Some(seq) => format!(
                "{} texts/s, {} tokens/s",
                format_rate(per_s),
                format_rate(per_s * seq as f64)
            ),
            None => format!("{} images/s", format_rate(per_s)),
        }
    }
}

/// Materialises every float parameter (burn initialises them lazily) and casts it to the
/// backend's float type, counting the elements.
///
/// A GPU device keeps the float dtype of its first use as the default for new tensors, so
/// random weights could otherwise come out in another precision than the one benchmarked;
/// checkpoint weights are already cast by the loader.
struct ToPrecision {
    dtype: DType,
    params: usize,
    result: Option<DType>,
}

impl<B: Backend> ModuleMapper<B> for ToPrecision {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.map(|t| {
            self.params += t.shape().num_elements();
            let t = if t.dtype() == self.dtype {
                t
            } else {
                t.cast(self.dtype)
            };
            self.result.get_or_insert(t.dtype());
            t
        })
    }
}

/// The module with every parameter on the device in `B`'s float type, its parameter count and
/// the parameters' dtype.
fn materialize<B: Backend, M: Module<B>>(module: M) -> (M, usize, String) {
    let mut m = ToPrecision {
        dtype: <B::FloatElem as Element>::dtype(),
        params: 0,
        result: None,
    };
    let module = module.map(&mut m);
    (
        module,
        m.params,
        m.result.map(dtype_name).unwrap_or_default(),
    )
}

fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_ascii_lowercase()
}

fn sync<B: Backend>(device: &B::Device) -> Result<(), CliError> {
    B::sync(device).map_err(|e| {
        CliError::Clip(ClipError::Readback {
            message: format!("device sync failed: {e}"),
        })
    })
}

/// Run `f`, wait for the device, return the result and the elapsed seconds.
fn timed<B: Backend, T>(
    device: &B::Device,
    f: impl FnOnce() -> Result<T, CliError>,
) -> Result<(T, f64), CliError> {
    let start = Instant::now();
    let out = f()?;
    sync::<B>(device)?;
    Ok((out, start.elapsed().as_secs_f64()))
}

/// The first call, `iters` timed calls, and a finiteness check of the first output.
fn time_forward<B: Backend>(
    device: &B::Device,
    iters: usize,
    forward: impl Fn() -> Tensor<B, 2>,
) -> Result<(f64, Vec<f64>, bool, String), CliError> {
    let (first, first_call_s) = timed::<B, _>(device, || Ok(forward()))?;
    let output_dtype = dtype_name(first.dtype());
    let finite = taiyi_core::to_vec(first)?.iter().all(|v| v.is_finite());
    let mut iter_s = Vec::with_capacity(iters);
    for _ in 0..iters {
        // The output stays alive until the device is synced, so no backend can skip the work.
        let (_out, s) = timed::<B, _>(device, || Ok(forward()))?;
        iter_s.push(s);
    }
    Ok((first_call_s, iter_s, finite, output_dtype))
}

/// `[batch, seq]` ids, uniform in the vocabulary (splitmix64, fixed seed), `[CLS]` first and
/// `[SEP]` last when the vocabulary has them.
fn random_ids(batch: usize, seq: usize, vocab: usize) -> Vec<i64> {
    let mut state: u64 = 0x5441_4959_4942_454e;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let vocab = vocab.max(1) as u64;
    let mut ids = Vec::with_capacity(batch * seq);
    for _ in 0..batch {
        for col in 0..seq {
            let id = match col {
                0 if (CLS as u64) < vocab => CLS,
                c if c + 1 == seq && (SEP as u64) < vocab => SEP,
                _ => (next() % vocab) as i64,
            };
            ids.push(id);
        }
    }
    ids
}

impl BenchArgs {
    fn bench_text<B: Backend>(
        &self,
        batch: usize,
        device: &B::Device,
    ) -> Result<TowerResult, CliError> {
        let ((model, name, weights, params, param_dtype), load_s) = timed::<B, _>(device, || {
            let (model, name, weights) = match &self.text_model {
                Some(dir) => {
                    let (m, _) = BertModel::<B>::from_pretrained_dir(dir, device)
                        .map_err(ClipError::from)?;
                    (m, "bert".to_string(), dir.display().to_string())
                }
                None => {
                    let (config, name) = match self.text_arch {
                        TextArch::Taiyi => (BertConfig::taiyi_roberta_large(), "taiyi"),
                        TextArch::Tiny => (BertConfig::tiny(), "tiny"),
                    };
                    let m = BertModel::<B>::new(&config, device).map_err(ClipError::from)?;
                    (m, name.to_string(), "random".to_string())
                }
            };
            let (model, params, dtype) = materialize(model);
            Ok((model, name, weights, params, dtype))
        })?;
        let seq = self.seq;
        if seq > model.max_positions() {
            return Err(CliError::Usage(format!(
                "--seq {seq} exceeds the text tower's {} positions",
                model.max_positions()
            )));
        }
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(random_ids(batch, seq, model.vocab_size()), [batch, seq]),
            device,
        );
        let mask = Tensor::<B, 2, Int>::ones([batch, seq], device);
        sync::<B>(device)?;
        let (first_call_s, iter_s, finite, output_dtype) =
            time_forward::<B>(device, self.iters, || {
                model.forward(ids.clone(), Some(mask.clone())).pooler_output
            })?;
        Ok(TowerResult {
            tower: "text",
            model: name,
            weights,
            params,
            param_dtype,
            output_dtype,
            batch,
            seq: Some(seq),
            image_size: None,
            load_s,
            first_call_s,
            iter_s,
            finite,
        })
    }

    fn bench_image<B: Backend>(
        &self,
        batch: usize,
        device: &B::Device,
    ) -> Result<TowerResult, CliError> {
        let config = taiyi_core::arch::vision_config(&self.vision_arch)?;
        let ((model, weights, params, param_dtype), load_s) = timed::<B, _>(device, || {
            let (model, weights) = match &self.vision_model {
                Some(file) => {
                    let loaded = VisionTransformer::<B>::load_open_clip(file, &config, device)
                        .map_err(ClipError::from)?;
                    (loaded.model, file.display().to_string())
                }
                None => (
                    config.init::<B>(device).map_err(ClipError::from)?,
                    "random".to_string(),
                ),
            };
            let (model, params, dtype) = materialize(model);
            Ok((model, weights, params, dtype))
        })?;
        let size = model.image_size();
        let pixels = Tensor::<B, 4>::random(
            [batch, 3, size, size],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        sync::<B>(device)?;
        let (first_call_s, iter_s, finite, output_dtype) =
            time_forward::<B>(device, self.iters, || model.forward(pixels.clone()))?;
        Ok(TowerResult {
            tower: "image",
            model: self.vision_arch.clone(),
            weights,
            params,
            param_dtype,
            output_dtype,
            batch,
            seq: None,
            image_size: Some(size),
            load_s,
            first_call_s,
            iter_s,
            finite,
        })
    }
}

/// Whether `B` is the CPU backend of this build (for the default batch size).
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn is_cpu<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<taiyi_core::CpuBackend>()
}

/// Whether `B` is the CPU backend of this build (for the default batch size).
#[cfg(not(any(feature = "flex", feature = "ndarray")))]
#[allow(clippy::extra_unused_type_parameters)] // the same call as with a CPU backend
fn is_cpu<B: Backend>() -> bool {
    false
}

/// Run `f`, turning a panic of the backend (an unsupported op or dtype) into an error.
fn guarded<B: Backend, T>(
    device: &B::Device,
    what: &str,
    f: impl FnOnce() -> Result<T, CliError>,
) -> Result<T, CliError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(CliError::Clip(ClipError::BackendUnavailable {
            device: format!("{} {device:?}", B::name(device)),
            precision: dtype_name(<B::FloatElem as Element>::dtype()),
            reason: format!("the {what} tower panicked: {msg}"),
        }))
    })
}

fn format_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// About three significant digits.
fn format_rate(x: f64) -> String {
    match x {
        x if x < 1.0 => format!("{x:.3}"),
        x if x < 10.0 => format!("{x:.2}"),
        x if x < 100.0 => format!("{x:.1}"),
        x => format!("{x:.0}"),
    }
}

fn format_count(n: usize) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

fn table(header: &str, rows: &[TowerResult]) -> String {
    let head = [
        "tower",
        "model",
        "params",
        "dtype",
        "batch",
        "seq",
        "load",
        "first call",
        "min",
        "median",
        "throughput (median)",
    ];
    let mut cells: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            r.tower.to_string(),
            r.model.clone(),
            format_count(r.params),
            r.output_dtype.clone(),
            r.batch.to_string(),
            r.seq.map_or("-".to_string(), |s| s.to_string()),
            format_secs(r.load_s),
            format_secs(r.first_call_s),
            format_secs(r.min_s()),
            format_secs(r.median_s()),
            r.throughput(),
        ]);
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{header}\n");
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(
        "load: build or read the tower and materialise every parameter on the device; first \
         call: the first forward pass (kernel compilation, autotune); min/median over the timed \
         iterations, each ended by a device sync.\n",
    );
    for r in rows.iter().filter(|r| !r.finite) {
        out.push_str(&format!(
            "warning: the {} tower produced non-finite values (overflow at {}?)\n",
            r.tower, r.output_dtype
        ));
    }
    out
}

impl BackendTask for BenchArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        let batch = self.batch.unwrap_or(if is_cpu::<B>() { 4 } else { 64 });
        let text_batch = self.text_batch.unwrap_or(batch);
        let mut rows = Vec::new();
        if matches!(self.tower, TowerArg::Text | TowerArg::Both) {
            rows.push(guarded::<B, _>(&device, "text", || {
                self.bench_text::<B>(text_batch, &device)
            })?);
        }
        if matches!(self.tower, TowerArg::Image | TowerArg::Both) {
            rows.push(guarded::<B, _>(&device, "image", || {
                self.bench_image::<B>(batch, &device)
            })?);
        }
        let backend = B::name(&device);
        let device_name = format!("{device:?}");
        let precision = dtype_name(<B::FloatElem as Element>::dtype());
        let version = env!("CARGO_PKG_VERSION");
        if self.json {
            let mut v = serde_json::json!({
                "version": version,
                "backend": backend,
                "device": device_name,
                "precision": precision,
                "tower": self.tower.name(),
                "batch": batch,
                "text_batch": text_batch,
                "seq": self.seq,
                "iters": self.iters,
            });
            for r in &rows {
                v[r.tower] = r.json();
            }
            return crate::output::print_stdout(&format!("{v}\n"));
        }
        let header = format!(
            "taiyi bench {version}: backend {backend}, device {device_name}, precision \
             {precision}, {} timed iterations",
            self.iters
        );
        crate::output::print_stdout(&table(&header, &rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_cls_and_sep_and_stay_in_the_vocabulary() {
        let ids = random_ids(3, 5, 200);
        assert_eq!(ids.len(), 15);
        for row in ids.chunks(5) {
            assert_eq!(row[0], CLS);
            assert_eq!(row[4], SEP);
            assert!(row.iter().all(|&i| (0..200).contains(&i)));
        }
        assert!(random_ids(1, 4, 50).iter().all(|&i| (0..50).contains(&i)));
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        let mut r = TowerResult {
            tower: "image",
            model: String::new(),
            weights: String::new(),
            params: 0,
            param_dtype: String::new(),
            output_dtype: String::new(),
            batch: 2,
            seq: None,
            image_size: Some(224),
            load_s: 0.0,
            first_call_s: 0.0,
            iter_s: vec![3.0, 1.0, 2.0],
            finite: true,
        };
        assert_eq!(r.median_s(), 2.0);
        assert_eq!(r.min_s(), 1.0);
        r.iter_s.push(4.0);
        assert_eq!(r.median_s(), 2.5);
        assert_eq!(r.items_per_s(), 0.8);
    }
}
