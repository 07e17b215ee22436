//! Exact preprocessing for Taiyi-CLIP.
//!
//! Tokenizer: [`tokenizer::BertTokenizer`] reproduces the slow Python `BertTokenizer` of
//! transformers 4.57.6 id for id (Unicode tables generated from the reference Python 3.11,
//! Unicode 14.0.0), with `[CLS] ... [SEP]`, truncation keeping `[SEP]` last and the padding
//! modes of the model card (`padding=True`) and of Fengshenbang training (fixed length 77).

pub mod tokenizer;
