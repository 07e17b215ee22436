//! What the transform accepts: [`ImageSource`] (owned) and its borrowed view [`ImageInput`].

use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::pil::PilImage;

/// One image to preprocess, borrowed: the view of an [`ImageSource`] (same variants) that the
/// transform reads, for callers that hold the file name, bytes or image themselves.
#[derive(Debug, Clone, Copy)]
pub enum ImageInput<'a> {
    /// A file on disk (PNG, JPEG, GIF, WebP, BMP, TIFF).
    Path(&'a Path),
    /// An encoded file in memory.
    Bytes(&'a [u8]),
    /// A decoded image from the `image` crate.
    Image(&'a DynamicImage),
    /// Samples in a Pillow mode.
    Pil(&'a PilImage),
}

impl ImageInput<'_> {
    /// Whether the input must be decoded (a path or encoded bytes), reserving memory from the
    /// decode budget.
    pub fn is_encoded(&self) -> bool {
        matches!(self, ImageInput::Path(_) | ImageInput::Bytes(_))
    }
}

impl<'a> From<&'a Path> for ImageInput<'a> {
    fn from(p: &'a Path) -> Self {
        ImageInput::Path(p)
    }
}
impl<'a> From<&'a PathBuf> for ImageInput<'a> {
    fn from(p: &'a PathBuf) -> Self {
        ImageInput::Path(p)
    }
}
impl<'a> From<&'a [u8]> for ImageInput<'a> {
    fn from(b: &'a [u8]) -> Self {
        ImageInput::Bytes(b)
    }
}
impl<'a> From<&'a Vec<u8>> for ImageInput<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        ImageInput::Bytes(b)
    }
}
impl<'a> From<&'a DynamicImage> for ImageInput<'a> {
    fn from(i: &'a DynamicImage) -> Self {
        ImageInput::Image(i)
    }
}
impl<'a> From<&'a PilImage> for ImageInput<'a> {
    fn from(i: &'a PilImage) -> Self {
        ImageInput::Pil(i)
    }
}

/// One image to encode, owned: a file, encoded bytes, a decoded `image::DynamicImage`, or a
/// [`PilImage`]. [`ImageInput`] is its borrowed view (same variants), which the transform
/// reads: `ImageSource::as_input`, or build an `ImageInput` directly to avoid a copy.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An image file (PNG, JPEG, GIF, WebP, BMP, TIFF).
    Path(PathBuf),
    /// An encoded image in memory.
    Bytes(Vec<u8>),
    /// A decoded image.
    Image(DynamicImage),
    /// Samples in a Pillow mode.
    Pil(PilImage),
}

impl ImageSource {
    /// The borrowed view the transform reads.
    pub fn as_input(&self) -> ImageInput<'_> {
        match self {
            ImageSource::Path(p) => ImageInput::Path(p),
            ImageSource::Bytes(b) => ImageInput::Bytes(b),
            ImageSource::Image(i) => ImageInput::Image(i),
            ImageSource::Pil(i) => ImageInput::Pil(i),
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
impl From<DynamicImage> for ImageSource {
    fn from(i: DynamicImage) -> Self {
        ImageSource::Image(i)
    }
}
impl From<PilImage> for ImageSource {
    fn from(i: PilImage) -> Self {
        ImageSource::Pil(i)
    }
}
