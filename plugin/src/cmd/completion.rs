//! Shell completion, two ways.
//!
//! - Through kubectl (1.26+): for `kubectl ephemeral <TAB>` kubectl runs an
//!   executable named `kubectl_complete-ephemeral` from `PATH` with the words
//!   typed after `ephemeral`, the last being the word to complete (empty for a
//!   new word), and reads back one candidate per line (`value<TAB>description`)
//!   and a last line `:<directive>` (cobra's ShellCompDirective: 0 default,
//!   i.e. also offer files; 4 no file completion). When this binary runs under
//!   that name (a symlink), it answers that protocol, with environment, set, app,
//!   template, bundle, namespace and context names looked up live.
//! - Standalone: `completion bash|zsh|fish` prints a clap_complete script for
//!   `kubectl-ephemeral` itself.

use std::io::Write;
use std::time::Duration;

use clap::CommandFactory;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::api;
use crate::cli::{Cli, KubeArgs, Shell};
use crate::set_view;
use crate::summary;
use crate::time::Clock;

/// The executable name kubectl looks for.
pub const EXECUTABLE: &str = "kubectl_complete-ephemeral";
/// cobra's ShellCompDirectiveDefault: the shell may also offer file names.
pub const DEFAULT: u32 = 0;
/// cobra's ShellCompDirectiveNoFileComp: offer only our candidates.
pub const NO_FILE_COMP: u32 = 4;
/// How long completion may wait for the cluster.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);

/// What to offer for the word being completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// These candidates, with descriptions.
    Fixed(Vec<(String, String)>),
    /// File names (left to the shell).
    Files,
    /// Environments of the namespace.
    Environments,
    /// EnvironmentSets of the namespace.
    Sets,
    /// Apps of an environment.
    Apps(String),
    /// AppTemplates of the namespace.
    Templates,
    /// AppBundles of the namespace.
    Bundles,
    /// Namespaces of the cluster.
    Namespaces,
    /// Contexts of the kubeconfig.
    Contexts,
    /// Nothing to offer (a new name, a free-form value).
    Nothing,
}

/// What the typed words ask for.
#[derive(Clone, Debug)]
pub struct Plan {
    /// What to offer.
    pub want: Want,
    /// The word typed so far; candidates must start with it.
    pub prefix: String,
    /// Text to put before each candidate (`--output=` when completing `--output=ya`).
    pub lead: String,
    /// `--kubeconfig`, `--context`, `-n` found among the words.
    pub kube: KubeArgs,
}

fn values(arg: &clap::Arg) -> Vec<(String, String)> {
    arg.get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| {
            (
                v.get_name().to_owned(),
                v.get_help().map(|h| h.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_action().takes_values() && arg.get_num_args().is_none_or(|n| n.min_values() > 0)
}

/// What to offer for a flag's value.
fn value_want(sub: &str, arg: &clap::Arg) -> Want {
    match (sub, arg.get_id().as_str()) {
        (_, "namespace") => Want::Namespaces,
        (_, "context") => Want::Contexts,
        (_, "kubeconfig" | "filename" | "filenames") => Want::Files,
        ("create", "apps") => Want::Templates,
        ("create", "bundles") => Want::Bundles,
        ("add-app", "template") => Want::Templates,
        _ if !arg.get_possible_values().is_empty() => Want::Fixed(values(arg)),
        _ => Want::Nothing,
    }
}

fn record(kube: &mut KubeArgs, arg: &clap::Arg, value: &str) {
    match arg.get_id().as_str() {
        "namespace" => kube.namespace = Some(value.to_owned()),
        "context" => kube.context = Some(value.to_owned()),
        "kubeconfig" => kube.kubeconfig = Some(value.into()),
        _ => {}
    }
}

fn find_long<'a>(cmd: &'a clap::Command, name: &str) -> Option<&'a clap::Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(name))
}

fn find_short(cmd: &clap::Command, c: char) -> Option<&clap::Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

/// Works out what to complete from the words after `ephemeral` (the last is the word being typed).
pub fn plan(words: &[String]) -> Plan {
    let root = Cli::command();
    let (typed, before) = match words.split_last() {
        Some((last, rest)) => (last.clone(), rest),
        None => (String::new(), &[][..]),
    };
    let mut kube = KubeArgs::default();
    let done = |want, prefix: &str, lead: &str, kube| Plan {
        want,
        prefix: prefix.to_owned(),
        lead: lead.to_owned(),
        kube,
    };
    let Some(sub_index) = before.iter().position(|w| !w.starts_with('-')) else {
        if typed.starts_with('-') {
            return done(Want::Fixed(flags(&root)), &typed, "", kube);
        }
        let subs = root
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| {
                (
                    s.get_name().to_owned(),
                    s.get_about().map(|a| a.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        return done(Want::Fixed(subs), &typed, "", kube);
    };
    let name = &before[sub_index];
    let Some(sub) = root.find_subcommand(name) else {
        return done(Want::Nothing, &typed, "", kube);
    };
    let sub_name = sub.get_name().to_owned();
    let mut positionals: Vec<&str> = Vec::new();
    let mut pending: Option<&clap::Arg> = None;
    for word in &before[sub_index + 1..] {
        if let Some(arg) = pending.take() {
            record(&mut kube, arg, word);
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (flag, value) = match long.split_once('=') {
                Some((f, v)) => (f, Some(v)),
                None => (long, None),
            };
            if let Some(arg) = find_long(sub, flag) {
                match value {
                    Some(v) => record(&mut kube, arg, v),
                    None if takes_value(arg) => pending = Some(arg),
                    None => {}
                }
            }
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = shorts.chars();
            if let Some(arg) = chars.next().and_then(|c| find_short(sub, c)) {
                let rest: String = chars.collect();
                if takes_value(arg) {
                    if rest.is_empty() {
                        pending = Some(arg);
                    } else {
                        record(&mut kube, arg, rest.trim_start_matches('='));
                    }
                }
            }
        } else {
            positionals.push(word);
        }
    }
    if let Some(arg) = pending {
        return done(value_want(&sub_name, arg), &typed, "", kube);
    }
    if let Some(long) = typed.strip_prefix("--")
        && let Some((flag, value)) = long.split_once('=')
    {
        let want = find_long(sub, flag)
            .map(|a| value_want(&sub_name, a))
            .unwrap_or(Want::Nothing);
        return done(want, value, &format!("--{flag}="), kube);
    }
    if typed.starts_with('-') {
        return done(Want::Fixed(flags(sub)), &typed, "", kube);
    }
    let want = match (sub_name.as_str(), positionals.len()) {
        ("describe" | "extend" | "delete" | "wait" | "add-app" | "set-app" | "remove-app", 0) => {
            Want::Environments
        }
        ("sets", 0) => Want::Sets,
        ("set-app" | "remove-app", 1) => Want::Apps(positionals[0].to_owned()),
        ("add-app", 1) => Want::Templates,
        ("completion", 0) => sub
            .get_positionals()
            .next()
            .map(|a| Want::Fixed(values(a)))
            .unwrap_or(Want::Nothing),
        _ => Want::Nothing,
    };
    done(want, &typed, "", kube)
}

fn flags(cmd: &clap::Command) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .filter_map(|a| {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            a.get_long().map(|l| (format!("--{l}"), help))
        })
        .collect();
    out.push(("--help".to_owned(), "Print help".to_owned()));
    out
}

/// Looks up names in the cluster for what `want` asks; errors give no candidates.
pub async fn lookup(
    want: &Want,
    client: &kube::Client,
    namespace: &str,
    clock: &Clock,
) -> Vec<(String, String)> {
    let lookup = async {
        Some(match want {
            Want::Environments => api::environments(client, namespace)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(|e| {
                    (
                        e.name_any(),
                        format!("{}, {}", summary::owner(e), summary::lease(e, clock)),
                    )
                })
                .collect(),
            Want::Sets => api::sets(client, namespace)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(|set| {
                    let ready = set
                        .status
                        .as_ref()
                        .and_then(|s| s.ready_environments.as_deref())
                        .map(|r| format!(", {r} ready"))
                        .unwrap_or_default();
                    (
                        set.name_any(),
                        format!("{}{ready}", set_view::repository(set)),
                    )
                })
                .collect(),
            Want::Apps(env) => api::environments(client, namespace)
                .get(env)
                .await
                .ok()?
                .spec
                .apps
                .iter()
                .map(|a| {
                    let follows = a.image_tag_prefix.clone().unwrap_or_default();
                    (a.name.clone(), follows)
                })
                .collect(),
            Want::Templates => api::templates(client, namespace)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(|t| (t.name_any(), t.spec.description.clone().unwrap_or_default()))
                .collect(),
            Want::Bundles => api::bundles(client, namespace)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(|b| (b.name_any(), b.spec.description.clone().unwrap_or_default()))
                .collect(),
            Want::Namespaces => Api::<Namespace>::all(client.clone())
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(|n| (n.name_any(), String::new()))
                .collect(),
            _ => Vec::new(),
        })
    };
    tokio::time::timeout(CLUSTER_TIMEOUT, lookup)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Writes candidates starting with `plan.prefix`, then the directive line.
pub fn answer(
    out: &mut dyn Write,
    plan: &Plan,
    candidates: &[(String, String)],
) -> std::io::Result<()> {
    if plan.want == Want::Files {
        return writeln!(out, ":{DEFAULT}");
    }
    for (value, help) in candidates
        .iter()
        .filter(|(v, _)| v.starts_with(&plan.prefix))
    {
        // One line per candidate: descriptions must not break the protocol.
        let help = help.lines().next().unwrap_or_default();
        if help.is_empty() {
            writeln!(out, "{}{value}", plan.lead)?;
        } else {
            writeln!(out, "{}{value}\t{help}", plan.lead)?;
        }
    }
    writeln!(out, ":{NO_FILE_COMP}")
}

/// Answers kubectl's completion request for `words`, asking the cluster when needed.
pub async fn complete(words: &[String], out: &mut dyn Write) -> std::io::Result<()> {
    let plan = plan(words);
    let candidates = match &plan.want {
        Want::Fixed(c) => c.clone(),
        Want::Contexts => crate::client::contexts(&plan.kube)
            .into_iter()
            .map(|c| (c, String::new()))
            .collect(),
        Want::Files | Want::Nothing => Vec::new(),
        cluster => match crate::client::connect(&plan.kube, None).await {
            Ok(c) => lookup(cluster, &c.client, &c.namespace, &Clock::system()).await,
            Err(_) => Vec::new(),
        },
    };
    answer(out, &plan, &candidates)
}

/// Prints the standalone completion script for `shell`.
pub fn script(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = Cli::command().bin_name("kubectl-ephemeral");
    writeln!(
        out,
        "# Completion for kubectl-ephemeral run on its own. For `kubectl ephemeral <TAB>`\n\
         # (kubectl 1.26+) no script is needed: put a symlink named {EXECUTABLE}\n\
         # to kubectl-ephemeral on your PATH, e.g.\n\
         #   cd \"$(dirname \"$(command -v kubectl-ephemeral)\")\" && ln -s kubectl-ephemeral {EXECUTABLE}"
    )?;
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Generated into memory first: clap_complete panics when its writer fails (`| head`).
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kubectl-ephemeral", &mut text);
    out.write_all(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &[&str]) -> Plan {
        plan(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    fn names(want: &Want) -> Vec<&str> {
        match want {
            Want::Fixed(c) => c.iter().map(|(v, _)| v.as_str()).collect(),
            other => panic!("not fixed: {other:?}"),
        }
    }

    #[test]
    fn subcommands_first() {
        let plan = p(&[""]);
        let subs = names(&plan.want);
        assert!(
            subs.contains(&"create") && subs.contains(&"describe") && subs.contains(&"add-app")
        );
        assert_eq!(p(&["de"]).prefix, "de");
    }

    #[test]
    fn environment_names_where_a_name_goes() {
        assert_eq!(p(&["describe", ""]).want, Want::Environments);
        assert_eq!(p(&["extend", "-n", "dev", "al"]).want, Want::Environments);
        assert_eq!(
            p(&["extend", "-n", "dev", "al"]).kube.namespace.as_deref(),
            Some("dev")
        );
        assert_eq!(p(&["create", ""]).want, Want::Nothing);
    }

    #[test]
    fn set_names_where_a_set_goes() {
        assert_eq!(p(&["sets", ""]).want, Want::Sets);
        assert_eq!(p(&["sets", "-n", "previews", "sh"]).want, Want::Sets);
        assert_eq!(p(&["sets", "shop-prs", ""]).want, Want::Nothing);
        assert_eq!(
            names(&p(&["sets", "-o", ""]).want),
            ["yaml", "json", "name"]
        );
    }

    #[test]
    fn app_names_of_the_environment_typed() {
        let plan = p(&["set-app", "--context", "prod", "alice", ""]);
        assert_eq!(plan.want, Want::Apps("alice".into()));
        assert_eq!(plan.kube.context.as_deref(), Some("prod"));
        assert_eq!(p(&["add-app", "alice", "ch"]).want, Want::Templates);
        assert_eq!(p(&["create", "x", "--app", ""]).want, Want::Templates);
        assert_eq!(p(&["create", "x", "--bundle", ""]).want, Want::Bundles);
    }

    #[test]
    fn flag_values() {
        assert_eq!(p(&["list", "-n", ""]).want, Want::Namespaces);
        assert_eq!(p(&["list", "--context", ""]).want, Want::Contexts);
        assert_eq!(p(&["create", "-f", ""]).want, Want::Files);
        assert_eq!(
            names(&p(&["list", "-o", ""]).want),
            ["table", "wide", "yaml", "json", "name"]
        );
        assert_eq!(
            names(&p(&["wait", "x", "--for", ""]).want),
            ["ready", "delete"]
        );
        let eq = p(&["create", "x", "--dry-run=s"]);
        assert_eq!((eq.lead.as_str(), eq.prefix.as_str()), ("--dry-run=", "s"));
        assert_eq!(names(&p(&["completion", ""]).want), ["bash", "zsh", "fish"]);
    }

    #[test]
    fn flags_of_the_subcommand() {
        let plan = p(&["list", "--"]);
        let flags = names(&plan.want);
        assert!(flags.contains(&"--all-namespaces") && flags.contains(&"--mine"));
        assert!(flags.contains(&"--namespace") && flags.contains(&"--help"));
    }

    #[test]
    fn the_protocol() {
        let plan = p(&["list", "-o", "y"]);
        let Want::Fixed(c) = &plan.want else { panic!() };
        let mut out = Vec::new();
        answer(&mut out, &plan, c).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "yaml\tA `v1` `List` as YAML\n:4\n"
        );
        let plan = p(&["create", "--filename", ""]);
        let mut out = Vec::new();
        answer(&mut out, &plan, &[]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), ":0\n");
    }
}
