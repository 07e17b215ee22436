//! The type stubs (`python/taiyi/__init__.pyi`) name exactly the methods and properties that
//! `src/model.rs` defines on `ClipModel` and `src/search.rs` on `SearchIndex`.
//!
//! Being a test of this package also makes `cargo test --workspace` build the extension
//! module (`lib_taiyi.so`) with the workspace's feature resolution, which
//! `scripts/test_python.sh` then installs without compiling anything again.

use std::collections::BTreeSet;

fn read(rel: &str) -> std::io::Result<String> {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
}

/// `fn name(` inside the `#[pymethods]` block, without dunder methods.
fn rust_methods(src: &str) -> BTreeSet<String> {
    let block = src.split("#[pymethods]").nth(1).unwrap_or("");
    block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("fn "))
        .filter_map(|l| l.split(['(', '<']).next())
        .filter(|n| !n.starts_with("__") && *n != "new")
        .map(str::to_string)
        .collect()
}

/// `def name(` inside `class NAME:` (up to the next class), without dunder methods.
fn stub_methods(pyi: &str, name: &str) -> BTreeSet<String> {
    let class = pyi.split(&format!("class {name}:")).nth(1).unwrap_or("");
    let class = class.split("\nclass ").next().unwrap_or("");
    class
        .lines()
        .filter_map(|l| l.trim().strip_prefix("def "))
        .filter_map(|l| l.split('(').next())
        .filter(|n| !n.starts_with("__"))
        .map(str::to_string)
        .collect()
}

#[test]
fn stubs_match_the_classes() -> std::io::Result<()> {
    let pyi = read("python/taiyi/__init__.pyi")?;
    let rust = rust_methods(&read("src/model.rs")?);
    assert!(
        rust.contains("encode_images") && rust.contains("logit_scale"),
        "{rust:?}"
    );
    assert_eq!(
        rust,
        stub_methods(&pyi, "ClipModel"),
        "src/model.rs vs python/taiyi/__init__.pyi"
    );
    let rust = rust_methods(&read("src/search.rs")?);
    assert!(
        rust.contains("search") && rust.contains("names"),
        "{rust:?}"
    );
    assert_eq!(
        rust,
        stub_methods(&pyi, "SearchIndex"),
        "src/search.rs vs python/taiyi/__init__.pyi"
    );
    Ok(())
}
