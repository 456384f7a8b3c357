//! The children of every owner as the controller's watches report them,
//! keyed by (namespace, owner label), each summarised to a [`Child`]: a
//! reconcile reads its own children in O(its children), and no object is
//! kept.
//!
//! Fed by the watcher events of each child kind ([`ChildIndex::apply`]):
//!
//! - `Apply`/`InitApply`: the child is (re)indexed under the owner its
//!   labels name now; one that lost any of our labels is dropped (it is no
//!   longer ours to read, prune or apply over without the lookup by name).
//! - `Delete`: dropped, unless the index holds a newer object of that name
//!   (another uid).
//! - `Init` … `InitDone`: a re-list; what it did not show is dropped at
//!   `InitDone` (mark and sweep, so a re-list neither doubles the memory nor
//!   hides the children meanwhile). `InitDone` marks the kind synced.
//!
//! A kind is [ready](ChildIndex::ready) once synced while its watch is
//! healthy: a watch answered 404 (its CRD was removed) marks it not served
//! until its next `InitDone`, so "no children" is never read from a kind the
//! API server does not serve.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::watcher;

use super::{Child, ChildOf, Family};

/// The index, shared by the watches that feed it and the reconciles that
/// read it.
pub struct ChildIndex<F: Family>(Arc<RwLock<Inner<F>>>);

impl<F: Family> Clone for ChildIndex<F> {
    fn clone(&self) -> Self {
        ChildIndex(self.0.clone())
    }
}

impl<F: Family> Default for ChildIndex<F> {
    fn default() -> Self {
        ChildIndex(Arc::new(RwLock::new(Inner {
            owners: HashMap::new(),
            located: HashMap::new(),
            kinds: BTreeMap::new(),
        })))
    }
}

/// One owner's children by kind and name, with the re-list that last saw each.
type Children<F> = BTreeMap<(<F as Family>::Kind, Box<str>), (ChildOf<F>, u64)>;

/// (kind, namespace, name) of a child.
type Location<K> = (K, Box<str>, Box<str>);

struct Inner<F: Family> {
    /// namespace → owner → children.
    owners: HashMap<Box<str>, HashMap<Box<str>, Children<F>>>,
    /// (kind, namespace, name) → the owner it is indexed under.
    located: HashMap<Location<F::Kind>, Box<str>>,
    kinds: BTreeMap<F::Kind, KindState>,
}

#[derive(Clone, Copy, Debug, Default)]
struct KindState {
    /// The current re-list (or the last one).
    epoch: u64,
    listing: bool,
    synced: bool,
    not_served: bool,
}

impl<F: Family> Inner<F> {
    fn remove(&mut self, kind: F::Kind, namespace: &str, name: &str, uid: Option<&str>) {
        let key = (kind, Box::from(namespace), Box::from(name));
        let Some(owner) = self.located.get(&key) else {
            return;
        };
        let Some(children) = self
            .owners
            .get_mut(namespace)
            .and_then(|o| o.get_mut(owner))
        else {
            return;
        };
        let child_key = (kind, Box::from(name));
        let held = children.get(&child_key).and_then(|(c, _)| c.uid.as_deref());
        if let (Some(uid), Some(held)) = (uid, held)
            && uid != held
        {
            return; // a newer object of that name
        }
        children.remove(&child_key);
        self.drop_empty(namespace, &key.2, kind);
    }

    /// Forgets where (kind, namespace, name) was, dropping emptied maps.
    fn drop_empty(&mut self, namespace: &str, name: &str, kind: F::Kind) {
        let key = (kind, Box::from(namespace), Box::from(name));
        let Some(owner) = self.located.remove(&key) else {
            return;
        };
        if let Some(owners) = self.owners.get_mut(namespace) {
            if owners.get(&owner).is_some_and(BTreeMap::is_empty) {
                owners.remove(&owner);
            }
            if owners.is_empty() {
                self.owners.remove(namespace);
            }
        }
    }

    fn upsert(&mut self, kind: F::Kind, object: &DynamicObject) {
        let namespace = object.namespace().unwrap_or_default();
        let name = object.name_any();
        let Some(owner) = F::owner_of(object) else {
            // Not (or no longer) ours.
            self.remove(kind, &namespace, &name, None);
            return;
        };
        let key = (
            kind,
            Box::from(namespace.as_str()),
            Box::from(name.as_str()),
        );
        if self.located.get(&key).is_some_and(|o| **o != *owner) {
            self.remove(kind, &namespace, &name, None);
        }
        let epoch = self.kinds.entry(kind).or_default().epoch;
        self.located.insert(key, Box::from(owner));
        self.owners
            .entry(Box::from(namespace.as_str()))
            .or_default()
            .entry(Box::from(owner))
            .or_default()
            .insert(
                (kind, Box::from(name.as_str())),
                (Child::of::<F>(kind, object), epoch),
            );
    }

    /// Drops the children of `kind` the re-list `epoch` did not show.
    fn sweep(&mut self, kind: F::Kind, epoch: u64) {
        let mut gone = Vec::new();
        for (namespace, owners) in &self.owners {
            for children in owners.values() {
                for ((k, name), (_, seen)) in children {
                    if *k == kind && *seen < epoch {
                        gone.push((namespace.clone(), name.clone()));
                    }
                }
            }
        }
        for (namespace, name) in gone {
            self.remove(kind, &namespace, &name, None);
        }
    }
}

impl<F: Family> ChildIndex<F> {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<F>> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<F>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes in one event of `kind`'s watch.
    pub fn apply(&self, kind: F::Kind, event: &watcher::Event<DynamicObject>) {
        let mut inner = self.write();
        match event {
            watcher::Event::Init => {
                let state = inner.kinds.entry(kind).or_default();
                state.epoch += 1;
                state.listing = true;
            }
            watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
                inner.upsert(kind, object);
            }
            watcher::Event::Delete(object) => {
                let (namespace, name) = (object.namespace().unwrap_or_default(), object.name_any());
                inner.remove(kind, &namespace, &name, object.metadata.uid.as_deref());
            }
            watcher::Event::InitDone => {
                let state = *inner.kinds.entry(kind).or_default();
                if state.listing {
                    inner.sweep(kind, state.epoch);
                }
                let state = inner.kinds.entry(kind).or_default();
                state.listing = false;
                state.synced = true;
                state.not_served = false;
            }
        }
    }

    /// `kind`'s watch was answered 404: the API server does not serve it.
    pub fn not_served(&self, kind: F::Kind) {
        self.write().kinds.entry(kind).or_default().not_served = true;
    }

    /// Forgets everything: a new run of the controller starts its watches
    /// afresh, and until each has synced its kind is read with a LIST.
    pub fn restart(&self) {
        let mut inner = self.write();
        inner.owners.clear();
        inner.located.clear();
        inner.kinds.clear();
    }

    /// Whether `kind` can be read from the index: its watch has synced and
    /// is healthy.
    pub fn ready(&self, kind: F::Kind) -> bool {
        self.read()
            .kinds
            .get(&kind)
            .is_some_and(|s| s.synced && !s.not_served)
    }

    /// The children of `kind` labelled for `owner` in `namespace`, by name.
    pub fn children(&self, kind: F::Kind, namespace: &str, owner: &str) -> Vec<ChildOf<F>> {
        self.read()
            .owners
            .get(namespace)
            .and_then(|o| o.get(owner))
            .into_iter()
            .flat_map(|children| children.range((kind, Box::from(""))..))
            .take_while(|((k, _), _)| *k == kind)
            .map(|(_, (child, _))| child.clone())
            .collect()
    }

    /// How many children the index holds.
    pub fn len(&self) -> usize {
        self.read().located.len()
    }

    /// Whether the index holds no child.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<F: Family> std::fmt::Debug for ChildIndex<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.read();
        f.debug_struct("ChildIndex")
            .field("children", &inner.located.len())
            .field("kinds", &inner.kinds)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ApiResource;
    use serde_json::json;

    use super::*;
    use crate::engine::Kind;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    enum K {
        A,
        B,
    }

    impl Kind for K {
        fn api_resource(self) -> ApiResource {
            ApiResource {
                group: "test.io".into(),
                version: "v1".into(),
                api_version: "test.io/v1".into(),
                kind: self.as_str().into(),
                plural: "things".into(),
            }
        }
        fn as_str(self) -> &'static str {
            match self {
                K::A => "A",
                K::B => "B",
            }
        }
    }

    /// Children labelled `owner=<name>` and `managed=yes`; facts: label `x`.
    struct T;

    impl Family for T {
        type Kind = K;
        type Facts = Option<String>;
        const OWNER_LABEL: &'static str = "owner";
        const LABELS: &'static [(&'static str, &'static str)] = &[("managed", "yes")];
        fn kinds() -> &'static [K] {
            &[K::A, K::B]
        }
        fn facts(_: K, object: &DynamicObject) -> Option<String> {
            object.labels().get("x").cloned()
        }
    }

    fn object(ns: &str, name: &str, uid: &str, owner: Option<&str>, x: &str) -> DynamicObject {
        let mut labels = json!({"managed": "yes", "x": x});
        if let Some(owner) = owner {
            labels["owner"] = json!(owner);
        }
        serde_json::from_value(json!({
            "apiVersion": "test.io/v1", "kind": "A",
            "metadata": {"name": name, "namespace": ns, "uid": uid, "labels": labels}
        }))
        .unwrap()
    }

    fn names(index: &ChildIndex<T>, kind: K, ns: &str, owner: &str) -> Vec<String> {
        index
            .children(kind, ns, owner)
            .iter()
            .map(|c| format!("{}={}", c.name, c.facts.as_deref().unwrap_or_default()))
            .collect()
    }

    fn listed(index: &ChildIndex<T>, kind: K, objects: &[DynamicObject]) {
        index.apply(kind, &watcher::Event::Init);
        for o in objects {
            index.apply(kind, &watcher::Event::InitApply(o.clone()));
        }
        index.apply(kind, &watcher::Event::InitDone);
    }

    #[test]
    fn a_reconcile_reads_only_its_owners_children_of_a_kind() {
        let index = ChildIndex::<T>::default();
        listed(
            &index,
            K::A,
            &[
                object("shop", "alice-web", "1", Some("alice"), "v1"),
                object("shop", "bob-web", "2", Some("bob"), "v1"),
                object("other", "alice-web", "3", Some("alice"), "v1"),
                object("shop", "alice-api", "4", Some("alice"), "v1"),
            ],
        );
        assert_eq!(
            names(&index, K::A, "shop", "alice"),
            ["alice-api=v1", "alice-web=v1"]
        );
        assert_eq!(names(&index, K::B, "shop", "alice"), Vec::<String>::new());
        assert_eq!(names(&index, K::A, "other", "alice"), ["alice-web=v1"]);
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn a_kind_is_ready_once_listed_and_until_its_watch_is_not_served() {
        let index = ChildIndex::<T>::default();
        assert!(!index.ready(K::A));
        index.apply(K::A, &watcher::Event::Init);
        assert!(!index.ready(K::A), "listing");
        index.apply(K::A, &watcher::Event::InitDone);
        assert!(index.ready(K::A) && !index.ready(K::B));
        index.not_served(K::A);
        assert!(!index.ready(K::A), "its CRD was removed");
        listed(&index, K::A, &[]);
        assert!(index.ready(K::A));
        index.restart();
        assert!(
            !index.ready(K::A),
            "a new run reads with LISTs until synced"
        );
    }

    #[test]
    fn updates_and_deletes_in_any_order() {
        let index = ChildIndex::<T>::default();
        // Events before any list are taken as they come.
        index.apply(
            K::A,
            &watcher::Event::Apply(object("shop", "alice-web", "1", Some("alice"), "v1")),
        );
        index.apply(
            K::A,
            &watcher::Event::Apply(object("shop", "alice-web", "1", Some("alice"), "v2")),
        );
        assert_eq!(names(&index, K::A, "shop", "alice"), ["alice-web=v2"]);
        // A delete of something never seen changes nothing.
        index.apply(
            K::A,
            &watcher::Event::Delete(object("shop", "ghost", "9", Some("alice"), "v1")),
        );
        // Recreated under the same name: a late delete of the old uid does
        // not drop the new object.
        index.apply(
            K::A,
            &watcher::Event::Apply(object("shop", "alice-web", "2", Some("alice"), "v3")),
        );
        index.apply(
            K::A,
            &watcher::Event::Delete(object("shop", "alice-web", "1", Some("alice"), "v1")),
        );
        assert_eq!(names(&index, K::A, "shop", "alice"), ["alice-web=v3"]);
        index.apply(
            K::A,
            &watcher::Event::Delete(object("shop", "alice-web", "2", Some("alice"), "v3")),
        );
        assert_eq!(names(&index, K::A, "shop", "alice"), Vec::<String>::new());
        assert!(index.is_empty());
    }

    #[test]
    fn a_child_that_loses_our_labels_or_moves_owner_is_dropped_from_the_old_one() {
        let index = ChildIndex::<T>::default();
        listed(
            &index,
            K::A,
            &[object("shop", "alice-web", "1", Some("alice"), "v1")],
        );
        // Relabelled for bob.
        index.apply(
            K::A,
            &watcher::Event::Apply(object("shop", "alice-web", "1", Some("bob"), "v1")),
        );
        assert_eq!(names(&index, K::A, "shop", "alice"), Vec::<String>::new());
        assert_eq!(names(&index, K::A, "shop", "bob"), ["alice-web=v1"]);
        // Lost the owner label.
        index.apply(
            K::A,
            &watcher::Event::Apply(object("shop", "alice-web", "1", None, "v1")),
        );
        assert_eq!(names(&index, K::A, "shop", "bob"), Vec::<String>::new());
        // Lost the managed label (its owner label kept): not ours either.
        let mut unmanaged = object("shop", "alice-web", "1", Some("alice"), "v1");
        unmanaged
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .remove("managed");
        index.apply(K::A, &watcher::Event::Apply(unmanaged));
        assert_eq!(names(&index, K::A, "shop", "alice"), Vec::<String>::new());
        assert!(index.is_empty());
    }

    #[test]
    fn a_relist_drops_what_it_did_not_show_and_keeps_the_rest_visible_meanwhile() {
        let index = ChildIndex::<T>::default();
        listed(
            &index,
            K::A,
            &[
                object("shop", "alice-web", "1", Some("alice"), "v1"),
                object("shop", "alice-old", "2", Some("alice"), "v1"),
            ],
        );
        listed(
            &index,
            K::B,
            &[object("shop", "alice-b", "3", Some("alice"), "v1")],
        );
        // The watch restarts (Init): until InitDone the old view stays.
        index.apply(K::A, &watcher::Event::Init);
        index.apply(
            K::A,
            &watcher::Event::InitApply(object("shop", "alice-web", "1", Some("alice"), "v2")),
        );
        assert_eq!(
            names(&index, K::A, "shop", "alice"),
            ["alice-old=v1", "alice-web=v2"]
        );
        // A new object applied during the re-list survives its sweep.
        index.apply(
            K::A,
            &watcher::Event::Apply(object("shop", "alice-new", "4", Some("alice"), "v1")),
        );
        index.apply(K::A, &watcher::Event::InitDone);
        assert_eq!(
            names(&index, K::A, "shop", "alice"),
            ["alice-new=v1", "alice-web=v2"]
        );
        assert_eq!(
            names(&index, K::B, "shop", "alice"),
            ["alice-b=v1"],
            "another kind's children are not swept"
        );
        // An InitDone without its Init (a restart of the stream) sweeps nothing.
        index.apply(K::A, &watcher::Event::InitDone);
        assert_eq!(names(&index, K::A, "shop", "alice").len(), 2);
    }
}
