//! `taiyi preprocess`.

use std::path::PathBuf;

use clap::Args;
use taiyi_core::npy;
use taiyi_preprocess::transform::{ImageError, ImageInput, ImageTransform};

use crate::error::CliError;

#[derive(Args, Debug)]
pub(crate) struct PreprocessArgs {
    /// Image files.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<PathBuf>,
    /// Output .npy file.
    #[arg(long, value_name = "FILE.npy")]
    out: PathBuf,
    /// The global `--model`: its directory's `preprocessor_config.json` transform instead of
    /// open_clip's ViT-H-14 one; handed over by `main`.
    #[arg(skip)]
    pub(crate) model: Option<PathBuf>,
}

/// Images transformed at once: the output is streamed to the file chunk by chunk, so memory
/// holds one chunk of pixels (0.6 MB per image), however many images there are.
const CHUNK: usize = 64;

pub(crate) fn run(a: PreprocessArgs) -> Result<(), CliError> {
    let t = match &a.model {
        Some(spec) => taiyi_core::ModelDir::resolve(spec, &taiyi_core::HubOptions::from_env())?
            .image_transform()?,
        None => ImageTransform::open_clip_vit_h_14(),
    };
    let s = t.image_size();
    let n = a.images.len();
    let mut out = npy::NpyWriter::create(&a.out, &[n, 3, s, s])?;
    for (c, chunk) in a.images.chunks(CHUNK).enumerate() {
        let inputs: Vec<ImageInput<'_>> = chunk.iter().map(ImageInput::from).collect();
        let per = t.apply_batch(&inputs).map_err(|e| match e {
            ImageError::Batch { index, source } => ImageError::Batch {
                index: index + c * CHUNK,
                source,
            },
            other => other,
        })?;
        for px in per {
            out.write(&px)?;
        }
    }
    out.finish()?;
    eprintln!("wrote {} [{n}, 3, {s}, {s}]", a.out.display());
    Ok(())
}
