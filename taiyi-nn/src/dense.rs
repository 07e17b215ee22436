//! [`Dense`]: the towers' linear layer, whose weight can be prepacked in bf16 for the CPU.

use std::sync::Arc;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::Activation;
use crate::bf16::{KernelError, PackedBf16};

/// Configuration of a [`Dense`] layer (initialised as burn's `Linear`).
#[derive(Config, Debug)]
pub struct DenseConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether the layer has a bias.
    #[config(default = true)]
    pub bias: bool,
}

impl DenseConfig {
    /// A layer with burn `Linear`'s initialisation (Kaiming uniform weight and bias).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Dense<B> {
        LinearConfig::new(self.d_input, self.d_output)
            .with_bias(self.bias)
            .init(device)
            .into()
    }
}

/// `y = x · weight + bias`, burn `Linear`'s parameters and layout (`weight` `[in, out]`,
/// `bias` `[out]`; checkpoint keys `weight` / `bias`, transposed from PyTorch's `[out, in]` at
/// load like a `Linear`'s).
///
/// After [`Dense::prepack_bf16`] (burn's `Flex` CPU backend) the weight lives in `packed`, bf16
/// in the kernels' layout, and the `weight` parameter is an empty `[0, 0]` tensor; the forward
/// then rounds its input rows to bf16 and accumulates in f32 (`crate::bf16`). Otherwise the
/// forward is the f32 gemm on Flex, burn's `Linear` elsewhere.
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    /// `[in, out]`; empty once prepacked.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`, kept in the backend's float type.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The weight in bf16 panels, when prepacked.
    #[module(skip)]
    packed: Option<Arc<PackedBf16>>,
}

impl<B: Backend> From<Linear<B>> for Dense<B> {
    fn from(linear: Linear<B>) -> Self {
        Self {
            weight: linear.weight,
            bias: linear.bias,
            packed: None,
        }
    }
}

impl<B: Backend> Dense<B> {
    /// The layers' outputs side by side: one layer `in -> sum(out_i)` whose output columns are
    /// those of `parts` in order (HF's separate `q_proj`, `k_proj`, `v_proj` as one fused
    /// `in_proj`). Biases are concatenated; a part without one contributes zeros, and none
    /// with a bias gives none.
    ///
    /// # Errors
    /// [`KernelError::BadWeight`] when `parts` is empty, a part is prepacked, or the inputs differ.
    pub fn concat_outputs(parts: Vec<Dense<B>>) -> Result<Self, KernelError> {
        let shape_error = |what: String| Err(KernelError::BadWeight { what });
        let Some(first) = parts.first() else {
            return shape_error("no layers to concatenate".into());
        };
        let [d_in, _] = first.weight.dims();
        if parts.iter().any(|p| p.packed.is_some()) {
            return shape_error("cannot concatenate prepacked layers".into());
        }
        if let Some(p) = parts.iter().find(|p| p.weight.dims()[0] != d_in) {
            return shape_error(format!(
                "layers take {} and {} inputs",
                d_in,
                p.weight.dims()[0]
            ));
        }
        let any_bias = parts.iter().any(|p| p.bias.is_some());
        let mut weights = Vec::with_capacity(parts.len());
        let mut biases = Vec::with_capacity(parts.len());
        for part in parts {
            let weight = part.weight.val();
            let [_, d_out] = weight.dims();
            if any_bias {
                biases.push(match part.bias {
                    Some(b) => b.val(),
                    None => Tensor::zeros([d_out], (&weight.device(), weight.dtype())),
                });
            }
            weights.push(weight);
        }
        Ok(Self {
            weight: Param::from_tensor(Tensor::cat(weights, 1)),
            bias: any_bias.then(|| Param::from_tensor(Tensor::cat(biases, 0))),
            packed: None,
        })
    }

    /// The layer applied to the rows of `x`: the bf16 kernel when prepacked, on `Flex` f32 the
    /// workspace's gemm (one gemm into a buffer it owns, the bias added on rayon), else burn's
    /// `Linear` forward.
    ///
    /// # Shapes
    /// `x`: `[rows, in]` → `[rows, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        #[cfg(feature = "flex")]
        let x = match crate::flex::dense(self.packed.as_deref(), &self.weight, &self.bias, x, false)
        {
            Ok(y) => return y,
            Err(x) => x,
        };
        let y = x.matmul(self.weight.val());
        match &self.bias {
            Some(bias) => y + bias.val().unsqueeze_dim(0),
            None => y,
        }
    }

    /// `activation(self.forward(x))`; when prepacked (Flex) and `activation` is exact GELU, the
    /// kernel applies it to each output tile as it stores it (the same values, one pass over
    /// the output less).
    ///
    /// # Shapes
    /// `x`: `[rows, in]` → `[rows, out]`.
    pub fn forward_then(&self, x: Tensor<B, 2>, activation: Activation) -> Tensor<B, 2> {
        #[cfg(feature = "flex")]
        let x = match (&self.packed, activation) {
            (Some(packed), Activation::Gelu) => {
                match crate::flex::dense(Some(packed), &self.weight, &self.bias, x, true) {
                    Ok(y) => return y,
                    Err(x) => x,
                }
            }
            _ => x,
        };
        activation.forward(self.forward(x))
    }

    /// The bf16 weight, when prepacked.
    pub fn packed(&self) -> Option<&PackedBf16> {
        self.packed.as_deref()
    }

    /// `(in, out)`.
    pub fn dims(&self) -> (usize, usize) {
        match &self.packed {
            Some(p) => (p.k(), p.n()),
            None => {
                let [i, o] = self.weight.dims();
                (i, o)
            }
        }
    }

    /// Move the weight into bf16 panels for the CPU kernels (rounded to nearest even when it
    /// is f32; exact when it is bf16); the bias stays as it is. Idempotent.
    ///
    /// # Errors
    /// [`KernelError::NotFlex`] on any backend but `Flex` (the layer is left unchanged), or a
    /// weight that is not f32/bf16.
    pub fn prepack_bf16(&mut self) -> Result<(), KernelError> {
        if self.packed.is_some() {
            return Ok(());
        }
        #[cfg(feature = "flex")]
        {
            let packed = crate::flex::pack_weight(&self.weight.val())?;
            let device = self.weight.device();
            self.weight = Param::from_tensor(Tensor::empty([0, 0], &device));
            self.packed = Some(Arc::new(packed));
            Ok(())
        }
        #[cfg(not(feature = "flex"))]
        Err(KernelError::NotFlex)
    }
}

/// How a tower holds its linear weights after loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DenseFormat {
    /// In the backend's float type (the reference).
    #[default]
    Float,
    /// Read as bf16 and prepacked for the CPU's bf16 kernels ([`Dense::prepack_bf16`]; burn's
    /// `Flex` backend only). Everything else of the tower stays in the backend's float type.
    PackedBf16,
}

impl DenseFormat {
    /// The dtype the loader should read linear weights in, given the backend's float dtype.
    pub fn load_dtype(self, float: burn::tensor::DType) -> burn::tensor::DType {
        match self {
            DenseFormat::Float => float,
            DenseFormat::PackedBf16 => burn::tensor::DType::BF16,
        }
    }
}
