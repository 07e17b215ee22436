//! Serve local weights on the CPU with the default limits — the library API that `taiyi serve`
//! wraps, and what `scripts/loadtest_serve.sh` runs when no `taiyi` binary is given:
//!
//! ```sh
//! cargo run --release -p taiyi-server --example serve_local -- TEXT_DIR VISION_FILE [PORT [ARCH]]
//! ```

use std::path::PathBuf;

use taiyi_core::{ClipModel, ClipOptions, CpuBackend, ModelPaths, TextMode, arch};
use taiyi_server::{ModelInfo, ServerConfig, ServerError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: serve_local TEXT_DIR VISION_FILE [PORT [ARCH]]";
    let text_dir = PathBuf::from(args.next().ok_or(usage)?);
    let vision_file = PathBuf::from(args.next().ok_or(usage)?);
    let port: u16 = args.next().map_or(Ok(8080), |p| p.parse())?;
    let arch_name = args.next().unwrap_or_else(|| "ViT-H-14".into());
    let options = ClipOptions {
        vision: arch::vision_config(&arch_name)?,
        text_mode: TextMode::Masked,
        ..ClipOptions::default()
    };
    let config = ServerConfig {
        addr: ([127, 0, 0, 1], port).into(),
        model_info: ModelInfo {
            family: "taiyi".into(),
            text_model: text_dir.display().to_string(),
            vision_model: vision_file.display().to_string(),
            vision_arch: arch_name,
            device: "cpu".into(),
            precision: "f32".into(),
            cpu_kernel: None,
        },
        ..ServerConfig::default()
    };
    let paths = ModelPaths {
        text_dir,
        vision_file,
    };
    let server = taiyi_server::spawn(config, move || {
        ClipModel::<CpuBackend>::load(&paths, &options, &Default::default())
    })?;
    eprintln!("listening on http://{}", server.local_addr());
    server.wait_for_signal().map_err(|e: ServerError| e.into())
}
