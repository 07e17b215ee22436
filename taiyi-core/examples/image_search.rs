//! Text-to-image search: embed a folder of images once, then rank them for Chinese queries.
//!
//! ```text
//! cargo run --release -p taiyi-core --example image_search -- FOLDER "一只猫" ["海边的日落" ...]
//! ```

use std::path::PathBuf;

use burn::backend::Flex;
use taiyi_core::retrieval::top_k;
use taiyi_core::{ClipModel, ImageSource, to_array2};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let folder = args.next().ok_or("usage: image_search FOLDER QUERY...")?;
    let queries: Vec<String> = args.collect();
    if queries.is_empty() {
        return Err("give at least one query".into());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();

    let device = Default::default();
    let model = ClipModel::<Flex>::from_pretrained(&device)?;
    let sources: Vec<ImageSource> = files.iter().cloned().map(ImageSource::from).collect();
    let images = to_array2(model.encode_images(&sources)?)?; // [n_images, 1024], normalised
    let texts = to_array2(model.encode_texts(&queries)?)?; // [n_queries, 1024]
    for (query, q) in queries.iter().zip(texts.outer_iter()) {
        println!("{query}");
        for hit in top_k(q, images.view(), 5)? {
            println!("  {:.4}  {}", hit.score, files[hit.index].display());
        }
    }
    Ok(())
}
