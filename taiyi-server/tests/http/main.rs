//! `taiyi serve` over real HTTP on loopback, with the tiny fixture model: every route, the
//! answers bit for bit against `ClipModel`, batch invariance under 32 concurrent clients, every
//! status code, health transitions, graceful shutdown.
//!
//! Exactness: the server returns `ClipModel`'s own f32 results. `/v1/embeddings` with
//! `encoding_format: base64` carries the f32 bytes, so those comparisons are bitwise (`==`);
//! JSON floats are printed shortest-roundtrip and compared with `==` as well.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

mod cache;
mod common;
mod limits;
mod parity;
mod search;
mod slow;
