//! Errors of the cluster commands, worded so a person knows what to do next.

use crate::input::InputError;
use crate::output::OutputError;

/// What a failed API call was about, so its error can say so.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Resource, e.g. `environments.ephemeral.io`.
    pub resource: &'static str,
    /// Object name, when the call was about one object.
    pub name: Option<&'a str>,
    /// Namespace, when namespaced.
    pub namespace: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// An Environment.
    pub fn environment(name: &'a str, namespace: &'a str) -> Self {
        Target {
            resource: ENVIRONMENTS,
            name: Some(name),
            namespace: Some(namespace),
        }
    }

    /// An EnvironmentSet.
    pub fn set(name: &'a str, namespace: &'a str) -> Self {
        Target {
            resource: ENVIRONMENTSETS,
            name: Some(name),
            namespace: Some(namespace),
        }
    }

    /// A collection of a resource.
    pub fn collection(resource: &'static str, namespace: Option<&'a str>) -> Self {
        Target {
            resource,
            name: None,
            namespace,
        }
    }
}

/// `environments.ephemeral.io`.
pub const ENVIRONMENTS: &str = "environments.ephemeral.io";
/// `environmentsets.ephemeral.io`.
pub const ENVIRONMENTSETS: &str = "environmentsets.ephemeral.io";
/// `apptemplates.ephemeral.io`.
pub const APPTEMPLATES: &str = "apptemplates.ephemeral.io";
/// `appbundles.ephemeral.io`.
pub const APPBUNDLES: &str = "appbundles.ephemeral.io";

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong usage that clap cannot see (a time that does not parse, conflicting input).
    #[error("{0}")]
    Usage(String),
    /// No usable kubeconfig.
    #[error(
        "cannot load a kubeconfig: {0}. Fix: set KUBECONFIG or pass --kubeconfig PATH, and check --context (kubectl config get-contexts)"
    )]
    Kubeconfig(String),
    /// No kubeconfig anywhere, and not in a pod: nothing says which cluster.
    #[error(
        "no cluster configured: KUBECONFIG is not set, {default} does not exist, and this is not a pod in a cluster. Fix: get a kubeconfig for your cluster (from its admin or your cloud provider's CLI), then pass --kubeconfig PATH or set KUBECONFIG=PATH; `kubectl cluster-info` tells you when it works"
    )]
    NoKubeconfig {
        /// The default kubeconfig path looked at.
        default: String,
    },
    /// The API server could not be reached.
    #[error(
        "cannot reach the Kubernetes API server{server}: {cause}. Fix: check that the cluster is up and the context is right (kubectl config current-context; kubectl cluster-info)",
        server = server.as_deref().map(|s| format!(" at {s}")).unwrap_or_default()
    )]
    Unreachable {
        /// The server URL, once known.
        server: Option<String>,
        /// What went wrong, every cause once.
        cause: String,
    },
    /// The ephemeral.io CRDs are missing.
    #[error(
        "the cluster does not know {resource}: the kubectl-ephemeral CRDs are not installed. Fix: install them with `kubectl apply -k manifests/default` from a checkout of kubectl-ephemeral (or ask your cluster admin)"
    )]
    CrdsMissing {
        /// The resource the server did not know.
        resource: &'static str,
    },
    /// The Environment does not exist.
    #[error(
        "environment \"{name}\" not found in namespace \"{namespace}\". See which exist: kubectl ephemeral list -n {namespace} (or -A for every namespace)"
    )]
    NotFound {
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// The EnvironmentSet does not exist.
    #[error(
        "environmentset \"{name}\" not found in namespace \"{namespace}\". See which exist: kubectl ephemeral sets -n {namespace} (or -A for every namespace)"
    )]
    SetNotFound {
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// The API server (or the admission webhook) refused; its message as is.
    #[error("{message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// The server's message, unchanged.
        message: String,
    },
    /// An app named on the command line is not in the environment.
    #[error("environment \"{env}\" has no app \"{app}\" (its apps: {apps})")]
    NoSuchApp {
        /// The environment.
        env: String,
        /// The app asked for.
        app: String,
        /// The apps it has.
        apps: String,
    },
    /// The app to add is already there.
    #[error(
        "environment \"{env}\" already has an app \"{app}\". Fix: change it with kubectl ephemeral set-app {env} {app} --prefix P|--branch B"
    )]
    AppExists {
        /// The environment.
        env: String,
        /// The app.
        app: String,
    },
    /// The app to remove comes from a bundle and would come back.
    #[error(
        "app \"{app}\" of environment \"{env}\" comes from bundle {bundles}; the webhook would add it back. Fix: remove the bundle from spec.bundles (kubectl edit environment {env}) or keep the app"
    )]
    FromBundle {
        /// The environment.
        env: String,
        /// The app.
        app: String,
        /// The bundles holding it.
        bundles: String,
    },
    /// `wait` gave up.
    #[error(
        "timed out after {timeout} waiting for environment \"{name}\" to {what}; last seen: {last}"
    )]
    Timeout {
        /// The environment.
        name: String,
        /// What was awaited.
        what: &'static str,
        /// The timeout as given.
        timeout: String,
        /// The state last seen.
        last: String,
    },
    /// `create -f` could not read its file.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Printing failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Output(OutputError::Io(e))
    }
}

impl Error {
    /// The process exit code: 2 for usage errors, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    /// Whether output stopped because its reader went away (`| head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(OutputError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Classifies a kube error from a call about `target`.
    pub fn from_kube(e: kube::Error, target: Target<'_>) -> Error {
        match e {
            kube::Error::Api(status) => {
                let named = status.details.as_ref().is_some_and(|d| !d.name.is_empty());
                match (status.code, target.name, target.namespace) {
                    // A 404 without a name: the server does not know the resource at all.
                    (404, _, _) if !named && target.resource.ends_with(".ephemeral.io") => {
                        Error::CrdsMissing {
                            resource: target.resource,
                        }
                    }
                    (404, Some(name), Some(ns)) if target.resource == ENVIRONMENTS => {
                        Error::NotFound {
                            name: name.to_owned(),
                            namespace: ns.to_owned(),
                        }
                    }
                    (404, Some(name), Some(ns)) if target.resource == ENVIRONMENTSETS => {
                        Error::SetNotFound {
                            name: name.to_owned(),
                            namespace: ns.to_owned(),
                        }
                    }
                    (code, _, _) => Error::Api {
                        code,
                        message: if status.message.is_empty() {
                            format!("the API server answered {code} {}", status.reason)
                        } else {
                            status.message
                        },
                    },
                }
            }
            other => Error::Unreachable {
                server: None,
                cause: causes(&other),
            },
        }
    }
}

/// An error and its causes, each once (kube's errors repeat their source in their message).
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn status(code: u16, message: &str, name: Option<&str>) -> kube::Error {
        let mut s = Status::failure(message, "NotFound");
        s.code = code;
        s.details = name.map(|n| {
            serde_json::from_value(serde_json::json!({"name": n, "kind": "environments"})).unwrap()
        });
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn a_404_without_a_name_means_no_crds() {
        let e = Error::from_kube(
            status(
                404,
                "the server could not find the requested resource",
                None,
            ),
            Target::environment("alice", "dev"),
        );
        assert!(matches!(e, Error::CrdsMissing { .. }));
        assert!(e.to_string().contains("kubectl apply -k manifests/default"));
    }

    #[test]
    fn a_named_404_suggests_list() {
        let e = Error::from_kube(
            status(
                404,
                "environments.ephemeral.io \"alice\" not found",
                Some("alice"),
            ),
            Target::environment("alice", "dev"),
        );
        assert_eq!(
            e.to_string(),
            "environment \"alice\" not found in namespace \"dev\". See which exist: kubectl ephemeral list -n dev (or -A for every namespace)"
        );
    }

    #[test]
    fn a_named_404_of_a_set_suggests_sets() {
        let e = Error::from_kube(
            status(
                404,
                "environmentsets.ephemeral.io \"shop\" not found",
                Some("shop"),
            ),
            Target::set("shop", "previews"),
        );
        assert_eq!(
            e.to_string(),
            "environmentset \"shop\" not found in namespace \"previews\". See which exist: kubectl ephemeral sets -n previews (or -A for every namespace)"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn a_webhook_denial_is_shown_as_is() {
        let msg = "admission webhook \"validate.ephemeral.io\" denied the request: only the owner (alice) or an admin may delete environment alice";
        let e = Error::from_kube(status(403, msg, None), Target::environment("alice", "dev"));
        assert_eq!(e.to_string(), msg);
        assert_eq!(e.exit_code(), 1);
    }
}
