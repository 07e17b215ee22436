//! The two halves of the model, usable on their own: [`TextEncoder`] (tokenizer + BERT) and
//! [`ImageEncoder`] (open_clip transform + ViT).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use taiyi_preprocess::tokenizer::{BertTokenizer, Padding, Truncation};
use taiyi_preprocess::transform::{ImageInput, ImageTransform};
use taiyi_text::{BertModel, TextMode};
use taiyi_vision::{VisionConfig, VisionTransformer};

use crate::ClipError;

/// Default number of texts encoded per forward pass.
pub const DEFAULT_TEXT_BATCH: usize = 32;
/// Default number of images encoded per forward pass.
pub const DEFAULT_IMAGE_BATCH: usize = 8;

/// L2-normalise the rows of `x` (`[n, d]`), as the reference does: `x / x.norm(dim=1, keepdim=True)`.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
    x / norm
}

/// Token ids and attention mask, both `[n, seq]`.
pub type TokenBatch<B> = (Tensor<B, 2, Int>, Tensor<B, 2, Int>);

/// Tokenizer + BERT text tower: Chinese texts in, 1024-d features out.
///
/// The features are the BERT pooler output (Taiyi has no text projection). How texts are
/// padded, and whether padding is masked, is the [`TextMode`] (default
/// [`TextMode::ModelCard`], which reproduces the model card: pad to the longest text of the
/// call, no attention mask). Texts are encoded `batch_size` at a time; every chunk is padded to
/// the same length as the whole call would be, so the result is identical to one big batch in
/// every mode.
#[derive(Debug)]
pub struct TextEncoder<B: Backend> {
    model: BertModel<B>,
    tokenizer: BertTokenizer,
    mode: TextMode,
    batch_size: usize,
    device: B::Device,
}

impl<B: Backend> TextEncoder<B> {
    /// Load the tokenizer and the BERT weights from an HF model directory (`config.json`,
    /// `vocab.txt`, `tokenizer_config.json`, and `model.safetensors` or `pytorch_model.bin`).
    pub fn from_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, ClipError> {
        let dir = dir.as_ref();
        let tokenizer = BertTokenizer::from_model_dir(dir)?;
        let (model, _config) = BertModel::from_pretrained_dir(dir, device)?;
        Ok(Self::new(model, tokenizer, device.clone()))
    }

    /// Assemble from parts.
    pub fn new(model: BertModel<B>, tokenizer: BertTokenizer, device: B::Device) -> Self {
        Self {
            model,
            tokenizer,
            mode: TextMode::default(),
            batch_size: DEFAULT_TEXT_BATCH,
            device,
        }
    }

    /// Use another text mode.
    pub fn with_mode(mut self, mode: TextMode) -> Self {
        self.mode = mode;
        self
    }

    /// Encode at most `batch_size` texts per forward pass (minimum 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The text mode in use.
    pub fn mode(&self) -> TextMode {
        self.mode
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// The BERT tower.
    pub fn model(&self) -> &BertModel<B> {
        &self.model
    }

    /// The device the tower lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Token ids and attention mask for `texts` as the mode pads them: `[n, seq]` each.
    /// Texts longer than the model's 512 positions are truncated, keeping `[SEP]` last.
    pub fn tokenize<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<TokenBatch<B>, ClipError> {
        let padding = match self.mode.pad_to() {
            Some(n) => Padding::Fixed(n),
            None => Padding::Longest,
        };
        let max = self.model.max_positions();
        let enc = self
            .tokenizer
            .encode_batch(texts, padding, Truncation::MaxLength(max))?;
        let shape = [enc.batch_size, enc.seq_len];
        let ids: Vec<i64> = enc.ids.iter().map(|&v| i64::from(v)).collect();
        let mask: Vec<i64> = enc.attention_mask.iter().map(|&v| i64::from(v)).collect();
        Ok((
            Tensor::from_data(TensorData::new(ids, shape), &self.device),
            Tensor::from_data(TensorData::new(mask, shape), &self.device),
        ))
    }

    /// Raw (unnormalised) text features `[n, 1024]`.
    pub fn encode_raw<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Tensor<B, 2>, ClipError> {
        self.encode_raw_with_progress(texts, &mut |_| {})
    }

    /// [`TextEncoder::encode_raw`], calling `progress(n_done)` after every chunk.
    pub fn encode_raw_with_progress<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Tensor<B, 2>, ClipError> {
        if texts.is_empty() {
            return Err(ClipError::EmptyInput { what: "no texts" });
        }
        let (ids, mask) = self.tokenize(texts)?;
        let n = texts.len();
        let mut parts = Vec::with_capacity(n.div_ceil(self.batch_size));
        let mut done = 0;
        while done < n {
            let end = (done + self.batch_size).min(n);
            // Every chunk keeps the call-wide padding, so chunking never changes a result.
            let mask = self.mode.uses_mask().then(|| mask.clone().slice(done..end));
            let out = self.model.try_forward(ids.clone().slice(done..end), mask)?;
            parts.push(out.pooler_output);
            done = end;
            progress(done);
        }
        Ok(Tensor::cat(parts, 0))
    }

    /// L2-normalised text features `[n, 1024]`.
    pub fn encode<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Tensor<B, 2>, ClipError> {
        Ok(l2_normalize(self.encode_raw(texts)?))
    }
}

/// One image to encode, owned: a file, encoded bytes, or a decoded `image::DynamicImage`.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An image file (PNG, JPEG, GIF, WebP, BMP, TIFF).
    Path(PathBuf),
    /// An encoded image in memory.
    Bytes(Vec<u8>),
    /// A decoded image.
    Image(image::DynamicImage),
}

impl ImageSource {
    fn as_input(&self) -> ImageInput<'_> {
        match self {
            ImageSource::Path(p) => ImageInput::Path(p),
            ImageSource::Bytes(b) => ImageInput::Bytes(b),
            ImageSource::Image(i) => ImageInput::Dynamic(i),
        }
    }
}

impl From<PathBuf> for ImageSource {
    fn from(p: PathBuf) -> Self {
        ImageSource::Path(p)
    }
}
impl From<&Path> for ImageSource {
    fn from(p: &Path) -> Self {
        ImageSource::Path(p.to_path_buf())
    }
}
impl From<&str> for ImageSource {
    /// A `&str` is a file path.
    fn from(p: &str) -> Self {
        ImageSource::Path(PathBuf::from(p))
    }
}
impl From<Vec<u8>> for ImageSource {
    fn from(b: Vec<u8>) -> Self {
        ImageSource::Bytes(b)
    }
}
impl From<image::DynamicImage> for ImageSource {
    fn from(i: image::DynamicImage) -> Self {
        ImageSource::Image(i)
    }
}

/// open_clip image transform + ViT image tower: images in, 1024-d features out.
#[derive(Debug)]
pub struct ImageEncoder<B: Backend> {
    model: VisionTransformer<B>,
    transform: ImageTransform,
    batch_size: usize,
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
            device,
        }
    }

    /// Encode at most `batch_size` images per forward pass (minimum 1). Results do not depend
    /// on it (images are independent); memory does.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
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
            parts.push(self.model.try_forward(pixels.clone().slice(done..end))?);
            done = end;
        }
        Ok(Tensor::cat(parts, 0))
    }

    /// Raw (unnormalised) image features `[n, 1024]`: open_clip's `encode_image`.
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
            parts.push(self.model.try_forward(pixels)?);
            done += chunk.len();
            progress(done);
        }
        Ok(Tensor::cat(parts, 0))
    }

    /// L2-normalised image features `[n, 1024]`.
    pub fn encode(&self, images: &[ImageSource]) -> Result<Tensor<B, 2>, ClipError> {
        Ok(l2_normalize(self.encode_raw(images)?))
    }
}
