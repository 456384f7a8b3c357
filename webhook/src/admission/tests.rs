use serde_json::{Value, json};

use kube::core::admission::AdmissionResponse;
use kube::core::response::StatusSummary;

use super::*;

/// The answer of [`super::mutate`]; tests of the outcome call it directly.
fn mutate(
    review: &Review,
    catalog: &Catalog,
    config: &Config,
    now: Timestamp,
) -> AdmissionResponse {
    super::mutate(review, catalog, config, now).response
}

/// The answer of [`super::validate`].
fn validate(review: &Review, access: &Access) -> AdmissionResponse {
    super::validate(review, access).response
}

const NOW: &str = "2026-11-21T10:00:00Z";
const UPTIME_TODAY: &str = "2026-11-21T10:00:00+00:00-2026-11-21T19:00:00+00:00";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    for (name, prefix) in [("checkout", "main"), ("payments", "stable")] {
        c.insert_template(
            serde_json::from_value(json!({
                "apiVersion": "ephemeral.io/v1alpha1",
                "kind": "AppTemplate",
                "metadata": {"name": name, "namespace": "ephemeral"},
                "spec": {
                    "kustomization": {
                        "path": format!("./apps/{name}/preview"),
                        "sourceRef": {"kind": "GitRepository", "name": "platform", "namespace": "flux-system"}
                    },
                    "imageRepository": {"name": name, "namespace": "flux-system"},
                    "imageTagPrefix": prefix
                }
            }))
            .unwrap(),
        );
    }
    c
}

fn access() -> Access {
    Access {
        admin_groups: vec!["platform-admins".into()],
        controller_service_account: "system:serviceaccount:ephemeral-system:ephemeral-webhook"
            .into(),
    }
}

fn env(metadata: Value, spec: Value) -> Value {
    json!({"apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment", "metadata": metadata, "spec": spec})
}

fn review_json(
    op: &str,
    user: &str,
    groups: &[&str],
    object: Option<Value>,
    old: Option<Value>,
) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "ephemeral.io", "version": "v1alpha1", "kind": "Environment"},
            "resource": {"group": "ephemeral.io", "version": "v1alpha1", "resource": "environments"},
            "name": "alice-checkout",
            "namespace": "ephemeral",
            "operation": op,
            "userInfo": {"username": user, "groups": groups},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

fn review(value: &Value) -> Review<'static> {
    parse_review(value.to_string().as_bytes())
        .expect("a well-formed review")
        .into_owned()
}

fn mutate_json(value: &Value) -> AdmissionResponse {
    mutate(&review(value), &catalog(), &Config::default(), now())
}

/// An UPDATE by the owner, answered with every template gone from the catalog.
fn update_with_empty_catalog(object: Value, old: Value) -> AdmissionResponse {
    let review_body = review_json("UPDATE", "alice", &[], Some(object), Some(old));
    mutate(
        &review(&review_body),
        &Catalog::default(),
        &Config::default(),
        now(),
    )
}

fn patch_of(response: &AdmissionResponse) -> json_patch::Patch {
    serde_json::from_slice(response.patch.as_ref().expect("a patch")).unwrap()
}

fn applied(object: &Value, response: &AdmissionResponse) -> Value {
    let mut doc = object.clone();
    json_patch::patch(&mut doc, &patch_of(response)).expect("the patch applies");
    doc
}

fn paths(response: &AdmissionResponse) -> Vec<String> {
    let patch = serde_json::to_value(patch_of(response)).unwrap();
    patch
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            format!(
                "{} {}",
                op["op"].as_str().unwrap(),
                op["path"].as_str().unwrap()
            )
        })
        .collect()
}

fn lightweight() -> Value {
    env(
        json!({"name": "alice-checkout", "namespace": "ephemeral"}),
        json!({"apps": [{"name": "checkout", "branch": "feature/new-basket"}, {"name": "payments"}]}),
    )
}

fn admitted() -> Value {
    let object = lightweight();
    let response = mutate_json(&review_json(
        "CREATE",
        "alice",
        &[],
        Some(object.clone()),
        None,
    ));
    applied(&object, &response)
}

#[test]
fn create_with_generate_name_and_no_annotations_gets_a_full_patch() {
    let object = env(
        json!({"generateName": "alice-", "name": "", "namespace": "ephemeral"}),
        json!({"apps": [{"name": "checkout", "branch": "feature/new-basket"}]}),
    );
    let response = mutate_json(&review_json(
        "CREATE",
        "alice",
        &[],
        Some(object.clone()),
        None,
    ));
    assert!(response.allowed, "{:?}", response.result);
    assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert!(
        paths(&response).contains(&"add /metadata/annotations".to_owned()),
        "{:?}",
        paths(&response)
    );
    let result = applied(&object, &response);
    assert_eq!(
        result["metadata"],
        json!({
            "generateName": "alice-",
            "name": "",
            "namespace": "ephemeral",
            "annotations": {"ephemeral.io/owner": "alice", "downscaler/uptime": UPTIME_TODAY}
        })
    );
    assert_eq!(
        result["spec"],
        json!({
            "apps": [{
                "name": "checkout",
                "template": "checkout",
                "branch": "feature/new-basket",
                "imageTagPrefix": "feature-new-basket",
                "kustomization": {
                    "path": "./apps/checkout/preview",
                    "sourceRef": {"kind": "GitRepository", "name": "platform", "namespace": "flux-system"}
                },
                "imageRepository": {"name": "checkout", "namespace": "flux-system"}
            }],
            "lease": {"until": "2026-11-21T19:00:00Z"}
        })
    );
    assert_eq!(
        response.warnings,
        Some(vec![
            "spec.apps[0].branch: imageTagPrefix sanitised from 'feature/new-basket' to 'feature-new-basket'".to_owned()
        ])
    );
}

#[test]
fn create_with_annotations_adds_escaped_keys_and_keeps_the_rest() {
    let object = env(
        json!({"name": "alice-checkout", "namespace": "ephemeral", "annotations": {"team": "shop"}}),
        json!({"apps": [{"name": "payments"}]}),
    );
    let response = mutate_json(&review_json(
        "CREATE",
        "alice",
        &[],
        Some(object.clone()),
        None,
    ));
    let p = paths(&response);
    assert!(
        p.contains(&"add /metadata/annotations/downscaler~1uptime".to_owned()),
        "{p:?}"
    );
    assert!(
        p.contains(&"add /metadata/annotations/ephemeral.io~1owner".to_owned()),
        "{p:?}"
    );
    assert!(!p.iter().any(|p| p.contains("team")), "{p:?}");
    let result = applied(&object, &response);
    assert_eq!(
        result["metadata"]["annotations"],
        json!({"team": "shop", "ephemeral.io/owner": "alice", "downscaler/uptime": UPTIME_TODAY})
    );
}

#[test]
fn create_overwrites_a_client_sent_owner() {
    let mut object = lightweight();
    object["metadata"]["annotations"] = json!({"ephemeral.io/owner": "mallory"});
    let response = mutate_json(&review_json(
        "CREATE",
        "alice",
        &[],
        Some(object.clone()),
        None,
    ));
    assert!(response.allowed);
    assert!(
        paths(&response).contains(&"replace /metadata/annotations/ephemeral.io~1owner".to_owned())
    );
    assert_eq!(
        applied(&object, &response)["metadata"]["annotations"]["ephemeral.io/owner"],
        "alice"
    );
}

#[test]
fn create_without_namespace_uses_the_request_namespace() {
    let mut object = lightweight();
    object["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let response = mutate_json(&review_json(
        "CREATE",
        "alice",
        &[],
        Some(object.clone()),
        None,
    ));
    assert!(response.allowed, "{}", response.result.message);
    let result = applied(&object, &response);
    assert_eq!(result["spec"]["apps"][0]["template"], "checkout");
    assert!(
        result["metadata"].get("namespace").is_none(),
        "the patch only touches spec and annotations"
    );
}

#[test]
fn update_keeps_the_owner_of_the_incoming_object() {
    let old = admitted();
    let mut object = old.clone();
    object["spec"]["apps"][1] = json!({"name": "payments", "imageTagPrefix": "pr-17"});
    let response = mutate_json(&review_json(
        "UPDATE",
        "bob",
        &["platform-admins"],
        Some(object.clone()),
        Some(old),
    ));
    assert!(response.allowed, "{}", response.result.message);
    let result = applied(&object, &response);
    assert_eq!(
        result["metadata"]["annotations"]["ephemeral.io/owner"],
        "alice"
    );
    assert_eq!(result["spec"]["apps"][1]["imageTagPrefix"], "pr-17");
    assert_eq!(result["spec"]["apps"][1]["template"], "payments");
}

#[test]
fn update_without_owner_annotation_falls_back_to_the_old_object() {
    let old = admitted();
    let mut object = lightweight();
    object["spec"]["apps"].as_array_mut().unwrap().pop();
    let response = mutate_json(&review_json(
        "UPDATE",
        "bob",
        &[],
        Some(object.clone()),
        Some(old),
    ));
    assert!(response.allowed, "{}", response.result.message);
    let result = applied(&object, &response);
    assert_eq!(
        result["metadata"]["annotations"]["ephemeral.io/owner"],
        "alice"
    );
    assert_eq!(
        result["metadata"]["annotations"]["downscaler/uptime"],
        UPTIME_TODAY
    );
}

#[test]
fn already_admitted_object_gets_no_patch() {
    let object = admitted();
    let create = mutate_json(&review_json(
        "CREATE",
        "alice",
        &[],
        Some(object.clone()),
        None,
    ));
    assert!(create.allowed);
    assert_eq!(create.patch, None);
    let as_json = serde_json::to_value(&create).unwrap();
    assert!(
        as_json.get("patch").is_none() && as_json.get("patchType").is_none(),
        "{as_json}"
    );

    // An UPDATE that goes through expansion (the old object differs) gives no patch either.
    let update = mutate_json(&review_json(
        "UPDATE",
        "alice",
        &[],
        Some(object),
        Some(lightweight()),
    ));
    assert!(update.allowed);
    assert_eq!(update.patch, None);
}

#[test]
fn metadata_only_update_is_admitted_even_when_the_template_is_gone() {
    let old = admitted();
    let mut object = old.clone();
    object["metadata"]["finalizers"] = json!(["ephemeral.io/cleanup"]);
    let response = update_with_empty_catalog(object, old);
    assert!(response.allowed, "{}", response.result.message);
    assert_eq!(response.patch, None);
}

#[test]
fn update_of_an_object_being_deleted_is_admitted_unchanged() {
    let old = admitted();
    let mut object = lightweight();
    object["metadata"]["deletionTimestamp"] = json!("2026-11-21T11:00:00Z");
    let response = update_with_empty_catalog(object, old);
    assert!(response.allowed);
    assert_eq!(response.patch, None);
}

#[test]
fn dry_run_is_answered_like_a_real_request() {
    let object = lightweight();
    let mut dry = review_json("CREATE", "alice", &[], Some(object.clone()), None);
    dry["request"]["dryRun"] = json!(true);
    let real = mutate_json(&review_json("CREATE", "alice", &[], Some(object), None));
    let dry = mutate_json(&dry);
    assert!(real.patch.is_some());
    assert_eq!(dry, real);
}

#[test]
fn wrong_kind_is_denied_with_400() {
    let mut value = review_json("CREATE", "alice", &[], Some(lightweight()), None);
    value["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    let response = mutate_json(&value);
    assert!(!response.allowed);
    assert_eq!(response.result.code, 400);
    assert_eq!(
        response.result.message,
        "request.kind: this webhook admits only ephemeral.io/v1alpha1 Environment, not apps/v1 Deployment. Fix: register the webhook for environments.ephemeral.io only"
    );
    assert_eq!(validate(&review(&value), &access()).result.code, 400);
    let decision = super::mutate(&review(&value), &catalog(), &Config::default(), now());
    assert_eq!(decision.outcome, Outcome::Invalid);
    let decision = super::validate(&review(&value), &access());
    assert_eq!(decision.outcome, Outcome::Invalid);
}

#[test]
fn object_of_another_kind_is_denied_with_400() {
    let mut object = lightweight();
    object["apiVersion"] = json!("v1");
    object["kind"] = json!("ConfigMap");
    let response = mutate_json(&review_json("CREATE", "alice", &[], Some(object), None));
    assert!(!response.allowed);
    assert_eq!(response.result.code, 400);
    assert_eq!(
        response.result.message,
        "request.object: apiVersion 'v1' kind 'ConfigMap' is not an ephemeral.io/v1alpha1 Environment. Fix: send Environments only"
    );
}

#[test]
fn object_that_does_not_deserialise_is_invalid() {
    let object = env(
        json!({"name": "x", "namespace": "ephemeral"}),
        json!({"apps": "checkout"}),
    );
    let response = mutate_json(&review_json("CREATE", "alice", &[], Some(object), None));
    assert!(!response.allowed);
    assert_eq!(response.result.code, 422);
    assert_eq!(
        response.result.message,
        "request.object.spec.apps: invalid type: string \"checkout\", expected a sequence. Fix: follow the Environment schema (kubectl explain environments.spec)"
    );
}

fn assert_denied(response: &AdmissionResponse, code: u16, message: &str) {
    assert!(!response.allowed, "expected a denial");
    assert_eq!(response.result.code, code);
    assert_eq!(response.result.message, message);
    assert_eq!(response.patch, None);
    assert_eq!(response.result.status, Some(StatusSummary::Failure));
}

#[test]
fn invalid_prefix_is_denied_with_422() {
    let object = env(
        json!({"name": "alice-checkout", "namespace": "ephemeral"}),
        json!({"apps": [{"name": "checkout", "imageTagPrefix": "-bad"}]}),
    );
    let response = mutate_json(&review_json(
        "CREATE",
        "alice",
        &[],
        Some(object.clone()),
        None,
    ));
    assert_denied(
        &response,
        422,
        "spec.apps[0].imageTagPrefix: '-bad' is not a valid image tag prefix: it starts with '-' (a tag starts with a letter, digit or '_'). Fix: use the form [A-Za-z0-9_][A-Za-z0-9_.-]* of at most 76 characters, or set branch and let the webhook derive the prefix",
    );
    let review = review(&review_json("CREATE", "alice", &[], Some(object), None));
    let decision = super::mutate(&review, &catalog(), &Config::default(), now());
    assert_eq!(decision.outcome, Outcome::Denied);
}

#[test]
fn unknown_template_is_denied_listing_the_existing_ones() {
    let mut object = env(
        json!({"name": "alice-checkout"}),
        json!({"apps": [{"name": "search"}]}),
    );
    object["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let response = mutate_json(&review_json("CREATE", "alice", &[], Some(object), None));
    assert_denied(
        &response,
        422,
        "spec.apps[0].name: AppTemplate 'search' does not exist in namespace 'ephemeral'. Fix: use one of: checkout, payments",
    );
}

#[test]
fn lease_past_the_maximum_is_denied() {
    let object = env(
        json!({"name": "alice-checkout", "namespace": "ephemeral"}),
        json!({"apps": [{"name": "payments"}], "lease": {"until": "2026-12-01T00:00:00Z"}}),
    );
    let response = mutate_json(&review_json("CREATE", "alice", &[], Some(object), None));
    assert_denied(
        &response,
        422,
        "spec.lease.until: 2026-12-01T00:00:00Z is past the maximum lease (168h), which ends 2026-11-28T10:00:00Z. Fix: choose an until no later than 2026-11-28T10:00:00Z, or ask an admin for an always-on schedule",
    );
}

#[test]
fn a_schedule_is_stored_in_the_downscalers_spelling_with_a_warning() {
    let object = env(
        json!({"name": "alice-checkout", "namespace": "ephemeral"}),
        json!({"apps": [{"name": "payments"}], "lease": {"schedule": "mon-fri 07:00-19:00 europe/london"}}),
    );
    let response = mutate_json(&review_json(
        "CREATE",
        "alice",
        &[],
        Some(object.clone()),
        None,
    ));
    assert!(response.allowed, "{}", response.result.message);
    let result = applied(&object, &response);
    let written = "Mon-Fri 07:00-19:00 Europe/London";
    assert_eq!(result["spec"]["lease"], json!({"schedule": written}));
    assert_eq!(
        result["metadata"]["annotations"]["downscaler/uptime"],
        written
    );
    assert_eq!(
        response.warnings,
        Some(vec![format!(
            "spec.lease.schedule: time zone 'europe/london' is 'Europe/London' in the IANA database (GoKubeDownscaler matches zone names exactly); written as '{written}'"
        )])
    );
}

#[test]
fn a_zone_that_matches_no_iana_name_is_denied_naming_the_nearest() {
    let object = env(
        json!({"name": "alice-checkout", "namespace": "ephemeral"}),
        json!({"apps": [{"name": "payments"}], "lease": {"schedule": "Mon-Fri 07:00-19:00 Europe/Lodnon"}}),
    );
    let response = mutate_json(&review_json("CREATE", "alice", &[], Some(object), None));
    assert_denied(
        &response,
        422,
        "spec.lease.schedule: window 1 ('Mon-Fri 07:00-19:00 Europe/Lodnon'): 'Europe/Lodnon' is not an IANA time zone. Fix: write the zone as 'Europe/London'",
    );
}

#[test]
fn several_violations_are_reported_together() {
    let object = env(
        json!({"name": "alice-checkout", "namespace": "ephemeral"}),
        json!({"apps": [{"name": "checkout", "imageTagPrefix": "-bad"}, {"name": "search"}]}),
    );
    let response = mutate_json(&review_json("CREATE", "alice", &[], Some(object), None));
    let lines: Vec<&str> = response.result.message.lines().collect();
    assert_eq!(lines.len(), 2, "{}", response.result.message);
    assert!(lines[0].starts_with("spec.apps[0].imageTagPrefix:"));
    assert!(lines[1].starts_with("spec.apps[1].name: AppTemplate 'search'"));
}

#[test]
fn delete_and_connect_pass_the_mutating_webhook() {
    let response = mutate_json(&review_json("DELETE", "bob", &[], None, Some(admitted())));
    assert!(response.allowed);
    assert_eq!(response.patch, None);
}

const NON_OWNER_UPDATE: &str = "metadata.annotations[ephemeral.io/owner]: Environment ephemeral/alice-checkout is owned by 'alice'; only its owner or an admin (admin groups: platform-admins) may update it, and 'bob' is neither. Fix: ask 'alice' or an admin to update it";

#[test]
fn non_owner_update_is_forbidden() {
    let old = admitted();
    let mut object = old.clone();
    object["spec"]["apps"].as_array_mut().unwrap().pop();
    let response = validate(
        &review(&review_json(
            "UPDATE",
            "bob",
            &["system:authenticated"],
            Some(object),
            Some(old),
        )),
        &access(),
    );
    assert_denied(&response, 403, NON_OWNER_UPDATE);
}

#[test]
fn non_owner_delete_is_forbidden() {
    let response = validate(
        &review(&review_json("DELETE", "bob", &[], None, Some(admitted()))),
        &access(),
    );
    assert_denied(
        &response,
        403,
        "metadata.annotations[ephemeral.io/owner]: Environment ephemeral/alice-checkout is owned by 'alice'; only its owner or an admin (admin groups: platform-admins) may delete it, and 'bob' is neither. Fix: ask 'alice' or an admin to delete it",
    );
}

#[test]
fn owner_may_update_and_delete() {
    let old = admitted();
    let update = validate(
        &review(&review_json(
            "UPDATE",
            "alice",
            &[],
            Some(old.clone()),
            Some(old.clone()),
        )),
        &access(),
    );
    assert!(update.allowed);
    let delete = validate(
        &review(&review_json("DELETE", "alice", &[], None, Some(old))),
        &access(),
    );
    assert!(delete.allowed);
}

#[test]
fn non_admin_owner_change_is_forbidden() {
    let old = admitted();
    let mut object = old.clone();
    object["metadata"]["annotations"]["ephemeral.io/owner"] = json!("bob");
    let response = validate(
        &review(&review_json(
            "UPDATE",
            "alice",
            &[],
            Some(object),
            Some(old),
        )),
        &access(),
    );
    assert_denied(
        &response,
        403,
        "metadata.annotations[ephemeral.io/owner]: only an admin (admin groups: platform-admins) may change the owner of Environment ephemeral/alice-checkout from 'alice' to 'bob'. Fix: keep ephemeral.io/owner: alice, or ask an admin to hand the Environment over",
    );
}

#[test]
fn admins_may_update_delete_and_change_the_owner() {
    let old = admitted();
    let mut object = old.clone();
    object["metadata"]["annotations"]["ephemeral.io/owner"] = json!("bob");
    let by_group = validate(
        &review(&review_json(
            "UPDATE",
            "carol",
            &["system:authenticated", "platform-admins"],
            Some(object),
            Some(old.clone()),
        )),
        &access(),
    );
    assert!(by_group.allowed, "{}", by_group.result.message);
    let by_controller = validate(
        &review(&review_json(
            "DELETE",
            "system:serviceaccount:ephemeral-system:ephemeral-webhook",
            &["system:serviceaccounts"],
            None,
            Some(old),
        )),
        &access(),
    );
    assert!(by_controller.allowed, "{}", by_controller.result.message);
}

#[test]
fn environment_without_owner_is_left_to_admins() {
    let old = lightweight();
    let response = validate(
        &review(&review_json("DELETE", "alice", &[], None, Some(old))),
        &access(),
    );
    assert_denied(
        &response,
        403,
        "metadata.annotations[ephemeral.io/owner]: Environment ephemeral/alice-checkout has no owner, so only an admin may delete it (admin groups: platform-admins), and 'alice' is not one. Fix: ask an admin to delete it",
    );
}

#[test]
fn create_passes_the_validating_webhook() {
    let response = validate(
        &review(&review_json(
            "CREATE",
            "bob",
            &[],
            Some(lightweight()),
            None,
        )),
        &access(),
    );
    assert!(response.allowed);
}

#[test]
fn malformed_bodies_are_named() {
    let err = parse_review(b"{not json").unwrap_err();
    assert_eq!(err.uid, None);
    assert!(matches!(err.error, BadReview::NotJson(_)));
    assert!(
        err.error
            .to_string()
            .starts_with("request body is not valid JSON: ")
    );
    assert!(malformed_review(&err).is_none());

    let mut wrong_version = review_json("CREATE", "alice", &[], Some(lightweight()), None);
    wrong_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let err = parse_review(wrong_version.to_string().as_bytes()).unwrap_err();
    assert_eq!(
        err.uid.as_deref(),
        Some("705ab4f5-6393-11e8-b7cc-42010a800002")
    );
    assert_eq!(
        err.error.to_string(),
        "request body is not an admission.k8s.io/v1 AdmissionReview: apiVersion is 'admission.k8s.io/v1beta1'"
    );
    let answer = serde_json::to_value(malformed_review(&err).unwrap()).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 400);

    let err = parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
        .unwrap_err();
    assert_eq!(err.error, BadReview::MissingRequest);
    assert_eq!(err.error.to_string(), "AdmissionReview has no request");

    let err = parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{}}"#)
        .unwrap_err();
    assert_eq!(
        err.error.to_string(),
        "request body is not an admission.k8s.io/v1 AdmissionReview: kind is 'Pod'"
    );

    let err = parse_review(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.uid.as_deref(), Some("u1"));
    assert!(
        err.error
            .to_string()
            .starts_with("AdmissionReview request is malformed: missing field")
    );

    assert_eq!(
        parse_review(b"[1,2]").unwrap_err().error,
        BadReview::NotObject
    );
}

#[test]
fn responses_serialise_as_admission_reviews_with_a_base64_patch() {
    use base64::Engine as _;
    let object = lightweight();
    let response = mutate_json(&review_json(
        "CREATE",
        "alice",
        &[],
        Some(object.clone()),
        None,
    ));
    let value: Value = serde_json::from_slice(&response_body(&response)).unwrap();
    assert_eq!(value["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(value["kind"], "AdmissionReview");
    assert_eq!(
        value["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(value["response"]["allowed"], true);
    assert_eq!(value["response"]["patchType"], "JSONPatch");
    let encoded = value["response"]["patch"]
        .as_str()
        .expect("a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(Some(bytes), response.patch);

    let denied = mutate_json(&review_json("CREATE", "", &[], Some(object), None));
    let value: Value = serde_json::from_slice(&response_body(&denied)).unwrap();
    assert!(value["response"].get("patch").is_none());
    assert_eq!(value["response"]["status"]["code"], 400);
}

// The fast paths against the straightforward ways they replace.

#[test]
fn patches_of_every_length_are_encoded_as_the_reference_encodes_them() {
    // Every padding (length mod 3) and the lengths around the SIMD
    // encoder's block sizes, with every byte value.
    let review = parse_review(
        review_json("CREATE", "alice", &[], Some(lightweight()), None)
            .to_string()
            .as_bytes(),
    )
    .unwrap()
    .into_owned();
    for len in (0..=200).chain([255, 256, 257, 1023, 1024, 1025, 4095, 4096, 4097]) {
        let mut response = answer(&review.request)
            .with_patch(json_patch::Patch(Vec::new()))
            .unwrap();
        response.patch = Some((0..len).map(|i| (i * 7 + len) as u8).collect());
        assert_eq!(
            String::from_utf8(response_body(&response)).unwrap(),
            reference_body(&response),
            "patch of {len} bytes"
        );
    }
}

/// The body as it used to be made: the review serialised to a `Value`, its
/// patch (an array of numbers) read back and base64-encoded.
fn reference_body(response: &AdmissionResponse) -> String {
    use base64::Engine as _;
    let mut value = serde_json::to_value(to_review(response.clone())).unwrap();
    if let Some(patch) = value.pointer_mut("/response/patch")
        && let Ok(bytes) = serde_json::from_value::<Vec<u8>>(patch.clone())
    {
        *patch = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    serde_json::to_string(&value).unwrap()
}

/// Reviews that exercise every kind of answer.
fn sample_reviews() -> Vec<Value> {
    let mut with_annotations = lightweight();
    with_annotations["metadata"]["annotations"] =
        json!({"a/b": "c", "ephemeral.io/owner": "mallory"});
    let mut changed = admitted();
    changed["spec"]["apps"][1]["imageTagPrefix"] = json!("fix-1");
    let mut invalid = lightweight();
    invalid["spec"]["apps"][0]["imageTagPrefix"] = json!("Bad Prefix");
    let mut wrong_kind = review_json("CREATE", "alice", &[], Some(lightweight()), None);
    wrong_kind["request"]["kind"]["kind"] = json!("ConfigMap");
    let unowned = {
        let mut o = admitted();
        o["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(OWNER_ANNOTATION);
        o
    };
    vec![
        review_json("CREATE", "alice", &[], Some(lightweight()), None),
        review_json("CREATE", "alice", &[], Some(with_annotations), None),
        review_json("CREATE", "", &[], Some(lightweight()), None),
        review_json("CREATE", "alice", &[], Some(admitted()), None),
        review_json("CREATE", "alice", &[], Some(invalid), None),
        review_json(
            "CREATE",
            "alice",
            &[],
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
            None,
        ),
        review_json(
            "CREATE",
            "alice",
            &[],
            Some(env(json!({"name": "x"}), json!({"apps": "checkout"}))),
            None,
        ),
        review_json(
            "UPDATE",
            "alice",
            &[],
            Some(changed.clone()),
            Some(admitted()),
        ),
        review_json("UPDATE", "bob", &[], Some(changed), Some(admitted())),
        review_json(
            "UPDATE",
            "bob",
            &["platform-admins"],
            Some(admitted()),
            Some(unowned.clone()),
        ),
        review_json("DELETE", "bob", &[], None, Some(unowned)),
        review_json("DELETE", "alice", &[], None, Some(admitted())),
        wrong_kind,
    ]
}

#[test]
fn answers_are_serialised_as_they_always_were() {
    let mut responses = Vec::new();
    for body in sample_reviews() {
        let review = review(&body);
        responses.push(mutate(&review, &catalog(), &Config::default(), now()));
        responses.push(validate(&review, &access()));
    }
    let malformed = parse_review(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1"}}"#,
    )
    .unwrap_err();
    responses.push(malformed_review(&malformed).unwrap().response.unwrap());
    assert!(responses.iter().any(|r| r.patch.is_some()));
    assert!(responses.iter().any(|r| r.warnings.is_some()));
    assert!(responses.iter().any(|r| !r.allowed));
    // Fields this webhook never sets are still written as before.
    let mut rare = responses[0].clone();
    rare.audit_annotations = [("z", "1"), ("a", "2")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    rare.result.details = Some(kube::core::response::StatusDetails {
        name: "n".into(),
        kind: "Environment".into(),
        causes: vec![kube::core::response::StatusCause {
            reason: "FieldValueInvalid".into(),
            message: "m".into(),
            field: "spec".into(),
        }],
        group: String::new(),
        uid: String::new(),
        retry_after_seconds: 3,
    });
    rare.result.metadata = Some(Default::default());
    responses.push(rare);
    for response in &responses {
        assert_eq!(
            String::from_utf8(response_body(response)).unwrap(),
            reference_body(response)
        );
    }
}

#[test]
fn the_patch_is_the_diff_of_the_whole_object() {
    let environment: Environment = serde_json::from_value(admitted()).unwrap();
    let base = lightweight();
    let mut originals = vec![base.clone(), admitted()];
    let variants: [(&str, Option<Value>); 9] = [
        ("/metadata", None),
        ("/metadata", Some(Value::Null)),
        ("/metadata", Some(json!("text"))),
        ("/metadata/annotations", Some(Value::Null)),
        (
            "/metadata/annotations",
            Some(json!({"a": "b", "ephemeral.io/owner": "bob"})),
        ),
        ("/spec", None),
        ("/spec", Some(Value::Null)),
        ("/status", Some(json!({"phase": "Ready"}))),
        ("/spec/apps/1/extra", Some(json!({"x": [1, 2]}))),
    ];
    for (pointer, value) in variants {
        let mut o = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = o.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        match value {
            Some(v) => parent.insert(key.to_owned(), v),
            None => parent.remove(key),
        };
        originals.push(o);
    }
    originals.push(json!("not an object"));
    for original in &originals {
        let original = &Json::from(original);
        let reference = overlay_patch(original, &environment).unwrap();
        let reference = (!reference.0.is_empty()).then(|| serde_json::to_vec(&reference).unwrap());
        let written = write_expansion_patch(original, &environment).unwrap();
        assert_eq!(
            written.as_deref().map(String::from_utf8_lossy),
            reference.as_deref().map(String::from_utf8_lossy),
            "{original:?}"
        );
        assert_eq!(expansion_patch(original, &environment).unwrap(), reference);
    }
}

/// A small deterministic generator of JSON documents that differ in every
/// way a diff cares about.
struct Documents(u64);

impl Documents {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn key(&mut self) -> String {
        [
            "a", "b", "apps", "spec", "x/y", "t~0", "é", "\"q\"", "", "10",
        ][self.below(10) as usize]
            .to_owned()
    }

    fn value(&mut self, depth: u32) -> Value {
        let kinds = if depth == 0 { 5 } else { 7 };
        match self.below(kinds) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => match self.below(4) {
                0 => json!(self.below(3)),
                1 => json!(-(self.below(3) as i64) - 1),
                2 => json!(self.below(3) as f64 + 0.5),
                _ => json!(1.0),
            },
            3 | 4 => json!(["", "main", "feature/x", "a\nb", "~"][self.below(5) as usize]),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(5))
                    .map(|_| (self.key(), self.value(depth - 1)))
                    .collect(),
            ),
        }
    }

    /// `value` with a few random changes.
    fn mutate(&mut self, value: &Value, depth: u32) -> Value {
        if self.below(6) == 0 {
            return self.value(depth);
        }
        match value {
            Value::Array(items) => {
                let mut items: Vec<Value> = items
                    .iter()
                    .map(|v| self.mutate(v, depth.saturating_sub(1)))
                    .collect();
                match self.below(3) {
                    0 => items.truncate(self.below(items.len() as u64 + 1) as usize),
                    1 => items.push(self.value(depth.saturating_sub(1))),
                    _ => {}
                }
                Value::Array(items)
            }
            Value::Object(map) => {
                let mut kept = serde_json::Map::new();
                for (k, v) in map {
                    if self.below(5) != 0 {
                        let v = self.mutate(v, depth.saturating_sub(1));
                        kept.insert(k.clone(), v);
                    }
                }
                let mut map = kept;
                if self.below(2) == 0 {
                    map.insert(self.key(), self.value(depth.saturating_sub(1)));
                }
                Value::Object(map)
            }
            other => other.clone(),
        }
    }
}

#[test]
fn written_diffs_are_json_patch_diffs_byte_for_byte() {
    let mut docs = Documents(0x9e37_79b9_7f4a_7c15);
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..5000 {
        let left = docs.value(4);
        let right = docs.mutate(&left, 4);
        let mut writer = patch::PatchWriter::new();
        // The left side read from text, as the webhook reads it.
        let left_text = left.to_string();
        let left_json: Json = serde_json::from_str(&left_text).unwrap();
        writer.at("spec", |w| w.diff(&left_json, &right)).unwrap();
        let written = writer.finish();
        let mut reference = json_patch::diff(&left, &right);
        for op in &mut reference.0 {
            let path = match op {
                json_patch::PatchOperation::Add(o) => &mut o.path,
                json_patch::PatchOperation::Remove(o) => &mut o.path,
                json_patch::PatchOperation::Replace(o) => &mut o.path,
                _ => unreachable!("diff makes add, remove and replace only"),
            };
            path.push_front("spec");
        }
        let reference =
            (!reference.0.is_empty()).then(|| serde_json::to_string(&reference).unwrap());
        for kind in [
            r#""op":"add""#,
            r#""op":"remove""#,
            r#""op":"replace""#,
            "~1",
            "~0",
            r#"\""#,
        ] {
            if reference.as_ref().is_some_and(|r| r.contains(kind)) {
                *seen.entry(kind).or_default() += 1;
            }
        }
        *seen.entry("no op").or_default() += usize::from(reference.is_none());
        assert_eq!(
            written.map(|w| String::from_utf8(w).unwrap()),
            reference,
            "{left} -> {right}"
        );
    }
    // Every kind of op, escaped path and no-op case came up, many times.
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(seen.values().all(|n| *n >= 50), "{seen:?}");
}

/// What a parse gives, comparably.
fn parsed(
    result: Result<Review, Malformed>,
) -> Result<(Request<'static>, Option<Value>, Option<Value>), Malformed> {
    result.map(|r| {
        (
            r.request.into_owned(),
            r.object.as_ref().map(Json::to_value),
            r.old_object.as_ref().map(Json::to_value),
        )
    })
}

#[test]
fn reviews_are_read_as_the_checked_reader_reads_them() {
    let mut bodies: Vec<String> = sample_reviews().iter().map(Value::to_string).collect();
    let mut bad_metadata = review_json("CREATE", "alice", &[], Some(lightweight()), None);
    bad_metadata["request"]["object"]["metadata"]["name"] = json!(5);
    let mut bad_old = review_json(
        "UPDATE",
        "alice",
        &[],
        Some(lightweight()),
        Some(json!("x")),
    );
    bad_old["request"]["oldObject"] = json!([1]);
    let mut no_metadata = review_json("CREATE", "alice", &[], Some(lightweight()), None);
    no_metadata["request"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("metadata");
    let mut null_metadata = review_json("CREATE", "alice", &[], Some(lightweight()), None);
    null_metadata["request"]["object"]["metadata"] = Value::Null;
    let mut no_operation = review_json("CREATE", "alice", &[], Some(lightweight()), None);
    no_operation["request"]
        .as_object_mut()
        .unwrap()
        .remove("operation");
    for v in [
        bad_metadata,
        bad_old,
        no_metadata,
        null_metadata,
        no_operation,
    ] {
        bodies.push(v.to_string());
    }
    bodies.push(
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1"}}"#
            .into(),
    );
    bodies.push(
        r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":null}"#.into(),
    );
    bodies.push("[]".into());
    // Shapes a typed reader might take differently from a `Value`: repeated
    // keys, arrays for objects, extra and missing fields, escapes.
    let base = review_json("CREATE", "alice", &[], Some(lightweight()), None).to_string();
    let request_at = base.find(r#""request":{"#).unwrap() + r#""request":{"#.len();
    let insert = |text: &str| format!("{}{text}{}", &base[..request_at], &base[request_at..]);
    bodies.push(insert(r#""uid":"first","#));
    bodies.push(insert(r#""operation":"DELETE","#));
    bodies.push(insert(r#""unknown":{"deep":[1,2,{"x":null}]},"#));
    bodies.push(insert(r#""namespace":null,"#));
    bodies.push(insert(
        r#""options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"},"#,
    ));
    bodies.push(base.replacen(r#"{"apiVersion""#, r#"{"apiVersion":"x","apiVersion""#, 1));
    bodies.push(base.replace(
        r#""name":"alice-checkout""#,
        r#""name":"alice-\u0063heckout""#,
    ));
    bodies.push(format!(r#"{base:?}"#));
    let review = review_json("CREATE", "alice", &[], Some(lightweight()), None);
    let mut as_array = review.clone();
    as_array["request"] = json!([
        review["request"]["uid"],
        review["request"]["kind"],
        review["request"]["resource"]
    ]);
    bodies.push(as_array.to_string());
    let mut user_as_array = review.clone();
    user_as_array["request"]["userInfo"] = json!(["alice"]);
    bodies.push(user_as_array.to_string());
    let mut uid_number = review.clone();
    uid_number["request"]["uid"] = json!(7);
    bodies.push(uid_number.to_string());
    let mut no_user = review.clone();
    no_user["request"]
        .as_object_mut()
        .unwrap()
        .remove("userInfo");
    bodies.push(no_user.to_string());
    let mut no_name = review.clone();
    no_name["request"].as_object_mut().unwrap().remove("name");
    bodies.push(no_name.to_string());
    let mut object_array = review.clone();
    object_array["request"]["object"] = json!([1]);
    bodies.push(object_array.to_string());
    // The fields the webhook only checks, in every shape kube takes or refuses.
    for (field, value) in [
        ("resource", json!({"group": "", "version": "v1"})),
        (
            "resource",
            json!({"group": "", "version": "v1", "resource": 5}),
        ),
        (
            "resource",
            json!(["ephemeral.io", "v1alpha1", "environments"]),
        ),
        (
            "resource",
            json!({"group": "g", "version": "v", "resource": "r", "api_version": "g/v"}),
        ),
        (
            "resource",
            json!({"group": "g", "version": "v", "resource": "r", "api_version": null}),
        ),
        ("requestKind", json!("Environment")),
        ("requestKind", json!(null)),
        ("requestKind", json!({"group": "g", "version": "v"})),
        (
            "requestResource",
            json!({"group": "g", "version": "v", "resource": "r"}),
        ),
        ("requestResource", json!(7)),
        ("requestSubResource", json!("status")),
        ("requestSubResource", json!(1)),
        ("subResource", json!("status")),
        ("subResource", json!(["status"])),
        ("options", json!("anything")),
        ("options", json!([1, {"a": null}])),
        ("dryRun", json!(true)),
        ("dryRun", json!("yes")),
        ("namespace", json!(3)),
        (
            "kind",
            json!({"group": "ephemeral.io", "version": "v1alpha1"}),
        ),
        ("kind", json!(["ephemeral.io", "v1alpha1", "Environment"])),
    ] {
        let mut v = review.clone();
        v["request"][field] = value;
        bodies.push(v.to_string());
    }
    for user in [
        json!({"username": null, "groups": null, "uid": null, "extra": null}),
        json!({"username": "a\\lice", "groups": ["de\"vs", "system:authenticated"]}),
        json!({"username": "alice", "uid": 5}),
        json!({"username": "alice", "groups": [5]}),
        json!({"username": "alice", "groups": "developers"}),
        json!({"username": "alice", "extra": {"scopes": ["a", "b"]}}),
        json!({"username": "alice", "extra": {"scopes": "a"}}),
        json!({"username": "alice", "extra": ["a"]}),
        json!({"username": "alice", "unknown": {"x": 1}}),
        json!({}),
    ] {
        let mut v = review.clone();
        v["request"]["userInfo"] = user;
        bodies.push(v.to_string());
    }
    bodies.push(format!(
        r#"[{}, {}, {}]"#,
        json!(REVIEW_API_VERSION),
        json!(REVIEW_KIND),
        review["request"]
    ));
    for body in &bodies {
        let fast = parse_well_formed(body.as_bytes());
        let checked = parsed(parse_checked(body.as_bytes()));
        if let Some(fast) = fast {
            assert_eq!(Ok(parsed(Ok(fast)).unwrap()), checked, "{body}");
        }
        assert_eq!(parsed(parse_review(body.as_bytes())), checked, "{body}");
    }
    // The common case takes the fast path; what it refuses is named by the checked reader.
    assert!(parse_well_formed(bodies[0].as_bytes()).is_some());
    for extra in [
        r#""unknown":{"deep":[1,2,{"x":null}]},"#,
        r#""options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"},"#,
    ] {
        assert!(
            parse_well_formed(insert(extra).as_bytes()).is_some(),
            "{extra}"
        );
    }
    // A repeated key is left to the checked reader (the last one wins there).
    assert!(parse_well_formed(insert(r#""uid":"first","#).as_bytes()).is_none());
    let refused = parse_review(bodies[sample_reviews().len()].as_bytes()).unwrap_err();
    assert!(
        refused
            .error
            .to_string()
            .starts_with("AdmissionReview request is malformed: invalid type: integer `5`"),
        "{refused:?}"
    );
}

#[test]
fn each_refusal_has_one_code_reason_and_outcome() {
    let table: Vec<(u16, &str, &str)> = [
        Refusal::Malformed,
        Refusal::Invalid,
        Refusal::Forbidden,
        Refusal::Internal,
    ]
    .iter()
    .map(|r| (r.code(), r.reason(), r.outcome().as_str()))
    .collect();
    assert_eq!(
        table,
        [
            (400, "BadRequest", "invalid"),
            (422, "Invalid", "denied"),
            (403, "Forbidden", "denied"),
            (500, "InternalError", "error"),
        ]
    );
}

#[test]
fn validate_outcomes_match_the_answers() {
    let bodies = sample_reviews();
    for body in &bodies {
        let review = review(body);
        let decision = super::validate(&review, &access());
        assert_eq!(
            decision.response.allowed,
            decision.outcome == Outcome::Allowed,
            "{body}"
        );
        if decision.response.result.code == 403 {
            assert_eq!(decision.outcome, Outcome::Denied, "{body}");
        }
    }
    assert!(
        bodies
            .iter()
            .any(|b| super::validate(&review(b), &access()).response.result.code == 403),
        "the samples include a refusal"
    );
}
