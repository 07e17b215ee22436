//! The BERT encoder: embeddings, post-LN encoder layers, tanh pooler.
//!
//! Field names follow the Hugging Face checkpoint keys, except two that Rust cannot or should
//! not spell: `attention.self` is the field `attention.self_attn`, and `LayerNorm` is
//! `layer_norm`. The loader renames those segments ([`crate::RENAMES`]; errors use the
//! checkpoint's spelling).

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, bf16, f16};
use taiyi_nn::{
    Activation, AttentionKernel, Dense, DenseConfig, KernelError, attend, linear_rows,
    linear_rows_then,
};

use crate::{BertConfig, TextError, TextHead};

/// Outputs of [`BertModel::forward`].
#[derive(Debug, Clone)]
pub struct BertOutput<B: Backend> {
    /// Hidden states of the last layer, `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor<B, 3>,
    /// The text feature, `[batch, dim]`, as the config's [`TextHead`] says: the pooler
    /// `tanh(dense(last_hidden_state[:, 0]))` (Taiyi, `dim = hidden`), or
    /// `text_projection(last_hidden_state[:, 0])` (Chinese-CLIP, `dim = projection_dim`).
    pub pooler_output: Tensor<B, 2>,
}

/// `embeddings.*`: word + token type 0 + absolute position, then LayerNorm.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// `embeddings.word_embeddings`, `[vocab, hidden]`.
    pub word_embeddings: Embedding<B>,
    /// `embeddings.position_embeddings`, `[max_position, hidden]`.
    pub position_embeddings: Embedding<B>,
    /// `embeddings.token_type_embeddings`, `[type_vocab, hidden]` (row 0 is used).
    pub token_type_embeddings: Embedding<B>,
    /// `embeddings.LayerNorm`.
    pub layer_norm: LayerNorm<B>,
}

impl<B: Backend> BertEmbeddings<B> {
    /// `[batch, seq]` ids → `[batch, seq, hidden]`. `seq` must not exceed the number of positions.
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, seq] = input_ids.dims();
        let [_, hidden] = self.position_embeddings.weight.dims();
        let positions = self
            .position_embeddings
            .weight
            .val()
            .slice([0..seq, 0..hidden])
            .unsqueeze_dim::<3>(0);
        self.sum(input_ids, positions)
    }

    /// Ids with explicit positions (a packed batch: each text counts from 0) →
    /// `[batch, seq, hidden]`; every position below the number of positions.
    ///
    /// # Shapes
    /// `input_ids`, `positions`: `[batch, seq]` → `[batch, seq, hidden]`.
    pub fn forward_at(
        &self,
        input_ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        let positions = self.position_embeddings.forward(positions);
        self.sum(input_ids, positions)
    }

    /// `LayerNorm((words + token_type) + positions)`: transformers' summation order.
    fn sum(&self, input_ids: Tensor<B, 2, Int>, positions: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, hidden] = self.position_embeddings.weight.dims();
        let words = self.word_embeddings.forward(input_ids);
        let token_type = self
            .token_type_embeddings
            .weight
            .val()
            .slice([0..1, 0..hidden])
            .unsqueeze_dim::<3>(0);
        self.layer_norm.forward((words + token_type) + positions)
    }
}

/// `encoder.layer.N.attention.self`: query/key/value projections and scaled dot-product attention.
#[derive(Module, Debug)]
pub struct BertSelfAttention<B: Backend> {
    /// `query` projection.
    pub query: Dense<B>,
    /// `key` projection.
    pub key: Dense<B>,
    /// `value` projection.
    pub value: Dense<B>,
    pub(crate) num_heads: usize,
    #[module(skip)]
    pub(crate) kernel: AttentionKernel,
}

impl<B: Backend> BertSelfAttention<B> {
    /// Multi-head self-attention with an optional additive mask (0 = attend, the dtype's most
    /// negative finite value = masked, as transformers builds it).
    ///
    /// # Shapes
    /// `x`: `[batch, seq, hidden]`, `bias`: `[batch, 1, 1, seq]` → `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let rows = |layer: &Dense<B>| linear_rows(layer, x.clone());
        let (q, k, v) = (rows(&self.query), rows(&self.key), rows(&self.value));
        attend(q, k, v, self.num_heads, bias, self.kernel)
    }
}

/// `encoder.layer.N.attention.output` and `encoder.layer.N.output`: dense + residual + LayerNorm.
#[derive(Module, Debug)]
pub struct BertResidualOutput<B: Backend> {
    /// `dense`.
    pub dense: Dense<B>,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm<B>,
}

impl<B: Backend> BertResidualOutput<B> {
    /// `LayerNorm(dense(x) + residual)`; `x`: `[batch, seq, in]`, `residual`: `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>, residual: Tensor<B, 3>) -> Tensor<B, 3> {
        self.layer_norm
            .forward(linear_rows(&self.dense, x) + residual)
    }
}

/// `encoder.layer.N.attention`.
#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    /// `attention.self` (renamed: `self` is a Rust keyword).
    pub self_attn: BertSelfAttention<B>,
    /// `attention.output`.
    pub output: BertResidualOutput<B>,
}

/// `encoder.layer.N.intermediate`.
#[derive(Module, Debug)]
pub struct BertIntermediate<B: Backend> {
    /// `intermediate.dense`, hidden → intermediate (followed by exact GELU).
    pub dense: Dense<B>,
}

/// `encoder.layer.N`: one post-LN transformer layer.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention block.
    pub attention: BertAttention<B>,
    /// Feed-forward up-projection.
    pub intermediate: BertIntermediate<B>,
    /// Feed-forward down-projection + residual + LayerNorm.
    pub output: BertResidualOutput<B>,
}

impl<B: Backend> BertLayer<B> {
    /// `a = LN(x + attn(x)); LN(a + W2 gelu(W1 a))`.
    ///
    /// # Shapes
    /// `x`: `[batch, seq, hidden]`, `bias`: `[batch, 1, 1, seq]` → `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let ctx = self.attention.self_attn.forward(x.clone(), bias);
        self.after_attention(ctx, x)
    }

    /// Everything after self-attention, per token row: `a = LN(x + W_o ctx)`, then the MLP.
    ///
    /// # Shapes
    /// `ctx`, `x`: `[batch, seq, hidden]` → `[batch, seq, hidden]`.
    pub(crate) fn after_attention(&self, ctx: Tensor<B, 3>, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let a = self.attention.output.forward(ctx, x);
        let i = linear_rows_then(&self.intermediate.dense, a.clone(), Activation::Gelu);
        self.output.forward(i, a)
    }
}

/// `encoder`.
#[derive(Module, Debug)]
pub struct BertEncoder<B: Backend> {
    /// `encoder.layer.{0..N}`.
    pub layer: Vec<BertLayer<B>>,
}

/// `pooler`.
#[derive(Module, Debug)]
pub struct BertPooler<B: Backend> {
    /// `pooler.dense`.
    pub dense: Dense<B>,
}

impl<B: Backend> BertPooler<B> {
    /// `[batch, seq, hidden]` → `tanh(dense(x[:, 0]))`, `[batch, hidden]`.
    pub fn forward(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, _, h] = hidden.dims();
        self.forward_cls(hidden.slice([0..b, 0..1, 0..h]).reshape([b, h]))
    }

    /// `tanh(dense(cls))` of the `[CLS]` rows.
    ///
    /// # Shapes
    /// `cls`: `[batch, hidden]` → `[batch, hidden]`.
    pub fn forward_cls(&self, cls: Tensor<B, 2>) -> Tensor<B, 2> {
        self.dense.forward(cls).tanh()
    }
}

/// The Taiyi text tower: a Hugging Face `BertModel` (embeddings, encoder, pooler).
///
/// Build it with [`BertModel::new`] (random init, lazily materialised) and load weights with
/// [`BertModel::from_pretrained_dir`] / [`BertModel::load_file`], or call those directly.
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    /// `embeddings`.
    pub embeddings: BertEmbeddings<B>,
    /// `encoder`.
    pub encoder: BertEncoder<B>,
    /// `pooler` ([`TextHead::Pooler`]; absent in Chinese-CLIP).
    pub pooler: Option<BertPooler<B>>,
    /// `text_projection` ([`TextHead::ClsProjection`]: bias-free, `hidden -> dim`; a key of
    /// `ChineseCLIPModel` beside `text_model.*`).
    pub text_projection: Option<Dense<B>>,
    max_positions: usize,
    vocab_size: usize,
    pad_token_id: usize,
    #[module(skip)]
    kernel: AttentionKernel,
}

fn linear<B: Backend>(i: usize, o: usize, device: &B::Device) -> Dense<B> {
    DenseConfig::new(i, o).init(device)
}

impl BertConfig {
    /// Build a [`BertModel`] with random (lazily initialised) parameters.
    ///
    /// Parameters are created lazily by burn: a parameter later overwritten by a checkpoint is
    /// never randomly initialised. Call [`BertConfig::validate`] first for untrusted configs
    /// (a zero size or heads not dividing the width make the model unusable).
    pub fn init<B: Backend>(&self, device: &B::Device) -> BertModel<B> {
        let h = self.hidden_size;
        let ln = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let embeddings = BertEmbeddings {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, h).init(device),
            layer_norm: ln(),
        };
        let layer = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attn: BertSelfAttention {
                        query: linear(h, h, device),
                        key: linear(h, h, device),
                        value: linear(h, h, device),
                        num_heads: self.num_attention_heads,
                        kernel: self.attention_kernel,
                    },
                    output: BertResidualOutput {
                        dense: linear(h, h, device),
                        layer_norm: ln(),
                    },
                },
                intermediate: BertIntermediate {
                    dense: linear(h, self.intermediate_size, device),
                },
                output: BertResidualOutput {
                    dense: linear(self.intermediate_size, h, device),
                    layer_norm: ln(),
                },
            })
            .collect();
        BertModel {
            embeddings,
            encoder: BertEncoder { layer },
            pooler: (self.head == TextHead::Pooler).then(|| BertPooler {
                dense: linear(h, h, device),
            }),
            text_projection: match self.head {
                TextHead::Pooler => None,
                TextHead::ClsProjection { dim } => {
                    Some(DenseConfig::new(h, dim).with_bias(false).init(device))
                }
            },
            max_positions: self.max_position_embeddings,
            vocab_size: self.vocab_size,
            pad_token_id: self.pad_token_id,
            kernel: self.attention_kernel,
        }
    }
}

impl<B: Backend> BertModel<B> {
    /// Hold every linear weight (query/key/value, both `dense` outputs, `intermediate`, the
    /// pooler) prepacked in bf16 for the CPU kernels ([`Dense::prepack_bf16`]), one layer at a
    /// time. Embeddings, norms and the residual stream stay f32.
    ///
    /// # Errors
    /// On any backend but burn's `Flex`, or when the process's bf16 kernel cannot run.
    pub fn prepack_bf16(&mut self) -> Result<(), KernelError> {
        for layer in &mut self.encoder.layer {
            let attn = &mut layer.attention;
            for dense in [
                &mut attn.self_attn.query,
                &mut attn.self_attn.key,
                &mut attn.self_attn.value,
                &mut attn.output.dense,
                &mut layer.intermediate.dense,
                &mut layer.output.dense,
            ] {
                dense.prepack_bf16()?;
            }
        }
        for dense in self.head_layers_mut() {
            dense.prepack_bf16()?;
        }
        Ok(())
    }

    /// The head's linear layers (the pooler's `dense`, `text_projection`).
    fn head_layers_mut(&mut self) -> impl Iterator<Item = &mut Dense<B>> {
        self.pooler
            .as_mut()
            .map(|p| &mut p.dense)
            .into_iter()
            .chain(self.text_projection.as_mut())
    }

    /// The text feature of the `[CLS]` rows, as the head says (see
    /// [`BertOutput::pooler_output`]): the pooler when the model has one, else
    /// `text_projection`; a model assembled by hand with neither returns the `[CLS]` rows.
    ///
    /// # Shapes
    /// `cls`: `[batch, hidden]` → `[batch, dim]`.
    pub fn head_forward(&self, cls: Tensor<B, 2>) -> Tensor<B, 2> {
        match (&self.pooler, &self.text_projection) {
            (Some(pooler), _) => pooler.forward_cls(cls),
            (None, Some(projection)) => projection.forward(cls),
            // `BertConfig::init` always builds one of the two.
            (None, None) => cls,
        }
    }

    /// Width of the text feature.
    pub fn output_dim(&self) -> usize {
        match (&self.pooler, &self.text_projection) {
            (None, Some(projection)) => projection.dims().1,
            _ => self.embeddings.word_embeddings.weight.dims()[1],
        }
    }

    /// Weights held prepacked in bf16 (elements; 0 unless [`Self::prepack_bf16`] ran).
    pub fn packed_params(&self) -> usize {
        self.encoder
            .layer
            .iter()
            .flat_map(|l| {
                let a = &l.attention;
                [
                    &a.self_attn.query,
                    &a.self_attn.key,
                    &a.self_attn.value,
                    &a.output.dense,
                    &l.intermediate.dense,
                    &l.output.dense,
                ]
            })
            .chain(self.pooler.as_ref().map(|p| &p.dense))
            .chain(self.text_projection.as_ref())
            .filter_map(|d| d.packed().map(|p| p.k() * p.n()))
            .sum()
    }

    /// Random-init model for `config` (see [`BertConfig::init`]); validates the config.
    pub fn new(config: &BertConfig, device: &B::Device) -> Result<Self, TextError> {
        config.validate()?;
        Ok(config.init(device))
    }

    /// Select the attention kernel of every layer (default: the config's `attention_kernel`,
    /// [`AttentionKernel::Matmul`]).
    pub fn with_attention_kernel(mut self, kernel: AttentionKernel) -> Self {
        self.kernel = kernel;
        for layer in &mut self.encoder.layer {
            layer.attention.self_attn.kernel = kernel;
        }
        self
    }

    /// The attention kernel in use.
    pub fn attention_kernel(&self) -> AttentionKernel {
        self.kernel
    }

    /// Maximum sequence length (number of absolute positions).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Id used for padding by the text modes.
    pub fn pad_token_id(&self) -> usize {
        self.pad_token_id
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Run the encoder without validating the inputs.
    ///
    /// - `input_ids`: `[batch, seq]` token ids (token type ids are all 0, positions `0..seq`).
    /// - `attention_mask`: optional `[batch, seq]`, 1 = attend, 0 = padding. `None` attends to
    ///   every token, padding included (the model card's behaviour).
    ///
    /// Returns `last_hidden_state` `[batch, seq, hidden]` and `pooler_output` `[batch, hidden]`.
    ///
    /// The backend may panic when `seq` exceeds [`BertModel::max_positions`], when an id is out
    /// of the vocabulary, or when the shapes disagree: use [`BertModel::try_forward`] for inputs
    /// that are not known to be valid.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
    ) -> BertOutput<B> {
        let mut x = self.embeddings.forward(input_ids);
        // transformers: (1 - mask) * finfo(dtype).min, added to the scaled scores. Built in the
        // dtype of the hidden states (the weights' dtype) with that dtype's finite minimum:
        // f32::MIN would be -inf in f16, and 0 * -inf = NaN for the attended positions.
        let bias = attention_mask.map(|m| {
            let [b, s] = m.dims();
            let dtype = x.dtype();
            Tensor::<B, 2>::zeros([b, s], (&m.device(), dtype))
                .mask_fill(m.equal_elem(0), finite_min(dtype))
                .reshape([b, 1, 1, s])
        });
        for layer in &self.encoder.layer {
            x = layer.forward(x, bias.clone());
        }
        let [b, _, h] = x.dims();
        let pooler_output = self.head_forward(x.clone().slice([0..b, 0..1, 0..h]).reshape([b, h]));
        BertOutput {
            last_hidden_state: x,
            pooler_output,
        }
    }

    /// [`BertModel::forward`] after checking the inputs: non-empty `[batch, seq]`,
    /// `seq <= max_positions`, every id in the vocabulary, mask of the same shape with 0/1
    /// values. Reads the ids (and mask) back from the device for the check.
    ///
    /// Shapes: `input_ids` `[batch, seq]`, `attention_mask` `[batch, seq]` →
    /// `last_hidden_state` `[batch, seq, hidden]`, `pooler_output` `[batch, hidden]`.
    pub fn try_forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
    ) -> Result<BertOutput<B>, TextError> {
        self.check_ids(&input_ids)?;
        if let Some(mask) = &attention_mask {
            crate::checks::check_mask(&input_ids, mask)?;
        }
        Ok(self.forward(input_ids, attention_mask))
    }
}

/// The most negative finite value of a float dtype (`torch.finfo(dtype).min`).
fn finite_min(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => f64::from(f16::MIN.to_f32()),
        DType::BF16 => f64::from(bf16::MIN.to_f32()),
        DType::F64 => f64::MIN,
        _ => f64::from(f32::MIN),
    }
}
