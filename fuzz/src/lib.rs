//! The fuzz targets' harnesses. They live in the replay test's support file, so the targets
//! here and `cargo test --test fuzz_corpus` (stable, no sanitizers) run the same code.

#[path = "../../rust/tests/fuzz_harness.rs"]
pub mod harness;
