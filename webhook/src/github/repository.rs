//! A repository, `owner/name`, checked against GitHub's naming rules so a
//! name can never change a request's path.

use ephemeral_core::set::api::GitHubSource;

use super::error::Error;

/// A repository, `owner/name`, both checked against GitHub's naming rules
/// ([`Repository::new`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Repository {
    owner: String,
    name: String,
}

impl Repository {
    /// `owner/name`, checked against GitHub's naming rules (letters, digits,
    /// `-`, `_`, `.`; owner at most 39 characters, name at most 100), so
    /// that neither can change the path of a request.
    pub fn new(owner: &str, name: &str) -> Result<Self, Error> {
        check_name("owner", owner, 39)?;
        check_name("repo", name, 100)?;
        Ok(Repository {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }
}

impl Repository {
    /// The repository of a set's `spec.pullRequests.github`.
    pub fn of(source: &GitHubSource) -> Result<Self, Error> {
        Repository::new(&source.owner, &source.repo)
    }

    /// The owner (user or organisation).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The repository's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `self` and `other` name the same repository (GitHub's names
    /// are case-insensitive).
    pub fn same_as(&self, other: &Repository) -> bool {
        self.owner.eq_ignore_ascii_case(&other.owner) && self.name.eq_ignore_ascii_case(&other.name)
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

fn check_name(field: &str, value: &str, max: usize) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "github.{field} {value:?} is not a GitHub name: use 1 to {max} letters, digits, '-', '_' or '.'"
        )))
    }
}
