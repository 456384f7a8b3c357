//! Connecting as kubectl does: `--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`
//! (else in-cluster), `--context`, and the context's namespace unless `-n` says otherwise;
//! and showing the API server's warnings as kubectl does.

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cli::KubeArgs;
use crate::error::{Error, causes};
use crate::warnings::{self, Warnings};

/// A client and where it points.
pub struct Connection {
    /// The client.
    pub client: Client,
    /// The namespace to work in: `-n`, else the context's, else `default`.
    pub namespace: String,
    /// The API server URL, for error messages.
    pub server: String,
}

/// Loads the client configuration the way kubectl would.
pub async fn config(args: &KubeArgs) -> Result<Config, Error> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| Error::Kubeconfig(format!("{}: {}", path.display(), causes(&e))))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None if args.context.is_some() => Config::from_kubeconfig(&options).await,
        // No flags: the kubeconfig, else the in-cluster service account (as kubectl does).
        None => {
            return Config::infer().await.map_err(|e| {
                match nothing_configured(
                    std::env::var_os("KUBECONFIG").as_deref(),
                    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
                    std::env::home_dir().map(|h| h.join(".kube").join("config")),
                ) {
                    Some(default) => Error::NoKubeconfig {
                        default: default.display().to_string(),
                    },
                    None => Error::Kubeconfig(causes(&e)),
                }
            });
        }
    };
    config.map_err(|e| Error::Kubeconfig(causes(&e)))
}

/// The default kubeconfig path when nothing says which cluster to use: no
/// `KUBECONFIG`, no file at the default path, not in a pod. Pure.
pub fn nothing_configured(
    kubeconfig_env: Option<&std::ffi::OsStr>,
    in_cluster: bool,
    default: Option<std::path::PathBuf>,
) -> Option<std::path::PathBuf> {
    if kubeconfig_env.is_some_and(|v| !v.is_empty()) || in_cluster {
        return None;
    }
    default.filter(|path| !path.exists())
}

/// Connects: configuration, client, namespace. With `warnings`, every API
/// answer's `Warning` headers go there (commands: [`Warnings::stderr`]);
/// without, they are dropped (shell completion, whose stderr is the prompt).
pub async fn connect(args: &KubeArgs, warnings: Option<Warnings>) -> Result<Connection, Error> {
    let config = config(args).await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let builder = ClientBuilder::try_from(config).map_err(|e| Error::Unreachable {
        server: Some(server.clone()),
        cause: causes(&e),
    })?;
    let client = match warnings {
        Some(w) => builder.with_layer(&warnings::layer(w)).build(),
        None => builder.build(),
    };
    Ok(Connection {
        client,
        namespace,
        server,
    })
}

/// The contexts of the kubeconfig (for completion).
pub fn contexts(args: &KubeArgs) -> Vec<String> {
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    };
    kubeconfig
        .map(|k| k.contexts.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
- name: other
  cluster: {server: "https://10.0.0.1:6443"}
users:
- name: u
  user: {token: abc}
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: team-a}
- name: prod
  context: {cluster: other, user: u}
"#;

    fn file() -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), KUBECONFIG).unwrap();
        f
    }

    #[tokio::test]
    async fn the_contexts_namespace_is_the_default() {
        let f = file();
        let args = KubeArgs {
            kubeconfig: Some(f.path().to_path_buf()),
            ..KubeArgs::default()
        };
        let c = connect(&args, None).await.unwrap();
        assert_eq!(c.namespace, "team-a");
        assert_eq!(c.server, "https://127.0.0.1:6443/");
    }

    #[tokio::test]
    async fn context_and_namespace_flags_win() {
        let f = file();
        let args = KubeArgs {
            kubeconfig: Some(f.path().to_path_buf()),
            context: Some("prod".into()),
            namespace: None,
        };
        let c = connect(&args, None).await.unwrap();
        assert_eq!(c.namespace, "default");
        assert_eq!(c.server, "https://10.0.0.1:6443/");
        let args = KubeArgs {
            namespace: Some("mine".into()),
            ..args
        };
        assert_eq!(connect(&args, None).await.unwrap().namespace, "mine");
    }

    #[tokio::test]
    async fn an_unknown_context_says_what_to_check() {
        let f = file();
        let args = KubeArgs {
            kubeconfig: Some(f.path().to_path_buf()),
            context: Some("nope".into()),
            namespace: None,
        };
        let Err(e) = connect(&args, None).await else {
            panic!("an unknown context must fail")
        };
        let text = e.to_string();
        assert!(text.contains("nope"), "{text}");
        assert!(text.contains("--context"), "{text}");
    }

    #[test]
    fn nothing_configured_only_without_kubeconfig_env_file_or_pod() {
        let f = file();
        let missing = f.path().with_extension("missing");
        assert_eq!(
            nothing_configured(None, false, Some(missing.clone())),
            Some(missing.clone())
        );
        assert_eq!(
            nothing_configured(Some("".as_ref()), false, Some(missing.clone())),
            Some(missing.clone())
        );
        assert_eq!(
            nothing_configured(Some("/x".as_ref()), false, Some(missing.clone())),
            None
        );
        assert_eq!(nothing_configured(None, true, Some(missing)), None);
        assert_eq!(
            nothing_configured(None, false, Some(f.path().to_path_buf())),
            None
        );
    }

    #[test]
    fn contexts_for_completion() {
        let f = file();
        let args = KubeArgs {
            kubeconfig: Some(f.path().to_path_buf()),
            ..KubeArgs::default()
        };
        assert_eq!(contexts(&args), ["dev", "prod"]);
    }
}
