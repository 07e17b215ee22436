//! The `apply_*` methods of [`ImageTransform`]: decode (under the decode budget) + transform,
//! one image, a parallel batch, or a tensor.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::DynamicImage;
use rayon::prelude::*;

use super::error::ImageError;
use super::input::ImageInput;
use super::pil::PilImage;
use super::{ImageTransform, decode};

impl ImageTransform {
    /// Decodes and transforms encoded data under the decode budget.
    fn apply_encoded(&self, bytes: &[u8], origin: &str) -> Result<Vec<f32>, ImageError> {
        let need = decode::estimate(bytes, origin, self.max_pixels);
        let _permit = self.budget_in_use()?.acquire(need);
        let img = decode::decode_bytes(bytes, origin, self.max_pixels, self.jpeg_decoder)?;
        self.apply(&img)
    }

    /// The whole transform on a decoded image: `[3, size, size]` f32, CHW, row-major.
    ///
    /// # Errors
    /// As [`ImageTransform::crop_rgb`].
    pub fn apply(&self, img: &PilImage) -> Result<Vec<f32>, ImageError> {
        self.normalize(&self.crop_rgb(img)?)
    }

    /// Decodes and transforms a file: `[3, size, size]` f32, CHW. The decode reserves its
    /// estimated memory from the decode budget first (see [`DecodeBudget`](super::DecodeBudget)), waiting while
    /// concurrent decodes hold it.
    ///
    /// # Errors
    /// As [`ImageTransform::decode_path`]; [`ImageError::DecodeMemoryEnv`] for an invalid
    /// [`DECODE_MEMORY_ENV`](crate::transform::DECODE_MEMORY_ENV).
    pub fn apply_path(&self, path: impl AsRef<Path>) -> Result<Vec<f32>, ImageError> {
        let path = path.as_ref();
        let bytes = self.read_file(path)?;
        self.apply_encoded(&bytes, &path.display().to_string())
    }

    /// Decodes and transforms an encoded image in memory: `[3, size, size]` f32, CHW, under the
    /// decode budget like [`ImageTransform::apply_path`].
    ///
    /// # Errors
    /// As [`ImageTransform::decode_bytes`]; [`ImageError::DecodeMemoryEnv`] for an invalid
    /// [`DECODE_MEMORY_ENV`](crate::transform::DECODE_MEMORY_ENV).
    pub fn apply_bytes(&self, bytes: &[u8]) -> Result<Vec<f32>, ImageError> {
        self.apply_encoded(bytes, "<bytes>")
    }

    /// Transforms an `image::DynamicImage`: `[3, size, size]` f32, CHW.
    ///
    /// # Errors
    /// [`ImageError::ZeroSize`] for an empty image.
    pub fn apply_dynamic(&self, img: &DynamicImage) -> Result<Vec<f32>, ImageError> {
        self.apply(&self.from_dynamic(img)?)
    }

    /// Transforms any [`ImageInput`]: `[3, size, size]` f32, CHW.
    ///
    /// # Errors
    /// The errors of the matching `apply_*` method.
    pub fn apply_input(&self, input: ImageInput<'_>) -> Result<Vec<f32>, ImageError> {
        match input {
            ImageInput::Path(p) => self.apply_path(p),
            ImageInput::Bytes(b) => self.apply_bytes(b),
            ImageInput::Image(d) => self.apply_dynamic(d),
            ImageInput::Pil(i) => self.apply(i),
        }
    }

    /// Transforms many images in parallel (rayon, one image per task), keeping their order.
    /// Returns one `[3, size, size]` CHW vector per image. Concurrent decodes together stay
    /// within the decode budget ([`DecodeBudget`](super::DecodeBudget), default 4 GiB): tasks wait for it.
    ///
    /// # Errors
    /// [`ImageError::EmptyBatch`] for no inputs; [`ImageError::DecodeMemoryEnv`] (once, not
    /// per image) if encoded inputs meet a bad [`DECODE_MEMORY_ENV`]; otherwise the first
    /// failing image's error (by position) wrapped in [`ImageError::Batch`].
    ///
    /// [`DECODE_MEMORY_ENV`]: crate::transform::DECODE_MEMORY_ENV
    pub fn apply_batch(&self, inputs: &[ImageInput<'_>]) -> Result<Vec<Vec<f32>>, ImageError> {
        if inputs.is_empty() {
            return Err(ImageError::EmptyBatch);
        }
        if inputs.iter().any(ImageInput::is_encoded) {
            self.budget_in_use()?;
        }
        inputs
            .par_iter()
            .enumerate()
            .map(|(index, &inp)| {
                self.apply_input(inp).map_err(|e| ImageError::Batch {
                    index,
                    source: Box::new(e),
                })
            })
            .collect()
    }

    /// Transforms many images in parallel into one tensor of shape `[N, 3, size, size]`.
    ///
    /// ```no_run
    /// use burn::backend::Flex;
    /// use taiyi_preprocess::transform::{ImageInput, ImageTransform};
    /// # fn main() -> Result<(), taiyi_preprocess::transform::ImageError> {
    /// let t = ImageTransform::default();
    /// let a = std::path::PathBuf::from("a.png");
    /// let b = std::fs::read("b.jpg").unwrap_or_default();
    /// let x = t.to_tensor::<Flex>(&[ImageInput::from(&a), ImageInput::from(&b)], &Default::default())?;
    /// assert_eq!(x.dims(), [2, 3, 224, 224]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`ImageTransform::apply_batch`].
    pub fn to_tensor<B: Backend>(
        &self,
        inputs: &[ImageInput<'_>],
        device: &B::Device,
    ) -> Result<Tensor<B, 4>, ImageError> {
        let per = self.apply_batch(inputs)?;
        let n = per.len();
        let mut flat = Vec::with_capacity(n * self.output_len());
        for v in per {
            flat.extend_from_slice(&v);
        }
        let s = self.image_size;
        Ok(Tensor::from_data(
            TensorData::new(flat, [n, 3, s, s]),
            device,
        ))
    }
}
