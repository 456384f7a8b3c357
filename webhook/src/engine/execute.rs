//! Carrying out what an owner's plan decided, for any [`Family`]: the
//! lookup by name of wanted children the index did not show, then the
//! applies, then the prunes.

use std::collections::BTreeMap;

use kube::Client;
use serde_json::Value;

use super::{Child, ChildOf, Error, Family, Kind, api};

/// One server-side apply a plan wants.
#[derive(Clone, Debug)]
pub struct Apply<K, T> {
    /// The child's kind.
    pub kind: K,
    /// The child's name.
    pub name: String,
    /// The body to apply (every field we manage, nothing else).
    pub body: Value,
    /// The child as observed (None: not observed, so [`foreign`] first
    /// checks that no object of that name exists that the owner does not
    /// control).
    pub current: Option<Child<K, T>>,
}

/// An apply of family `F`.
pub type ApplyOf<F> = Apply<<F as Family>::Kind, <F as Family>::Facts>;

impl<K: Kind, T> Apply<K, T> {
    /// `Kind/name`.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// `Kind/name` of each wanted child the plan did not observe whose name an
/// object the owner `owner_uid` does not control already holds: nothing
/// may be applied over it (the lookup by name: an object without our
/// labels is invisible to the index).
pub async fn foreign<F: Family>(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    apply: &[ApplyOf<F>],
) -> Result<Vec<String>, Error> {
    let mut found = Vec::new();
    for a in apply.iter().filter(|a| a.current.is_none()) {
        if api::foreign(client, a.kind, namespace, &a.name, owner_uid).await? {
            found.push(a.display_name());
        }
    }
    Ok(found)
}

/// What [`execute`] did.
#[derive(Clone, Debug)]
pub struct Executed<F: Family> {
    /// Each applied child as the API server returned it.
    pub applied: BTreeMap<(F::Kind, String), ChildOf<F>>,
    /// `Kind/name` of the children created.
    pub created: Vec<String>,
    /// `Kind/name` of the children whose spec changed (their generation
    /// moved; a resourceVersion would also move with a status write).
    pub updated: Vec<String>,
    /// `Kind/name` of the children deleted.
    pub pruned: Vec<String>,
}

/// Applies `apply` in order, then deletes `prune` (each with its uid as a
/// precondition; one already gone or replaced is skipped). Stops at the
/// first failure, so nothing is pruned after a failed apply.
pub async fn execute<F: Family>(
    client: &Client,
    namespace: &str,
    apply: &[ApplyOf<F>],
    prune: &[ChildOf<F>],
) -> Result<Executed<F>, Error> {
    let mut done = Executed {
        applied: BTreeMap::new(),
        created: Vec::new(),
        updated: Vec::new(),
        pruned: Vec::new(),
    };
    for a in apply {
        let result = api::apply::<F>(client, a.kind, namespace, &a.name, &a.body).await?;
        match &a.current {
            None => done.created.push(a.display_name()),
            Some(c) if c.generation != result.generation => done.updated.push(a.display_name()),
            Some(_) => {}
        }
        done.applied.insert((a.kind, a.name.clone()), result);
    }
    for child in prune {
        if api::prune::<F>(client, namespace, child).await? {
            done.pruned.push(child.display_name());
        }
    }
    Ok(done)
}
