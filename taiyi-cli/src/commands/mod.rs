//! One module per command.

pub(crate) mod bench;
pub(crate) mod embed_image;
pub(crate) mod embed_text;
pub(crate) mod index;
pub(crate) mod logits;
pub(crate) mod preprocess;
pub(crate) mod search;
pub(crate) mod serve;
pub(crate) mod tokenize;
pub(crate) mod zero_shot;
