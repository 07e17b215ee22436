//! Embed every image of a folder and write the L2-normalised features as a `.npy` file
//! (`[n, 1024]` float32) with the file names in `OUT.npy.names.txt`, ready for
//! `taiyi search --index OUT.npy`.
//!
//! ```text
//! cargo run --release -p taiyi-core --example embed_folder -- FOLDER OUT.npy
//! ```

use std::path::PathBuf;

use burn::backend::Flex;
use taiyi_core::retrieval::EmbeddingIndex;
use taiyi_core::{ImageEncoder, ImageSource, VisionConfig, hub, npy, to_vec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(folder), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: embed_folder FOLDER OUT.npy".into());
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                ["jpg", "jpeg", "png", "webp"].contains(&x.to_ascii_lowercase().as_str())
            })
        })
        .collect();
    files.sort();

    let device = Default::default();
    let checkpoint = hub::resolve_vision_file(None, &hub::HubOptions::from_env())?;
    let (encoder, _logit_scale) =
        ImageEncoder::<Flex>::from_file(&checkpoint, &VisionConfig::vit_h_14(), &device)?;
    let sources: Vec<ImageSource> = files.iter().cloned().map(ImageSource::from).collect();
    let features = encoder.encode_raw_with_progress(&sources, &mut |n| {
        eprintln!("{n}/{} images", sources.len());
    })?;
    let features = taiyi_core::l2_normalize(features);
    let [n, d] = features.dims();
    let out = PathBuf::from(out);
    npy::write_f32(&out, &[n, d], &to_vec(features)?)?;
    let names: String = files.iter().map(|p| format!("{}\n", p.display())).collect();
    npy::write_atomic(&EmbeddingIndex::names_path(&out), names.as_bytes())?;
    println!("wrote {} [{n}, {d}]", out.display());
    Ok(())
}
