//! [`ImageEncoder`]: open_clip image transform + ViT image tower.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use taiyi_preprocess::transform::{ImageError, ImageInput, ImageTransform};
use taiyi_vision::{DenseFormat, VisionConfig, VisionTransformer};

use super::{DEFAULT_IMAGE_BATCH, EncodeOptions, ImageSource};
use crate::{ClipError, ShapeBuckets};

/// Where the time of one [`ImageEncoder::encode_profiled`] call went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PipelineStats {
    /// Images given.
    pub images: usize,
    /// Forward passes (chunks of at most the batch size).
    pub chunks: usize,
    /// Wall time of the whole call.
    pub wall: Duration,
    /// Time in the tower (forward passes, to device completion).
    pub tower: Duration,
    /// Decode + transform time (on rayon, overlapping the tower after the first chunk).
    pub preprocess: Duration,
    /// Time the tower waited for decoding: the part of the wall time outside the tower that
    /// the overlap did not hide.
    pub waiting: Duration,
}

/// What [`ImageEncoder::encode_skipping`] returns.
#[derive(Debug)]
pub struct PartialFeatures<B: Backend> {
    /// Features `[kept, dim]` of the images that could be read, in input order (normalised or
    /// raw as the [`EncodeOptions`] say); `None` when none could.
    pub features: Option<Tensor<B, 2>>,
    /// Each image left out: its position in the input and why.
    pub failed: Vec<(usize, ImageError)>,
    /// Where the time went.
    pub stats: PipelineStats,
}

/// open_clip image transform + ViT image tower: images in, 1024-d features out.
#[derive(Debug)]
pub struct ImageEncoder<B: Backend> {
    model: VisionTransformer<B>,
    transform: ImageTransform,
    batch_size: usize,
    buckets: ShapeBuckets,
    device: B::Device,
    logit_scale: Option<f32>,
}

impl<B: Backend> ImageEncoder<B> {
    /// Load an open_clip checkpoint file (`open_clip_model.safetensors`,
    /// `open_clip_pytorch_model.bin`, or a visual-only state dict) for `config`
    /// (`VisionConfig::vit_h_14()` for Taiyi). The checkpoint's `logit_scale`, if it has one,
    /// is kept: [`ImageEncoder::logit_scale`].
    pub fn from_file(
        path: impl AsRef<Path>,
        config: &VisionConfig,
        device: &B::Device,
    ) -> Result<Self, ClipError> {
        Self::from_file_as(path, config, device, DenseFormat::Float)
    }

    /// [`ImageEncoder::from_file`] with the tower's linear weights held as `weights` says
    /// ([`DenseFormat::PackedBf16`]: bf16 for the CPU kernels, `--precision bf16`).
    pub fn from_file_as(
        path: impl AsRef<Path>,
        config: &VisionConfig,
        device: &B::Device,
        weights: DenseFormat,
    ) -> Result<Self, ClipError> {
        config.validate()?;
        let ckpt = taiyi_store::Checkpoint::open(path)?;
        crate::arch::check_checkpoint(&ckpt, config)?;
        let loaded = VisionTransformer::load_from_checkpoint_as(ckpt, config, device, weights)?;
        let transform = ImageTransform::new(
            config.image_size,
            taiyi_preprocess::transform::OPENAI_DATASET_MEAN,
            taiyi_preprocess::transform::OPENAI_DATASET_STD,
        )?;
        let mut encoder = Self::new(loaded.model, transform, device.clone());
        encoder.logit_scale = loaded.logit_scale;
        Ok(encoder)
    }

    /// Load the image tower of a one-directory model ([`ModelDir`](crate::ModelDir):
    /// a transformers `ChineseCLIPModel` checkpoint's `vision_model.*` and
    /// `visual_projection`) with the directory's `preprocessor_config.json` transform. The
    /// checkpoint's `logit_scale` is kept ([`ImageEncoder::logit_scale`]).
    pub fn from_model_dir_as(
        dir: &crate::ModelDir,
        device: &B::Device,
        weights: DenseFormat,
    ) -> Result<Self, ClipError> {
        let transform = dir.image_transform()?;
        let loaded = dir.load_vision(device, weights)?;
        let mut encoder = Self::new(loaded.model, transform, device.clone());
        encoder.logit_scale = loaded.logit_scale;
        Ok(encoder)
    }

    /// The `logit_scale` of the checkpoint this encoder was loaded from, as stored (before
    /// `exp`); `None` for a checkpoint without one or an encoder assembled with
    /// [`ImageEncoder::new`].
    pub fn logit_scale(&self) -> Option<f32> {
        self.logit_scale
    }

    /// Assemble from parts.
    pub fn new(model: VisionTransformer<B>, transform: ImageTransform, device: B::Device) -> Self {
        Self {
            model,
            transform,
            batch_size: DEFAULT_IMAGE_BATCH,
            buckets: ShapeBuckets::NONE,
            device,
            logit_scale: None,
        }
    }

    /// Encode at most `batch_size` images per forward pass (minimum 1). Results do not depend
    /// on it (images are independent); memory does.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Pad batches to a power of two (see [`ShapeBuckets`]; default [`ShapeBuckets::NONE`]).
    pub fn with_buckets(mut self, buckets: ShapeBuckets) -> Self {
        self.buckets = buckets;
        self
    }

    /// Images per forward pass.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The shape buckets in use.
    pub fn buckets(&self) -> ShapeBuckets {
        self.buckets
    }

    /// The image transform.
    pub fn transform(&self) -> &ImageTransform {
        &self.transform
    }

    /// The ViT tower.
    pub fn model(&self) -> &VisionTransformer<B> {
        &self.model
    }

    /// Width of the image features.
    pub fn output_dim(&self) -> usize {
        self.model.output_dim()
    }

    /// The device the tower lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Preprocess images into a `[n, 3, 224, 224]` tensor (in parallel across cores).
    pub fn preprocess(&self, images: &[ImageSource]) -> Result<Tensor<B, 4>, ClipError> {
        if images.is_empty() {
            return Err(ClipError::EmptyInput { what: "no images" });
        }
        let inputs: Vec<ImageInput<'_>> = images.iter().map(ImageSource::as_input).collect();
        Ok(self.transform.to_tensor::<B>(&inputs, &self.device)?)
    }

    /// Raw features of already preprocessed pixels `[n, 3, 224, 224]` → `[n, 1024]`, in chunks.
    pub fn encode_pixels_raw(&self, pixels: Tensor<B, 4>) -> Result<Tensor<B, 2>, ClipError> {
        let n = pixels.dims()[0];
        if n == 0 {
            return Err(ClipError::EmptyInput { what: "no images" });
        }
        let mut parts = Vec::new();
        let mut done = 0;
        while done < n {
            let end = (done + self.batch_size).min(n);
            parts.push(self.forward_chunk(pixels.clone().slice(done..end))?);
            done = end;
        }
        Ok(Tensor::cat(parts, 0))
    }

    /// The tower on one chunk `[rows, 3, S, S]`, padded with zero images to the batch bucket
    /// (the filler rows are dropped from the result).
    fn forward_chunk(&self, pixels: Tensor<B, 4>) -> Result<Tensor<B, 2>, ClipError> {
        let [rows, c, h, w] = pixels.dims();
        let padded = self.buckets.batch(rows, self.batch_size);
        if padded == rows {
            return Ok(self.model.try_forward(pixels)?);
        }
        let filler = Tensor::zeros([padded - rows, c, h, w], (&pixels.device(), pixels.dtype()));
        let out = self
            .model
            .try_forward(Tensor::cat(vec![pixels, filler], 0))?;
        Ok(out.slice(0..rows))
    }

    /// Run the tower once for every batch shape this encoder can use (each batch bucket, or
    /// one full batch without buckets), so that later calls compile nothing. Returns the number
    /// of forward passes run.
    pub fn warm_up(&self) -> Result<usize, ClipError> {
        let batches = if self.buckets.is_enabled() {
            self.buckets.batch_buckets(self.batch_size)
        } else {
            vec![self.batch_size]
        };
        let s = self.model.image_size();
        for &rows in &batches {
            let pixels = Tensor::<B, 4>::zeros([rows, 3, s, s], &self.device);
            crate::sync(self.model.try_forward(pixels)?)?;
        }
        Ok(batches.len())
    }

    /// Image features `[n, 1024]`: L2-normalised in f32 (the default, see
    /// [`l2_normalize`](super::l2_normalize)) or open_clip's raw `encode_image` in the model's
    /// float dtype ([`EncodeOptions::raw`]); `options.progress` hears the number of images done
    /// after every chunk. Images are decoded chunk by chunk, so memory stays bounded for long
    /// lists, and the next chunk is decoded and transformed (on rayon) while the tower runs on
    /// the current one. The first image that cannot be read fails the call.
    ///
    /// # Shapes
    /// `images.len() = n` → `[n, dim]`.
    pub fn encode(
        &self,
        images: &[ImageSource],
        options: &EncodeOptions<'_>,
    ) -> Result<Tensor<B, 2>, ClipError> {
        Ok(self.encode_profiled(images, options)?.0)
    }

    /// [`ImageEncoder::encode`], also returning where the time went.
    pub fn encode_profiled(
        &self,
        images: &[ImageSource],
        options: &EncodeOptions<'_>,
    ) -> Result<(Tensor<B, 2>, PipelineStats), ClipError> {
        let out = self.pipeline(images, false, options)?;
        let features = out
            .features
            .ok_or(ClipError::EmptyInput { what: "no images" })?;
        Ok((features, out.stats))
    }

    /// [`ImageEncoder::encode`] that leaves out the images that cannot be read, decoded or
    /// transformed instead of failing on the first: returns the features `[kept, 1024]` of the
    /// others in input order and, for each image left out, its position and error (see
    /// [`PartialFeatures`]). Tower errors still fail the call.
    ///
    /// # Shapes
    /// `images.len() = n` → `[n - failed.len(), dim]`.
    pub fn encode_skipping(
        &self,
        images: &[ImageSource],
        options: &EncodeOptions<'_>,
    ) -> Result<PartialFeatures<B>, ClipError> {
        self.pipeline(images, true, options)
    }

    /// Decode + transform chunk `i + 1` on a scoped thread (rayon inside) while the tower runs
    /// on chunk `i`. With `skip`, unreadable images are collected instead of failing.
    fn pipeline(
        &self,
        images: &[ImageSource],
        skip: bool,
        options: &EncodeOptions<'_>,
    ) -> Result<PartialFeatures<B>, ClipError> {
        use rayon::prelude::*;
        if images.is_empty() {
            return Err(ClipError::EmptyInput { what: "no images" });
        }
        // A bad decode-budget setting is the process's error, reported once: not an error of
        // every image (nor, with `skip`, a reason to skip them all).
        if images.iter().any(|i| i.as_input().is_encoded()) {
            self.transform.budget_in_use()?;
        }
        let start = Instant::now();
        let s = self.transform.image_size();
        let chunks: Vec<&[ImageSource]> = images.chunks(self.batch_size).collect();
        // Only the transform crosses threads (the tower need not be Sync).
        let (transform, chunks_ref) = (&self.transform, &chunks);
        let prep = move |c: usize| {
            let t = Instant::now();
            let out: Vec<Result<Vec<f32>, ImageError>> = chunks_ref[c]
                .par_iter()
                .map(|img| transform.apply_input(img.as_input()))
                .collect();
            (out, t.elapsed())
        };
        let mut stats = PipelineStats {
            images: images.len(),
            chunks: chunks.len(),
            ..PipelineStats::default()
        };
        let mut parts = Vec::with_capacity(chunks.len());
        let mut failed = Vec::new();
        std::thread::scope(|scope| -> Result<(), ClipError> {
            let mut next = Some(scope.spawn(|| prep(0)));
            let mut done = 0;
            for c in 0..chunks.len() {
                let wait = Instant::now();
                let Some(handle) = next.take() else { break };
                let (results, took) = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                stats.waiting += wait.elapsed();
                stats.preprocess += took;
                if c + 1 < chunks.len() {
                    next = Some(scope.spawn(move || prep(c + 1)));
                }
                let mut flat = Vec::with_capacity(results.len() * 3 * s * s);
                let mut rows = 0;
                for (i, r) in results.into_iter().enumerate() {
                    match r {
                        Ok(px) => {
                            flat.extend_from_slice(&px);
                            rows += 1;
                        }
                        Err(e) if skip => failed.push((done + i, e)),
                        Err(e) => {
                            return Err(ClipError::Image(ImageError::Batch {
                                index: done + i,
                                source: Box::new(e),
                            }));
                        }
                    }
                }
                if rows > 0 {
                    let t = Instant::now();
                    let data = TensorData::new(flat, [rows, 3, s, s]);
                    let features = self.forward_chunk(Tensor::from_data(data, &self.device))?;
                    B::sync(&self.device).map_err(|e| ClipError::Readback {
                        message: format!("the device failed to run the queued work: {e:?}"),
                    })?;
                    stats.tower += t.elapsed();
                    parts.push(features);
                }
                done += chunks[c].len();
                options.report(done);
            }
            Ok(())
        })?;
        stats.wall = start.elapsed();
        Ok(PartialFeatures {
            features: (!parts.is_empty()).then(|| options.finish(Tensor::cat(parts, 0))),
            failed,
            stats,
        })
    }
}
