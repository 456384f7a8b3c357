//! What the receiver asks of the controller ([`Sets`]): which sets follow a
//! repository, with their webhook secrets, from memory (each reconcile
//! records its set), and an immediate reconcile of a set (a non-blocking
//! send on the running controller's trigger channel).

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};

use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;

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

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<SetRef, Followed>> {
        self.sets.write().unwrap_or_else(|e| e.into_inner())
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
            tracing::debug!(%set, "not reconciling here (not the leader): the delivery waits for the next poll");
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
