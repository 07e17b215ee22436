//! [`ImageEncoder`]: open_clip image transform + ViT image tower.

use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use taiyi_preprocess::transform::{ImageInput, ImageTransform};
use taiyi_vision::{VisionConfig, VisionTransformer};

use super::{DEFAULT_IMAGE_BATCH, ImageSource, l2_normalize};
use crate::{ClipError, ShapeBuckets};

/// open_clip image transform + ViT image tower: images in, 1024-d features out.
#[derive(Debug)]
pub struct ImageEncoder<B: Backend> {
    model: VisionTransformer<B>,
    transform: ImageTransform,
    batch_size: usize,
    buckets: ShapeBuckets,
    device: B::Device,
}

impl<B: Backend> ImageEncoder<B> {
    /// Load an open_clip checkpoint file (`open_clip_model.safetensors`,
    /// `open_clip_pytorch_model.bin`, or a visual-only state dict) for `config`
    /// (`VisionConfig::vit_h_14()` for Taiyi). Returns the encoder and the checkpoint's
    /// `logit_scale` as stored (before `exp`), if it has one.
    pub fn from_file(
        path: impl AsRef<Path>,
        config: &VisionConfig,
        device: &B::Device,
    ) -> Result<(Self, Option<f32>), ClipError> {
        let loaded = VisionTransformer::load_open_clip(path, config, device)?;
        let transform = ImageTransform::new(
            config.image_size,
            taiyi_preprocess::transform::OPENAI_DATASET_MEAN,
            taiyi_preprocess::transform::OPENAI_DATASET_STD,
        )?;
        Ok((
            Self::new(loaded.model, transform, device.clone()),
            loaded.logit_scale,
        ))
    }

    /// Assemble from parts.
    pub fn new(model: VisionTransformer<B>, transform: ImageTransform, device: B::Device) -> Self {
        Self {
            model,
            transform,
            batch_size: DEFAULT_IMAGE_BATCH,
            buckets: ShapeBuckets::NONE,
            device,
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

    /// Raw (unnormalised) image features `[n, 1024]`: open_clip's `encode_image`, in the
    /// model's float dtype.
    pub fn encode_raw(&self, images: &[ImageSource]) -> Result<Tensor<B, 2>, ClipError> {
        self.encode_raw_with_progress(images, &mut |_| {})
    }

    /// [`ImageEncoder::encode_raw`], calling `progress(n_done)` after every chunk. Images are
    /// decoded chunk by chunk, so memory stays bounded for long lists.
    pub fn encode_raw_with_progress(
        &self,
        images: &[ImageSource],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Tensor<B, 2>, ClipError> {
        if images.is_empty() {
            return Err(ClipError::EmptyInput { what: "no images" });
        }
        let mut parts = Vec::with_capacity(images.len().div_ceil(self.batch_size));
        let mut done = 0;
        for chunk in images.chunks(self.batch_size) {
            let pixels = self.preprocess(chunk).map_err(|e| match e {
                ClipError::Image(taiyi_preprocess::transform::ImageError::Batch {
                    index,
                    source,
                }) => ClipError::Image(taiyi_preprocess::transform::ImageError::Batch {
                    index: index + done,
                    source,
                }),
                other => other,
            })?;
            parts.push(self.forward_chunk(pixels)?);
            done += chunk.len();
            progress(done);
        }
        Ok(Tensor::cat(parts, 0))
    }

    /// L2-normalised image features `[n, 1024]` (f32, see [`l2_normalize`]).
    pub fn encode(&self, images: &[ImageSource]) -> Result<Tensor<B, 2>, ClipError> {
        Ok(l2_normalize(self.encode_raw(images)?))
    }
}
