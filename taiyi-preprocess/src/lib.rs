//! Exact preprocessing for Taiyi-CLIP.
//!
//! Tokenizer: [`tokenizer::BertTokenizer`] reproduces the slow Python `BertTokenizer` of
//! transformers 4.57.6 id for id (Unicode tables generated from the reference Python 3.11,
//! Unicode 14.0.0), with `[CLS] ... [SEP]`, truncation keeping `[SEP]` last and the padding
//! modes of the model card (`padding=True`) and of Fengshenbang training (fixed length 77).
//!
//! Images: [`transform::ImageTransform`] reproduces open_clip 3.3.0's ViT-H-14 evaluation
//! transform (torchvision Resize/CenterCrop on Pillow 13.0.0, ToTensor, Normalize) to the bit
//! for PNG input: the image is decoded in Pillow's mode, resized with a port of Pillow's
//! fixed-point bicubic resampler, cropped, converted to RGB and normalised in f32. Batches run
//! in parallel with rayon and can be returned as a burn `Tensor<B, 4>` `[N, 3, 224, 224]`.

pub mod tokenizer;
pub mod transform;

pub use transform::{ImageError, ImageInput, ImageSource, ImageTransform, PilImage, PilMode};
