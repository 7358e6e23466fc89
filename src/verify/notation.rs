//! Notation verification.
