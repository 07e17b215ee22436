//! [`ClipModel`]: both towers, the preprocessing and `logit_scale`, as in the model card.

use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use ndarray::Array2;
use taiyi_text::TextMode;

use crate::encoders::{EncodeOptions, ImageEncoder, ImageSource, TextEncoder};
use crate::hub::{HubOptions, ModelPaths};
use crate::{ClipError, ClipOptions, to_array2};
use crate::{Family, ModelSource};

/// What [`ClipModel::warm_up`] ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmUpReport {
    /// Forward passes of the text tower.
    pub text_passes: usize,
    /// Forward passes of the image tower.
    pub image_passes: usize,
}

/// Taiyi-CLIP: Chinese text and images in one 1024-d embedding space.
///
/// Reproduces the model card's Python code: text features are the BERT pooler output, image
/// features open_clip's `encode_image`, both L2-normalised, and
/// `logits_per_image = logit_scale.exp() * image_features @ text_features.T`.
///
/// `ClipModel` is `Send + Sync` on the CPU backends: share one behind an `Arc` and call it from
/// many threads.
///
/// ```no_run
/// use burn::backend::Flex;
/// use taiyi_core::{ClipModel, ImageSource};
///
/// # fn main() -> Result<(), taiyi_core::ClipError> {
/// let device = Default::default();
/// // Local paths, $TAIYI_TEXT_MODEL / $TAIYI_VISION_MODEL, or the Hugging Face hub.
/// let model = ClipModel::<Flex>::from_pretrained(&device)?;
/// let labels = ["一只猫", "一只狗", "两只猫", "两只老虎", "一只老虎"];
/// let out = model.logits(&[ImageSource::from("cats.jpg")], &labels)?;
/// let probs = out.probs()?; // [1, 5], rows sum to 1
/// println!("{probs:.3}");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClipModel<B: Backend> {
    text: TextEncoder<B>,
    image: ImageEncoder<B>,
    logit_scale: Option<f32>,
    vision_source: std::path::PathBuf,
    family: Family,
}

/// Logits of images against texts.
#[derive(Debug, Clone)]
pub struct ClipLogits<B: Backend> {
    /// `[n_images, n_texts]`: `logit_scale.exp() * image_features @ text_features.T`.
    pub logits_per_image: Tensor<B, 2>,
    /// `[n_texts, n_images]`: the transpose.
    pub logits_per_text: Tensor<B, 2>,
}

impl<B: Backend> ClipLogits<B> {
    /// The model card's `probs`: softmax of `logits_per_image` over the texts, `[n_images, n_texts]`.
    pub fn probs_tensor(&self) -> Tensor<B, 2> {
        softmax(self.logits_per_image.clone(), 1)
    }

    /// [`ClipLogits::probs_tensor`] on the host.
    pub fn probs(&self) -> Result<Array2<f32>, ClipError> {
        to_array2(self.probs_tensor())
    }

    /// `logits_per_image` on the host.
    pub fn per_image(&self) -> Result<Array2<f32>, ClipError> {
        to_array2(self.logits_per_image.clone())
    }
}

impl<B: Backend> ClipModel<B> {
    /// Load from the environment (`TAIYI_TEXT_MODEL`, `TAIYI_VISION_MODEL`) or, for what they
    /// don't name, the Hugging Face hub (cached in the standard layout; `HF_HOME`,
    /// `HF_HUB_CACHE` and `HF_HUB_OFFLINE` are honoured).
    pub fn from_pretrained(device: &B::Device) -> Result<Self, ClipError> {
        let paths = ModelPaths::resolve(None, None, &HubOptions::from_env())?;
        Self::load(&paths, &ClipOptions::default(), device)
    }

    /// Load from local paths: the HF text directory and the open_clip checkpoint file.
    pub fn from_paths(
        text_dir: impl AsRef<Path>,
        vision_file: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<Self, ClipError> {
        let paths = ModelPaths {
            text_dir: text_dir.as_ref().to_path_buf(),
            vision_file: vision_file.as_ref().to_path_buf(),
        };
        Self::load(&paths, &ClipOptions::default(), device)
    }

    /// Load with explicit paths and options.
    pub fn load(
        paths: &ModelPaths,
        options: &ClipOptions,
        device: &B::Device,
    ) -> Result<Self, ClipError> {
        let image = ImageEncoder::from_file_as(
            &paths.vision_file,
            &options.vision,
            device,
            options.weights,
        )?;
        Self::assemble(
            &paths.text_dir,
            image,
            options,
            device,
            (&paths.vision_file, Family::Taiyi),
        )
    }

    /// The text tower of `text_dir` beside `image`, both set up as `options` say; their
    /// feature widths must agree. `vision`: where the image tower came from, and the family.
    fn assemble(
        text_dir: &Path,
        image: ImageEncoder<B>,
        options: &ClipOptions,
        device: &B::Device,
        (vision_source, family): (&Path, Family),
    ) -> Result<Self, ClipError> {
        let text = TextEncoder::from_dir_as(text_dir, device, options.weights)?
            .with_mode(options.text_mode)
            .with_batch_size(options.text_batch_size)
            .with_buckets(options.buckets);
        let (td, id) = (text.output_dim(), image.output_dim());
        if td != id {
            return Err(ClipError::Mismatch {
                message: format!("the text tower gives {td}-d features, the image tower {id}-d"),
            });
        }
        Ok(Self {
            text,
            logit_scale: image.logit_scale(),
            image: image
                .with_batch_size(options.image_batch_size)
                .with_buckets(options.buckets),
            vision_source: vision_source.to_path_buf(),
            family,
        })
    }

    /// Load a model of either family ([`ModelSource`]: the Taiyi pair of paths or a
    /// Chinese-CLIP directory). For a directory, the image architecture comes from its
    /// `config.json` (`options.vision` is not used) and the transform from its
    /// `preprocessor_config.json`.
    ///
    /// ```no_run
    /// use burn::backend::Flex;
    /// use taiyi_core::{ClipModel, ClipOptions, HubOptions, ImageSource, ModelSource};
    ///
    /// # fn main() -> Result<(), taiyi_core::ClipError> {
    /// let device = Default::default();
    /// let source = ModelSource::resolve(
    ///     Some("chinese-clip-vit-base-patch16".as_ref()), // or "OFA-Sys/chinese-clip-vit-base-patch16"
    ///     None,
    ///     None,
    ///     &HubOptions::from_env(),
    /// )?;
    /// let options = ClipOptions {
    ///     text_mode: source.family().default_text_mode(),
    ///     ..ClipOptions::default()
    /// };
    /// let model = ClipModel::<Flex>::load_source(&source, &options, &device)?;
    /// let probs = model.logits(&[ImageSource::from("cat.jpg")], &["猫", "狗"])?.probs()?;
    /// println!("{probs:.3}");
    /// # Ok(()) }
    /// ```
    pub fn load_source(
        source: &ModelSource,
        options: &ClipOptions,
        device: &B::Device,
    ) -> Result<Self, ClipError> {
        let dir = match source {
            ModelSource::Taiyi(paths) => return Self::load(paths, options, device),
            ModelSource::Dir(dir) => dir,
        };
        let image = ImageEncoder::from_model_dir_as(dir, device, options.weights)?;
        Self::assemble(&dir.dir, image, options, device, (&dir.dir, dir.family))
    }

    /// The model's family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Assemble from encoders. `logit_scale` is the stored parameter (before `exp`).
    pub fn from_parts(text: TextEncoder<B>, image: ImageEncoder<B>, logit_scale: f32) -> Self {
        Self {
            text,
            image,
            logit_scale: Some(logit_scale),
            vision_source: std::path::PathBuf::new(),
            family: Family::Taiyi,
        }
    }

    /// Override `logit_scale` (the stored parameter, before `exp`).
    pub fn with_logit_scale(mut self, logit_scale: f32) -> Self {
        self.logit_scale = Some(logit_scale);
        self
    }

    /// Use another text mode (see [`TextMode`]).
    pub fn with_text_mode(mut self, mode: TextMode) -> Self {
        self.text = self.text.with_mode(mode);
        self
    }

    /// Compile (and autotune) the kernels of every shape the model can meet, before the first
    /// real call: every bucket shape of both towers for texts of up to `max_tokens` tokens (see
    /// [`TextEncoder::warm_up`], [`ImageEncoder::warm_up`]). Worth it on GPU backends, where a
    /// new shape otherwise compiles on first use; with the shape buckets of
    /// [`ClipOptions::for_device`] a never-seen text length or batch size then compiles nothing.
    pub fn warm_up(&self, max_tokens: usize) -> Result<WarmUpReport, ClipError> {
        Ok(WarmUpReport {
            text_passes: self.text.warm_up(max_tokens)?,
            image_passes: self.image.warm_up()?,
        })
    }

    /// The text half.
    pub fn text(&self) -> &TextEncoder<B> {
        &self.text
    }

    /// The image half.
    pub fn image(&self) -> &ImageEncoder<B> {
        &self.image
    }

    /// `logit_scale` as stored in the checkpoint (before `exp`), if it has one.
    pub fn logit_scale_raw(&self) -> Option<f32> {
        self.logit_scale
    }

    /// `logit_scale.exp()`, the factor applied to cosine similarities (≈100 for Taiyi).
    pub fn logit_scale(&self) -> Result<f32, ClipError> {
        self.logit_scale
            .map(f32::exp)
            .ok_or_else(|| ClipError::NoLogitScale {
                path: self.vision_source.clone(),
            })
    }

    /// L2-normalised text features `[n, 1024]`.
    pub fn encode_texts<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Tensor<B, 2>, ClipError> {
        self.text.encode(texts, &EncodeOptions::default())
    }

    /// L2-normalised image features `[n, 1024]`.
    pub fn encode_images(&self, images: &[ImageSource]) -> Result<Tensor<B, 2>, ClipError> {
        self.image.encode(images, &EncodeOptions::default())
    }

    /// Logits of `images` against `texts`, as in the model card.
    pub fn logits<S: AsRef<str> + Sync>(
        &self,
        images: &[ImageSource],
        texts: &[S],
    ) -> Result<ClipLogits<B>, ClipError> {
        let image_features = self.encode_images(images)?;
        let text_features = self.encode_texts(texts)?;
        self.logits_from_features(image_features, text_features)
    }

    /// Logits from normalised features `[n_images, d]` and `[n_texts, d]`.
    pub fn logits_from_features(
        &self,
        image_features: Tensor<B, 2>,
        text_features: Tensor<B, 2>,
    ) -> Result<ClipLogits<B>, ClipError> {
        let scale = self.logit_scale()?;
        logits_from_features(scale, image_features, text_features)
    }
}

/// `scale * image_features @ text_features.T` (the scale applied first, as in the reference).
pub fn logits_from_features<B: Backend>(
    scale: f32,
    image_features: Tensor<B, 2>,
    text_features: Tensor<B, 2>,
) -> Result<ClipLogits<B>, ClipError> {
    let [ni, di] = image_features.dims();
    let [nt, dt] = text_features.dims();
    if di != dt {
        return Err(ClipError::Mismatch {
            message: format!("image features are {di}-d but text features are {dt}-d"),
        });
    }
    if ni == 0 || nt == 0 {
        return Err(ClipError::EmptyInput {
            what: "no features",
        });
    }
    let logits_per_image = image_features
        .mul_scalar(scale)
        .matmul(text_features.transpose());
    Ok(ClipLogits {
        logits_per_text: logits_per_image.clone().transpose(),
        logits_per_image,
    })
}
