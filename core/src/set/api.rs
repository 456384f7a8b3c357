//! The `EnvironmentSet` kind. Doc comments become the CRD's field
//! descriptions (`kubectl explain environmentsets.spec`).

// kube-derive repeats `type_` per printcolumn, which clippy mistakes for a duplicate.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::EnvironmentSpec;

/// One Environment per open pull request that passes the filters, reported
/// back to the pull request.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ephemeral.io",
    version = "v1alpha1",
    kind = "EnvironmentSet",
    namespaced,
    status = "EnvironmentSetStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "envset",
    category = "ephemeral",
    doc = "One Environment per open pull request that passes the filters, reported back to the pull request.",
    printcolumn(
        name = "Repository",
        type_ = "string",
        json_path = ".status.repository",
        description = "The repository whose pull requests the set follows"
    ),
    printcolumn(
        name = "Environments",
        type_ = "string",
        json_path = ".status.readyEnvironments",
        description = "Ready Environments out of all the set's Environments"
    ),
    printcolumn(
        name = "Queued",
        type_ = "integer",
        json_path = ".status.queued",
        description = "Matching pull requests waiting for a slot (maxEnvironments)"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the last sync with GitHub succeeded"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.maxEnvironments) || self.maxEnvironments >= 0", "message": "maxEnvironments is 0 or more"}
]))]
pub struct EnvironmentSetSpec {
    /// Where the pull requests come from, and which of them get an Environment.
    pub pull_requests: PullRequestSource,
    /// How often GitHub is polled, e.g. `5m` (default). A `pull_request`
    /// event at the receiver makes the next poll immediate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub interval: Option<String>,
    /// At most this many Environments at once; more matching pull requests
    /// wait (`Queued`, oldest first) and none is evicted. Unlimited when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_environments: Option<i32>,
    /// The Environment made for each pull request. `${PR_NUMBER}`,
    /// `${PR_HEAD_SHA}`, `${PR_HEAD_SHORT_SHA}`, `${PR_BRANCH}`,
    /// `${PR_BASE_BRANCH}` and `${PR_AUTHOR}` (and the earlier controller's
    /// `<<PR_NUMBER>>`, `<<PR_HEAD_SHA>>`) are replaced in every string.
    pub template: EnvironmentTemplate,
    /// Checked once the Environment is Ready, before the commit status says `success`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// What is reported back to the pull request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

/// The pull requests of one repository, filtered.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestSource {
    /// The GitHub repository.
    pub github: GitHubSource,
    /// Only pull requests carrying every one of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// No pull request carrying any of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_labels: Vec<String>,
    /// Only pull requests into one of these branches; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_branches: Vec<String>,
    /// Include draft pull requests.
    #[serde(default)]
    pub include_drafts: bool,
    /// Include pull requests from forks: their code then runs in the cluster.
    #[serde(default)]
    pub include_forks: bool,
    /// No pull request opened by one of these logins, e.g. `dependabot[bot]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_authors: Vec<String>,
}

/// A GitHub (or GitHub Enterprise) repository and how to reach it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.tokenSecretRef) != has(self.app)", "message": "github sets exactly one of tokenSecretRef or app"}
]))]
pub struct GitHubSource {
    /// The repository's owner (user or organisation).
    #[schemars(length(min = 1, max = 100))]
    pub owner: String,
    /// The repository's name.
    #[schemars(length(min = 1, max = 100))]
    pub repo: String,
    /// The REST API's base URL: `https://api.github.com` (default), or
    /// `https://HOST/api/v3` for GitHub Enterprise Server.
    #[serde(default, rename = "apiURL", skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// A Secret in the set's namespace holding a token (fine-grained or
    /// classic) allowed to read pull requests and write commit statuses and comments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// A GitHub App installation instead of a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<GitHubApp>,
    /// A Secret in the set's namespace holding the HMAC key GitHub signs the
    /// webhook deliveries to `POST /github` with. Without it, deliveries for
    /// this repository are refused and the set relies on polling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_ref: Option<SecretKeyRef>,
}

/// A GitHub App installation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitHubApp {
    /// The App's ID.
    #[serde(rename = "appID")]
    pub app_id: i64,
    /// The installation's ID on the repository's owner.
    #[serde(rename = "installationID")]
    pub installation_id: i64,
    /// A Secret in the set's namespace holding the App's private key (PEM).
    pub private_key_secret_ref: SecretKeyRef,
}

/// A key of a Secret in the set's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Labels, annotations and spec of each generated Environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentTemplate {
    /// Labels and annotations added to each Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// The Environment's spec, as in an Environment.
    pub spec: EnvironmentSpec,
}

/// Labels and annotations of a generated Environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels added to each Environment (the set's own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to each Environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An HTTP check of a pull request's running Environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.expectedStatus) || (self.expectedStatus >= 100 && self.expectedStatus <= 599)", "message": "expectedStatus is an HTTP status code, 100 to 599"}
]))]
pub struct HealthCheck {
    /// The URL to GET (variables are replaced), e.g.
    /// `https://shop-${PR_NUMBER}.preview.example.com/healthz`.
    #[schemars(length(min = 1))]
    pub url: String,
    /// The status code that counts as healthy (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<i32>,
    /// How long after the Environment became Ready the check may keep
    /// failing before the commit status says `failure`, e.g. `10m` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub timeout: Option<String>,
}

/// What is reported back to each pull request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// A commit status on the pull request's head commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_status: Option<CommitStatusReport>,
    /// One comment on the pull request, updated in place, with the
    /// Environment's URLs and state.
    #[serde(default)]
    pub comment: bool,
}

/// The commit status each pull request's head commit gets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitStatusReport {
    /// The status's context (default `ephemeral/<set>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The link of the status (variables are replaced).
    #[serde(default, rename = "targetURL", skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// Observed state of an EnvironmentSet, written by its controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSetStatus {
    /// kstatus conditions `Ready` (the last sync with GitHub succeeded),
    /// `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `owner/repo` of the repository followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// When GitHub last answered a full list of open pull requests (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// GitHub's `X-RateLimit-Remaining` at the last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_remaining: Option<i64>,
    /// Ready Environments out of all the set's Environments, e.g. `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_environments: Option<String>,
    /// Matching pull requests waiting for a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i32>")]
    pub queued: Option<u32>,
    /// Per pull request that matches the filters (or still has an Environment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_requests: Vec<PullRequestStatus>,
}

/// Where one pull request stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestStatus {
    /// The pull request's number.
    #[schemars(with = "i64")]
    pub number: u64,
    /// Its head commit.
    pub head_sha: String,
    /// Its head branch.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub branch: String,
    /// Who opened it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// Its Environment, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// `Queued`, `Progressing`, `Ready` or `Failed`.
    pub state: PullRequestState,
    /// Why it is in that state, e.g. `WaitingForImage`, `HealthCheckFailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The state in words, as reported to the pull request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When its Environment was first seen Ready for the head commit (RFC
    /// 3339); the health check's `timeout` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<String>,
    /// The last health check of the head commit's Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckStatus>,
    /// What was last reported to the pull request (commit status and
    /// comment): a report is made only when this changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_status: Option<ReportedStatus>,
}

/// The last health check of a pull request's Environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckStatus {
    /// The head commit the Environment ran.
    pub head_sha: String,
    /// When the check ran (RFC 3339).
    pub time: String,
    /// Whether the URL answered the expected status.
    pub passed: bool,
    /// What it answered instead, e.g. `503 Service Unavailable` or a connection error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A commit status (and comment) as reported.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedStatus {
    /// The commit it was set on.
    pub head_sha: String,
    /// `pending`, `success` or `failure`.
    pub state: CommitState,
    /// Its description.
    pub description: String,
}

/// The state of a commit status, as GitHub spells it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommitState {
    /// The Environment is queued or coming up.
    #[default]
    Pending,
    /// The Environment is Ready for the commit (and the health check answers).
    Success,
    /// The Environment failed.
    Failure,
}

/// The state of one pull request's Environment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullRequestState {
    /// Matching, waiting for a slot (`maxEnvironments`).
    Queued,
    /// Its Environment is coming up (or waiting for the image of its head commit).
    #[default]
    Progressing,
    /// Its Environment is Ready for the head commit and the health check answers.
    Ready,
    /// Its Environment is Stalled or the health check timed out.
    Failed,
}
