//! Any bytes as a `.npy` file of f32 rows: the strict header parser and the reader give a shape
//! whose element count matches the values, or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((shape, values)) = taiyi_core::npy::parse_f32(data) {
        assert_eq!(shape.iter().product::<usize>(), values.len());
    }
});
