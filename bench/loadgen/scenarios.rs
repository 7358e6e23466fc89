//! The scenarios, one function each, grouped by what they load signet with.

pub mod cold;
pub mod hit;
pub mod replay;
pub mod stress;
