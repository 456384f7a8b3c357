//! What the receiver asks of the controller ([`Sets`]): which sets follow a
//! repository, with their webhook secrets, from memory, and an immediate
//! reconcile of a set (a non-blocking send on the running controller's
//! trigger channel).
//!
//! The memory is filled on every replica by [`watch`] (the sets as a watch
//! reports them, each webhook secret read when its set changes), and
//! refreshed by each reconcile on the leader (so a rotated webhook secret
//! is picked up within the set's interval). Only the leader reconciles: a
//! delivery verified by the standby is answered `202` and its set polls at
//! its next interval.

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};

use futures::StreamExt;
use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use ephemeral_core::set::EnvironmentSet;

use crate::github::receiver::{Candidate, SetRef, Sets};
use crate::github::{Repository, Secret};

/// How many triggers may wait for the controller before more are dropped
/// (a dropped one is only a reconcile that comes with the next poll).
pub const TRIGGER_BUFFER: usize = 256;

/// The sets this replica reconciles, for the receiver.
#[derive(Debug, Default)]
pub struct Directory {
    sets: RwLock<BTreeMap<SetRef, Followed>>,
    trigger: Mutex<Option<mpsc::Sender<ObjectRef<EnvironmentSet>>>>,
}

#[derive(Clone, Debug)]
struct Followed {
    repository: Repository,
    webhook_secret: Option<Secret>,
}

impl Directory {
    /// Records that `set` follows `repository`, its deliveries signed with
    /// `webhook_secret`.
    pub fn record(&self, set: SetRef, repository: Repository, webhook_secret: Option<Secret>) {
        self.write().insert(
            set,
            Followed {
                repository,
                webhook_secret,
            },
        );
    }

    /// Forgets `set` (deleted).
    pub fn forget(&self, set: &SetRef) {
        self.write().remove(set);
    }

    /// A new trigger channel for a controller starting to run; the
    /// previous one (of a run that ended) is dropped.
    pub fn open_trigger(&self) -> mpsc::Receiver<ObjectRef<EnvironmentSet>> {
        let (tx, rx) = mpsc::channel(TRIGGER_BUFFER);
        *self.trigger.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Closes the trigger channel (the controller stopped).
    pub fn close_trigger(&self) {
        *self.trigger.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Forgets every set but `kept` (after a re-list).
    fn retain(&self, kept: &std::collections::BTreeSet<SetRef>) {
        self.write().retain(|set, _| kept.contains(set));
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<SetRef, Followed>> {
        self.sets.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn set_ref(set: &EnvironmentSet) -> SetRef {
    SetRef {
        namespace: set.namespace().unwrap_or_default(),
        name: set.name_any(),
    }
}

/// Records `set` with its webhook secret (read now); a set whose repository
/// is not a GitHub name, or whose Secret cannot be read, is recorded
/// without one or not at all (it then accepts no delivery).
async fn record(client: &kube::Client, directory: &Directory, set: &EnvironmentSet) {
    let Ok(repository) = Repository::of(&set.spec.pull_requests.github) else {
        directory.forget(&set_ref(set));
        return;
    };
    let secret = match super::credentials::webhook(client, set).await {
        Ok(secret) => secret,
        Err(error) => {
            tracing::warn!(set = %set_ref(set), %error, "cannot read the webhook secret: deliveries for this set are refused");
            None
        }
    };
    directory.record(set_ref(set), repository, secret);
}

/// Keeps `directory` in step with the EnvironmentSets of every namespace
/// until dropped (serve runs it on every replica while the receiver is on).
pub async fn watch(client: kube::Client, directory: std::sync::Arc<Directory>) {
    let api = Api::<EnvironmentSet>::all(client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed = std::collections::BTreeSet::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(set)) => {
                listed.insert(set_ref(&set));
                record(&client, &directory, &set).await;
            }
            Ok(watcher::Event::InitDone) => directory.retain(&listed),
            Ok(watcher::Event::Apply(set)) => record(&client, &directory, &set).await,
            Ok(watcher::Event::Delete(set)) => directory.forget(&set_ref(&set)),
            Err(error) => {
                tracing::warn!(%error, "EnvironmentSet watch (receiver) failed; retrying")
            }
        }
    }
}

impl Sets for Directory {
    fn for_repository(&self, repository: &Repository) -> Vec<Candidate> {
        self.sets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, f)| f.repository.same_as(repository))
            .map(|(set, f)| Candidate {
                set: set.clone(),
                webhook_secret: f.webhook_secret.clone(),
            })
            .collect()
    }

    fn trigger(&self, set: &SetRef) {
        let mut trigger = self.trigger.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = trigger.as_mut() else {
            tracing::info!(%set, "not the leader: the set polls at its next interval");
            return;
        };
        let object = ObjectRef::new(&set.name).within(&set.namespace);
        if let Err(error) = tx.try_send(object) {
            tracing::warn!(%set, %error, "trigger dropped: the next poll reconciles the set");
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn set(name: &str) -> SetRef {
        SetRef {
            namespace: "previews".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn sets_are_found_by_repository_whatever_its_case_and_triggered() {
        let directory = Directory::default();
        let shop = Repository::new("Acme", "Shop").unwrap();
        directory.record(set("shop-prs"), shop, Some(Secret::from("s3cret")));
        directory.record(
            set("cart-prs"),
            Repository::new("acme", "cart").unwrap(),
            None,
        );
        let found = directory.for_repository(&Repository::new("acme", "shop").unwrap());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].set, set("shop-prs"));
        assert_eq!(
            found[0].webhook_secret.as_ref().unwrap().expose(),
            b"s3cret"
        );

        // Without a running controller a trigger is dropped, not queued.
        directory.trigger(&set("shop-prs"));
        let mut rx = directory.open_trigger();
        directory.trigger(&set("shop-prs"));
        let object = rx.next().await.unwrap();
        assert_eq!(object.name, "shop-prs");
        assert_eq!(object.namespace.as_deref(), Some("previews"));

        directory.forget(&set("shop-prs"));
        assert!(
            directory
                .for_repository(&Repository::new("acme", "shop").unwrap())
                .is_empty()
        );
    }
}
