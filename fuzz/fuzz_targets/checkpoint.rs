//! Any bytes as a checkpoint file: the first byte picks the format (safetensors, PyTorch zip or
//! legacy pickle, shard index), the rest is the file. Opening and reading every tensor gives
//! tensors or errors, never a panic; nothing is executed.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use taiyi_store::Checkpoint;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taiyi-fuzz-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let name = match selector % 3 {
        0 => "model.safetensors",
        1 => "pytorch_model.bin",
        _ => "model.safetensors.index.json",
    };
    let path = scratch(name);
    std::fs::write(&path, body).expect("write scratch file");
    if let Ok(mut ckpt) = Checkpoint::open(&path) {
        let keys: Vec<String> = ckpt.keys().map(str::to_string).collect();
        for key in keys {
            // Cap what one input may make us allocate (a header can declare any shape).
            let n: usize = ckpt
                .shape(&key)
                .map_or(0, |s| s.iter().fold(1usize, |a, &d| a.saturating_mul(d)));
            if n > 1 << 24 {
                continue;
            }
            let _ = ckpt.take(&key);
        }
    }
});
