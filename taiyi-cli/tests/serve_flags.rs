//! `taiyi serve`'s settings are checked before anything loads (issue 25): an unusable value is
//! an error naming its flag, never silently replaced.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::fails;

#[test]
fn unusable_serve_settings_name_their_flag() {
    for (args, needle) in [
        (
            &["serve", "--api-key", ""][..],
            "the API key must be non-empty",
        ),
        (
            &["serve", "--max-wait-ms", "100000000"],
            "--max-wait-ms must be between 0 ms and 10000 ms, got 100000000 ms",
        ),
        (
            &["serve", "--max-batch-items", "0"],
            "--max-batch-items must be at least 1",
        ),
        (
            &["serve", "--max-concurrent-requests", "0"],
            "--max-concurrent-requests must be at least 1",
        ),
        (
            &["serve", "--request-timeout", "0s"],
            "--request-timeout must be between 1 ms and 3600000 ms",
        ),
        (
            &["serve", "--payload-limit", "0"],
            "--payload-limit must be at least 1",
        ),
    ] {
        let err = fails(args, needle);
        assert!(err.contains("invalid") || err.contains("must"), "{err}");
    }
}
