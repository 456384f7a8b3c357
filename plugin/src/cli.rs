// Over 400 lines of non-test code: the clap definition of every command with its long help and examples, one declarative table; the commands' code lives in cmd/.
//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use ephemeral_core::config::ConfigArgs;

const AFTER_HELP: &str = "\
Exit codes:
  0    success
  1    error: refused (by the webhook or a rule), not found, cluster unreachable, input unreadable
  2    wrong usage (unknown flag, missing argument, a time or duration that does not parse)
  130  interrupted (Ctrl-C)

Examples:
  # An environment with checkout from your branch and payments from the catalog, until 21:00
  kubectl ephemeral create alice --app checkout@feature/new-basket --app payments --until 21:00

  # Your environments, and one in detail
  kubectl ephemeral list --mine
  kubectl ephemeral describe alice

  # The environments an EnvironmentSet keeps for pull requests, and where each stands
  kubectl ephemeral sets shop-prs

  # Two more hours, then clean up
  kubectl ephemeral extend alice --for 2h
  kubectl ephemeral delete alice --wait

  # Show what the cluster will get for the shipped examples, offline
  kubectl ephemeral render -R -f examples/";

const RENDER_AFTER_HELP: &str = "\
Kustomizations and HelmReleases are printed as the controller applies them inside the lease \
(spec.suspend: false). Outside it, when suspension is on (ephemeral-webhook serve \
--suspend-outside-uptime, or spec.lease.suspendOutsideUptime: true), the controller applies them \
with spec.suspend: true; render does not know the cluster's flag, so it never prints that.

Exit codes:
  0  success
  1  the input was read but refused (an Environment breaks a rule) or could not be read
  2  wrong usage (unknown flag, missing argument)

Examples:
  # Show what the cluster will get for the shipped examples, offline
  kubectl ephemeral render -R -f examples/

  # The same at a fixed time, as JSON
  kubectl ephemeral render -R -f examples/ --now 2026-11-21T09:00:00Z -o json";

const CREATE_ABOUT: &str = "Create an environment.\n\n\
Each --app names an AppTemplate of the namespace (APP), optionally with the image tag prefix to \
follow (APP=PREFIX) or the git branch whose builds to follow (APP@BRANCH; the webhook derives the \
prefix as CI tags images). Without --until/--for the webhook gives the default lease (the next \
daily cut-off). The owner is whoever creates it.";
const EXTEND_ABOUT: &str = "Move the end of an environment's lease.\n\n\
Give exactly one of --until, --for, or --hour (with --days N: N days from today, the old tool's \
\"until hour H, N days from now\"). Local times are in your zone ($TZ, else the system's); the \
lease is stored in UTC. A weekly schedule is replaced by the new end. The webhook refuses a lease \
beyond the cluster's maximum.";
const COMPLETION_ABOUT: &str = "Print a shell completion script for `kubectl-ephemeral` run on its own.\n\n\
For `kubectl ephemeral <TAB>` (kubectl 1.26 and later) no script is needed: kubectl asks an \
executable named kubectl_complete-ephemeral on your PATH. Make it a symlink to this binary, which \
then answers kubectl's completion protocol, environment and app names included:\n\n  \
cd \"$(dirname \"$(command -v kubectl-ephemeral)\")\"\n  \
ln -s kubectl-ephemeral kubectl_complete-ephemeral";
const RENDER_ABOUT: &str = "Show, offline, exactly what the cluster will make of Environments.\n\n\
Reads files or directories of (multi-document) YAML or JSON holding Environments and the \
catalog they use (AppTemplates, AppBundles, and the GitRepositories that sourceBranch copies; \
ImagePolicies with a status.latestRef.tag supply resolved image tags). For each Environment, \
in input order, prints the Environment as the admission webhook admits it, followed by every \
Flux object the controller creates for it. Needs no kubeconfig and no cluster. Documents of \
other kinds are skipped with a warning.\n\n\
The policy flags must match the cluster's webhook for the output to match the cluster.";

const SETS_ABOUT: &str = "List EnvironmentSets with their pull requests, or show one set in detail.\n\n\
An EnvironmentSet keeps one Environment per open pull request of a GitHub repository that passes \
its filters, and reports back to the pull request. Without NAME: a table of the sets (repository, \
ready Environments out of all, queued pull requests, the Ready condition, last sync with GitHub), \
then one row per pull request (head commit, Environment, state, reason). With NAME: that set in \
detail: its conditions, repository, filters, last sync, rate limit left, the queue, each pull \
request with its Environment as it is now and its commit status as last reported, and recent \
Events. The states are the set's status, as its controller last wrote it.";

const SETS_AFTER_HELP: &str = "\
Exit codes: 0 success, 1 error (a set that does not exist too), 2 wrong usage, 130 interrupted.
kubectl passes no global flags to plugins: put -n, --context and --kubeconfig after `ephemeral`.

Examples:
  # The sets of the namespace and where each pull request stands
  kubectl ephemeral sets -n previews

  # One set: conditions, rate limit, queue, each pull request's commit status, Events
  kubectl ephemeral sets shop-prs -n previews

  # Every namespace's sets; one set as YAML
  kubectl ephemeral sets -A
  kubectl ephemeral sets shop-prs -n previews -o yaml

  # Which set and pull request each Environment came from
  kubectl ephemeral list -n previews -o wide";

const CLUSTER_AFTER_HELP: &str = "\
Exit codes: 0 success, 1 error, 2 wrong usage, 130 interrupted.
API server warnings (e.g. the admission webhook's) go to stderr as \"Warning: TEXT\", as in kubectl.
kubectl passes no global flags to plugins: put -n, --context and --kubeconfig after `ephemeral`.";

/// Ephemeral test environments on Kubernetes, through Flux.
///
/// An Environment names a few apps ("checkout from my branch, payments,
/// web"); the cluster's admission webhook expands it from a catalog of
/// AppTemplates and AppBundles, and its controller materialises it as Flux
/// Kustomizations, HelmReleases, ImagePolicies and GitRepositories.
#[derive(Parser, Debug)]
#[command(name = "kubectl-ephemeral", bin_name = "kubectl ephemeral", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an environment.
    #[command(long_about = CREATE_ABOUT)]
    Create(CreateArgs),
    /// List environments, like `kubectl get`.
    #[command(visible_aliases = ["ls", "get"])]
    List(ListArgs),
    /// Show an environment in detail: lease, apps, image tags, readiness, URLs, events.
    Describe(NameArgs),
    /// List EnvironmentSets with their pull requests, or show one set in detail.
    #[command(long_about = SETS_ABOUT)]
    Sets(SetsArgs),
    /// Move the end of an environment's lease.
    #[command(long_about = EXTEND_ABOUT)]
    Extend(ExtendArgs),
    /// Add an app to an environment.
    AddApp(AddAppArgs),
    /// Change which builds an app of an environment follows.
    SetApp(SetAppArgs),
    /// Remove an app from an environment.
    RemoveApp(RemoveAppArgs),
    /// Delete an environment (and, through Kubernetes garbage collection, its Flux objects).
    Delete(DeleteArgs),
    /// Wait until an environment is ready (or gone).
    Wait(WaitArgs),
    /// List the catalog: AppTemplates and AppBundles with their descriptions.
    Templates(TemplatesArgs),
    /// Show, offline, exactly what the cluster will make of Environments.
    #[command(long_about = RENDER_ABOUT)]
    Render(RenderArgs),
    /// Print a shell completion script.
    #[command(long_about = COMPLETION_ABOUT)]
    Completion(CompletionArgs),
    /// Print the plugin's version.
    Version,
}

/// Which cluster and namespace, as in kubectl.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Cluster")]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// Output formats of commands that print objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObjectFormat {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// Output formats of `list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// A table: NAME, OWNER, APPS, READY, LEASE, AGE.
    Table,
    /// The table plus the set and pull request an environment came from, and
    /// each app with the image tag prefix it follows.
    Wide,
    /// A `v1` `List` as YAML.
    Yaml,
    /// A `v1` `List` as JSON.
    Json,
    /// `environment.ephemeral.io/NAME` per line.
    Name,
}

/// `--dry-run` modes, as in kubectl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Send nothing; print the Environment that would be sent.
    Client,
    /// Ask the API server (and so the admission webhook) without storing; print the admitted Environment.
    Server,
}

/// One `--app` of `create` (and the APP of `add-app`): `APP`, `APP=PREFIX`
/// or `APP@BRANCH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    /// The app's name (and its template's, by default).
    pub name: String,
    /// `=PREFIX`: the image tag prefix to follow.
    pub prefix: Option<String>,
    /// `@BRANCH`: the git branch whose builds to follow.
    pub branch: Option<String>,
}

impl std::str::FromStr for AppSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, prefix, branch) = match (text.split_once('='), text.split_once('@')) {
            (Some((n, p)), None) => (n, Some(p), None),
            (None, Some((n, b))) => (n, None, Some(b)),
            (None, None) => (text, None, None),
            (Some(_), Some(_)) => {
                return Err("write APP, APP=PREFIX or APP@BRANCH, not both = and @".to_owned());
            }
        };
        if name.is_empty() {
            return Err("the app name before = or @ is empty".to_owned());
        }
        if prefix.is_some_and(str::is_empty) || branch.is_some_and(str::is_empty) {
            return Err("nothing after = or @ (write APP=PREFIX or APP@BRANCH)".to_owned());
        }
        Ok(AppSpec {
            name: name.to_owned(),
            prefix: prefix.map(str::to_owned),
            branch: branch.map(str::to_owned),
        })
    }
}

/// The lease flags shared by `create` and `extend`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Lease")]
pub struct LeaseArgs {
    /// Up until this time: HH:MM (the next such time in your local zone, $TZ),
    /// YYYY-MM-DD HH:MM (local), or RFC 3339 (2026-11-21T21:00:00Z).
    #[arg(long, value_name = "TIME", conflicts_with_all = ["for_", "days", "hour"])]
    pub until: Option<String>,
    /// Up for this long from now, e.g. 2h, 90m, 1h30m, 2d.
    #[arg(long = "for", value_name = "DURATION", conflicts_with_all = ["days", "hour"])]
    pub for_: Option<String>,
    /// With --hour: N days from today (0 = today).
    #[arg(long, value_name = "N", requires = "hour")]
    pub days: Option<u32>,
    /// Up until this hour (0-23, local zone), today or --days N from today.
    #[arg(long, value_name = "H", value_parser = clap::value_parser!(u8).range(0..=23))]
    pub hour: Option<u8>,
}

/// `kubectl ephemeral create`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = CLUSTER_AFTER_HELP
)]
pub struct CreateArgs {
    /// Name of the environment (default: the name in -f).
    #[arg(value_name = "NAME", required_unless_present = "filename")]
    pub name: Option<String>,
    /// An app: APP, APP=PREFIX or APP@BRANCH. Repeatable.
    #[arg(long = "app", value_name = "APP[=PREFIX|@BRANCH]")]
    pub apps: Vec<AppSpec>,
    /// Add the apps of an AppBundle. Repeatable.
    #[arg(long = "bundle", value_name = "BUNDLE")]
    pub bundles: Vec<String>,
    /// Track this branch of the apps' GitRepositories too.
    #[arg(long, value_name = "BRANCH")]
    pub source_branch: Option<String>,
    /// Up on a weekly schedule instead, e.g. "Mon-Fri 07:00-19:00 Europe/London".
    #[arg(long, value_name = "SCHEDULE", conflicts_with_all = ["until", "for_", "days", "hour"])]
    pub schedule: Option<String>,
    /// Start from the Environment in this file (YAML or JSON); flags add to it.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: Option<PathBuf>,
    /// Only show what would happen (client: print what would be sent; server: print what the cluster would admit).
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<DryRun>,
    /// Print the Environment (as created or, with --dry-run, as it would be) in this format.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<ObjectFormat>,
    /// The lease.
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `kubectl ephemeral list`.
#[derive(clap::Args, Debug)]
#[command(after_help = CLUSTER_AFTER_HELP)]
pub struct ListArgs {
    /// List environments in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only environments you own (asks the API server who you are).
    #[arg(long, conflicts_with = "owner")]
    pub mine: bool,
    /// Only environments owned by this user.
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
    /// Label selector, as in kubectl (e.g. team=payments).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: ListFormat,
    /// Leave out the header row.
    #[arg(long)]
    pub no_headers: bool,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Output formats of `sets`; without `-o`, a table (or one set in detail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SetsFormat {
    /// YAML: the set, or a `v1` `List` of the sets.
    Yaml,
    /// JSON: the set, or a `v1` `List` of the sets.
    Json,
    /// `environmentset.ephemeral.io/NAME` per line.
    Name,
}

/// `kubectl ephemeral sets`.
#[derive(clap::Args, Debug)]
#[command(after_help = SETS_AFTER_HELP)]
pub struct SetsArgs {
    /// Name of a set: show it in detail (default: list the sets).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// List the sets of every namespace.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,
    /// Label selector of the sets, as in kubectl (e.g. team=shop).
    #[arg(short = 'l', long, value_name = "SELECTOR", conflicts_with = "name")]
    pub selector: Option<String>,
    /// Output format (default: tables, or with NAME the set in detail).
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<SetsFormat>,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Commands that take only an environment name.
#[derive(clap::Args, Debug)]
#[command(after_help = CLUSTER_AFTER_HELP)]
pub struct NameArgs {
    /// Name of the environment.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `kubectl ephemeral extend`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = CLUSTER_AFTER_HELP
)]
#[command(group(clap::ArgGroup::new("new-end").required(true).args(["until", "for_", "hour"])))]
pub struct ExtendArgs {
    /// Name of the environment.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The new end of the lease.
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `kubectl ephemeral add-app`.
#[derive(clap::Args, Debug)]
#[command(after_help = CLUSTER_AFTER_HELP)]
pub struct AddAppArgs {
    /// Name of the environment.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The app, as in `create --app`: APP, APP=PREFIX or APP@BRANCH (the
    /// name is also its AppTemplate's, unless --template says otherwise).
    #[arg(value_name = "APP[=PREFIX|@BRANCH]")]
    pub app: AppSpec,
    /// Follow builds tagged with this prefix (default: the template's).
    #[arg(long, value_name = "PREFIX", conflicts_with = "branch")]
    pub prefix: Option<String>,
    /// Follow builds of this git branch.
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// The AppTemplate to use, when it is not named like the app.
    #[arg(long, value_name = "TEMPLATE")]
    pub template: Option<String>,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `kubectl ephemeral set-app`.
#[derive(clap::Args, Debug)]
#[command(after_help = CLUSTER_AFTER_HELP)]
#[command(group(clap::ArgGroup::new("follow").required(true).args(["prefix", "branch"])))]
pub struct SetAppArgs {
    /// Name of the environment.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Name of the app.
    #[arg(value_name = "APP")]
    pub app: String,
    /// Follow builds tagged with this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Follow builds of this git branch.
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `kubectl ephemeral remove-app`.
#[derive(clap::Args, Debug)]
#[command(after_help = CLUSTER_AFTER_HELP)]
pub struct RemoveAppArgs {
    /// Name of the environment.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Name of the app.
    #[arg(value_name = "APP")]
    pub app: String,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `kubectl ephemeral delete`.
#[derive(clap::Args, Debug)]
#[command(after_help = CLUSTER_AFTER_HELP)]
pub struct DeleteArgs {
    /// Name of the environment.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Wait until the environment is gone (its Flux objects follow through garbage collection).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 5m.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// What `wait` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    /// The Ready condition is True for the current generation.
    Ready,
    /// The environment no longer exists.
    Delete,
}

/// `kubectl ephemeral wait`.
#[derive(clap::Args, Debug)]
#[command(after_help = CLUSTER_AFTER_HELP)]
pub struct WaitArgs {
    /// Name of the environment.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The condition to wait for.
    #[arg(long = "for", value_enum, value_name = "CONDITION")]
    pub for_: WaitFor,
    /// Give up after this long, e.g. 5m, 90s.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `kubectl ephemeral templates`.
#[derive(clap::Args, Debug)]
#[command(after_help = CLUSTER_AFTER_HELP)]
pub struct TemplatesArgs {
    /// Cluster and namespace.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Shells `completion` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
}

/// `kubectl ephemeral completion`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  source <(kubectl-ephemeral completion bash)\n  kubectl-ephemeral completion fish | source"
)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Output formats of `render`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    /// A multi-document YAML stream.
    Yaml,
    /// A `v1` `List` object.
    Json,
}

/// `kubectl ephemeral render`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = RENDER_AFTER_HELP
)]
pub struct RenderArgs {
    /// Files or directories to read; `-` reads standard input. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub filenames: Vec<PathBuf>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Pull requests for the EnvironmentSets in the files: a JSON array shaped like GitHub's answer
    /// to GET /repos/OWNER/REPO/pulls. Each set renders the Environment of every open one that
    /// passes its filters.
    #[arg(long = "pull-requests", value_name = "FILE")]
    pub pull_requests: Option<PathBuf>,
    /// The time to render at (RFC 3339); defaults to now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// The owner to stamp (the requester on create); defaults to the local user.
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: RenderFormat,
    /// Environment policy (the same flags and EPHEMERAL_* variables as the webhook).
    #[command(flatten)]
    pub policy: ConfigArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_specs() {
        let plain: AppSpec = "payments".parse().unwrap();
        assert_eq!((plain.prefix, plain.branch), (None, None));
        let prefixed: AppSpec = "web=feature-web-2".parse().unwrap();
        assert_eq!(prefixed.name, "web");
        assert_eq!(prefixed.prefix.as_deref(), Some("feature-web-2"));
        let branched: AppSpec = "checkout@feature/new-basket".parse().unwrap();
        assert_eq!(branched.branch.as_deref(), Some("feature/new-basket"));
        assert!("a=b@c".parse::<AppSpec>().is_err());
        assert!("=x".parse::<AppSpec>().is_err());
        assert!("x@".parse::<AppSpec>().is_err());
    }

    #[test]
    fn the_cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
