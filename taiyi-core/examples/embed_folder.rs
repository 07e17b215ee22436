//! Embed every image of a folder and write the L2-normalised features as a `.npy` file
//! (`[n, 1024]` float32) with the file names in its manifest `OUT.npy.names.json`, ready for
//! `taiyi search --index OUT.npy`.
//!
//! ```text
//! cargo run --release -p taiyi-core --example embed_folder -- FOLDER OUT.npy
//! ```

use std::path::PathBuf;

use burn::backend::Flex;
use taiyi_core::retrieval::EmbeddingIndex;
use taiyi_core::{EncodeOptions, ImageEncoder, ImageSource, VisionConfig, hub, to_vec, walk};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(folder), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: embed_folder FOLDER OUT.npy".into());
    };
    let files = walk::image_files(std::path::Path::new(&folder), walk::WalkOptions::default())?;
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();

    let device = Default::default();
    let checkpoint = hub::resolve_vision_file(None, &hub::HubOptions::from_env())?;
    let encoder = ImageEncoder::<Flex>::from_file(&checkpoint, &VisionConfig::vit_h_14(), &device)?;
    let sources: Vec<ImageSource> = files.iter().cloned().map(ImageSource::from).collect();
    let progress = |n: usize| eprintln!("{n}/{} images", sources.len());
    let features = encoder.encode(&sources, &EncodeOptions::default().with_progress(&progress))?;
    let [n, d] = features.dims();
    let out = PathBuf::from(out);
    EmbeddingIndex::write(&out, d, &to_vec(features)?, &names, true, &[])?;
    println!("wrote {} [{n}, {d}]", out.display());
    Ok(())
}
