//! The towers behind `taiyi.ClipModel`, generic over the burn backend and loaded on first use.
//!
//! [`open`] picks the backend from a [`DeviceSpec`] at run time (like the CLI) and returns it
//! behind the object-safe [`Engine`] trait, so the Python class holds one type whatever the
//! device. Everything here runs without the GIL.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::tensor::backend::Backend;
use taiyi_core::hub::{self, HubOptions};
use taiyi_core::{
    BackendTask, Classification, ClipError, ClipOptions, DeviceSpec, EncodeOptions, Family,
    ImageEncoder, ImageSource, ModelDir, OptionChoices, Precision, Prediction, TextEncoder,
    TextMode, VisionConfig, ZeroShotClassifier, logits_from_features, to_array2, to_vec,
};

/// Row-major `f32` values and their `[rows, cols]` shape, ready for numpy.
pub type Matrix = (Vec<f32>, [usize; 2]);

/// What `ClipModel(...)` was given, resolved when a tower is first needed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A one-directory model (Chinese-CLIP), opened: both towers come from it, and the
    /// other paths are unused.
    pub model: Option<ModelDir>,
    /// Explicit HF text directory (else `$TAIYI_TEXT_MODEL`, else the hub).
    pub text_model: Option<PathBuf>,
    /// Explicit open_clip checkpoint (else `$TAIYI_VISION_MODEL`, else the hub).
    pub vision_model: Option<PathBuf>,
    /// The image-tower architecture.
    pub vision: VisionConfig,
    /// How texts are padded / masked.
    pub text_mode: TextMode,
    /// Images per forward pass (`None`: the device's default).
    pub image_batch_size: Option<usize>,
    /// Texts per forward pass (`None`: the device's default).
    pub text_batch_size: Option<usize>,
}

/// The model's operations, whatever the backend.
pub trait Engine: Send + Sync {
    /// Normalised text features `[n, d]`.
    fn encode_texts(&self, texts: &[String]) -> Result<Matrix, ClipError>;
    /// Normalised image features `[n, d]`.
    fn encode_images(&self, images: &[ImageSource]) -> Result<Matrix, ClipError>;
    /// `(logits_per_image, probs)`, both `[n_images, n_texts]`.
    fn logits(
        &self,
        images: &[ImageSource],
        texts: &[String],
    ) -> Result<(Matrix, Matrix), ClipError>;
    /// Every label per image, best first.
    fn zero_shot(
        &self,
        images: &[ImageSource],
        labels: &[String],
        templates: &[String],
    ) -> Result<Vec<Vec<Prediction>>, ClipError>;
    /// The image tower's `logit_scale.exp()` (loads the image tower).
    fn logit_scale(&self) -> Result<f32, ClipError>;
    /// Whether each tower is loaded: `(text, image)`.
    fn loaded(&self) -> (bool, bool);
}

/// A loaded image tower with its checkpoint's `logit_scale` and path.
struct Image<B: Backend> {
    encoder: ImageEncoder<B>,
    logit_scale: Option<f32>,
    file: PathBuf,
}

/// Both towers of one backend, each loaded on first use.
struct Towers<B: Backend> {
    settings: Settings,
    options: ClipOptions,
    device: B::Device,
    text: Mutex<Option<Arc<TextEncoder<B>>>>,
    image: Mutex<Option<Arc<Image<B>>>>,
}

fn poisoned() -> ClipError {
    ClipError::Mismatch {
        message: "a tower failed to load in another thread (it panicked); create a new ClipModel"
            .to_string(),
    }
}

fn matrix<B: Backend>(t: burn::tensor::Tensor<B, 2>) -> Result<Matrix, ClipError> {
    let dims = t.dims();
    Ok((to_vec(t)?, dims))
}

fn host(a: ndarray::Array2<f32>) -> Matrix {
    let dims = [a.nrows(), a.ncols()];
    (a.into_iter().collect(), dims)
}

impl<B: Backend> Towers<B> {
    fn text(&self) -> Result<Arc<TextEncoder<B>>, ClipError> {
        let mut slot = self.text.lock().map_err(|_| poisoned())?;
        if let Some(t) = slot.as_ref() {
            return Ok(Arc::clone(t));
        }
        let dir = match &self.settings.model {
            Some(model) => model.dir.clone(),
            None => {
                hub::resolve_text_dir(self.settings.text_model.as_deref(), &HubOptions::from_env())?
            }
        };
        let enc = TextEncoder::from_dir_as(&dir, &self.device, self.options.weights)?
            .with_mode(self.options.text_mode)
            .with_batch_size(self.options.text_batch_size)
            .with_buckets(self.options.buckets);
        let enc = Arc::new(enc);
        *slot = Some(Arc::clone(&enc));
        Ok(enc)
    }

    fn image(&self) -> Result<Arc<Image<B>>, ClipError> {
        let mut slot = self.image.lock().map_err(|_| poisoned())?;
        if let Some(i) = slot.as_ref() {
            return Ok(Arc::clone(i));
        }
        let (encoder, file) = match &self.settings.model {
            Some(model) => (
                ImageEncoder::from_model_dir_as(model, &self.device, self.options.weights)?,
                model.dir.clone(),
            ),
            None => {
                let file = hub::resolve_vision_file(
                    self.settings.vision_model.as_deref(),
                    &HubOptions::from_env(),
                )?;
                let encoder = ImageEncoder::from_file_as(
                    &file,
                    &self.options.vision,
                    &self.device,
                    self.options.weights,
                )?;
                (encoder, file)
            }
        };
        let logit_scale = encoder.logit_scale();
        let image = Arc::new(Image {
            encoder: encoder
                .with_batch_size(self.options.image_batch_size)
                .with_buckets(self.options.buckets),
            logit_scale,
            file,
        });
        *slot = Some(Arc::clone(&image));
        Ok(image)
    }

    fn scale(image: &Image<B>) -> Result<f32, ClipError> {
        image
            .logit_scale
            .map(f32::exp)
            .ok_or_else(|| ClipError::NoLogitScale {
                path: image.file.clone(),
            })
    }
}

impl<B: Backend> Engine for Towers<B>
where
    Towers<B>: Send + Sync,
{
    fn encode_texts(&self, texts: &[String]) -> Result<Matrix, ClipError> {
        matrix(self.text()?.encode(texts, &EncodeOptions::default())?)
    }

    fn encode_images(&self, images: &[ImageSource]) -> Result<Matrix, ClipError> {
        matrix(
            self.image()?
                .encoder
                .encode(images, &EncodeOptions::default())?,
        )
    }

    fn logits(
        &self,
        images: &[ImageSource],
        texts: &[String],
    ) -> Result<(Matrix, Matrix), ClipError> {
        let image = self.image()?;
        let scale = Self::scale(&image)?;
        let image_features = image.encoder.encode(images, &EncodeOptions::default())?;
        let text_features = self.text()?.encode(texts, &EncodeOptions::default())?;
        let out = logits_from_features(scale, image_features, text_features)?;
        Ok((host(out.per_image()?), host(out.probs()?)))
    }

    fn zero_shot(
        &self,
        images: &[ImageSource],
        labels: &[String],
        templates: &[String],
    ) -> Result<Vec<Vec<Prediction>>, ClipError> {
        let image = self.image()?;
        let scale = Self::scale(&image)?;
        let classifier =
            ZeroShotClassifier::from_text_encoder(&*self.text()?, labels, templates, scale)?;
        let features = image.encoder.encode(images, &EncodeOptions::default())?;
        let classes = classifier.classify(features)?;
        Ok(classes.iter().map(Classification::ranked).collect())
    }

    fn logit_scale(&self) -> Result<f32, ClipError> {
        Self::scale(&*self.image()?)
    }

    fn loaded(&self) -> (bool, bool) {
        let text = self.text.lock().map(|s| s.is_some()).unwrap_or(false);
        let image = self.image.lock().map(|s| s.is_some()).unwrap_or(false);
        (text, image)
    }
}

/// Makes the [`Towers`] of the backend [`DeviceSpec::run`] picks.
struct Open {
    settings: Settings,
    options: ClipOptions,
}

impl BackendTask for Open {
    type Output = Box<dyn Engine>;
    type Error = ClipError;

    fn run<B: Backend>(self, device: B::Device) -> Result<Box<dyn Engine>, ClipError> {
        // Check the device works now (a clear error at construction, not at first use).
        let probe = burn::tensor::Tensor::<B, 1>::zeros([1], &device);
        to_array2(probe.reshape([1, 1]))?;
        Ok(Box::new(Towers::<B> {
            settings: self.settings,
            options: self.options,
            device,
            text: Mutex::new(None),
            image: Mutex::new(None),
        }))
    }
}

/// The towers for `settings` on `device` with `precision`; nothing is loaded yet.
pub fn open(
    settings: Settings,
    device: DeviceSpec,
    precision: Precision,
) -> Result<Box<dyn Engine>, ClipError> {
    let family = settings.model.as_ref().map_or(Family::Taiyi, |m| m.family);
    let choices = OptionChoices {
        text_mode: Some(settings.text_mode),
        text_batch_size: settings.text_batch_size,
        image_batch_size: settings.image_batch_size,
        no_buckets: false,
    };
    let options = ClipOptions::choose(family, device, precision, &choices)
        .with_vision(settings.vision.clone());
    device.run(precision, Open { settings, options })
}
