//! Which files a path stands for: the directory half of the
//! [rule](super).

use std::path::{Path, PathBuf};

use super::LoadError;

/// Extensions of the files a directory contributes.
pub const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// The files `path` stands for: itself when it is not a directory, else the
/// directory's manifest files, walked as the [rule](super) says.
pub fn files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    let meta = std::fs::metadata(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        let mut walking = Vec::new();
        walk(path, recursive, &mut walking, &mut out)?;
    } else {
        out.push(path.to_path_buf());
    }
    Ok(out)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e))
}

/// Walks `dir`; `walking` holds the canonical paths of the directories being
/// walked, so a link back up the tree is not followed again.
fn walk(
    dir: &Path,
    recursive: bool,
    walking: &mut Vec<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<(), LoadError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Read { path, source }
    };
    let canonical = std::fs::canonicalize(dir).map_err(err(dir))?;
    if walking.contains(&canonical) {
        return Ok(());
    }
    walking.push(canonical);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(err(dir))?;
    entries.sort();
    for entry in entries {
        if is_hidden(&entry) {
            continue;
        }
        // Follows symlinks; a dangling one fails here, naming it.
        let meta = std::fs::metadata(&entry).map_err(err(&entry))?;
        if meta.is_dir() {
            if recursive {
                walk(&entry, recursive, walking, out)?;
            }
        } else if is_manifest(&entry) {
            out.push(entry);
        }
    }
    walking.pop();
    Ok(())
}
