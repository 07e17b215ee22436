//! Python values in, numpy arrays and Python objects out.

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString};
use taiyi_core::{ImageSource, Prediction};

use crate::engine::Matrix;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// A list of texts; a single `str` is refused (it would be a list of characters).
pub fn texts(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a list of str, not a single str (wrap it: [text])"
        )));
    }
    obj.try_iter()?
        .map(|item| {
            let item = item?;
            item.extract::<String>().map_err(|_| {
                PyTypeError::new_err(format!("{what} must be str, got {}", type_name(&item)))
            })
        })
        .collect()
}

/// A list of images: encoded `bytes` / `bytearray` / `memoryview`, or paths (`str`,
/// `os.PathLike`).
pub fn images(obj: &Bound<'_, PyAny>) -> PyResult<Vec<ImageSource>> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "images must be a list of bytes or paths, not a single one (wrap it: [image])",
        ));
    }
    obj.try_iter()?
        .map(|item| {
            let item = item?;
            if let Ok(b) = item.cast::<PyBytes>() {
                return Ok(ImageSource::Bytes(b.as_bytes().to_vec()));
            }
            if let Ok(b) = item.cast::<PyByteArray>() {
                return Ok(ImageSource::Bytes(b.to_vec()));
            }
            if let Ok(p) = item.extract::<PathBuf>() {
                return Ok(ImageSource::Path(p));
            }
            // memoryview, numpy uint8 buffers, pyarrow binary scalars: anything `bytes()` takes.
            if let Ok(b) = item.call_method0("tobytes")
                && let Ok(b) = b.cast::<PyBytes>()
            {
                return Ok(ImageSource::Bytes(b.as_bytes().to_vec()));
            }
            Err(PyTypeError::new_err(format!(
                "an image must be bytes or a path (str / os.PathLike), got {}",
                type_name(&item)
            )))
        })
        .collect()
}

/// `(values, [rows, cols])` as a writable `numpy.ndarray[float32]` of that shape.
pub fn numpy<'py>(py: Python<'py>, (values, [rows, cols]): Matrix) -> PyResult<Bound<'py, PyAny>> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let buffer = PyByteArray::new(py, &bytes);
    py.import("numpy")?
        .call_method1("frombuffer", (buffer, "<f4"))?
        .call_method1("reshape", (rows, cols))
}

fn prediction<'py>(py: Python<'py>, p: &Prediction) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("label", &p.label)?;
    d.set_item("index", p.index)?;
    d.set_item("probability", p.probability)?;
    d.set_item("logit", p.logit)?;
    Ok(d)
}

/// One dict per image: the best `label`, its `index` and `probability`, and `scores`, every
/// label as `{label, index, probability, logit}`, best first.
pub fn zero_shot<'py>(py: Python<'py>, rows: &[Vec<Prediction>]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for row in rows {
        let d = PyDict::new(py);
        if let Some(best) = row.first() {
            d.set_item("label", &best.label)?;
            d.set_item("index", best.index)?;
            d.set_item("probability", best.probability)?;
        }
        let scores = PyList::empty(py);
        for p in row {
            scores.append(prediction(py, p)?)?;
        }
        d.set_item("scores", scores)?;
        out.append(d)?;
    }
    Ok(out)
}
