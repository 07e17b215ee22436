//! Zero-shot classification with an OFA-Sys Chinese-CLIP model (a transformers
//! `ChineseCLIPModel` directory or its hub id), the model family beside Taiyi.
//!
//! ```text
//! cargo run --release -p taiyi-core --example chinese_clip -- MODEL [IMAGE]
//! ```
//! `MODEL`: a local directory (config.json, pytorch_model.bin or model.safetensors, vocab.txt,
//! preprocessor_config.json) or a hub id such as `OFA-Sys/chinese-clip-vit-base-patch16`
//! (downloaded into the Hugging Face cache on first run). The tiny random-weight test model
//! `fixtures/chinese_clip/tiny` runs too.

use burn::backend::Flex;
use taiyi_core::{ClipModel, ClipOptions, HubOptions, ImageSource, ModelSource};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: chinese_clip MODEL [IMAGE]")?;
    let image = args
        .next()
        .unwrap_or_else(|| "examples/data/chelsea_cat.png".to_string());
    let labels = ["一只猫", "一只狗", "两只猫", "两只老虎", "一只老虎"];

    let source = ModelSource::resolve(Some(model.as_ref()), None, None, &HubOptions::from_env())?;
    // The family's model card: Chinese-CLIP passes the attention mask.
    let options = ClipOptions {
        text_mode: source.family().default_text_mode(),
        ..ClipOptions::default()
    };
    let model = ClipModel::<Flex>::load_source(&source, &options, &Default::default())?;
    let probs = model
        .logits(&[ImageSource::from(image.as_str())], &labels)?
        .probs()?;
    println!("{image} ({})", model.family());
    for (label, p) in labels.iter().zip(probs.row(0)) {
        println!("  {label}\t{p:.3}");
    }
    Ok(())
}
