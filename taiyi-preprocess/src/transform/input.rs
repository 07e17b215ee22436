//! [`ImageInput`]: what the transform accepts.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::pil::PilImage;

/// One image to preprocess: a file, encoded bytes, a decoded `image::DynamicImage`, or a
/// [`PilImage`] holding samples in a Pillow mode.
#[derive(Debug, Clone, Copy)]
pub enum ImageInput<'a> {
    /// A file on disk (PNG, JPEG, GIF, WebP, BMP, TIFF).
    Path(&'a Path),
    /// An encoded file in memory.
    Bytes(&'a [u8]),
    /// A decoded image from the `image` crate.
    Dynamic(&'a DynamicImage),
    /// Samples in a Pillow mode.
    Pil(&'a PilImage),
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
        ImageInput::Dynamic(i)
    }
}
impl<'a> From<&'a PilImage> for ImageInput<'a> {
    fn from(i: &'a PilImage) -> Self {
        ImageInput::Pil(i)
    }
}
