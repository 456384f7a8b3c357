//! Reading an AdmissionReview: one typed pass over the request body, or a
//! precise account of why it cannot be read ([`Malformed`]).

use std::borrow::Cow;

use kube::core::admission::{AdmissionRequest, Operation};
use kube::core::{DynamicObject, TypeMeta};
use serde_json::Value;

use super::json::{Json, Text};
use super::{REVIEW_API_VERSION, REVIEW_KIND};

/// An AdmissionReview that could be read, borrowing from the request body.
#[derive(Clone, Debug)]
pub struct Review<'a> {
    /// What the request says about itself (everything but the objects).
    pub request: Request<'a>,
    /// `request.object` exactly as received (the base of the JSONPatch).
    pub object: Option<Json<'a>>,
    /// `request.oldObject` exactly as received.
    pub old_object: Option<Json<'a>>,
}

impl Review<'_> {
    /// The same review, no longer borrowing from the body.
    pub fn into_owned(self) -> Review<'static> {
        Review {
            request: self.request.into_owned(),
            object: self.object.map(Json::into_owned),
            old_object: self.old_object.map(Json::into_owned),
        }
    }
}

/// The fields of an AdmissionRequest the webhook decides and logs with,
/// borrowed from the body. A body is read only if kube could read all of it
/// as an [`AdmissionRequest`]; the fields not kept here (`resource`,
/// `requestKind`, `requestResource`, `requestSubResource`, `options`,
/// `userInfo.uid` and `userInfo.extra`) are checked and dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// `uid`, echoed in the answer.
    pub uid: Cow<'a, str>,
    /// `kind`: the kind of the object.
    pub kind: Kind<'a>,
    /// `subResource`, if any.
    pub sub_resource: Option<Cow<'a, str>>,
    /// `name` (empty while the object has only a `generateName`).
    pub name: Cow<'a, str>,
    /// `namespace`, if any.
    pub namespace: Option<Cow<'a, str>>,
    /// `operation`.
    pub operation: Operation,
    /// `userInfo`: who asks.
    pub user_info: User<'a>,
    /// `dryRun`.
    pub dry_run: bool,
}

/// `request.kind`: group, version and kind of the object.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Kind<'a> {
    /// API group (empty for the core group).
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    /// API version.
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    /// Kind.
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

/// `request.userInfo`: the requester's name and groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User<'a> {
    /// `username`, if any.
    pub username: Option<Cow<'a, str>>,
    /// `groups` (none when absent).
    pub groups: Vec<Cow<'a, str>>,
}

impl Request<'_> {
    /// The same request, no longer borrowing from the body.
    pub fn into_owned(self) -> Request<'static> {
        let owned = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
        Request {
            uid: owned(self.uid),
            kind: Kind {
                group: owned(self.kind.group),
                version: owned(self.kind.version),
                kind: owned(self.kind.kind),
            },
            sub_resource: self.sub_resource.map(owned),
            name: owned(self.name),
            namespace: self.namespace.map(owned),
            operation: self.operation,
            user_info: User {
                username: self.user_info.username.map(owned),
                groups: self.user_info.groups.into_iter().map(owned).collect(),
            },
            dry_run: self.dry_run,
        }
    }

    /// What is kept of a request kube has read.
    fn from_kube(r: AdmissionRequest<DynamicObject>) -> Request<'static> {
        Request {
            uid: r.uid.into(),
            kind: Kind {
                group: r.kind.group.into(),
                version: r.kind.version.into(),
                kind: r.kind.kind.into(),
            },
            sub_resource: r.sub_resource.map(Cow::Owned),
            name: r.name.into(),
            namespace: r.namespace.map(Cow::Owned),
            operation: r.operation,
            user_info: User {
                username: r.user_info.username.map(Cow::Owned),
                groups: r
                    .user_info
                    .groups
                    .into_iter()
                    .flatten()
                    .map(Cow::Owned)
                    .collect(),
            },
            dry_run: r.dry_run,
        }
    }
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

pub(super) fn describe(v: Option<&Value>) -> String {
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
pub fn parse_review(body: &[u8]) -> Result<Review<'_>, Malformed> {
    match parse_well_formed(body) {
        Some(review) => Ok(review),
        None => parse_checked(body),
    }
}

/// The common case in one pass over the body, typed as it is read: `None`
/// whenever anything is off, and [`parse_checked`] then decides (with the
/// same outcome for every body this accepts) and names the problem.
pub(super) fn parse_well_formed(body: &[u8]) -> Option<Review<'_>> {
    // One UTF-8 check of the whole body: read as bytes, serde_json would
    // check every string on its own, which cost more than the check.
    let body = std::str::from_utf8(body).ok()?;
    let MapOnly(top) = serde_json::from_str::<MapOnly<wire::Review<'_>>>(body).ok()?;
    if top.api_version != REVIEW_API_VERSION || top.kind != REVIEW_KIND {
        return None;
    }
    let MapOnly(r) = top.request?;
    let (object, old_object) = (dynamic_object(r.object)?, dynamic_object(r.old_object)?);
    let MapOnly(user) = r.user_info;
    let request = Request {
        uid: r.uid,
        kind: r.kind,
        sub_resource: r.sub_resource.map(|s| s.0),
        name: r.name,
        namespace: r.namespace.map(|s| s.0),
        operation: r.operation,
        user_info: User {
            username: user.username.map(|s| s.0),
            groups: user.groups.into_iter().flatten().map(|s| s.0).collect(),
        },
        dry_run: r.dry_run,
    };
    Some(Review {
        request,
        object,
        old_object,
    })
}

/// The wire form of an AdmissionReview, field for field what kube's
/// `AdmissionRequest` reads (same names, shapes, defaults and required
/// fields), its strings borrowed and the objects kept as JSON. Fields the
/// webhook does not use are read only to be checked.
mod wire {
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    use kube::core::admission::Operation;
    use serde::de::IgnoredAny;

    use super::{Json, Kind, MapOnly, Text};

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Review<'a> {
        #[serde(borrow)]
        pub api_version: Cow<'a, str>,
        #[serde(borrow)]
        pub kind: Cow<'a, str>,
        #[serde(borrow)]
        pub request: Option<MapOnly<Request<'a>>>,
    }

    /// kube's `AdmissionRequest`.
    #[derive(serde::Deserialize)]
    #[expect(
        dead_code,
        reason = "fields the webhook does not use are read only to be checked"
    )]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Request<'a> {
        #[serde(borrow)]
        pub uid: Cow<'a, str>,
        #[serde(borrow)]
        pub kind: Kind<'a>,
        #[serde(borrow)]
        pub resource: Resource<'a>,
        #[serde(default, borrow)]
        pub sub_resource: Option<Text<'a>>,
        #[serde(default, borrow)]
        pub request_kind: Option<Kind<'a>>,
        #[serde(default, borrow)]
        pub request_resource: Option<Resource<'a>>,
        #[serde(default, borrow)]
        pub request_sub_resource: Option<Text<'a>>,
        #[serde(default, borrow)]
        pub name: Cow<'a, str>,
        #[serde(default, borrow)]
        pub namespace: Option<Text<'a>>,
        pub operation: Operation,
        #[serde(borrow)]
        pub user_info: MapOnly<UserInfo<'a>>,
        #[serde(borrow)]
        pub object: Option<Json<'a>>,
        #[serde(borrow)]
        pub old_object: Option<Json<'a>>,
        #[serde(default)]
        pub dry_run: bool,
        /// A `RawExtension`: any JSON.
        #[serde(default)]
        pub options: Option<IgnoredAny>,
    }

    /// kube's `GroupVersionResource`.
    #[derive(serde::Deserialize)]
    #[expect(
        dead_code,
        reason = "fields the webhook does not use are read only to be checked"
    )]
    pub(super) struct Resource<'a> {
        #[serde(borrow)]
        pub group: Cow<'a, str>,
        #[serde(borrow)]
        pub version: Cow<'a, str>,
        #[serde(borrow)]
        pub resource: Cow<'a, str>,
        #[serde(default, borrow)]
        pub api_version: Cow<'a, str>,
    }

    /// k8s-openapi's `UserInfo` (read from objects only, every field
    /// optional, `null` as absent).
    #[derive(serde::Deserialize)]
    #[expect(
        dead_code,
        reason = "fields the webhook does not use are read only to be checked"
    )]
    pub(super) struct UserInfo<'a> {
        #[serde(default, borrow)]
        pub username: Option<Text<'a>>,
        #[serde(default, borrow)]
        pub groups: Option<Vec<Text<'a>>>,
        #[serde(default, borrow)]
        pub uid: Option<Text<'a>>,
        #[serde(default)]
        pub extra: Option<BTreeMap<String, Vec<String>>>,
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
pub(super) fn dynamic_object(object: Option<Json<'_>>) -> Option<Option<Json<'_>>> {
    use serde::Deserialize as _;
    match object {
        None | Some(Json::Null) => Some(None),
        Some(object @ Json::Object(_)) => {
            let metadata_ok = object.get("metadata").is_none_or(|m| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta::deserialize(m).is_ok()
            });
            metadata_ok.then_some(Some(object))
        }
        Some(_) => None,
    }
}

pub(super) fn review_types() -> TypeMeta {
    TypeMeta {
        api_version: REVIEW_API_VERSION.to_owned(),
        kind: REVIEW_KIND.to_owned(),
    }
}

/// Reads a body step by step, so that a malformed one is named precisely:
/// the reference for [`parse_well_formed`].
pub(super) fn parse_checked(body: &[u8]) -> Result<Review<'static>, Malformed> {
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
    let object = request
        .get("object")
        .filter(|o| !o.is_null())
        .map(Json::from);
    let old_object = request
        .get("oldObject")
        .filter(|o| !o.is_null())
        .map(Json::from);
    let request: AdmissionRequest<DynamicObject> =
        serde_json::from_value(request).map_err(|e| fail(BadReview::Request(e.to_string())))?;
    Ok(Review {
        request: Request::from_kube(request),
        object,
        old_object,
    })
}
