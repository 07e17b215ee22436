//! The `taiyi` Python module (native part `taiyi._taiyi`): Taiyi-CLIP from taiyi-core with
//! taiyi's exact tokenizer, image decoding and transform, for Python programs and distributed
//! engines (Ray Data, Spark, Daft). See `taiyi-py/python/taiyi/__init__.pyi` for the API.

mod convert;
mod engine;
mod errors;
mod model;
mod search;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _taiyi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::ClipModel>()?;
    m.add_class::<search::SearchIndex>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_TEMPLATE", taiyi_core::DEFAULT_TEMPLATE)?;
    m.add("CHINESE_TEMPLATES", taiyi_core::CHINESE_TEMPLATES.to_vec())?;
    Ok(())
}
