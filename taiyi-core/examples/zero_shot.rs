//! The model card's snippet in Rust: classify an image among five Chinese captions.
//!
//! ```text
//! cargo run --release -p taiyi-core --example zero_shot -- [IMAGE]
//! ```
//! Weights: `$TAIYI_TEXT_MODEL` (HF text directory) and `$TAIYI_VISION_MODEL` (open_clip
//! checkpoint), else downloaded from the Hugging Face hub on first run.

use burn::backend::Flex;
use taiyi_core::{ClipModel, ImageSource};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let query_texts = ["一只猫", "一只狗", "两只猫", "两只老虎", "一只老虎"];
    let image = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/data/chelsea_cat.png".to_string());

    let device = Default::default();
    let model = ClipModel::<Flex>::from_pretrained(&device)?;

    // logits_per_image = logit_scale.exp() * image_features @ text_features.T
    let out = model.logits(&[ImageSource::from(image.as_str())], &query_texts)?;
    let probs = out.probs()?;
    println!("{image}");
    for (label, p) in query_texts.iter().zip(probs.row(0)) {
        println!("  {label}\t{p:.3}");
    }
    Ok(())
}
