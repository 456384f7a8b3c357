//! The Environment a set makes for one pull request, and the pull request an
//! Environment was made for (read back from its labels and annotations, by
//! the set's plan and by [`expand`](crate::expand::expand)).

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::github::PullRequest;
use super::vars::Variables;
use super::{
    BRANCH_ANNOTATION, EnvironmentSet, HEAD_SHA_ANNOTATION, PULL_REQUEST_LABEL,
    SET_GENERATION_ANNOTATION, SET_LABEL,
};
use crate::api::{Environment, EnvironmentSpec};
use crate::names;

/// The `substitute` variables every app of a generated Environment gets
/// (Helm apps under `values.ephemeral`): the pull request's number, head
/// commit and head branch. Reserved: no Environment may set them itself.
pub const VARIABLES: [&str; 3] = ["pr_number", "pr_head_sha", "pr_branch"];

/// Why no Environment can be made for a pull request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// `<set>-pr-<number>` is not a valid Environment name.
    #[error(
        "EnvironmentSet {set}: the Environment for pull request #{number} would be named '{name}', which is not a valid Environment name: it {problem}. Fix: give the set a name of lower-case letters, digits and '-' of at most {room} characters (room for pull request numbers of 6 digits)"
    )]
    InvalidName {
        /// `namespace/name` of the set.
        set: String,
        /// The pull request.
        number: u64,
        /// The name it would get.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
        /// The longest set name that leaves room for 6-digit numbers.
        room: usize,
    },
    /// The template's spec did not come back from variable replacement.
    #[error(
        "EnvironmentSet {set}: spec.template.spec for pull request #{number}: {message}. Fix: correct the template"
    )]
    Template {
        /// `namespace/name` of the set.
        set: String,
        /// The pull request.
        number: u64,
        /// What went wrong.
        message: String,
    },
}

/// The name of the Environment of pull request `number` in set `set`:
/// `<set>-pr-<number>`.
pub fn environment_name(set: &str, number: u64) -> String {
    format!("{set}-pr-{number}")
}

/// `namespace/name` of a set, for messages.
pub fn set_key(set: &EnvironmentSet) -> String {
    format!("{}/{}", set.namespace().unwrap_or_default(), set.name_any())
}

/// The Environment `set` keeps for `pr`: named `<set>-pr-<number>` in the
/// set's namespace; labels the template's plus `ephemeral.io/set` and
/// `ephemeral.io/pull-request` (these win); annotations the template's plus
/// the head commit and branch (`ephemeral.io/pull-request-head-sha`,
/// `ephemeral.io/pull-request-branch`) and the set's generation
/// (`ephemeral.io/set-generation`, when it has one), these win; the set as controlling
/// owner (when the set has a uid, i.e. comes from a cluster); the
/// template's spec. The pull-request variables are replaced in every string
/// value of the labels, annotations and spec.
pub fn environment(set: &EnvironmentSet, pr: &PullRequest) -> Result<Environment, GenerateError> {
    let set_name = set.name_any();
    let name = environment_name(&set_name, pr.number);
    if let Some(problem) = names::dns1123_label_problem(&name) {
        return Err(GenerateError::InvalidName {
            set: set_key(set),
            number: pr.number,
            name,
            problem,
            room: names::MAX_LABEL - "-pr-".len() - 6,
        });
    }
    let vars = Variables::of(pr);
    let template = &set.spec.template;
    let replaced = |map: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        map.into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), vars.replace(v)))
            .collect()
    };
    let meta = template.metadata.as_ref();
    let mut labels = replaced(meta.map(|m| &m.labels));
    labels.insert(SET_LABEL.to_owned(), set_name);
    labels.insert(PULL_REQUEST_LABEL.to_owned(), pr.number.to_string());
    let mut annotations = replaced(meta.map(|m| &m.annotations));
    annotations.insert(HEAD_SHA_ANNOTATION.to_owned(), pr.head.sha.clone());
    annotations.insert(BRANCH_ANNOTATION.to_owned(), pr.head.branch.clone());
    if let Some(generation) = set.metadata.generation {
        annotations.insert(SET_GENERATION_ANNOTATION.to_owned(), generation.to_string());
    }

    let spec_error = |e: serde_json::Error| GenerateError::Template {
        set: set_key(set),
        number: pr.number,
        message: e.to_string(),
    };
    let mut spec = serde_json::to_value(&template.spec).map_err(spec_error)?;
    vars.replace_in(&mut spec);
    let spec: EnvironmentSpec = serde_json::from_value(spec).map_err(spec_error)?;

    Ok(Environment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: set.controller_owner_ref(&()).map(|mut r| {
                r.block_owner_deletion = Some(true);
                vec![r]
            }),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

/// The pull request an Environment was made for, as its metadata says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestOf<'a> {
    /// The `ephemeral.io/pull-request` label, as written.
    pub number: &'a str,
    /// The `ephemeral.io/pull-request-head-sha` annotation ("" when missing).
    pub head_sha: &'a str,
    /// The `ephemeral.io/pull-request-branch` annotation ("" when missing).
    pub branch: &'a str,
}

impl<'a> PullRequestOf<'a> {
    /// Read from `meta`: None unless it carries the `ephemeral.io/pull-request` label.
    pub fn read(meta: &'a ObjectMeta) -> Option<PullRequestOf<'a>> {
        let number = meta.labels.as_ref()?.get(PULL_REQUEST_LABEL)?;
        let annotation = |key: &str| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .map(String::as_str)
                .unwrap_or_default()
        };
        Some(PullRequestOf {
            number,
            head_sha: annotation(HEAD_SHA_ANNOTATION),
            branch: annotation(BRANCH_ANNOTATION),
        })
    }

    /// The label as a number, when it is one.
    pub fn number(&self) -> Option<u64> {
        self.number.parse().ok()
    }

    /// The [`VARIABLES`] with their values.
    pub fn variables(&self) -> [(&'static str, &'a str); 3] {
        [
            (VARIABLES[0], self.number),
            (VARIABLES[1], self.head_sha),
            (VARIABLES[2], self.branch),
        ]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::set::api::EnvironmentSetSpec;

    fn set(name: &str) -> EnvironmentSet {
        let spec: EnvironmentSetSpec = serde_json::from_value(json!({
            "pullRequests": {"github": {"owner": "acme", "repo": "shop", "tokenSecretRef": {"name": "github", "key": "token"}}},
            "template": {
                "metadata": {
                    "labels": {"team": "shop", "ephemeral.io/set": "forged", "pr": "${PR_NUMBER}"},
                    "annotations": {"link": "https://github.com/acme/shop/pull/<<PR_NUMBER>>"}
                },
                "spec": {
                    "apps": [
                        {"name": "shop", "branch": "${PR_BRANCH}"},
                        {"name": "api", "helm": {
                            "chart": "api", "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                            "values": {"prNumber": "${PR_NUMBER}", "prSHA": "${PR_HEAD_SHA}",
                                       "deep": [{"host": "api-${PR_NUMBER}.${domain}"}]}
                        }}
                    ],
                    "substitute": {"by": "${PR_AUTHOR}", "flux": "${environment}"}
                }
            }
        }))
        .unwrap();
        let mut set = EnvironmentSet::new(name, spec);
        set.metadata.namespace = Some("previews".into());
        set.metadata.uid = Some("set-uid".into());
        set
    }

    fn pr(number: u64) -> PullRequest {
        PullRequest::open(
            number,
            "alice",
            "feature/basket",
            "abc1234def5678abc1234def5678abc1234def56",
        )
    }

    #[test]
    fn generates_the_named_labelled_owned_and_substituted_environment() {
        let env = environment(&set("shop-prs"), &pr(42)).unwrap();
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(
            json["metadata"],
            json!({
                "name": "shop-prs-pr-42",
                "namespace": "previews",
                "labels": {"team": "shop", "pr": "42", "ephemeral.io/set": "shop-prs", "ephemeral.io/pull-request": "42"},
                "annotations": {
                    "link": "https://github.com/acme/shop/pull/42",
                    "ephemeral.io/pull-request-head-sha": "abc1234def5678abc1234def5678abc1234def56",
                    "ephemeral.io/pull-request-branch": "feature/basket"
                },
                "ownerReferences": [{
                    "apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentSet", "name": "shop-prs",
                    "uid": "set-uid", "controller": true, "blockOwnerDeletion": true
                }]
            })
        );
        assert_eq!(
            json["spec"],
            json!({
                "apps": [
                    {"name": "shop", "branch": "feature/basket"},
                    {"name": "api", "helm": {
                        "chart": "api", "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                        "values": {"prNumber": "42", "prSHA": "abc1234def5678abc1234def5678abc1234def56",
                                   "deep": [{"host": "api-42.${domain}"}]}
                    }}
                ],
                "substitute": {"by": "alice", "flux": "${environment}"}
            })
        );
    }

    #[test]
    fn a_set_read_from_a_file_has_no_uid_and_owns_nothing() {
        let mut s = set("shop-prs");
        s.metadata.uid = None;
        let env = environment(&s, &pr(1)).unwrap();
        assert_eq!(env.metadata.owner_references, None);
    }

    #[test]
    fn a_name_too_long_for_an_environment_names_the_set_and_the_fix() {
        let long = "s".repeat(57);
        assert!(
            environment(&set(&long), &pr(99)).is_ok(),
            "57 + 7 = 63 fits"
        );
        let err = environment(&set(&long), &pr(100)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "EnvironmentSet previews/{long}: the Environment for pull request #100 would be named '{long}-pr-100', which is not a valid Environment name: it must be at most 63 characters. Fix: give the set a name of lower-case letters, digits and '-' of at most 53 characters (room for pull request numbers of 6 digits)"
            )
        );
        let err = environment(&set("shop.prs"), &pr(1)).unwrap_err();
        assert!(
            err.to_string()
                .contains("must consist of lower-case letters, digits and '-'")
        );
    }

    #[test]
    fn the_pull_request_is_read_back_from_the_metadata() {
        let env = environment(&set("shop-prs"), &pr(42)).unwrap();
        let of = PullRequestOf::read(&env.metadata).unwrap();
        assert_eq!(of.number(), Some(42));
        assert_eq!(
            of.variables(),
            [
                ("pr_number", "42"),
                ("pr_head_sha", "abc1234def5678abc1234def5678abc1234def56"),
                ("pr_branch", "feature/basket")
            ]
        );
        assert_eq!(PullRequestOf::read(&ObjectMeta::default()), None);
    }
}
