//! The one proptest configuration of every property test in nestcore (the in-crate ones and
//! `tests/properties.rs`, `tests/guest_proptest.rs`, which include this file by path).
//!
//! The seed is fixed, so `cargo test`, `./scripts/test-all` and CI run the same cases on every
//! run: a green main stays green, and a failure seen once is seen again. Random exploration is
//! scripts/fuzz-long's job (and the libFuzzer targets in `fuzz/`):
//!
//! - `PROPTEST_RNG_SEED=N` (proptest's own variable, applied on top of this configuration):
//!   another seed. scripts/fuzz-long draws one per round and prints it, so any failure it finds
//!   is reproduced by the same `PROPTEST_RNG_SEED` and case count.
//! - `NESTCORE_PROPTEST_CASES=N` (or proptest's `PROPTEST_CASES`): N cases per property instead
//!   of the property's own default.
//!
//! Failures found before are replayed first from the committed regressions files, whatever the
//! seed.
#![allow(dead_code, unreachable_pub)] // Each including test file uses what it needs.

use proptest::test_runner::{Config, RngSeed};

/// The seed every run uses unless `PROPTEST_RNG_SEED` says otherwise ("nestcore" in ASCII).
pub const SEED: u64 = 0x6e65_7374_636f_7265;

/// Cases per property: `NESTCORE_PROPTEST_CASES` or `default_cases`.
pub fn cases(default_cases: u32) -> u32 {
    std::env::var("NESTCORE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases)
}

/// The configuration: `default_cases` cases (see [`cases`]) from the fixed [`SEED`], failures
/// persisted where proptest keeps them by default (next to the source file).
pub fn config(default_cases: u32) -> Config {
    Config {
        cases: cases(default_cases),
        rng_seed: RngSeed::Fixed(SEED),
        // Shrinking a long run's failure must not take longer than the run.
        max_shrink_iters: 4096,
        ..Config::default()
    }
}
