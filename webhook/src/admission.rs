//! Admission decisions: an `admission.k8s.io/v1` AdmissionReview in, an
//! [`AdmissionResponse`](kube::core::admission::AdmissionResponse) out. Pure: no I/O and no clock (time is an argument),
//! so every decision is unit-testable.
//!
//! - [`parse_review`] reads a request body, or says precisely why it cannot.
//! - [`mutate`] expands an Environment (CREATE, UPDATE) and answers with the
//!   JSONPatch that takes the incoming object to the expanded one.
//! - [`validate`] enforces ownership on UPDATE and DELETE.
//!
//! Submodules, each with one job: `review` reads the request, `json` holds
//! the objects it carries (a [`Json`] tree borrowing from the body),
//! `response` writes the answer (the [`Decision`], its [`Refusal`], the
//! body), `patch` writes the JSONPatch bytes, `validate` holds [`Access`] and
//! ownership. They import from this module and from `json`/`response`/
//! `review`, never in a cycle.

use jiff::Timestamp;
use kube::core::admission::Operation;
use serde_json::Value;

use ephemeral_core::api::{GROUP, VERSION};
use ephemeral_core::expand::{OWNER_ANNOTATION, UPTIME_ANNOTATION};
use ephemeral_core::{Catalog, Config, Environment};

mod json;
mod response;
mod review;
mod validate;

pub use json::Json;
pub use response::*;
pub use review::*;
pub use validate::*;

/// `apiVersion` of the AdmissionReviews this webhook speaks.
pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";
/// `kind` of an AdmissionReview.
pub const REVIEW_KIND: &str = "AdmissionReview";
/// The only kind this webhook admits.
pub const ENVIRONMENT_KIND: &str = "Environment";

/// HTTP-style code of a denial for an invalid object.
pub const CODE_INVALID: u16 = 422;
/// HTTP-style code of a denial for a request that is not allowed.
pub const CODE_FORBIDDEN: u16 = 403;
/// HTTP-style code of a denial for a malformed request.
pub const CODE_BAD_REQUEST: u16 = 400;
/// HTTP-style code of an internal failure.
pub const CODE_INTERNAL: u16 = 500;

fn gvk_text(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        format!("{version} {kind}")
    } else {
        format!("{group}/{version} {kind}")
    }
}

/// Checks that the request is about an `ephemeral.io/v1alpha1` Environment.
fn check_kind(review: &Review) -> Result<(), String> {
    let k = &review.request.kind;
    if k.group != GROUP || k.version != VERSION || k.kind != ENVIRONMENT_KIND {
        return Err(format!(
            "request.kind: this webhook admits only {GROUP}/{VERSION} {ENVIRONMENT_KIND}, not {}. Fix: register the webhook for environments.{GROUP} only",
            gvk_text(&k.group, &k.version, &k.kind)
        ));
    }
    let is_environment_api_version = |v: &str| {
        v.strip_prefix(GROUP)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|version| version == VERSION)
    };
    for (field, object) in [
        ("object", &review.object),
        ("oldObject", &review.old_object),
    ] {
        let Some(object) = object else { continue };
        let api_version = object.get("apiVersion").and_then(Json::as_str);
        let kind = object.get("kind").and_then(Json::as_str);
        if !api_version.is_some_and(is_environment_api_version) || kind != Some(ENVIRONMENT_KIND) {
            let expected_api_version = format!("{GROUP}/{VERSION}");
            return Err(format!(
                "request.{field}: apiVersion {} kind {} is not an {expected_api_version} {ENVIRONMENT_KIND}. Fix: send Environments only",
                describe(object.get("apiVersion").map(Json::to_value).as_ref()),
                describe(object.get("kind").map(Json::to_value).as_ref()),
            ));
        }
    }
    Ok(())
}

fn annotation<'a>(object: Option<&'a Json<'_>>, key: &str) -> Option<&'a str> {
    object?
        .get("metadata")?
        .get("annotations")?
        .get(key)?
        .as_str()
}

fn username<'a>(request: &'a Request<'_>) -> Option<&'a str> {
    request
        .user_info
        .username
        .as_deref()
        .filter(|u| !u.is_empty())
}

fn object_name(review: &Review) -> String {
    let r = &review.request;
    let name = review
        .object
        .as_ref()
        .or(review.old_object.as_ref())
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get("name").or_else(|| m.get("generateName")))
        .and_then(Json::as_str)
        .unwrap_or(&r.name);
    match &r.namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    }
}

/// Whether an UPDATE leaves everything expansion writes as it was: the spec
/// and the owner and uptime annotations. Such updates (finalizers, labels,
/// other annotations) are admitted without re-expanding, so that a catalog
/// change never blocks them.
fn expansion_untouched(object: &Json<'_>, old: &Json<'_>) -> bool {
    object.get("spec") == old.get("spec")
        && [OWNER_ANNOTATION, UPTIME_ANNOTATION]
            .iter()
            .all(|k| annotation(Some(object), k) == annotation(Some(old), k))
}

/// The mutating decision for an Environment: on CREATE and UPDATE, the
/// JSONPatch that makes the stored object fully defaulted and explicit, or a
/// denial naming field, rule and fix.
///
/// The owner is the requester on CREATE (whatever the client sent); on UPDATE
/// it is the owner annotation of the incoming object, else of the old object,
/// else the requester. Objects without a namespace use `request.namespace`.
/// Admitting an already admitted object gives no patch. Dry-run requests are
/// answered the same way.
pub fn mutate(review: &Review, catalog: &Catalog, config: &Config, now: Timestamp) -> Decision {
    let request = &review.request;
    if let Err(message) = check_kind(review) {
        return deny(request, Refusal::Malformed, message);
    }
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return allow(request);
    }
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return allow(request);
    }
    let Some(original) = &review.object else {
        return deny(
            request,
            Refusal::Malformed,
            "request.object: missing on CREATE or UPDATE. Fix: send the object being admitted"
                .to_owned(),
        );
    };
    if request.operation == Operation::Update {
        let deleting = original
            .get("metadata")
            .and_then(|m| m.get("deletionTimestamp"))
            .is_some_and(|t| !t.is_null());
        if deleting {
            return allow(request);
        }
        if let Some(old) = &review.old_object
            && expansion_untouched(original, old)
        {
            return allow(request);
        }
    }
    let mut environment = match read_environment(original) {
        Ok(e) => e,
        Err(message) => return deny(request, Refusal::Invalid, message),
    };
    if environment
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        environment.metadata.namespace = request
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
    }
    let owner = match request.operation {
        Operation::Create => username(request),
        _ => annotation(Some(original), OWNER_ANNOTATION)
            .or_else(|| annotation(review.old_object.as_ref(), OWNER_ANNOTATION))
            .or_else(|| username(request)),
    };
    let Some(owner) = owner.filter(|o| !o.is_empty()) else {
        return deny(
            request,
            Refusal::Malformed,
            "request.userInfo.username: empty, so the Environment cannot get an owner. Fix: send authenticated requests".to_owned(),
        );
    };

    // The Environment only: admission needs none of the Flux objects.
    let admitted = match ephemeral_core::admit_owned(environment, catalog, config, now, owner) {
        Ok(x) => x,
        Err(denied) => return deny(request, Refusal::Invalid, denied.to_string()),
    };

    let patch = match expansion_patch(original, &admitted.environment) {
        Ok(p) => p,
        Err(e) => {
            return deny(
                request,
                Refusal::Internal,
                format!("cannot serialise the expanded Environment: {e}"),
            );
        }
    };
    let mut decision = allow(request);
    if let Some(patch) = patch {
        // kube sets `patchType` only through `with_patch`.
        decision.response = match decision.response.with_patch(json_patch::Patch(Vec::new())) {
            Ok(r) => r,
            Err(e) => return deny(request, Refusal::Internal, e.to_string()),
        };
        decision.response.patch = Some(patch);
    }
    if !admitted.warnings.is_empty() {
        decision.response.warnings = Some(admitted.warnings);
    }
    decision
}

/// The incoming object as an Environment, or the denial message naming the
/// field that does not fit.
fn read_environment(object: &Json<'_>) -> Result<Environment, String> {
    use serde::Deserialize as _;
    // Paths are tracked only to explain a failure.
    Environment::deserialize(object).or_else(|_| {
        serde_path_to_error::deserialize(object).map_err(|e| {
            format!(
                "request.object.{}: {}. Fix: follow the Environment schema (kubectl explain environments.spec)",
                e.path(),
                e.inner()
            )
        })
    })
}

/// The JSONPatch (its JSON) from the incoming object to the same object with
/// what expansion owns (the spec and the annotations) replaced by the expanded
/// Environment's, or `None` when they are equal. Everything else stays
/// byte-for-byte as received, so the patch touches nothing else and an
/// admitted object gets no patch.
///
/// Written directly (see [`patch`]), it is exactly [`overlay_patch`]
/// serialised: the diff of an object walks its keys in order, `metadata`
/// comes before `spec`, and nothing else differs.
fn expansion_patch(
    original: &Json<'_>,
    expanded: &Environment,
) -> Result<Option<Vec<u8>>, serde_json::Error> {
    match write_expansion_patch(original, expanded) {
        Ok(patch) => Ok(patch),
        Err(patch::Unsupported) => {
            let patch = overlay_patch(original, expanded)?;
            Ok((!patch.0.is_empty())
                .then(|| serde_json::to_vec(&patch))
                .transpose()?)
        }
    }
}

fn write_expansion_patch(
    original: &Json<'_>,
    expanded: &Environment,
) -> Result<Option<Vec<u8>>, patch::Unsupported> {
    #[derive(serde::Serialize)]
    struct Metadata<'a> {
        annotations: &'a std::collections::BTreeMap<String, String>,
    }
    if !matches!(original, Json::Object(_)) {
        return Ok(None);
    }
    let no_annotations = Default::default();
    let annotations = expanded
        .metadata
        .annotations
        .as_ref()
        .unwrap_or(&no_annotations);
    let mut w = patch::PatchWriter::new();
    w.at("metadata", |w| match original.get("metadata") {
        Some(metadata @ Json::Object(_)) => {
            w.at("annotations", |w| match metadata.get("annotations") {
                Some(old) => w.diff(old, annotations),
                None => w.add(annotations),
            })
        }
        None => w.add(&Metadata { annotations }),
        Some(_) => w.replace(&Metadata { annotations }),
    })?;
    w.at("spec", |w| match original.get("spec") {
        Some(old) => w.diff(old, &expanded.spec),
        None => w.add(&expanded.spec),
    })?;
    Ok(w.finish())
}

/// The reference for [`expansion_patch`]: `json_patch::diff` of the incoming
/// object and its copy with spec and annotations replaced.
fn overlay_patch(
    original: &Json<'_>,
    expanded: &Environment,
) -> Result<json_patch::Patch, serde_json::Error> {
    let original = original.to_value();
    let mut result = original.clone();
    let spec = serde_json::to_value(&expanded.spec)?;
    let annotations =
        serde_json::to_value(expanded.metadata.annotations.clone().unwrap_or_default())?;
    if let Value::Object(top) = &mut result {
        top.insert("spec".to_owned(), spec);
        let metadata = top
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if !metadata.is_object() {
            *metadata = Value::Object(Default::default());
        }
        if let Value::Object(metadata) = metadata {
            metadata.insert("annotations".to_owned(), annotations);
        }
    }
    Ok(json_patch::diff(&original, &result))
}

mod patch;

#[cfg(test)]
mod tests;
