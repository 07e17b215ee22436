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
use taiyi_core::{CpuKernel, DenseFormat};
use taiyi_text::{BertConfig, BertModel, TextError};
use taiyi_vision::{VisionError, VisionTransformer};

use taiyi_cli::bench_report::{TowerResult, min_row_cosine, random_ids, table};

use crate::error::CliError;

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
    /// How the towers hold their linear weights (`--precision bf16` on the CPU: prepacked
    /// bf16); set from the global options.
    #[arg(skip)]
    pub(crate) weights: DenseFormat,
    /// The global `--model` (a Chinese-CLIP directory): both towers' real weights from it;
    /// handed over by `main`.
    #[arg(skip)]
    pub(crate) model: Option<PathBuf>,
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
    /// RoBERTa-wwm-ext-base with Chinese-CLIP's projection head (12 layers, 768 wide, 512-d
    /// features: chinese-clip-vit-base-patch16 and the large-patch14 sizes).
    ChineseClipBase,
    /// RoBERTa-wwm-ext-large with Chinese-CLIP's projection head (1024-d features:
    /// chinese-clip-vit-huge-patch14).
    ChineseClipLarge,
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

/// The timings of a tower's forward and its first output.
struct Timed {
    first_call_s: f64,
    iter_s: Vec<f64>,
    output_dtype: String,
    /// The first output on the host, row-major.
    first: Vec<f32>,
    /// Its row length.
    dim: usize,
}

impl Timed {
    fn finite(&self) -> bool {
        self.first.iter().all(|v| v.is_finite())
    }
}

/// The first call, `iters` timed calls, and the first output.
fn time_forward<B: Backend>(
    device: &B::Device,
    iters: usize,
    forward: impl Fn() -> Tensor<B, 2>,
) -> Result<Timed, CliError> {
    let (first, first_call_s) = timed::<B, _>(device, || Ok(forward()))?;
    let output_dtype = dtype_name(first.dtype());
    let [_, dim] = first.dims();
    let first = taiyi_core::to_vec(first)?;
    let mut iter_s = Vec::with_capacity(iters);
    for _ in 0..iters {
        // The output stays alive until the device is synced, so no backend can skip the work.
        let (_out, s) = timed::<B, _>(device, || Ok(forward()))?;
        iter_s.push(s);
    }
    Ok(Timed {
        first_call_s,
        iter_s,
        output_dtype,
        first,
        dim,
    })
}

/// The f32 output of `forward` on the host, when the run is to hold bf16 weights that are not
/// packed yet (random weights: built in f32, packed after this, for the cosine of the bf16
/// output to it; checkpoint weights are packed by the loader, without an f32 copy).
fn f32_reference<B: Backend>(
    weights: DenseFormat,
    packed: bool,
    forward: impl Fn() -> Tensor<B, 2>,
) -> Result<Option<Vec<f32>>, CliError> {
    match weights {
        DenseFormat::PackedBf16 if !packed => Ok(Some(taiyi_core::to_vec(forward())?)),
        _ => Ok(None),
    }
}

impl BenchArgs {
    /// The parameters' dtype as reported: the linear weights' bf16 when prepacked.
    fn param_dtype(&self, dtype: String) -> String {
        match self.weights {
            DenseFormat::PackedBf16 => format!("bf16 linear weights, {dtype} others"),
            DenseFormat::Float => dtype,
        }
    }

    /// `--precision` as run, and the bf16 kernel when the linear weights are prepacked.
    fn precision<B: Backend>(&self) -> (String, Option<&'static str>) {
        match self.weights {
            DenseFormat::PackedBf16 => (
                "bf16".to_string(),
                Some(CpuKernel::selected().map_or("none", CpuKernel::name)),
            ),
            DenseFormat::Float => (dtype_name(<B::FloatElem as Element>::dtype()), None),
        }
    }

    fn bench_text<B: Backend>(
        &self,
        batch: usize,
        device: &B::Device,
    ) -> Result<TowerResult, CliError> {
        let ((mut model, name, weights, params, param_dtype), mut load_s) =
            timed::<B, _>(device, || {
                let text_dir = match &self.model {
                    Some(spec) => Some(model_dir(spec)?.dir),
                    None => self.text_model.clone(),
                };
                let (model, name, weights) = match &text_dir {
                    Some(dir) => {
                        // As a user's run loads it (bf16: read as bf16 and packed).
                        let (m, _) =
                            BertModel::<B>::from_pretrained_dir_as(dir, device, self.weights)
                                .map_err(ClipError::from)?;
                        (m, "bert".to_string(), dir.display().to_string())
                    }
                    None => {
                        let (config, name) = match self.text_arch {
                            TextArch::Taiyi => (BertConfig::taiyi_roberta_large(), "taiyi"),
                            TextArch::ChineseClipBase => (
                                chinese_clip_text("chinese-clip-vit-base-patch16")?,
                                "chinese-clip-base",
                            ),
                            TextArch::ChineseClipLarge => (
                                chinese_clip_text("chinese-clip-vit-huge-patch14")?,
                                "chinese-clip-large",
                            ),
                            TextArch::Tiny => (BertConfig::tiny(), "tiny"),
                        };
                        let m = BertModel::<B>::new(&config, device).map_err(ClipError::from)?;
                        (m, name.to_string(), "random".to_string())
                    }
                };
                let (model, params, dtype) = materialize(model);
                let params = params + model.packed_params();
                Ok((model, name, weights, params, self.param_dtype(dtype)))
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
        let reference = f32_reference::<B>(self.weights, model.packed_params() > 0, || {
            model.forward(ids.clone(), Some(mask.clone())).pooler_output
        })?;
        if reference.is_some() {
            let ((), pack_s) = timed::<B, _>(device, || {
                model
                    .prepack_bf16()
                    .map_err(|e| CliError::Clip(TextError::Bf16(e).into()))
            })?;
            load_s += pack_s;
        }
        sync::<B>(device)?;
        let t = time_forward::<B>(device, self.iters, || {
            model.forward(ids.clone(), Some(mask.clone())).pooler_output
        })?;
        Ok(TowerResult {
            tower: "text",
            model: name,
            weights,
            params,
            param_dtype,
            output_dtype: t.output_dtype.clone(),
            batch,
            seq: Some(seq),
            image_size: None,
            load_s,
            first_call_s: t.first_call_s,
            finite: t.finite(),
            cosine_to_f32: reference.and_then(|r| min_row_cosine(&r, &t.first, t.dim)),
            iter_s: t.iter_s,
        })
    }

    fn bench_image<B: Backend>(
        &self,
        batch: usize,
        device: &B::Device,
    ) -> Result<TowerResult, CliError> {
        let model_dir = self.model.as_deref().map(model_dir).transpose()?;
        let config = taiyi_core::vision_config_for(model_dir.as_ref(), &self.vision_arch)?;
        let ((mut model, weights, params, param_dtype), mut load_s) =
            timed::<B, _>(device, || {
                let (model, weights) = match (&model_dir, &self.vision_model) {
                    (Some(dir), _) => {
                        let loaded = dir.load_vision::<B>(device, self.weights)?;
                        (loaded.model, dir.dir.display().to_string())
                    }
                    (None, Some(file)) => {
                        // As a user's run loads it (bf16: read as bf16 and packed).
                        let loaded = VisionTransformer::<B>::load_open_clip_as(
                            file,
                            &config,
                            device,
                            self.weights,
                        )
                        .map_err(ClipError::from)?;
                        (loaded.model, file.display().to_string())
                    }
                    (None, None) => (
                        config.init::<B>(device).map_err(ClipError::from)?,
                        "random".to_string(),
                    ),
                };
                let (model, params, dtype) = materialize(model);
                let params = params + model.packed_params();
                Ok((model, weights, params, self.param_dtype(dtype)))
            })?;
        let size = model.image_size();
        let pixels = Tensor::<B, 4>::random(
            [batch, 3, size, size],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        let reference = f32_reference::<B>(self.weights, model.packed_params() > 0, || {
            model.forward(pixels.clone())
        })?;
        if reference.is_some() {
            let ((), pack_s) = timed::<B, _>(device, || {
                model
                    .prepack_bf16()
                    .map_err(|e| CliError::Clip(VisionError::from(e).into()))
            })?;
            load_s += pack_s;
        }
        sync::<B>(device)?;
        let t = time_forward::<B>(device, self.iters, || model.forward(pixels.clone()))?;
        Ok(TowerResult {
            tower: "image",
            model: self.vision_arch.clone(),
            weights,
            params,
            param_dtype,
            output_dtype: t.output_dtype.clone(),
            batch,
            seq: None,
            image_size: Some(size),
            load_s,
            first_call_s: t.first_call_s,
            finite: t.finite(),
            cosine_to_f32: reference.and_then(|r| min_row_cosine(&r, &t.first, t.dim)),
            iter_s: t.iter_s,
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
        let (precision, kernel) = self.precision::<B>();
        let version = env!("CARGO_PKG_VERSION");
        if self.json {
            let mut v = serde_json::json!({
                "version": version,
                "backend": backend,
                "device": device_name,
                "precision": precision,
                "cpu_kernel": kernel,
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
        let kernel = kernel
            .map(|k| format!(" (bf16 kernel {k})"))
            .unwrap_or_default();
        let header = format!(
            "taiyi bench {version}: backend {backend}, device {device_name}, precision \
             {precision}{kernel}, {} timed iterations",
            self.iters
        );
        crate::output::print_stdout(&table(&header, &rows))
    }
}

/// The text tower of a published Chinese-CLIP size.
fn chinese_clip_text(name: &str) -> Result<BertConfig, ClipError> {
    taiyi_core::ChineseClipPreset::find(name)
        .map(|p| p.text_config())
        .ok_or_else(|| ClipError::Mismatch {
            message: format!("no Chinese-CLIP preset {name}"),
        })
}

/// The `--model` directory, opened (its family and image architecture read).
fn model_dir(spec: &std::path::Path) -> Result<taiyi_core::ModelDir, ClipError> {
    taiyi_core::ModelDir::resolve(spec, &taiyi_core::HubOptions::from_env())
}
