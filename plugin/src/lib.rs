//! Library half of `kubectl-ephemeral`: argument definitions and commands.

pub mod api;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod error;
pub mod events;
pub mod input;
pub mod output;
pub mod render;
pub mod set_view;
pub mod summary;
pub mod table;
pub mod time;
pub mod warnings;
