//! Loom models of every Weft primitive with shared mutable state.
//!
//! The models live in `tests/`, one file per crate, and only build under `--cfg loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p weft-loom-tests --release
//! ```
//!
//! or simply `cargo xtask loom`. `--cfg loom` swaps `weft-sync`'s facade for loom's types;
//! `--cfg crossbeam_loom` does the same inside crossbeam-epoch, whose reclamation the
//! Treiber stack relies on. Each model states the invariant it checks in its doc comment.

#![forbid(unsafe_code)]
