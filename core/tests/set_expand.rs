//! An EnvironmentSet's Environment through `expand`, as the webhook and the
//! controller see it: every app gets `pr_number`, `pr_head_sha` and
//! `pr_branch` (Helm apps under `values.ephemeral`); a hand-written
//! Environment cannot set them.

use ephemeral_core::api::{App, AppTemplateSpec, EnvironmentSpec, KustomizationSource, SourceRef};
use ephemeral_core::flux::FluxObject;
use ephemeral_core::set::github::{Branch, PullRequest, User};
use ephemeral_core::set::{EnvironmentSet, EnvironmentSetSpec, generate};
use ephemeral_core::{AppTemplate, Catalog, Config, Environment, Violation, expand};
use jiff::Timestamp;
use serde_json::json;

const NOW: &str = "2026-11-21T09:00:00Z";
const SHA: &str = "abc1234def5678abc1234def5678abc1234def56";

fn catalog() -> Catalog {
    let mut catalog = Catalog::default();
    let mut t = AppTemplate::new(
        "shop",
        AppTemplateSpec {
            kustomization: Some(KustomizationSource {
                path: "./apps/shop".into(),
                source_ref: SourceRef {
                    kind: "GitRepository".into(),
                    name: "platform".into(),
                    namespace: Some("flux-system".into()),
                },
            }),
            ..AppTemplateSpec::default()
        },
    );
    t.metadata.namespace = Some("previews".into());
    catalog.insert_template(t);
    catalog
}

fn set() -> EnvironmentSet {
    let spec: EnvironmentSetSpec = serde_json::from_value(json!({
        "pullRequests": {"github": {"owner": "acme", "repo": "shop", "tokenSecretRef": {"name": "github", "key": "token"}}},
        "template": {"spec": {"apps": [
            {"name": "shop"},
            {"name": "api", "helm": {
                "chart": "api", "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                "values": {"prNumber": "${PR_NUMBER}", "prSHA": "${PR_HEAD_SHA}"}
            }}
        ]}}
    }))
    .unwrap();
    let mut set = EnvironmentSet::new("shop-prs", spec);
    set.metadata.namespace = Some("previews".into());
    set.metadata.uid = Some("set-uid".into());
    set
}

fn pr() -> PullRequest {
    PullRequest {
        number: 42,
        state: "open".into(),
        user: User {
            login: "alice".into(),
        },
        head: Branch {
            branch: "feature/basket".into(),
            sha: SHA.into(),
            repo: None,
        },
        base: Branch {
            branch: "main".into(),
            ..Branch::default()
        },
        ..PullRequest::default()
    }
}

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

#[test]
fn every_app_of_a_generated_environment_gets_the_pull_request_variables() {
    let env = generate::environment(&set(), &pr()).unwrap();
    let expansion = expand(
        &env,
        &catalog(),
        &Config::default(),
        now(),
        "system:serviceaccount:x",
    )
    .unwrap();
    let mut seen = 0;
    for object in &expansion.objects {
        match object {
            FluxObject::Kustomization(k) => {
                let vars = &k.spec.post_build.substitute;
                assert_eq!(vars["pr_number"], "42");
                assert_eq!(vars["pr_head_sha"], SHA);
                assert_eq!(vars["pr_branch"], "feature/basket");
                assert_eq!(vars["environment"], "shop-prs-pr-42");
                seen += 1;
            }
            FluxObject::HelmRelease(h) => {
                let values = serde_json::Value::Object(h.spec.values.clone());
                assert_eq!(values["prNumber"], "42", "the earlier controller's shape");
                assert_eq!(values["prSHA"], SHA);
                assert_eq!(values["ephemeral"]["pr_number"], "42");
                assert_eq!(values["ephemeral"]["pr_head_sha"], SHA);
                assert_eq!(values["ephemeral"]["pr_branch"], "feature/basket");
                seen += 1;
            }
            _ => {}
        }
    }
    assert_eq!(seen, 2);
}

#[test]
fn an_environment_without_a_pull_request_gets_no_pull_request_variables() {
    let env = Environment {
        metadata: kube::api::ObjectMeta {
            name: Some("plain".into()),
            namespace: Some("previews".into()),
            ..Default::default()
        },
        spec: EnvironmentSpec {
            apps: vec![App {
                name: "shop".into(),
                ..App::default()
            }],
            ..EnvironmentSpec::default()
        },
        status: None,
    };
    let expansion = expand(&env, &catalog(), &Config::default(), now(), "alice").unwrap();
    let FluxObject::Kustomization(k) = &expansion.objects[0] else {
        panic!("a Kustomization app");
    };
    assert!(!k.spec.post_build.substitute.contains_key("pr_number"));
}

#[test]
fn a_hand_written_environment_cannot_set_the_pull_request_variables() {
    for key in generate::VARIABLES {
        let mut env = generate::environment(&set(), &pr()).unwrap();
        env.spec.substitute.insert(key.into(), "forged".into());
        let denied = expand(&env, &catalog(), &Config::default(), now(), "alice").unwrap_err();
        assert_eq!(
            denied.violations,
            vec![Violation::SubstituteKey {
                field: "spec.substitute".into(),
                key: key.into(),
                problem: "is set by kubectl-ephemeral itself".into(),
                fix: "rename the variable; environment, downscaler_uptime, owner, image_tag, pr_number, pr_head_sha and pr_branch are reserved".into(),
            }]
        );
    }
}
