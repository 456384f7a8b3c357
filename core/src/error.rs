//! Why an Environment is refused. Each violation names the field, the rule it
//! breaks and how to fix it, so a denial is something a person can act on.

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A name is not a DNS-1123 label.
    #[error(
        "{field}: '{value}' is not a valid name: it {problem}. Fix: use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
    )]
    InvalidName {
        /// Path of the field.
        field: String,
        /// The offending name.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A generated object name would exceed 63 characters.
    #[error(
        "{field}: the generated name '{generated}' is {len} characters, over the 63 allowed. Fix: shorten the environment name or the app name"
    )]
    GeneratedNameTooLong {
        /// Path of the field that contributes the name.
        field: String,
        /// The name that would be generated.
        generated: String,
        /// Its length.
        len: usize,
    },
    /// The environment has neither a name nor a generateName.
    #[error(
        "metadata.name: an Environment needs a name. Fix: set metadata.name (or metadata.generateName)"
    )]
    MissingName,
    /// Two apps share a name.
    #[error("{field}: app name '{name}' is used more than once. Fix: give each app a unique name")]
    DuplicateApp {
        /// Path of the second app's name.
        field: String,
        /// The shared name.
        name: String,
    },
    /// A template does not exist.
    #[error(
        "{field}: AppTemplate '{name}' does not exist in namespace '{namespace}'. Fix: use one of: {}",
        list(known)
    )]
    UnknownTemplate {
        /// Path of the field naming the template.
        field: String,
        /// The missing template.
        name: String,
        /// Namespace searched.
        namespace: String,
        /// Templates that do exist there.
        known: Vec<String>,
    },
    /// A bundle does not exist.
    #[error(
        "{field}: AppBundle '{name}' does not exist in namespace '{namespace}'. Fix: use one of: {}",
        list(known)
    )]
    UnknownBundle {
        /// Path of the field naming the bundle.
        field: String,
        /// The missing bundle.
        name: String,
        /// Namespace searched.
        namespace: String,
        /// Bundles that do exist there.
        known: Vec<String>,
    },
    /// An app (or template) sets both or neither of kustomization and helm.
    #[error(
        "{field}: {problem}. Fix: set exactly one of kustomization or helm (directly or through the template)"
    )]
    DeploymentKind {
        /// Path of the app.
        field: String,
        /// "sets both …" or "sets neither …".
        problem: String,
    },
    /// An explicit image tag prefix is not valid.
    #[error(
        "{field}: '{value}' is not a valid image tag prefix: it {problem}. Fix: use the form [A-Za-z0-9_][A-Za-z0-9_.-]* of at most 76 characters, or set branch and let the webhook derive the prefix"
    )]
    InvalidPrefix {
        /// Path of the field.
        field: String,
        /// The prefix.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A branch does not make a valid image tag prefix.
    #[error(
        "{field}: branch '{value}' gives the image tag prefix '{sanitised}', which {problem}. Fix: use a shorter branch name or set imageTagPrefix explicitly"
    )]
    BranchPrefix {
        /// Path of the field.
        field: String,
        /// The branch.
        value: String,
        /// Its sanitised form.
        sanitised: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Branch and an explicit prefix disagree.
    #[error(
        "{field}: branch '{branch}' means imageTagPrefix '{sanitised}', but imageTagPrefix is '{prefix}'. Fix: set only one of branch or imageTagPrefix"
    )]
    BranchConflict {
        /// Path of the app.
        field: String,
        /// The branch.
        branch: String,
        /// What the branch means as a prefix.
        sanitised: String,
        /// The explicit prefix.
        prefix: String,
    },
    /// An app follows a prefix but has no ImageRepository to read tags from.
    #[error(
        "{field}: the app follows image tag prefix '{prefix}' but has no imageRepository. Fix: set imageRepository {{name, namespace}} or use a template that has one"
    )]
    MissingImageRepository {
        /// Path of the app.
        field: String,
        /// The prefix it follows.
        prefix: String,
    },
    /// A source kind Flux does not accept here.
    #[error("{field}: kind '{kind}' cannot be used here. Fix: use one of: {}", allowed.join(", "))]
    SourceKind {
        /// Path of the field.
        field: String,
        /// The kind given.
        kind: String,
        /// Kinds Flux accepts there.
        allowed: Vec<&'static str>,
    },
    /// A reference points into a namespace that is not allowed.
    #[error(
        "{field}: namespace '{namespace}' is not allowed for sources. Fix: use the environment's namespace or one of: {}",
        list(allowed)
    )]
    NamespaceNotAllowed {
        /// Path of the field.
        field: String,
        /// The namespace.
        namespace: String,
        /// Namespaces that are allowed.
        allowed: Vec<String>,
    },
    /// `serviceAccountName` names an account Flux may not impersonate here.
    #[error(
        "spec.serviceAccountName: '{name}' is not a service account Flux may impersonate for Environments. Fix: use one of: {}, or leave it out to get the default",
        list(allowed)
    )]
    ServiceAccountNotAllowed {
        /// The account named.
        name: String,
        /// Accounts that are allowed.
        allowed: Vec<String>,
    },
    /// `sourceBranch` needs a GitRepository that is not known.
    #[error(
        "{field}: sourceBranch copies GitRepository {namespace}/{name}, which does not exist. Fix: create it, point the app at an existing GitRepository, or remove sourceBranch"
    )]
    MissingGitRepository {
        /// Path of the sourceRef.
        field: String,
        /// Namespace of the GitRepository.
        namespace: String,
        /// Name of the GitRepository.
        name: String,
    },
    /// `sourceBranch` is not a usable git branch name.
    #[error(
        "spec.sourceBranch: '{value}' is not a git branch name: it {problem}. Fix: use a branch name such as feature/infra"
    )]
    InvalidSourceBranch {
        /// The value given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Both until and schedule, or a malformed until.
    #[error("{field}: {problem}. Fix: {fix}")]
    InvalidLease {
        /// Path of the field.
        field: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A lease ends later than allowed.
    #[error(
        "spec.lease.until: {until} is past the maximum lease ({max}), which ends {latest}. Fix: choose an until no later than {latest}, or ask an admin for an always-on schedule"
    )]
    LeaseTooLong {
        /// The requested end.
        until: String,
        /// The maximum lease, e.g. `168h`.
        max: String,
        /// The latest end allowed now.
        latest: String,
    },
    /// A schedule does not parse.
    #[error("spec.lease.schedule: {error}. Fix: {}", error.fix)]
    InvalidSchedule {
        /// The parse error.
        error: crate::schedule::ScheduleError,
    },
    /// A substitution variable name is invalid or reserved.
    #[error("{field}: variable '{key}' {problem}. Fix: {fix}")]
    SubstituteKey {
        /// Path of the map.
        field: String,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none exist yet)".to_owned()
    } else {
        items.join(", ")
    }
}

impl Violation {
    /// The field path the violation is about.
    pub fn field(&self) -> &str {
        match self {
            Violation::InvalidName { field, .. }
            | Violation::GeneratedNameTooLong { field, .. }
            | Violation::DuplicateApp { field, .. }
            | Violation::UnknownTemplate { field, .. }
            | Violation::UnknownBundle { field, .. }
            | Violation::DeploymentKind { field, .. }
            | Violation::InvalidPrefix { field, .. }
            | Violation::BranchPrefix { field, .. }
            | Violation::BranchConflict { field, .. }
            | Violation::MissingImageRepository { field, .. }
            | Violation::SourceKind { field, .. }
            | Violation::NamespaceNotAllowed { field, .. }
            | Violation::MissingGitRepository { field, .. }
            | Violation::InvalidLease { field, .. }
            | Violation::SubstituteKey { field, .. } => field,
            Violation::MissingName => "metadata.name",
            Violation::InvalidSourceBranch { .. } => "spec.sourceBranch",
            Violation::ServiceAccountNotAllowed { .. } => "spec.serviceAccountName",
            Violation::LeaseTooLong { .. } => "spec.lease.until",
            Violation::InvalidSchedule { .. } => "spec.lease.schedule",
        }
    }
}

/// An Environment that cannot be admitted, with every rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct Denied {
    /// The broken rules, in the order they were found.
    pub violations: Vec<Violation>,
}
