//! Reading Environments and their catalog from files: `render -f` and
//! `create -f` go through the core's one loader ([`ephemeral_core::files`],
//! shared with `ephemeral-webhook serve --catalog-dir`); this module only adds
//! `-` for standard input.

use std::io::Read;
use std::path::{Path, PathBuf};

pub use ephemeral_core::files::{
    DEFAULT_NAMESPACE, DecodeError, LoadError as InputError, Loaded as Input, Origin,
};

/// Reads every path (files, directories, `-` for standard input) in order;
/// objects without a namespace go to `default_namespace`.
pub fn read(
    paths: &[PathBuf],
    recursive: bool,
    default_namespace: &str,
) -> Result<Input, InputError> {
    let mut input = Input::default();
    for path in paths {
        if path == Path::new("-") {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| InputError::Read {
                    path: path.clone(),
                    source,
                })?;
            input.add_text(path, &text, default_namespace)?;
        } else {
            input.add_path(path, recursive, default_namespace)?;
        }
    }
    Ok(input)
}
