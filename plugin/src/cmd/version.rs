//! `kubectl ephemeral version`.

use std::io::Write;

/// The version line.
pub fn line() -> String {
    format!("kubectl-ephemeral {}", env!("CARGO_PKG_VERSION"))
}

/// Prints the version.
pub fn run(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}", line())
}
