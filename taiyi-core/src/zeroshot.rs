//! Zero-shot image classification with Chinese labels.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;

use crate::encoders::{EncodeOptions, TextEncoder, l2_normalize};
use crate::model::{ClipModel, logits_from_features};
use crate::{ClipError, TextCache, to_array2};

/// The usual single prompt: "a photo of {}" in Chinese.
pub const DEFAULT_TEMPLATE: &str = "一张{}的照片。";

/// A prompt ensemble in Chinese (in the spirit of CLIP's ImageNet prompts), for
/// [`ZeroShotClassifier::new`]. `{}` stands for the label.
pub const CHINESE_TEMPLATES: &[&str] = &[
    "一张{}的照片。",
    "{}的照片。",
    "一张{}的好照片。",
    "一张{}的特写照片。",
    "一张{}的模糊照片。",
    "一张{}的明亮照片。",
    "一张{}的黑白照片。",
    "一张{}的低分辨率照片。",
    "一幅{}的画。",
    "一张{}的素描。",
    "一张{}的卡通图。",
    "一张包含{}的照片。",
];

/// The texts a classifier embeds for `labels` with `templates`: each label in each template
/// (`{}` replaced), label-major; the labels themselves when `templates` is empty.
pub fn prompts<L: AsRef<str>, T: AsRef<str>>(labels: &[L], templates: &[T]) -> Vec<String> {
    if templates.is_empty() {
        return labels.iter().map(|l| l.as_ref().to_string()).collect();
    }
    labels
        .iter()
        .flat_map(|l| {
            templates
                .iter()
                .map(move |t| t.as_ref().replace("{}", l.as_ref()))
        })
        .collect()
}

/// Template names that stand for a built-in set: `zh` is [`CHINESE_TEMPLATES`].
pub const TEMPLATE_SETS: &[(&str, &[&str])] = &[("zh", CHINESE_TEMPLATES)];

/// Templates with set names expanded in place (`["zh", "一张{}。"]` → the 12 Chinese templates,
/// then `一张{}。`); duplicates after the first are dropped, the order is kept.
pub fn expand_templates(templates: &[impl AsRef<str>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in templates {
        let t = t.as_ref();
        let set = TEMPLATE_SETS.iter().find(|(name, _)| *name == t);
        let items: Vec<&str> = match set {
            Some((_, items)) => items.to_vec(),
            None => vec![t],
        };
        for item in items {
            if !out.iter().any(|o| o == item) {
                out.push(item.to_string());
            }
        }
    }
    out
}

/// One class of a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index of the label.
    pub index: usize,
    /// The label.
    pub label: String,
    /// Softmax probability over all labels.
    pub probability: f32,
    /// The logit (`logit_scale.exp() * cosine`).
    pub logit: f32,
}

/// The zero-shot result of one image: every label's probability and logit, in label order.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// One prediction per label, in the classifier's label order
    /// (`predictions[i].index == i`).
    pub predictions: Vec<Prediction>,
}

impl Classification {
    /// The probabilities in label order (they sum to 1).
    pub fn probabilities(&self) -> Vec<f32> {
        self.predictions.iter().map(|p| p.probability).collect()
    }

    /// Every label sorted by probability, best first (ties keep label order); take the first
    /// `k` for a top-k.
    pub fn ranked(&self) -> Vec<Prediction> {
        let mut ranked = self.predictions.clone();
        ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        ranked
    }

    /// The most probable label (the first on a tie); `None` for no labels.
    pub fn best(&self) -> Option<&Prediction> {
        self.predictions.iter().reduce(|best, p| {
            if p.probability > best.probability {
                p
            } else {
                best
            }
        })
    }
}

/// Class embeddings built once from labels and prompt templates, with the model's
/// `logit_scale.exp()`, then applied to image features: calls need no model.
///
/// The class embedding is the mean of the L2-normalised embeddings of the label put into each
/// template, renormalised (CLIP's prompt ensembling). With no template, the label itself is the
/// text, which is exactly the model card's snippet.
#[derive(Debug, Clone)]
pub struct ZeroShotClassifier<B: Backend> {
    labels: Vec<String>,
    /// `[n_labels, d]`, L2-normalised.
    class_embeddings: Tensor<B, 2>,
    /// `logit_scale.exp()`.
    scale: f32,
}

impl<B: Backend> ZeroShotClassifier<B> {
    /// Build class embeddings for `labels` with `templates` (each containing `{}`; an empty
    /// slice means the labels themselves, as in the model card), keeping the model's
    /// `logit_scale.exp()` (an error for a checkpoint without `logit_scale`).
    pub fn new<L: AsRef<str>, T: AsRef<str>>(
        model: &ClipModel<B>,
        labels: &[L],
        templates: &[T],
    ) -> Result<Self, ClipError> {
        Self::from_text_encoder(model.text(), labels, templates, model.logit_scale()?)
    }

    /// [`ZeroShotClassifier::new`] with the prompts' features taken from `cache` where it holds
    /// them, and stored there otherwise ([`TextCache::encode`]): a classifier built again for
    /// the same labels embeds nothing. In a batch-invariant text mode (`masked`, `fixed77`)
    /// the result is the same as without the cache, bit for bit on the CPU; in `card` mode the
    /// cache is bypassed (a prompt's feature depends on the other prompts of its call).
    pub fn with_cache<L: AsRef<str>, T: AsRef<str>>(
        model: &ClipModel<B>,
        labels: &[L],
        templates: &[T],
        cache: &TextCache,
    ) -> Result<Self, ClipError> {
        Self::build(
            model.text(),
            labels,
            templates,
            model.logit_scale()?,
            Some(cache),
        )
    }

    /// [`ZeroShotClassifier::new`] with only the text half (no image weights needed to build
    /// the class embeddings) and the factor `scale` (`logit_scale.exp()`) given directly.
    pub fn from_text_encoder<L: AsRef<str>, T: AsRef<str>>(
        text: &TextEncoder<B>,
        labels: &[L],
        templates: &[T],
        scale: f32,
    ) -> Result<Self, ClipError> {
        Self::build(text, labels, templates, scale, None)
    }

    fn build<L: AsRef<str>, T: AsRef<str>>(
        text: &TextEncoder<B>,
        labels: &[L],
        templates: &[T],
        scale: f32,
        cache: Option<&TextCache>,
    ) -> Result<Self, ClipError> {
        if labels.is_empty() {
            return Err(ClipError::EmptyInput { what: "no labels" });
        }
        for t in templates {
            if !t.as_ref().contains("{}") {
                return Err(ClipError::Mismatch {
                    message: format!("template '{}' has no '{{}}' for the label", t.as_ref()),
                });
            }
        }
        let labels: Vec<String> = labels.iter().map(|l| l.as_ref().to_string()).collect();
        let texts = prompts(&labels, templates);
        let features = match cache {
            Some(cache) => cache.encode(text, &texts)?,
            None => text.encode(&texts, &EncodeOptions::default())?,
        };
        Self::from_prompt_features(labels, templates.len(), features, scale)
    }

    /// Class embeddings from the prompts' L2-normalised features, label-major as [`prompts`]
    /// lists them (`templates` rows per label; `templates = 0`: one row per label, the label
    /// itself), and the factor `scale` (`logit_scale.exp()`): for callers that embed the
    /// prompts elsewhere (a server batching them with other requests' texts).
    ///
    /// # Shapes
    /// `features`: `[labels.len() · max(templates, 1), d]`.
    pub fn from_prompt_features(
        labels: Vec<String>,
        templates: usize,
        features: Tensor<B, 2>,
        scale: f32,
    ) -> Result<Self, ClipError> {
        if labels.is_empty() {
            return Err(ClipError::EmptyInput { what: "no labels" });
        }
        let k = templates.max(1);
        let [rows, d] = features.dims();
        if rows != labels.len() * k {
            return Err(ClipError::Mismatch {
                message: format!(
                    "{rows} prompt features for {} labels × {k} prompts each",
                    labels.len()
                ),
            });
        }
        let class_embeddings = if templates == 0 {
            features
        } else {
            let mean = features
                .reshape([labels.len(), k, d])
                .mean_dim(1)
                .squeeze_dim::<2>(1);
            l2_normalize(mean)
        };
        Ok(Self {
            labels,
            class_embeddings,
            scale,
        })
    }

    /// The labels, in order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The normalised class embeddings `[n_labels, d]`.
    pub fn class_embeddings(&self) -> &Tensor<B, 2> {
        &self.class_embeddings
    }

    /// The factor applied to cosine similarities (`logit_scale.exp()`).
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Probabilities and logits for normalised image features.
    ///
    /// # Shapes
    /// `image_features` `[n_images, d]` → probabilities and logits `[n_images, n_labels]`.
    pub fn probabilities(
        &self,
        image_features: Tensor<B, 2>,
    ) -> Result<(Tensor<B, 2>, Tensor<B, 2>), ClipError> {
        let logits =
            logits_from_features(self.scale, image_features, self.class_embeddings.clone())?
                .logits_per_image;
        Ok((softmax(logits.clone(), 1), logits))
    }

    /// Classify images from their normalised features (`ClipModel::encode_images`): one
    /// [`Classification`] per image, probabilities in label order
    /// ([`Classification::ranked`] sorts them).
    ///
    /// # Shapes
    /// `image_features` `[n_images, d]` → `n_images` classifications of `n_labels` each.
    pub fn classify(&self, image_features: Tensor<B, 2>) -> Result<Vec<Classification>, ClipError> {
        let (probs, logits) = self.probabilities(image_features)?;
        let probs = to_array2(probs)?;
        let logits = to_array2(logits)?;
        Ok(probs
            .outer_iter()
            .zip(logits.outer_iter())
            .map(|(p, l)| Classification {
                predictions: (0..self.labels.len())
                    .map(|i| Prediction {
                        index: i,
                        label: self.labels[i].clone(),
                        probability: p[i],
                        logit: l[i],
                    })
                    .collect(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_sets_expand_in_place_and_keep_custom_templates() {
        let t = expand_templates(&["zh", "一张{}。", "{}的照片。"]);
        assert_eq!(t.len(), CHINESE_TEMPLATES.len() + 1);
        assert_eq!(t[0], CHINESE_TEMPLATES[0]);
        assert_eq!(t[CHINESE_TEMPLATES.len()], "一张{}。");
        assert!(expand_templates(&[] as &[&str]).is_empty());
    }

    #[test]
    fn classification_keeps_label_order_and_ranks_on_demand() {
        let p = |index: usize, probability: f32| Prediction {
            index,
            label: format!("l{index}"),
            probability,
            logit: probability * 100.0,
        };
        let c = Classification {
            predictions: vec![p(0, 0.2), p(1, 0.5), p(2, 0.3)],
        };
        assert_eq!(c.probabilities(), [0.2, 0.5, 0.3]);
        let order: Vec<usize> = c.ranked().iter().map(|p| p.index).collect();
        assert_eq!(order, [1, 2, 0]);
        assert_eq!(c.best().map(|p| p.index), Some(1));
    }
}
