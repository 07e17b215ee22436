//! The parts of the `taiyi` command line that hold no model: reading a texts file and the
//! report of `taiyi bench`.
//!
//! The binary (`src/main.rs`) is compiled once per backend feature it is built with, so its
//! own unit tests would compile it a second time; what can be tested without a model lives
//! here instead, and the binary target has `test = false`. Everything else of the CLI is
//! tested end to end through the binary (`tests/*.rs`).

pub mod bench_report;
pub mod texts;
