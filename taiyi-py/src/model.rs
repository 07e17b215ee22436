//! `taiyi.ClipModel`: the Python class.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString, PyTuple};
use taiyi_core::hub::{self, HubOptions};
use taiyi_core::{
    BertTokenizer, CHINESE_TEMPLATES, ClipError, DeviceSpec, Family, ModelDir, Precision, TextMode,
};
use taiyi_preprocess::tokenizer::{Padding, Truncation};

use crate::convert;
use crate::engine::{self, Engine, Settings};
use crate::errors::{self, Kind};

/// One tokenized text: its ids and attention mask.
type IdsAndMask = (Vec<u32>, Vec<u32>);

/// A text mode by its name (`card`, `fixed77`, `masked`).
fn text_mode(name: &str) -> Result<TextMode, ClipError> {
    Ok(name.parse::<TextMode>()?)
}

/// Taiyi-CLIP (Chinese CLIP): texts and images in one 1024-d space.
///
/// Paths resolve like the `taiyi` CLI: the arguments, else `TAIYI_TEXT_MODEL` /
/// `TAIYI_VISION_MODEL`, else the Hugging Face hub cache (download unless `HF_HUB_OFFLINE=1`).
/// Each tower loads on first use, so a text-only user needs no image weights. Every method
/// releases the GIL while it computes: threads (and Ray / Spark workers) run in parallel.
#[pyclass(module = "taiyi._taiyi", name = "ClipModel", frozen)]
pub struct ClipModel {
    engine: Box<dyn Engine>,
    text_model: Option<PathBuf>,
    tokenizer: Mutex<Option<Arc<BertTokenizer>>>,
    device: DeviceSpec,
    precision: Precision,
    text_mode: TextMode,
    vision_arch: String,
    family: Family,
}

impl ClipModel {
    fn tokenizer(&self) -> Result<Arc<BertTokenizer>, ClipError> {
        let mut slot = self.tokenizer.lock().map_err(|_| ClipError::Mismatch {
            message: "the tokenizer failed to load in another thread".to_string(),
        })?;
        if let Some(t) = slot.as_ref() {
            return Ok(Arc::clone(t));
        }
        let dir = hub::resolve_text_dir(self.text_model.as_deref(), &HubOptions::from_env())?;
        let tok = Arc::new(BertTokenizer::from_model_dir(&dir)?);
        *slot = Some(Arc::clone(&tok));
        Ok(tok)
    }
}

fn templates(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    match obj {
        None => Ok(Vec::new()),
        Some(o) if o.is_none() => Ok(Vec::new()),
        Some(o) if o.is_instance_of::<PyString>() => {
            let s: String = o.extract()?;
            Ok(if s == "zh" {
                CHINESE_TEMPLATES.iter().map(|t| t.to_string()).collect()
            } else {
                vec![s]
            })
        }
        Some(o) => convert::texts(o, "templates"),
    }
}

fn padding(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Padding> {
    let bad = |o: &Bound<'_, PyAny>| {
        errors::raise(
            o.py(),
            Kind::Value,
            "padding must be True / \"longest\", False / \"do_not_pad\", or an int".to_string(),
        )
    };
    match obj {
        None => Ok(Padding::Longest),
        Some(o) if o.is_none() => Ok(Padding::Longest),
        Some(o) if o.is_instance_of::<PyBool>() => Ok(if o.extract::<bool>()? {
            Padding::Longest
        } else {
            Padding::None
        }),
        Some(o) if o.is_instance_of::<PyString>() => match o.extract::<String>()?.as_str() {
            "longest" => Ok(Padding::Longest),
            "do_not_pad" => Ok(Padding::None),
            _ => Err(bad(o)),
        },
        Some(o) => o.extract::<usize>().map(Padding::Fixed).map_err(|_| bad(o)),
    }
}

#[pymethods]
impl ClipModel {
    /// Create the model; nothing is loaded until first use.
    #[new]
    #[pyo3(signature = (
        text_model=None, vision_model=None, vision_arch="ViT-H-14", device="cpu",
        precision="f32", text_mode="masked", batch_size=None, text_batch_size=None, model=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        text_model: Option<PathBuf>,
        vision_model: Option<PathBuf>,
        vision_arch: &str,
        device: &str,
        precision: &str,
        text_mode: &str,
        batch_size: Option<usize>,
        text_batch_size: Option<usize>,
        model: Option<PathBuf>,
    ) -> PyResult<Self> {
        let parsed = (|| -> Result<_, ClipError> {
            let model = match model {
                Some(_) if text_model.is_some() || vision_model.is_some() => {
                    return Err(ClipError::Mismatch {
                        message: "model= names the whole model: give it without text_model / \
                                  vision_model"
                            .to_string(),
                    });
                }
                Some(spec) => Some(ModelDir::resolve(&spec, &HubOptions::from_env())?),
                None => None,
            };
            let vision = taiyi_core::vision_config_for(model.as_ref(), vision_arch)?;
            let settings = Settings {
                model,
                text_model: text_model.clone(),
                vision_model,
                vision,
                text_mode: self::text_mode(text_mode)?,
                image_batch_size: batch_size,
                text_batch_size,
            };
            Ok((
                settings,
                device.parse::<DeviceSpec>()?,
                precision.parse::<Precision>()?,
            ))
        })();
        let (settings, device, precision) = parsed.map_err(|e| errors::to_py(py, &e))?;
        let mode = settings.text_mode;
        let (family, text_model, vision_arch) = match &settings.model {
            Some(m) => (m.family, Some(m.dir.clone()), "config.json".to_string()),
            None => (Family::Taiyi, text_model, vision_arch.to_string()),
        };
        let engine = py
            .detach(|| engine::open(settings, device, precision))
            .map_err(|e| errors::to_py(py, &e))?;
        Ok(Self {
            engine,
            text_model,
            tokenizer: Mutex::new(None),
            device,
            precision,
            text_mode: mode,
            vision_arch,
            family,
        })
    }

    /// L2-normalised text features, `numpy.ndarray[float32]` of shape `(len(texts), 1024)`.
    fn encode_texts<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let texts = convert::texts(texts, "texts")?;
        let out = py
            .detach(|| self.engine.encode_texts(&texts))
            .map_err(|e| errors::to_py(py, &e))?;
        convert::numpy(py, out)
    }

    /// L2-normalised image features, `numpy.ndarray[float32]` of shape `(len(images), 1024)`.
    /// Images are encoded bytes or paths; decoding and the open_clip transform run in Rust.
    fn encode_images<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let images = convert::images(images)?;
        let out = py
            .detach(|| self.engine.encode_images(&images))
            .map_err(|e| errors::to_py(py, &e))?;
        convert::numpy(py, out)
    }

    /// The model card's `(logits_per_image, probs)`, both `(len(images), len(texts))`.
    fn logits<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let images = convert::images(images)?;
        let texts = convert::texts(texts, "texts")?;
        let (logits, probs) = py
            .detach(|| self.engine.logits(&images, &texts))
            .map_err(|e| errors::to_py(py, &e))?;
        PyTuple::new(
            py,
            [convert::numpy(py, logits)?, convert::numpy(py, probs)?],
        )
    }

    /// Zero-shot classification: one dict per image (`label`, `index`, `probability` of the
    /// best label, `scores`: every label best first). `templates`: `None` (the labels
    /// themselves, as in the model card), `"zh"` (the built-in Chinese ensemble), or strings
    /// with `{}` for the label.
    #[pyo3(signature = (images, labels, templates=None))]
    fn zero_shot<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        labels: &Bound<'py, PyAny>,
        templates: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let images = convert::images(images)?;
        let labels = convert::texts(labels, "labels")?;
        let templates = self::templates(templates)?;
        let rows = py
            .detach(|| self.engine.zero_shot(&images, &labels, &templates))
            .map_err(|e| errors::to_py(py, &e))?;
        convert::zero_shot(py, &rows)
    }

    /// Token ids as the slow `BertTokenizer` gives them: `{"input_ids", "attention_mask"}`,
    /// lists of rows. `padding` (as in transformers): `True` / `"longest"` (default), `False` /
    /// `"do_not_pad"`, or an int (pad and truncate to it); `max_length`: truncate to it
    /// (default 512), `[SEP]` kept last.
    #[pyo3(signature = (texts, max_length=None, padding=None))]
    fn tokenize<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        max_length: Option<usize>,
        padding: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let texts = convert::texts(texts, "texts")?;
        let padding = self::padding(padding)?;
        let truncation = max_length.map_or(Truncation::ModelMax, Truncation::MaxLength);
        let rows = py
            .detach(|| -> Result<Vec<IdsAndMask>, ClipError> {
                let tok = self.tokenizer()?;
                if padding == Padding::None {
                    return texts
                        .iter()
                        .map(|t| {
                            let e = tok.encode_batch(&[t], Padding::None, truncation)?;
                            Ok((e.ids, e.attention_mask))
                        })
                        .collect();
                }
                let e = tok.encode_batch(&texts, padding, truncation)?;
                Ok((0..e.batch_size)
                    .map(|r| {
                        let s = r * e.seq_len..(r + 1) * e.seq_len;
                        (e.ids[s.clone()].to_vec(), e.attention_mask[s].to_vec())
                    })
                    .collect())
            })
            .map_err(|e| errors::to_py(py, &e))?;
        let (ids, mask): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
        let d = PyDict::new(py);
        d.set_item("input_ids", ids)?;
        d.set_item("attention_mask", mask)?;
        Ok(d)
    }

    /// `logit_scale.exp()` of the image checkpoint (≈100 for Taiyi; loads the image tower).
    #[getter]
    fn logit_scale(&self, py: Python<'_>) -> PyResult<f32> {
        py.detach(|| self.engine.logit_scale())
            .map_err(|e| errors::to_py(py, &e))
    }

    /// The device, as `DeviceSpec` writes it (`cpu`, `wgpu`, `cuda:0`, …).
    #[getter]
    fn device(&self) -> String {
        self.device.to_string()
    }

    /// `f32`, `f16` or `bf16`.
    #[getter]
    fn precision(&self) -> String {
        self.precision.to_string()
    }

    /// `card`, `fixed77` or `masked`.
    /// The CPU's bf16 matmul kernel (`"avx512bf16"`, `"f32"`) when the linear weights are
    /// held in bf16 on the CPU (`precision="bf16"`, `device="cpu"`), else `None`.
    #[getter]
    fn cpu_kernel(&self) -> Option<&'static str> {
        (self.device.dense_format(self.precision) == taiyi_core::DenseFormat::PackedBf16)
            .then(|| taiyi_core::CpuKernel::selected().map_or("none", taiyi_core::CpuKernel::name))
    }

    #[getter]
    fn text_mode(&self) -> &'static str {
        self.text_mode.name()
    }

    /// The model family: `taiyi`, or `chinese-clip` for a `model=` Chinese-CLIP directory.
    #[getter]
    fn family(&self) -> &'static str {
        self.family.name()
    }

    /// The image-tower architecture: the open_clip name given, or `config.json` for a
    /// `model=` directory.
    #[getter]
    fn vision_arch(&self) -> String {
        self.vision_arch.clone()
    }

    /// Whether the text tower is loaded.
    #[getter]
    fn text_loaded(&self) -> bool {
        self.engine.loaded().0
    }

    /// Whether the image tower is loaded.
    #[getter]
    fn image_loaded(&self) -> bool {
        self.engine.loaded().1
    }

    fn __repr__(&self) -> String {
        let (t, i) = self.engine.loaded();
        format!(
            "ClipModel(vision_arch={:?}, device={:?}, precision={:?}, text_mode={:?}, text_loaded={t}, image_loaded={i})",
            self.vision_arch,
            self.device.to_string(),
            self.precision.to_string(),
            self.text_mode.name(),
        )
    }
}
