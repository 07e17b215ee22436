//! The MLP activations of the towers.

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::backend::Backend;

/// The activation between the two MLP projections of a transformer block.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `x · Φ(x)` with the error function (PyTorch `nn.GELU()`, HF `"gelu"`):
    /// the BERT text tower and open_clip's ViT-H-14.
    Gelu,
    /// `x · sigmoid(1.702 x)`: the OpenAI CLIP models (open_clip `*-quickgelu` configs).
    QuickGelu,
}

impl Activation {
    /// Apply the activation element-wise.
    ///
    /// # Shapes
    /// Any shape; the output has the input's shape.
    pub fn forward<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            #[cfg(feature = "flex")]
            Activation::Gelu => crate::flex::gelu(x).unwrap_or_else(gelu),
            #[cfg(not(feature = "flex"))]
            Activation::Gelu => gelu(x),
            Activation::QuickGelu => x.clone() * sigmoid(x.mul_scalar(1.702)),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{Tensor, Tolerance};

    use super::Activation;

    #[test]
    fn known_values() {
        let device = Default::default();
        let x = Tensor::<Flex, 1>::from_floats([-1.0, 0.0, 1.0, 2.0], &device);
        // torch.nn.functional.gelu(torch.tensor([-1., 0., 1., 2.]))
        let gelu =
            Tensor::<Flex, 1>::from_floats([-0.158_655_3, 0.0, 0.841_344_7, 1.954_499_7], &device);
        // x * torch.sigmoid(1.702 * x)
        let quick = Tensor::<Flex, 1>::from_floats(
            [-0.154_204_23, 0.0, 0.845_795_77, 1.935_658_6],
            &device,
        );
        let tol = Tolerance::absolute(1e-6);
        Activation::Gelu
            .forward(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&gelu.into_data(), tol);
        Activation::QuickGelu
            .forward(x)
            .into_data()
            .assert_approx_eq::<f32>(&quick.into_data(), tol);
    }
}
