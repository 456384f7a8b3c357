//! The pull-request variables of a set's template: `${PR_NUMBER}`,
//! `${PR_HEAD_SHA}`, `${PR_HEAD_SHORT_SHA}`, `${PR_BRANCH}`,
//! `${PR_BASE_BRANCH}`, `${PR_AUTHOR}` and the earlier controller's
//! `<<PR_NUMBER>>` and `<<PR_HEAD_SHA>>`.
//!
//! Replaced in one pass, so a value that itself looks like a variable (a
//! branch named `${PR_NUMBER}`) is inserted as it is. Every other `${...}`
//! is left for Flux (`${environment}`, `${image_tag}`, a team's own
//! `postBuild` variables), and `$${...}`, Flux's escape for a literal
//! `${...}`, is left as it is too.

use serde_json::Value;

use super::github::PullRequest;

/// Length of `${PR_HEAD_SHORT_SHA}`, as `git rev-parse --short` writes it.
pub const SHORT_SHA: usize = 7;

/// The values one pull request gives the variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variables {
    number: String,
    head_sha: String,
    short_sha: String,
    branch: String,
    base_branch: String,
    author: String,
}

type Getter = fn(&Variables) -> &str;

/// Each spelling and where its value comes from.
const TOKENS: [(&str, Getter); 8] = [
    ("${PR_NUMBER}", |v| &v.number),
    ("${PR_HEAD_SHA}", |v| &v.head_sha),
    ("${PR_HEAD_SHORT_SHA}", |v| &v.short_sha),
    ("${PR_BRANCH}", |v| &v.branch),
    ("${PR_BASE_BRANCH}", |v| &v.base_branch),
    ("${PR_AUTHOR}", |v| &v.author),
    ("<<PR_NUMBER>>", |v| &v.number),
    ("<<PR_HEAD_SHA>>", |v| &v.head_sha),
];

impl Variables {
    /// The variables of `pr`.
    pub fn of(pr: &PullRequest) -> Variables {
        Variables {
            number: pr.number.to_string(),
            head_sha: pr.head.sha.clone(),
            short_sha: short_sha(&pr.head.sha).to_owned(),
            branch: pr.head.branch.clone(),
            base_branch: pr.base.branch.clone(),
            author: pr.user.login.clone(),
        }
    }

    /// `text` with every pull-request variable replaced.
    pub fn replace(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find(['$', '<']) {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("$$") {
                out.push_str("$$");
                rest = after;
                continue;
            }
            match TOKENS.iter().find(|(token, _)| tail.starts_with(token)) {
                Some((token, value)) => {
                    out.push_str(value(self));
                    rest = &tail[token.len()..];
                }
                None => {
                    // '$' and '<' are one byte each.
                    out.push_str(&tail[..1]);
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Replaces the variables in every string value inside `value` (map
    /// keys are left as they are).
    pub fn replace_in(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if s.contains(['$', '<']) {
                    *s = self.replace(s);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.replace_in(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.replace_in(v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// The first [`SHORT_SHA`] characters of `sha` (all of it when shorter).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..SHORT_SHA).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pr() -> PullRequest {
        PullRequest::open(
            42,
            "dependabot[bot]",
            "feature/new-basket",
            "abc1234def5678abc1234def5678abc1234def56",
        )
    }

    #[test]
    fn replaces_every_spelling() {
        let v = Variables::of(&pr());
        assert_eq!(
            v.replace(
                "${PR_NUMBER} ${PR_HEAD_SHA} ${PR_HEAD_SHORT_SHA} ${PR_BRANCH} ${PR_BASE_BRANCH} ${PR_AUTHOR} <<PR_NUMBER>> <<PR_HEAD_SHA>>"
            ),
            "42 abc1234def5678abc1234def5678abc1234def56 abc1234 feature/new-basket main dependabot[bot] 42 abc1234def5678abc1234def5678abc1234def56"
        );
        assert_eq!(v.replace("shop-${PR_NUMBER}.preview"), "shop-42.preview");
    }

    #[test]
    fn leaves_fluxs_variables_and_escapes_alone() {
        let v = Variables::of(&pr());
        assert_eq!(
            v.replace("${environment}-${image_tag}-${PR_NUMBER}"),
            "${environment}-${image_tag}-42"
        );
        assert_eq!(
            v.replace("$${PR_NUMBER} $5 <b> $"),
            "$${PR_NUMBER} $5 <b> $"
        );
        assert_eq!(v.replace("${PR_NUMBER"), "${PR_NUMBER");
        assert_eq!(v.replace("ü${PR_AUTHOR}ü"), "üdependabot[bot]ü");
    }

    #[test]
    fn a_value_that_looks_like_a_variable_is_inserted_as_it_is() {
        let mut p = pr();
        p.head.branch = "${PR_NUMBER}".into();
        assert_eq!(
            Variables::of(&p).replace("${PR_BRANCH}/${PR_NUMBER}"),
            "${PR_NUMBER}/42"
        );
    }

    #[test]
    fn replaces_in_nested_values_but_not_in_keys() {
        let mut values = json!({
            "prNumber": "${PR_NUMBER}",
            "nested": {"list": ["<<PR_HEAD_SHA>>", 3, true, null], "${PR_NUMBER}": "x"}
        });
        Variables::of(&pr()).replace_in(&mut values);
        assert_eq!(
            values,
            json!({
                "prNumber": "42",
                "nested": {"list": ["abc1234def5678abc1234def5678abc1234def56", 3, true, null], "${PR_NUMBER}": "x"}
            })
        );
    }

    #[test]
    fn a_short_sha_is_never_longer_than_the_sha() {
        assert_eq!(short_sha("abc"), "abc");
        assert_eq!(short_sha("abcdef0123"), "abcdef0");
        assert_eq!(short_sha("ééééé"), "ééééé"); // not a char boundary at 7: whole
    }
}
