use kubectl_ephemeral::cli::Command;
use kubectl_ephemeral::cmd::describe;
use serde_json::json;

use crate::list::three;
use crate::parse;
use crate::support::*;

async fn describe(name: &str, exchanges: Vec<Exchange>) -> String {
    let Command::Describe(a) = parse(&["describe", name]) else {
        unreachable!()
    };
    let played = play(exchanges, |ctx, mut out| async move {
        let r = describe::run(&ctx, &a, &mut out).await;
        (r, out)
    })
    .await;
    played.transcript()
}

const POLICIES: &str = "/apis/image.toolkit.fluxcd.io/v1/namespaces/ephemeral/imagepolicies";
const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/ephemeral/ingresses";
const EVENTS: &str = "/api/v1/namespaces/ephemeral/events";

fn events_query(name: &str) -> Vec<(&'static str, String)> {
    vec![(
        "fieldSelector",
        format!("involvedObject.kind=Environment,involvedObject.name={name}"),
    )]
}

#[tokio::test]
async fn an_app_without_a_tag_gets_its_likely_causes() {
    let alice = three().remove(0);
    let fields = events_query("alice");
    let text = describe(
        "alice",
        vec![
            expect("GET", format!("{ENVS}/alice")).ok(alice),
            // web has a prefix but no tag: its ImagePolicy is read for its message.
            expect("GET", format!("{POLICIES}/alice-web")).ok(json!({
                "apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy",
                "metadata": {"name": "alice-web", "namespace": "ephemeral"},
                "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "DependencyNotReady",
                    "message": "no image found for policy: no tags match the filter",
                    "lastTransitionTime": "2026-11-21T09:01:00Z"}]}})),
            expect("GET", INGRESSES)
                .query(&[("labelSelector", "ephemeral.io/environment=alice")])
                .ok(json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressList", "metadata": {}, "items": [
                    {"metadata": {"name": "checkout", "namespace": "ephemeral"},
                     "spec": {"tls": [{"hosts": ["checkout.alice.example.com"]}],
                              "rules": [{"host": "checkout.alice.example.com", "http": {"paths": [
                                  {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "checkout", "port": {"number": 80}}}}]}},
                                        {"host": "web.alice.example.com"}]}}]})),
            expect("GET", EVENTS)
                .query(&[(fields[0].0, fields[0].1.as_str())])
                .ok(json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": [
                    {"metadata": {"name": "e2", "namespace": "ephemeral"}, "involvedObject": {"kind": "Environment", "name": "alice"},
                     "type": "Warning", "reason": "AppNotReady", "message": "web: health check failed after 5m",
                     "lastTimestamp": "2026-11-21T11:50:00Z", "source": {"component": "ephemeral"}},
                    {"metadata": {"name": "e1", "namespace": "ephemeral"}, "involvedObject": {"kind": "Environment", "name": "alice"},
                     "type": "Normal", "reason": "Applied", "message": "applied 3 Kustomizations, 3 ImagePolicies",
                     "lastTimestamp": "2026-11-21T09:00:05Z", "source": {"component": "ephemeral"}}]})),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn before_the_controller_and_without_rights_to_list_ingresses() {
    let bob = three().remove(1);
    let fields = events_query("bob");
    let text = describe(
        "bob",
        vec![
            expect("GET", format!("{ENVS}/bob")).ok(bob),
            expect("GET", format!("{POLICIES}/bob-payments")).fail(404, "NotFound", "imagepolicies.image.toolkit.fluxcd.io \"bob-payments\" not found", Some("bob-payments")),
            expect("GET", INGRESSES)
                .query(&[("labelSelector", "ephemeral.io/environment=bob")])
                .fail(403, "Forbidden", "ingresses.networking.k8s.io is forbidden: User \"bob\" cannot list resource \"ingresses\"", None),
            expect("GET", EVENTS)
                .query(&[(fields[0].0, fields[0].1.as_str())])
                .ok(json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": []})),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn not_found_suggests_list() {
    let text = describe(
        "carol",
        vec![expect("GET", format!("{ENVS}/carol")).fail(
            404,
            "NotFound",
            "environments.ephemeral.io \"carol\" not found",
            Some("carol"),
        )],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn source_branch_bundles_helm_apps_and_each_apps_ready_reason_and_message() {
    let infra = with_status(
        admitted(
            "infra",
            "carol",
            json!({"apps": [{"name": "web"}], "bundles": ["observability"],
                "sourceBranch": "feature/infra",
                "lease": {"schedule": "Mon-Fri 07:00-19:00 Europe/London", "expireAfter": "168h"}}),
        ),
        json!([
            {"name": "web", "kind": "Kustomization", "ready": true, "imageTag": "main-9e1d4c2-1763712000",
             "reason": "ReconciliationSucceeded", "message": "Applied revision: feature/infra@sha1:5d41402a"},
            {"name": "jaeger", "kind": "HelmRelease", "ready": false, "reason": "InstallFailed",
             "message": "Helm install failed for release ephemeral/infra-jaeger with chart jaeger@3.4.1: context deadline exceeded"},
            {"name": "grafana", "kind": "HelmRelease", "ready": true, "reason": "InstallSucceeded",
             "message": "Helm install succeeded for release ephemeral/infra-grafana.v1 with chart grafana@8.5.0"}]),
        "2026-11-23T19:00:00Z",
    );
    let fields = events_query("infra");
    let text = describe(
        "infra",
        vec![
            // Every app with a prefix has a tag: no ImagePolicy is read.
            expect("GET", format!("{ENVS}/infra")).ok(infra),
            expect("GET", INGRESSES)
                .query(&[("labelSelector", "ephemeral.io/environment=infra")])
                .ok(json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressList", "metadata": {}, "items": []})),
            expect("GET", EVENTS)
                .query(&[(fields[0].0, fields[0].1.as_str())])
                .ok(json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": []})),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn a_suspended_environment_says_until_when() {
    let mut shop = with_status(
        admitted(
            "shop",
            "carol",
            json!({"apps": [{"name": "web"}],
                "lease": {"schedule": "Mon-Fri 07:00-19:00 Europe/London", "suspendOutsideUptime": true}}),
        ),
        json!([
            {"name": "web", "kind": "Kustomization", "ready": true, "imageTag": "main-9e1d4c2-1763712000", "reason": "OutsideUptime",
             "message": "suspended until 2026-11-23T07:00:00Z; Flux last reported ReconciliationSucceeded: Applied revision: main@sha1:5d41402a"}]),
        "2026-11-21T19:00:00Z",
    );
    shop["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Suspended", "status": "True", "reason": "OutsideUptime",
            "message": "outside its lease: the apps' Kustomizations and HelmReleases are suspended (spec.suspend: true) until 2026-11-23T07:00:00Z, so Flux does not scale them back up; ImagePolicies keep resolving",
            "observedGeneration": 1, "lastTransitionTime": "2026-11-21T09:00:05Z"}));
    let fields = events_query("shop");
    let text = describe(
        "shop",
        vec![
            expect("GET", format!("{ENVS}/shop")).ok(shop),
            expect("GET", INGRESSES)
                .query(&[("labelSelector", "ephemeral.io/environment=shop")])
                .ok(json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressList", "metadata": {}, "items": []})),
            expect("GET", EVENTS)
                .query(&[(fields[0].0, fields[0].1.as_str())])
                .ok(json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": [
                    {"metadata": {"name": "e1", "namespace": "ephemeral"}, "involvedObject": {"kind": "Environment", "name": "shop"},
                     "type": "Normal", "reason": "Suspended", "message": "outside its lease: the apps' Kustomizations and HelmReleases are suspended (spec.suspend: true) until 2026-11-23T07:00:00Z, so Flux does not scale them back up; ImagePolicies keep resolving",
                     "lastTimestamp": "2026-11-21T09:00:05Z", "source": {"component": "ephemeral"}}]})),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}
