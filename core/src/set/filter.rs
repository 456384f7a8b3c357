//! Which pull requests get an Environment: the set's `pullRequests` filters.
//! The rules are checked in a fixed order and the first that excludes a pull
//! request names the reason.

use std::fmt;

use super::api::PullRequestSource;
use super::github::PullRequest;

/// Why a pull request gets no Environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// It lacks a label of `labels`.
    MissingLabel(String),
    /// It carries a label of `excludeLabels`.
    ExcludedLabel(String),
    /// Its base branch is not one of `baseBranches`.
    BaseBranch(String),
    /// It is a draft and `includeDrafts` is false.
    Draft,
    /// Its head branch lives in another repository (or in a fork that was
    /// deleted) and `includeForks` is false.
    Fork {
        /// `owner/name` of the head repository; None when it was deleted.
        head_repository: Option<String>,
    },
    /// Its author is one of `excludeAuthors`.
    ExcludedAuthor(String),
}

impl Exclusion {
    /// A one-word reason, for Events and status (`MissingLabel`, `Fork`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            Exclusion::MissingLabel(_) => "MissingLabel",
            Exclusion::ExcludedLabel(_) => "ExcludedLabel",
            Exclusion::BaseBranch(_) => "BaseBranch",
            Exclusion::Draft => "Draft",
            Exclusion::Fork { .. } => "Fork",
            Exclusion::ExcludedAuthor(_) => "ExcludedAuthor",
        }
    }
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::MissingLabel(l) => write!(f, "it lacks the label '{l}' (labels)"),
            Exclusion::ExcludedLabel(l) => write!(f, "it carries the label '{l}' (excludeLabels)"),
            Exclusion::BaseBranch(b) => write!(f, "its base branch '{b}' is not in baseBranches"),
            Exclusion::Draft => f.write_str("it is a draft (includeDrafts is false)"),
            Exclusion::Fork {
                head_repository: Some(repo),
            } => write!(f, "it comes from the fork '{repo}' (includeForks is false)"),
            Exclusion::Fork {
                head_repository: None,
            } => f.write_str("it comes from a fork that was deleted (includeForks is false)"),
            Exclusion::ExcludedAuthor(a) => write!(f, "its author '{a}' is in excludeAuthors"),
        }
    }
}

/// Whether `pr` passes `filters`; the first rule that excludes it, in the
/// order labels, excludeLabels, baseBranches, includeDrafts, includeForks,
/// excludeAuthors. Labels, branches and logins compare exactly, as GitHub
/// writes them.
pub fn check(filters: &PullRequestSource, pr: &PullRequest) -> Result<(), Exclusion> {
    let has = |name: &str| pr.labels.iter().any(|l| l.name == name);
    if let Some(missing) = filters.labels.iter().find(|l| !has(l)) {
        return Err(Exclusion::MissingLabel(missing.clone()));
    }
    if let Some(excluded) = filters.exclude_labels.iter().find(|l| has(l)) {
        return Err(Exclusion::ExcludedLabel(excluded.clone()));
    }
    if !filters.base_branches.is_empty() && !filters.base_branches.contains(&pr.base.branch) {
        return Err(Exclusion::BaseBranch(pr.base.branch.clone()));
    }
    if pr.draft && !filters.include_drafts {
        return Err(Exclusion::Draft);
    }
    if is_fork(pr) && !filters.include_forks {
        return Err(Exclusion::Fork {
            head_repository: pr.head.repo.as_ref().map(|r| r.full_name.clone()),
        });
    }
    if filters.exclude_authors.contains(&pr.user.login) {
        return Err(Exclusion::ExcludedAuthor(pr.user.login.clone()));
    }
    Ok(())
}

/// Whether `pr` comes from a fork: its head repository is missing (a
/// deleted fork) or is not its base repository (`full_name` compared
/// case-insensitively, as GitHub treats names). A base without a repository
/// counts as a fork: nothing proves the code is the repository's own.
pub fn is_fork(pr: &PullRequest) -> bool {
    match (&pr.head.repo, &pr.base.repo) {
        (Some(head), Some(base)) => !head.full_name.eq_ignore_ascii_case(&base.full_name),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::github::{Label, Repository};

    fn repo(name: &str) -> Option<Repository> {
        Some(Repository {
            full_name: name.into(),
        })
    }

    fn pr() -> PullRequest {
        let mut pr = PullRequest::open(1, "alice", "feature", "abc");
        pr.labels = vec![Label {
            name: "preview".into(),
        }];
        pr.base.sha = "def".into();
        pr
    }

    fn filters() -> PullRequestSource {
        PullRequestSource {
            labels: vec!["preview".into()],
            exclude_labels: vec!["no-preview".into()],
            base_branches: vec!["main".into()],
            exclude_authors: vec!["dependabot[bot]".into()],
            ..PullRequestSource::default()
        }
    }

    #[test]
    fn a_pull_request_passing_every_rule_matches() {
        assert_eq!(check(&filters(), &pr()), Ok(()));
        assert_eq!(check(&PullRequestSource::default(), &pr()), Ok(()));
    }

    #[test]
    fn each_rule_names_why_it_excludes() {
        let f = filters();
        let mut p = pr();
        p.labels.clear();
        assert_eq!(
            check(&f, &p),
            Err(Exclusion::MissingLabel("preview".into()))
        );

        let mut p = pr();
        p.labels.push(Label {
            name: "no-preview".into(),
        });
        let excluded = check(&f, &p).unwrap_err();
        assert_eq!(excluded, Exclusion::ExcludedLabel("no-preview".into()));
        assert_eq!(
            excluded.to_string(),
            "it carries the label 'no-preview' (excludeLabels)"
        );

        let mut p = pr();
        p.base.branch = "release".into();
        assert_eq!(check(&f, &p), Err(Exclusion::BaseBranch("release".into())));

        let mut p = pr();
        p.draft = true;
        assert_eq!(check(&f, &p), Err(Exclusion::Draft));
        let drafts = PullRequestSource {
            include_drafts: true,
            ..filters()
        };
        assert_eq!(check(&drafts, &p), Ok(()));

        let mut p = pr();
        p.user.login = "dependabot[bot]".into();
        let excluded = check(&f, &p).unwrap_err();
        assert_eq!(excluded.reason(), "ExcludedAuthor");
    }

    #[test]
    fn forks_are_excluded_unless_asked_for() {
        let mut fork = pr();
        fork.head.repo = repo("mallory/shop");
        assert_eq!(
            check(&filters(), &fork),
            Err(Exclusion::Fork {
                head_repository: Some("mallory/shop".into())
            })
        );
        let mut deleted = pr();
        deleted.head.repo = None;
        let excluded = check(&filters(), &deleted).unwrap_err();
        assert_eq!(
            excluded.to_string(),
            "it comes from a fork that was deleted (includeForks is false)"
        );
        let forks = PullRequestSource {
            include_forks: true,
            ..filters()
        };
        assert_eq!(check(&forks, &fork), Ok(()));
        assert_eq!(check(&forks, &deleted), Ok(()));
    }

    #[test]
    fn the_same_repository_in_another_case_is_not_a_fork() {
        let mut p = pr();
        p.head.repo = repo("ACME/Shop");
        assert!(!is_fork(&p));
        assert_eq!(check(&filters(), &p), Ok(()));
    }

    #[test]
    fn the_first_rule_in_order_wins() {
        let mut p = pr();
        p.labels.clear();
        p.draft = true;
        p.head.repo = None;
        assert_eq!(check(&filters(), &p).unwrap_err().reason(), "MissingLabel");
    }
}
