//! The engine's API calls, for any [`Family`]: observe an owner's children,
//! look up a wanted child the index lacks, apply, prune, write the owner's
//! status, and the watch that feeds the index.

use std::collections::BTreeSet;

use futures::{Stream, StreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ChildIndex, ChildOf, Error, FIELD_MANAGER, Family, Kind, api_error, is_status};
use crate::catalog::{is_not_served, pace_not_served};

fn api<K: Kind>(client: &Client, kind: K, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

/// An owner's children as observed.
#[derive(Clone, Debug)]
pub struct Observed<F: Family> {
    /// Every child carrying the owner's labels, whoever controls it, by
    /// kind (in [`Family::kinds`] order) and name.
    pub children: Vec<ChildOf<F>>,
    /// The kinds the API server does not serve (no children of them exist).
    pub unserved: BTreeSet<F::Kind>,
}

/// Observe: the children labelled for `owner` in `namespace`, from the
/// index; only a kind whose watch has not synced (no watch running yet, or
/// its CRD is missing) is read with a label-selected LIST, where a 404
/// means the kind is not served. A lagging index is safe: an apply is
/// idempotent, a wanted child the index lacks is looked up by name before
/// it is applied ([`foreign`]), and a prune's DELETE carries the child's
/// uid as a precondition.
pub async fn observe<F: Family>(
    client: &Client,
    index: &ChildIndex<F>,
    namespace: &str,
    owner: &str,
) -> Result<Observed<F>, Error> {
    let mut children = Vec::new();
    let mut unserved = BTreeSet::new();
    for &kind in F::kinds() {
        if index.ready(kind) {
            children.extend(index.children(kind, namespace, owner));
            continue;
        }
        let params = ListParams::default().labels(&F::owner_selector(owner));
        match api(client, kind, namespace).list(&params).await {
            Ok(list) => {
                let mut found: Vec<ChildOf<F>> = list
                    .items
                    .iter()
                    .filter(|o| F::owner_of(o) == Some(owner))
                    .map(|o| ChildOf::<F>::of::<F>(kind, o))
                    .collect();
                found.sort_by(|a, b| a.name.cmp(&b.name));
                children.extend(found);
            }
            Err(e) if is_status(&e, 404) => {
                unserved.insert(kind);
            }
            Err(e) => {
                let plural = kind.api_resource().plural;
                return Err(api_error(format!("list {plural} in namespace {namespace}"))(e));
            }
        }
    }
    Ok(Observed { children, unserved })
}

/// Whether an object named `name` of `kind` exists in `namespace` that the
/// owner `owner_uid` does not control: the lookup by name before applying
/// a wanted child the index does not show, so an object without our labels
/// is never taken over.
pub async fn foreign<K: Kind>(
    client: &Client,
    kind: K,
    namespace: &str,
    name: &str,
    owner_uid: &str,
) -> Result<bool, Error> {
    let found = api(client, kind, namespace)
        .get_opt(name)
        .await
        .map_err(api_error(format!("get {}/{name}", kind.as_str())))?;
    Ok(found.is_some_and(|o| !super::is_controlled_by(&o, owner_uid)))
}

/// Server-side applies `body` as child `name` of `kind` (field manager
/// [`FIELD_MANAGER`], forced) and returns the child as stored.
pub async fn apply<F: Family>(
    client: &Client,
    kind: F::Kind,
    namespace: &str,
    name: &str,
    body: &Value,
) -> Result<ChildOf<F>, Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let stored = api(client, kind, namespace)
        .patch(name, &params, &Patch::Apply(body))
        .await
        .map_err(api_error(format!("apply {}/{name}", kind.as_str())))?;
    Ok(ChildOf::<F>::of::<F>(kind, &stored))
}

/// Deletes `child` with its uid as a precondition; false when it was
/// already gone or replaced by another object of that name.
pub async fn prune<F: Family>(
    client: &Client,
    namespace: &str,
    child: &ChildOf<F>,
) -> Result<bool, Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: child.uid.as_deref().map(str::to_owned),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api(client, child.kind, namespace)
        .delete(child.name(), &params)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(false),
        Err(e) => Err(api_error(format!("prune {}", child.display_name()))(e)),
    }
}

/// Server-side applies `status` as the owner's status subresource.
pub async fn write_status<O>(
    client: &Client,
    owner: &O,
    status: &impl Serialize,
) -> Result<(), Error>
where
    O: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let body = serde_json::json!({
        "apiVersion": O::api_version(&()),
        "kind": O::kind(&()),
        "status": status,
    });
    let namespace = owner.namespace().unwrap_or_default();
    Api::<O>::namespaced(client.clone(), &namespace)
        .patch_status(
            &owner.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map_err(api_error("write status"))?;
    Ok(())
}

/// The watch of `kind`'s children (selected by [`Family::LABELS`]) in all
/// namespaces: every event feeds `index`; the objects it touched come out,
/// for the owner's `Controller` to trigger its reconcile
/// (`owns_stream_with`). A kind the API server does not serve is marked so
/// in the index and retried slowly.
pub fn watch<F: Family>(
    client: &Client,
    index: &ChildIndex<F>,
    kind: F::Kind,
) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
    let ar = kind.api_resource();
    let index = index.clone();
    let events = watcher(
        Api::<DynamicObject>::all_with(client.clone(), &ar),
        watcher::Config::default().labels(&F::selector()),
    )
    .default_backoff()
    .inspect(move |event| match event {
        Ok(event) => index.apply(kind, event),
        Err(error) if is_not_served(error) => index.not_served(kind),
        Err(_) => {}
    });
    pace_not_served(events).touched_objects().boxed()
}
