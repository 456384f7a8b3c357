//! Writing the answer: the [`Decision`] a review gets (response, outcome,
//! the typed [`Refusal`]) and the response body, written in one pass.

use kube::core::admission::{AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Status, response::StatusSummary};
use serde_json::Value;

use super::review::{Malformed, Request, review_types};
use super::{
    CODE_BAD_REQUEST, CODE_FORBIDDEN, CODE_INTERNAL, CODE_INVALID, REVIEW_API_VERSION, REVIEW_KIND,
    patch,
};

/// The body answering with `response`: an `admission.k8s.io/v1`
/// AdmissionReview as the API server expects it, with `response.patch`
/// base64-encoded (the JSON form of a Go `[]byte`) instead of kube's array of
/// numbers, and `response.patchType` set when there is a patch. Keys come in
/// sorted order, as they always have.
pub fn response_body(response: &AdmissionResponse) -> Vec<u8> {
    let r = response;
    let base64 = base64_simd::STANDARD;
    let patch_len = r
        .patch
        .as_ref()
        .map_or(0, |p| base64.encoded_length(p.len()));
    let warnings_len: usize = r.warnings.iter().flatten().map(|w| w.len() + 3).sum();
    let mut out = Vec::with_capacity(256 + r.result.message.len() + patch_len + warnings_len);
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
        // Base64 needs no escaping in a JSON string. base64-simd: the
        // encoding of a patch of a few KiB was several per cent of the CPU
        // time of an admission with the scalar encoder.
        out.extend_from_slice(br#","patch":""#);
        base64.encode_append(patch, &mut out);
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

pub(super) fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
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
pub(super) fn sorted<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
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

pub(super) fn deny(request: &Request<'_>, why: Refusal, message: String) -> Decision {
    let mut response = answer(request).deny(message);
    response.result.status = Some(StatusSummary::Failure);
    response.result.code = why.code();
    response.result.reason = why.reason().to_owned();
    Decision {
        response,
        outcome: why.outcome(),
    }
}

pub(super) fn allow(request: &Request<'_>) -> Decision {
    let mut response = answer(request);
    response.result = Status::success();
    response.allowed = true;
    Decision {
        response,
        outcome: Outcome::Allowed,
    }
}

/// The answer to `request` before it is decided: its uid, nothing allowed.
pub(super) fn answer(request: &Request<'_>) -> AdmissionResponse {
    // kube builds a response only from its own request type or as a failure.
    let mut response = AdmissionResponse::invalid(String::new());
    response.uid = request.uid.clone().into_owned();
    response.result = Status::default();
    response
}
