//! The one lifecycle of `serve`: every long-running task is spawned into one
//! [`Tasks`] set and listens to one shutdown token.
//!
//! - Shutdown begins on SIGTERM or SIGINT, or when any task stops, whether
//!   with an error or (for a task meant to run until shutdown) without one.
//! - Each task reacts to the token in its own way (the admission server
//!   keeps admitting for `--shutdown-delay`, then drains; the controller
//!   stops its reconciles and releases the Lease), concurrently.
//! - The *final* tasks (the admin server, which reports readiness) are told
//!   to stop only once every other task has stopped, so `/readyz` answers
//!   "shutting down" for as long as anything still runs.
//! - [`Tasks::run`] returns once every task has stopped: the first error, if
//!   any, else `Ok`. Nothing is left running behind it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What `serve` does on SIGTERM or SIGINT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// How long to report not ready while still admitting (`--shutdown-delay`).
    pub delay: Duration,
    /// How long in-flight requests, running reconciles and the Lease release
    /// each get to finish (`--shutdown-grace`).
    pub grace: Duration,
}

/// Why a task stopped serve.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The task failed.
    #[error("{task} failed: {source}")]
    Failed {
        /// Which task.
        task: &'static str,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A task that runs until shutdown ended before it.
    #[error("{task} stopped unexpectedly")]
    Stopped {
        /// Which task.
        task: &'static str,
    },
    /// The task panicked.
    #[error("{task} panicked: {message}")]
    Panicked {
        /// Which task.
        task: &'static str,
        /// The panic's message.
        message: String,
    },
}

/// The shutdown token handed to each task: cancelled when shutdown begins.
pub type Shutdown = CancellationToken;

type Outcome = (&'static str, bool, Result<(), TaskError>);

/// The tasks of one `serve`, and its shutdown token.
#[derive(Debug, Default)]
pub struct Tasks {
    shutdown: CancellationToken,
    others_stopped: CancellationToken,
    set: JoinSet<Outcome>,
    /// Names of the tasks still running, with whether each is final.
    running: Vec<(&'static str, bool)>,
}

impl Tasks {
    /// An empty set.
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// The token every task listens to.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Spawns `task`, which must return once `shutdown` is cancelled;
    /// returning earlier (even `Ok`) stops serve.
    pub fn spawn<F, E>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.insert(name, false, failed(name, task));
    }

    /// Spawns `task`, which runs until the shutdown token is cancelled (it
    /// is dropped then); its ending before that stops serve.
    pub fn spawn_until_shutdown<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.insert(name, false, async move {
            tokio::select! {
                () = task => Err(TaskError::Stopped { task: name }),
                () = shutdown.cancelled() => Ok(()),
            }
        });
    }

    /// Spawns a final task: `task` gets a token cancelled once shutdown has
    /// begun and every non-final task has stopped, and must return then.
    pub fn spawn_final<F, E>(&mut self, name: &'static str, task: impl FnOnce(Shutdown) -> F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let fut = task(self.others_stopped.clone());
        self.insert(name, true, failed(name, fut));
    }

    fn insert<F>(&mut self, name: &'static str, last: bool, task: F)
    where
        F: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.running.push((name, last));
        self.set.spawn(async move {
            let result = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(Ok(())) if shutdown.is_cancelled() => Ok(()),
                Ok(Ok(())) => Err(TaskError::Stopped { task: name }),
                Ok(Err(e)) => Err(e),
                Err(panic) => Err(TaskError::Panicked {
                    task: name,
                    message: panic_message(panic.as_ref()),
                }),
            };
            (name, last, result)
        });
    }

    /// Runs until every task has stopped. Shutdown begins when `stop`
    /// resolves (with the reason, e.g. the signal's name) or a task stops;
    /// `on_shutdown` runs once when it begins. Returns the first task error.
    pub async fn run(
        mut self,
        stop: impl Future<Output = &'static str>,
        on_shutdown: impl FnOnce(),
    ) -> Result<(), TaskError> {
        let mut on_shutdown = Some(on_shutdown);
        let mut begin = |why: &dyn std::fmt::Display, shutdown: &CancellationToken| {
            if let Some(f) = on_shutdown.take() {
                tracing::info!(reason = %why, "shutting down");
                f();
            }
            shutdown.cancel();
        };
        let mut stop = std::pin::pin!(stop);
        let mut first_error = None;
        loop {
            if self.running.iter().all(|(_, last)| *last) {
                if !self.shutdown.is_cancelled() {
                    begin(&"nothing left to run", &self.shutdown);
                }
                self.others_stopped.cancel();
            }
            let joined = tokio::select! {
                why = &mut stop, if !self.shutdown.is_cancelled() => {
                    begin(&why, &self.shutdown);
                    continue;
                }
                joined = self.set.join_next() => joined,
            };
            let Some(joined) = joined else { break };
            // Panics are caught inside each task and the set is never
            // aborted, so every task reports its own outcome.
            let (name, result) = match joined {
                Ok((name, _, result)) => (name, result),
                Err(join) => (
                    "a task",
                    Err(TaskError::Panicked {
                        task: "a task",
                        message: join.to_string(),
                    }),
                ),
            };
            if let Some(i) = self.running.iter().position(|(n, _)| *n == name) {
                self.running.remove(i);
            }
            match result {
                Ok(()) => tracing::debug!(task = name, "stopped"),
                Err(error) => {
                    tracing::error!(%error, "task stopped");
                    begin(&error, &self.shutdown);
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// `task`'s error as a [`TaskError::Failed`] naming it.
async fn failed<E>(
    name: &'static str,
    task: impl Future<Output = Result<(), E>>,
) -> Result<(), TaskError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    task.await.map_err(|e| TaskError::Failed {
        task: name,
        source: Box::new(e),
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// SIGTERM and SIGINT.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either; returns its name.
    pub async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    type Log = Arc<Mutex<Vec<&'static str>>>;

    fn note(log: &Log, what: &'static str) {
        log.lock().unwrap().push(what);
    }

    /// A task that stops `after` once shutdown began, noting it.
    async fn worker(
        shutdown: Shutdown,
        log: Log,
        name: &'static str,
        after: Duration,
    ) -> Result<(), std::io::Error> {
        shutdown.cancelled().await;
        tokio::time::sleep(after).await;
        note(&log, name);
        Ok(())
    }

    fn admin(tasks: &mut Tasks, log: &Log) {
        let log = log.clone();
        tasks.spawn_final("admin", move |others_stopped| async move {
            others_stopped.cancelled().await;
            note(&log, "admin");
            Ok::<_, std::io::Error>(())
        });
    }

    #[tokio::test]
    async fn a_signal_stops_every_task_and_the_final_one_last() {
        let log = Log::default();
        let mut tasks = Tasks::new();
        let slow = worker(
            tasks.shutdown(),
            log.clone(),
            "slow",
            Duration::from_millis(50),
        );
        let fast = worker(tasks.shutdown(), log.clone(), "fast", Duration::ZERO);
        tasks.spawn("slow", slow);
        tasks.spawn("fast", fast);
        admin(&mut tasks, &log);
        let began = log.clone();
        let result = tasks
            .run(async { "SIGTERM" }, move || note(&began, "shutting down"))
            .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            *log.lock().unwrap(),
            ["shutting down", "fast", "slow", "admin"]
        );
    }

    #[tokio::test]
    async fn a_failing_task_stops_serve_with_its_error() {
        let log = Log::default();
        let mut tasks = Tasks::new();
        let other = worker(
            tasks.shutdown(),
            log.clone(),
            "other",
            Duration::from_millis(10),
        );
        tasks.spawn("other", other);
        tasks.spawn("certificate file reloader", async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Err(std::io::Error::other("disk on fire"))
        });
        admin(&mut tasks, &log);
        let began = log.clone();
        let error = tasks
            .run(std::future::pending(), move || {
                note(&began, "shutting down")
            })
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "certificate file reloader failed: disk on fire"
        );
        assert_eq!(*log.lock().unwrap(), ["shutting down", "other", "admin"]);
    }

    #[tokio::test]
    async fn a_task_that_ends_or_panics_before_shutdown_stops_serve() {
        let mut tasks = Tasks::new();
        tasks.spawn_until_shutdown("catalog watch", async {});
        let error = tasks.run(std::future::pending(), || {}).await.unwrap_err();
        assert_eq!(error.to_string(), "catalog watch stopped unexpectedly");

        let mut tasks = Tasks::new();
        tasks.spawn("controller", async {
            if true {
                panic!("bug");
            }
            Ok::<_, std::io::Error>(())
        });
        let log = Log::default();
        admin(&mut tasks, &log);
        let error = tasks.run(std::future::pending(), || {}).await.unwrap_err();
        assert_eq!(error.to_string(), "controller panicked: bug");
        assert_eq!(*log.lock().unwrap(), ["admin"]);
    }

    #[tokio::test]
    async fn tasks_spawned_until_shutdown_are_dropped_then() {
        let mut tasks = Tasks::new();
        tasks.spawn_until_shutdown("poller", std::future::pending());
        let mut shut = 0;
        let result = tasks.run(async { "SIGINT" }, || shut += 1).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(shut, 1);
    }
}
