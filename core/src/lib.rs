//! The pure core of kubectl-ephemeral.
//!
//! API types ([`api`]), the rules an Environment must follow ([`names`],
//! [`prefix`], [`lease`], [`schedule`]), the rules the controller and the
//! plugin share about Flux objects ([`kinds`], [`ready`]) and [`expand`](expand::expand), which
//! turns an Environment into its fully defaulted form plus every Flux object it
//! stands for. Its first half, [`admit`], defaults and validates
//! the Environment without building Flux objects: admission calls that, render
//! and the controller call the whole. No client, no HTTP, no clock: time and
//! cluster state are inputs. [`set`] holds the rules of `EnvironmentSet`
//! (one Environment per pull request): filters, variables, the generated
//! Environment and the plan its controller executes. The `files` feature adds
//! the `files` module, the one loader of YAML and JSON files that `render` and
//! `serve --catalog-dir` share.

pub mod api;
pub mod catalog;
pub mod config;
pub mod crd;
pub mod error;
pub mod expand;
#[cfg(feature = "files")]
pub mod files;
pub mod flux;
pub mod kinds;
pub mod lease;
pub mod names;
pub mod prefix;
pub mod ready;
pub mod schedule;
mod schema;
pub mod set;

pub use api::{AppBundle, AppTemplate, Environment};
pub use catalog::Catalog;
pub use config::Config;
pub use error::{Denied, Violation};
pub use expand::{Admitted, Expansion, ResolvedTags, admit, admit_owned, expand, expand_observing};
