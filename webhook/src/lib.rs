//! Library half of `ephemeral-webhook`: everything but argument parsing.

pub mod crds;
