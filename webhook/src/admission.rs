// Over 400 lines of non-test code: parser, both decisions and the patch share private helpers; split once the admission-performance rewrite has landed.
//! Admission decisions: an `admission.k8s.io/v1` AdmissionReview in, an
//! [`AdmissionResponse`] out. Pure: no I/O and no clock (time is an argument),
//! so every decision is unit-testable.
//!
//! - [`parse_review`] reads a request body, or says precisely why it cannot.
//! - [`mutate`] expands an Environment (CREATE, UPDATE) and answers with the
//!   JSONPatch that takes the incoming object to the expanded one.
//! - [`validate`] enforces ownership on UPDATE and DELETE.

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Status, TypeMeta, response::StatusSummary};
use serde_json::Value;

use ephemeral_core::api::{GROUP, VERSION};
use ephemeral_core::expand::{OWNER_ANNOTATION, UPTIME_ANNOTATION};
use ephemeral_core::{Catalog, Config, Environment};

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

/// Who may update or delete Environments that are not theirs.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Members of any of these groups are admins.
    pub admin_groups: Vec<String>,
    /// The controller's own service account, always an admin.
    pub controller_service_account: String,
}

impl Access {
    /// Whether `user` is an admin: the controller's service account, or a
    /// member of one of the admin groups.
    pub fn is_admin(&self, user: &UserInfo) -> bool {
        if user.username.as_deref() == Some(self.controller_service_account.as_str())
            && !self.controller_service_account.is_empty()
        {
            return true;
        }
        user.groups
            .iter()
            .flatten()
            .any(|g| self.admin_groups.iter().any(|a| a == g))
    }

    fn describe_admins(&self) -> String {
        if self.admin_groups.is_empty() {
            "no admin groups are configured".to_owned()
        } else {
            format!("admin groups: {}", self.admin_groups.join(", "))
        }
    }
}

/// An AdmissionReview that could be read.
#[derive(Clone, Debug)]
pub struct Review {
    /// The request, typed.
    pub request: AdmissionRequest<DynamicObject>,
    /// `request.object` exactly as received (the base of the JSONPatch).
    pub object: Option<Value>,
    /// `request.oldObject` exactly as received.
    pub old_object: Option<Value>,
}

/// Why a request body is not a usable AdmissionReview.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadReview {
    /// The body is not JSON.
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("request body is not an AdmissionReview: expected a JSON object")]
    NotObject,
    /// Wrong `apiVersion`.
    #[error("request body is not an admission.k8s.io/v1 AdmissionReview: apiVersion is {0}")]
    ApiVersion(String),
    /// Wrong `kind`.
    #[error("request body is not an admission.k8s.io/v1 AdmissionReview: kind is {0}")]
    Kind(String),
    /// No `request`.
    #[error("AdmissionReview has no request")]
    MissingRequest,
    /// `request` does not have the fields of an AdmissionRequest.
    #[error("AdmissionReview request is malformed: {0}")]
    Request(String),
}

/// A body that could not be read as an AdmissionReview, with the request uid
/// if one could be found (then the answer is an AdmissionReview too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// `request.uid`, when readable.
    pub uid: Option<String>,
    /// What is wrong.
    pub error: BadReview,
}

fn describe(v: Option<&Value>) -> String {
    match v {
        None => "missing".to_owned(),
        Some(Value::String(s)) => format!("'{s}'"),
        Some(other) => other.to_string(),
    }
}

/// Reads a request body as an `admission.k8s.io/v1` AdmissionReview.
///
/// `request.object` and `request.oldObject` are kept as received in
/// [`Review::object`] and [`Review::old_object`]; the typed
/// [`Review::request`] leaves them out (`None`), but a body is accepted only
/// if kube could read them as `DynamicObject`s.
pub fn parse_review(body: &[u8]) -> Result<Review, Malformed> {
    match parse_well_formed(body) {
        Some(review) => Ok(review),
        None => parse_checked(body),
    }
}

/// The common case in one pass over the body, typed as it is read: `None`
/// whenever anything is off, and [`parse_checked`] then decides (with the
/// same outcome for every body this accepts) and names the problem.
fn parse_well_formed(body: &[u8]) -> Option<Review> {
    let MapOnly(top) = serde_json::from_slice::<MapOnly<wire::Review>>(body).ok()?;
    if top.api_version != REVIEW_API_VERSION || top.kind != REVIEW_KIND {
        return None;
    }
    let MapOnly(r) = top.request?;
    let (object, old_object) = (dynamic_object(r.object)?, dynamic_object(r.old_object)?);
    let request = AdmissionRequest {
        types: review_types(),
        uid: r.uid,
        kind: r.kind,
        resource: r.resource,
        sub_resource: r.sub_resource,
        request_kind: r.request_kind,
        request_resource: r.request_resource,
        request_sub_resource: r.request_sub_resource,
        name: r.name,
        namespace: r.namespace,
        operation: r.operation,
        user_info: r.user_info,
        object: None,
        old_object: None,
        dry_run: r.dry_run,
        options: r.options,
    };
    Some(Review {
        request,
        object,
        old_object,
    })
}

/// The wire form of an AdmissionReview, field for field what kube's
/// `AdmissionRequest` reads (same names, types, defaults and required
/// fields), with the objects kept as JSON.
mod wire {
    use kube::core::admission::Operation;
    use kube::core::{GroupVersionKind, GroupVersionResource};
    use serde_json::Value;

    use super::MapOnly;

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Review {
        pub api_version: String,
        pub kind: String,
        pub request: Option<MapOnly<Request>>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Request {
        pub uid: String,
        pub kind: GroupVersionKind,
        pub resource: GroupVersionResource,
        #[serde(default)]
        pub sub_resource: Option<String>,
        #[serde(default)]
        pub request_kind: Option<GroupVersionKind>,
        #[serde(default)]
        pub request_resource: Option<GroupVersionResource>,
        #[serde(default)]
        pub request_sub_resource: Option<String>,
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub namespace: Option<String>,
        pub operation: Operation,
        pub user_info: k8s_openapi::api::authentication::v1::UserInfo,
        pub object: Option<Value>,
        pub old_object: Option<Value>,
        #[serde(default)]
        pub dry_run: bool,
        #[serde(default)]
        pub options: Option<k8s_openapi::apimachinery::pkg::runtime::RawExtension>,
    }
}

/// A `T` read only from a JSON object (derived structs also take arrays).
struct MapOnly<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Visitor(std::marker::PhantomData))
            .map(MapOnly)
    }
}

/// `object` if kube would read it as a `DynamicObject` (a JSON object whose
/// `metadata`, if any, is an `ObjectMeta`; null is no object), else `None`.
fn dynamic_object(object: Option<Value>) -> Option<Option<Value>> {
    use serde::Deserialize as _;
    match object {
        None | Some(Value::Null) => Some(None),
        Some(object) => {
            let Value::Object(fields) = &object else {
                return None;
            };
            let metadata_ok = fields.get("metadata").is_none_or(|m| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta::deserialize(m).is_ok()
            });
            metadata_ok.then_some(Some(object))
        }
    }
}

fn review_types() -> TypeMeta {
    TypeMeta {
        api_version: REVIEW_API_VERSION.to_owned(),
        kind: REVIEW_KIND.to_owned(),
    }
}

/// Reads a body step by step, so that a malformed one is named precisely:
/// the reference for [`parse_well_formed`].
fn parse_checked(body: &[u8]) -> Result<Review, Malformed> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Malformed {
        uid: None,
        error: BadReview::NotJson(e.to_string()),
    })?;
    let Value::Object(mut top) = value else {
        return Err(Malformed {
            uid: None,
            error: BadReview::NotObject,
        });
    };
    let uid = top
        .get("request")
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    let fail = |error| Malformed {
        uid: uid.clone(),
        error,
    };
    if top.get("apiVersion").and_then(Value::as_str) != Some(REVIEW_API_VERSION) {
        return Err(fail(BadReview::ApiVersion(describe(top.get("apiVersion")))));
    }
    if top.get("kind").and_then(Value::as_str) != Some(REVIEW_KIND) {
        return Err(fail(BadReview::Kind(describe(top.get("kind")))));
    }
    let request = match top.remove("request") {
        None | Some(Value::Null) => return Err(fail(BadReview::MissingRequest)),
        Some(r) => r,
    };
    let object = request.get("object").filter(|o| !o.is_null()).cloned();
    let old_object = request.get("oldObject").filter(|o| !o.is_null()).cloned();
    let mut request: AdmissionRequest<DynamicObject> =
        serde_json::from_value(request).map_err(|e| fail(BadReview::Request(e.to_string())))?;
    request.types = review_types();
    request.object = None;
    request.old_object = None;
    Ok(Review {
        request,
        object,
        old_object,
    })
}

/// The AdmissionReview that answers a malformed body whose uid could be read.
pub fn malformed_review(m: &Malformed) -> Option<AdmissionReview<DynamicObject>> {
    let uid = m.uid.clone()?;
    let mut response = AdmissionResponse::invalid(m.error.to_string());
    response.uid = uid;
    response.result.code = Refusal::Malformed.code();
    response.result.reason = Refusal::Malformed.reason().to_owned();
    Some(to_review(response))
}

/// The body answering with `response`: an `admission.k8s.io/v1`
/// AdmissionReview as the API server expects it, with `response.patch`
/// base64-encoded (the JSON form of a Go `[]byte`) instead of kube's array of
/// numbers, and `response.patchType` set when there is a patch. Keys come in
/// sorted order, as they always have.
pub fn response_body(response: &AdmissionResponse) -> Vec<u8> {
    use base64::Engine as _;
    let r = response;
    let patch_len = r.patch.as_ref().map_or(0, |p| p.len().div_ceil(3) * 4);
    let mut out = Vec::with_capacity(256 + r.result.message.len() + patch_len);
    out.extend_from_slice(br#"{"apiVersion":""#);
    out.extend_from_slice(REVIEW_API_VERSION.as_bytes());
    out.extend_from_slice(br#"","kind":""#);
    out.extend_from_slice(REVIEW_KIND.as_bytes());
    out.extend_from_slice(br#"","response":{"allowed":"#);
    out.extend_from_slice(if r.allowed { b"true" } else { b"false" });
    if !r.audit_annotations.is_empty() {
        let sorted: std::collections::BTreeMap<_, _> = r.audit_annotations.iter().collect();
        out.extend_from_slice(br#","auditAnnotations":"#);
        write_json(&mut out, &sorted);
    }
    if let Some(patch) = &r.patch {
        // Base64 needs no escaping in a JSON string.
        out.extend_from_slice(br#","patch":""#);
        let start = out.len();
        out.resize(start + patch.len().div_ceil(3) * 4, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(patch, &mut out[start..])
            .expect("the buffer fits the encoding");
        out.truncate(start + written);
        out.extend_from_slice(br#"","patchType":"JSONPatch""#);
    }
    out.extend_from_slice(br#","status":"#);
    write_json(&mut out, &body::Status(&r.result));
    out.extend_from_slice(br#","uid":"#);
    patch::write_str(&mut out, &r.uid);
    if let Some(warnings) = &r.warnings {
        out.extend_from_slice(br#","warnings":["#);
        for (i, warning) in warnings.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            patch::write_str(&mut out, warning);
        }
        out.push(b']');
    }
    out.extend_from_slice(b"}}");
    out
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value)
        .expect("strings, maps of strings and Statuses always serialise");
}

/// A `Status` as a `serde_json::Value` writes it: keys sorted.
mod body {
    use serde::ser::{Serialize, SerializeMap, Serializer};

    pub(super) struct Status<'a>(pub &'a kube::core::Status);

    impl Serialize for Status<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let status = self.0;
            let mut map = s.serialize_map(None)?;
            if status.code != 0 {
                map.serialize_entry("code", &status.code)?;
            }
            if let Some(details) = &status.details {
                map.serialize_entry("details", &super::sorted(details))?;
            }
            if !status.message.is_empty() {
                map.serialize_entry("message", &status.message)?;
            }
            if let Some(metadata) = &status.metadata {
                map.serialize_entry("metadata", &super::sorted(metadata))?;
            }
            if !status.reason.is_empty() {
                map.serialize_entry("reason", &status.reason)?;
            }
            if let Some(summary) = &status.status {
                map.serialize_entry("status", summary)?;
            }
            map.end()
        }
    }
}

/// `value` with the keys of every map in sorted order, as a `serde_json::Value`
/// holds them (for the rare parts of a Status this webhook never sets).
fn sorted<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Wraps a response in an `admission.k8s.io/v1` AdmissionReview.
pub fn to_review(response: AdmissionResponse) -> AdmissionReview<DynamicObject> {
    AdmissionReview {
        types: review_types(),
        request: None,
        response: Some(response),
    }
}

/// How a request ended, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Admitted (possibly with a patch).
    Allowed,
    /// Refused: invalid object or not permitted.
    Denied,
    /// The request itself was malformed (HTTP 4xx or a denial with code 400).
    Invalid,
    /// The webhook failed.
    Error,
}

impl Outcome {
    /// Label value: `allowed`, `denied`, `invalid` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
            Outcome::Error => "error",
        }
    }
}

/// Why a request is refused. One place decides the answer's code and reason
/// and the metric outcome of each kind of refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The request itself is malformed: 400 `BadRequest`, outcome `invalid`.
    Malformed,
    /// The Environment breaks a rule: 422 `Invalid`, outcome `denied`.
    Invalid,
    /// The requester may not do this: 403 `Forbidden`, outcome `denied`.
    Forbidden,
    /// The webhook failed: 500 `InternalError`, outcome `error`.
    Internal,
}

impl Refusal {
    /// The `status.code` of the answer.
    pub fn code(self) -> u16 {
        match self {
            Refusal::Malformed => CODE_BAD_REQUEST,
            Refusal::Invalid => CODE_INVALID,
            Refusal::Forbidden => CODE_FORBIDDEN,
            Refusal::Internal => CODE_INTERNAL,
        }
    }

    /// The `status.reason` of the answer.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed => "BadRequest",
            Refusal::Invalid => "Invalid",
            Refusal::Forbidden => "Forbidden",
            Refusal::Internal => "InternalError",
        }
    }

    /// How the request ended, for metrics and logs.
    pub fn outcome(self) -> Outcome {
        match self {
            Refusal::Malformed => Outcome::Invalid,
            Refusal::Invalid | Refusal::Forbidden => Outcome::Denied,
            Refusal::Internal => Outcome::Error,
        }
    }
}

/// An admission decision: the answer to send and how the request ended.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The answer (with the patch, if any).
    pub response: AdmissionResponse,
    /// How the request ended.
    pub outcome: Outcome,
}

fn deny(request: &AdmissionRequest<DynamicObject>, why: Refusal, message: String) -> Decision {
    let mut response = AdmissionResponse::from(request).deny(message);
    response.result.status = Some(StatusSummary::Failure);
    response.result.code = why.code();
    response.result.reason = why.reason().to_owned();
    Decision {
        response,
        outcome: why.outcome(),
    }
}

fn allow(request: &AdmissionRequest<DynamicObject>) -> Decision {
    let mut response = AdmissionResponse::from(request);
    response.result = Status::success();
    Decision {
        response,
        outcome: Outcome::Allowed,
    }
}

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
        let api_version = object.get("apiVersion").and_then(Value::as_str);
        let kind = object.get("kind").and_then(Value::as_str);
        if !api_version.is_some_and(is_environment_api_version) || kind != Some(ENVIRONMENT_KIND) {
            let expected_api_version = format!("{GROUP}/{VERSION}");
            return Err(format!(
                "request.{field}: apiVersion {} kind {} is not an {expected_api_version} {ENVIRONMENT_KIND}. Fix: send Environments only",
                describe(object.get("apiVersion")),
                describe(object.get("kind")),
            ));
        }
    }
    Ok(())
}

fn annotation<'a>(object: Option<&'a Value>, key: &str) -> Option<&'a str> {
    object?
        .get("metadata")?
        .get("annotations")?
        .get(key)?
        .as_str()
}

fn username(request: &AdmissionRequest<DynamicObject>) -> Option<&str> {
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
        .and_then(Value::as_str)
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
fn expansion_untouched(object: &Value, old: &Value) -> bool {
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
        environment.metadata.namespace = request.namespace.clone().filter(|n| !n.is_empty());
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
    let admitted = match ephemeral_core::admit(&environment, catalog, config, now, owner) {
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
fn read_environment(object: &Value) -> Result<Environment, String> {
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
    original: &Value,
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
    original: &Value,
    expanded: &Environment,
) -> Result<Option<Vec<u8>>, patch::Unsupported> {
    #[derive(serde::Serialize)]
    struct Metadata<'a> {
        annotations: &'a std::collections::BTreeMap<String, String>,
    }
    let Value::Object(top) = original else {
        return Ok(None);
    };
    let no_annotations = Default::default();
    let annotations = expanded
        .metadata
        .annotations
        .as_ref()
        .unwrap_or(&no_annotations);
    let mut w = patch::PatchWriter::new();
    w.at("metadata", |w| match top.get("metadata") {
        Some(Value::Object(metadata)) => {
            w.at("annotations", |w| match metadata.get("annotations") {
                Some(old) => w.diff(old, annotations),
                None => w.add(annotations),
            })
        }
        None => w.add(&Metadata { annotations }),
        Some(_) => w.replace(&Metadata { annotations }),
    })?;
    w.at("spec", |w| match top.get("spec") {
        Some(old) => w.diff(old, &expanded.spec),
        None => w.add(&expanded.spec),
    })?;
    Ok(w.finish())
}

/// The reference for [`expansion_patch`]: `json_patch::diff` of the incoming
/// object and its copy with spec and annotations replaced.
fn overlay_patch(
    original: &Value,
    expanded: &Environment,
) -> Result<json_patch::Patch, serde_json::Error> {
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
    Ok(json_patch::diff(original, &result))
}

/// The validating decision for an Environment: UPDATE and DELETE only by its
/// owner (annotation `ephemeral.io/owner` of the old object) or an admin, and
/// only admins may change the owner. CREATE is allowed.
pub fn validate(review: &Review, access: &Access) -> Decision {
    let request = &review.request;
    if let Err(message) = check_kind(review) {
        return deny(request, Refusal::Malformed, message);
    }
    let verb = match request.operation {
        Operation::Update => "update",
        Operation::Delete => "delete",
        _ => return allow(request),
    };
    let Some(old) = &review.old_object else {
        return deny(
            request,
            Refusal::Malformed,
            format!(
                "request.oldObject: missing on {}. Fix: send the stored object as oldObject",
                verb.to_uppercase()
            ),
        );
    };
    if access.is_admin(&request.user_info) {
        return allow(request);
    }
    let user = username(request).unwrap_or("<anonymous>");
    let name = object_name(review);
    let field = format!("metadata.annotations[{OWNER_ANNOTATION}]");
    let owner = annotation(Some(old), OWNER_ANNOTATION).filter(|o| !o.is_empty());
    let Some(owner) = owner else {
        return deny(
            request,
            Refusal::Forbidden,
            format!(
                "{field}: Environment {name} has no owner, so only an admin may {verb} it ({}), and '{user}' is not one. Fix: ask an admin to {verb} it",
                access.describe_admins()
            ),
        );
    };
    if owner != user {
        return deny(
            request,
            Refusal::Forbidden,
            format!(
                "{field}: Environment {name} is owned by '{owner}'; only its owner or an admin ({}) may {verb} it, and '{user}' is neither. Fix: ask '{owner}' or an admin to {verb} it",
                access.describe_admins()
            ),
        );
    }
    if request.operation == Operation::Update {
        let new_owner = annotation(review.object.as_ref(), OWNER_ANNOTATION);
        if new_owner != Some(owner) {
            return deny(
                request,
                Refusal::Forbidden,
                format!(
                    "{field}: only an admin ({}) may change the owner of Environment {name} from '{owner}' to {}. Fix: keep {OWNER_ANNOTATION}: {owner}, or ask an admin to hand the Environment over",
                    access.describe_admins(),
                    new_owner.map_or_else(|| "nobody".to_owned(), |o| format!("'{o}'")),
                ),
            );
        }
    }
    allow(request)
}

mod patch;

#[cfg(test)]
mod tests;
