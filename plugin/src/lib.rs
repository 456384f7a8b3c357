//! Library half of `kubectl-ephemeral`: argument definitions and commands.

pub mod cli;
pub mod input;
pub mod output;
pub mod render;
