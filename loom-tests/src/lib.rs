//! Loom models of Weft primitives; the models are in `tests/`.
