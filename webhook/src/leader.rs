//! Leader election over a `coordination.k8s.io/v1` Lease, so that only one
//! replica reconciles.
//!
//! The holder renews the Lease every `retry_period`; every write is a PUT
//! carrying the `resourceVersion` it read, so two replicas racing for the
//! Lease cannot both win (the loser gets 409 Conflict). A follower takes the
//! Lease over once `renewTime + leaseDurationSeconds` has passed. A holder
//! that cannot renew for `renew_deadline` (shorter than the lease duration)
//! steps down before anyone else may take over: each round (and so each
//! request) is cut off at that deadline, and the deadline counts from the
//! moment the last successful round started, the `renewTime` it wrote. On
//! shutdown the holder releases the Lease so that another replica takes over
//! at once.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

/// Timing and identity of the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// A holder that has not renewed for this long stops leading.
    pub renew_deadline: Duration,
    /// How often the holder renews and a follower retries.
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// The usual timing (15s lease, 10s renew deadline, 2s retry), as client-go's.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        ElectionConfig {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do about the Lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, held by us.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it over.
    TakeOver,
    /// Someone else holds it until `until`.
    Follow {
        /// The holder.
        holder: String,
        /// When their Lease runs out unless renewed.
        until: Timestamp,
    },
}

/// Decides what to do about `lease` (None: it does not exist) at `now`.
pub fn decide(lease: Option<&Lease>, me: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    if holder == me {
        return Decision::Renew;
    }
    let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
    let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(0).into());
    match renewed.map(|t| t + duration) {
        Some(until) if until > now => Decision::Follow { holder, until },
        _ => Decision::TakeOver,
    }
}

/// The Lease spec to write for `decision` (not for [`Decision::Follow`]).
pub fn next_spec(
    current: Option<&LeaseSpec>,
    decision: &Decision,
    config: &ElectionConfig,
    now: Timestamp,
) -> LeaseSpec {
    let current = current.cloned().unwrap_or_default();
    let seconds = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    match decision {
        Decision::Renew => LeaseSpec {
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(seconds),
            ..current
        },
        _ => LeaseSpec {
            holder_identity: Some(config.identity.clone()),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(match decision {
                Decision::Create => 0,
                _ => current.lease_transitions.unwrap_or(0).saturating_add(1),
            }),
            ..current
        },
    }
}

/// Runs the election against the API.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    config: ElectionConfig,
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    /// An elector for `config`.
    pub fn new(client: Client, config: ElectionConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// One round: reads the Lease and creates, renews or takes it over when
    /// [`decide`] says so. Ok(true) when we hold it afterwards; a lost race
    /// (409) is Ok(false).
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.config.name).await?;
        let decision = decide(current.as_ref(), &self.config.identity, now);
        if let Decision::Follow { holder, until } = &decision {
            tracing::debug!(%holder, %until, "another replica leads");
            return Ok(false);
        }
        let spec = next_spec(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &decision,
            &self.config,
            now,
        );
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // resourceVersion stays as read: optimistic concurrency.
                lease.spec = Some(spec);
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if we hold it, so another replica need not wait
    /// for it to expire. Best effort.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.config.name, "released the leader lease"),
            Err(error) => tracing::warn!(%error, "cannot release the leader lease"),
        }
    }

    /// Campaigns until `shutdown` turns true, publishing on `leading` whether
    /// this replica leads; then releases the Lease.
    pub async fn run(self, leading: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        // When the last successful round started: the renewTime it wrote.
        let mut last_renewal: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let started = Instant::now();
            // A round never outlasts the renew deadline, so a request that
            // hangs cannot keep a leader leading after another replica may
            // have taken the Lease over.
            let limit = last_renewal.map_or(self.config.renew_deadline, |t| {
                (t + self.config.renew_deadline).saturating_duration_since(started)
            });
            let round =
                tokio::time::timeout(limit, self.try_acquire_or_renew(Timestamp::now())).await;
            let held = match round {
                Ok(Ok(true)) => {
                    last_renewal = Some(started);
                    true
                }
                Ok(Ok(false)) => {
                    last_renewal = None;
                    false
                }
                failed => {
                    let within =
                        last_renewal.is_some_and(|t| t.elapsed() < self.config.renew_deadline);
                    match failed {
                        Ok(Err(error)) => {
                            tracing::warn!(%error, still_leading = within, "leader election round failed")
                        }
                        _ => {
                            tracing::warn!(timeout = ?limit, still_leading = within, "leader election round timed out")
                        }
                    }
                    if !within {
                        last_renewal = None;
                    }
                    within
                }
            };
            leading.send_if_modified(|l| {
                let changed = *l != held;
                if changed {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, leading = held, "leadership changed");
                }
                *l = held;
                changed
            });
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = shutdown.changed() => {}
            }
        }
        leading.send_replace(false);
        if last_renewal.is_some() {
            self.release().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn lease(holder: Option<&str>, renewed: &str, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: Some(MicroTime(at(renewed))),
                acquire_time: Some(MicroTime(at("2026-11-21T09:00:00Z"))),
                lease_duration_seconds: Some(seconds),
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let now = at("2026-11-21T10:00:00Z");
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(
            decide(
                Some(&lease(Some("a"), "2026-11-21T09:00:00Z", 15)),
                "a",
                now
            ),
            Decision::Renew,
            "even when late: it is ours"
        );
        assert_eq!(
            decide(
                Some(&lease(Some("b"), "2026-11-21T09:59:50Z", 15)),
                "a",
                now
            ),
            Decision::Follow {
                holder: "b".into(),
                until: at("2026-11-21T10:00:05Z")
            }
        );
        assert_eq!(
            decide(
                Some(&lease(Some("b"), "2026-11-21T09:59:45Z", 15)),
                "a",
                now
            ),
            Decision::TakeOver,
            "expired exactly now"
        );
        assert_eq!(
            decide(Some(&lease(None, "2026-11-21T09:59:59Z", 15)), "a", now),
            Decision::TakeOver,
            "released"
        );
        assert_eq!(
            decide(Some(&lease(Some(""), "2026-11-21T09:59:59Z", 15)), "a", now),
            Decision::TakeOver
        );
    }

    #[test]
    fn specs_record_holder_times_and_transitions() {
        let config = ElectionConfig::new("ephemeral-system", "ephemeral-controller", "pod-a");
        let now = at("2026-11-21T10:00:00Z");
        let old = lease(Some("pod-b"), "2026-11-21T09:00:00Z", 15)
            .spec
            .unwrap();
        let taken = next_spec(Some(&old), &Decision::TakeOver, &config, now);
        assert_eq!(taken.holder_identity.as_deref(), Some("pod-a"));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        assert_eq!(taken.renew_time, Some(MicroTime(now)));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        assert_eq!(taken.lease_transitions, Some(4));
        let renewed = next_spec(
            Some(&taken),
            &Decision::Renew,
            &config,
            at("2026-11-21T10:00:02Z"),
        );
        assert_eq!(
            renewed.acquire_time,
            Some(MicroTime(now)),
            "acquired when taken"
        );
        assert_eq!(
            renewed.renew_time,
            Some(MicroTime(at("2026-11-21T10:00:02Z")))
        );
        assert_eq!(renewed.lease_transitions, Some(4));
        let created = next_spec(None, &Decision::Create, &config, now);
        assert_eq!(created.lease_transitions, Some(0));
    }
}
