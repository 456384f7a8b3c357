//! The kustomize bases under `manifests/`, built with the real
//! `kubectl kustomize`:
//!
//! - the committed CRDs are what `ephemeral-webhook crds` prints;
//! - every object of every folder parses into its typed API struct
//!   (k8s-openapi, ours, or cert-manager's fields) and serialises back to
//!   exactly the same object, so a misspelt or unknown field fails here
//!   instead of being pruned by the API server;
//! - both install flavours (`default/`: self-managed certificates,
//!   `cert-manager/`) are hardened (PodSecurity `restricted`), highly
//!   available, grant exactly the RBAC the binary needs, and wire the API
//!   server, the Service and the Deployment together the way
//!   `ephemeral-webhook serve` expects — down to the real binary answering on
//!   the paths the webhook configurations call;
//! - `samples/` is the same catalog and Environments as `examples/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ephemeral_testkit::rbac::Grants;
use ephemeral_testkit::webhook::{Pki, REVIEW_UID, Webhook, bounded, review};
use ephemeral_testkit::{binary, workspace_root};
use k8s_openapi::Resource;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const NAMESPACE: &str = "ephemeral-system";
const NAME: &str = "ephemeral-webhook";
const SERVICE: &str = "ephemeral-webhook";
const WEBHOOK_CONFIGURATION: &str = "ephemeral-webhook";
const CERT_SECRET: &str = "ephemeral-webhook-tls";
const LEASE: &str = "ephemeral-controller";
const IMAGE: &str = "ghcr.io/example/ephemeral-webhook";
const REGENERATE: &str = "manifests/generate-crds.sh";
const CRD_NAMES: [&str; 4] = [
    "environments.ephemeral.io",
    "apptemplates.ephemeral.io",
    "appbundles.ephemeral.io",
    "environmentsets.ephemeral.io",
];
/// Namespaces the webhooks must never be called for.
const EXCLUDED_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "ephemeral-system",
];

// ---------------------------------------------------------------- CRD drift

/// Splits a YAML stream at its `---` lines, keeping each document's bytes.
fn split_documents(stream: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in stream.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "---" {
            if !current.is_empty() {
                docs.push(std::mem::take(&mut current));
            }
        } else {
            current.push_str(line);
        }
    }
    if !current.is_empty() {
        docs.push(current);
    }
    docs
}

fn crds_dir() -> PathBuf {
    workspace_root().join("manifests/crds")
}

/// The documents of `ephemeral-webhook crds`, by file name.
fn generated_crds() -> Vec<(String, String)> {
    let output = Command::new(binary("ephemeral-webhook"))
        .arg("crds")
        .output()
        .expect("run ephemeral-webhook crds");
    assert!(
        output.status.success(),
        "ephemeral-webhook crds failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stream = String::from_utf8(output.stdout).expect("UTF-8 output");
    split_documents(&stream)
        .into_iter()
        .map(|doc| {
            let value: Value = serde_saphyr::from_str(&doc).expect("each document is YAML");
            let name = value["metadata"]["name"]
                .as_str()
                .expect("each CRD has metadata.name");
            (format!("{name}.yaml"), doc)
        })
        .collect()
}

#[test]
fn committed_crds_are_what_ephemeral_webhook_crds_prints() {
    let generated = generated_crds();
    let names: Vec<&str> = generated.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        CRD_NAMES.map(|n| format!("{n}.yaml")),
        "ephemeral-webhook crds prints Environment, AppTemplate, AppBundle, EnvironmentSet"
    );

    for (file, doc) in &generated {
        let path = crds_dir().join(file);
        let committed = fs::read_to_string(&path).unwrap_or_default();
        if committed != *doc {
            let line = committed
                .lines()
                .zip(doc.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| committed.lines().count().min(doc.lines().count()))
                + 1;
            panic!(
                "manifests/crds/{file} is missing or differs from `ephemeral-webhook crds` \
                 (first difference at line {line}); regenerate with `{REGENERATE}` and commit"
            );
        }
    }

    // No stale CRD files, and the kustomization lists exactly the generated ones.
    let mut on_disk: Vec<String> = fs::read_dir(crds_dir())
        .expect("manifests/crds exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = generated.iter().map(|(f, _)| f.clone()).collect();
    expected.sort();
    assert_eq!(
        on_disk, expected,
        "manifests/crds has files `ephemeral-webhook crds` does not print; regenerate with `{REGENERATE}`"
    );
    let kustomization: Value = serde_saphyr::from_str(
        &fs::read_to_string(crds_dir().join("kustomization.yaml")).expect("kustomization.yaml"),
    )
    .expect("kustomization.yaml is YAML");
    let mut resources: Vec<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("resource path").to_owned())
        .collect();
    resources.sort();
    assert_eq!(
        resources, expected,
        "manifests/crds/kustomization.yaml lists every CRD; regenerate with `{REGENERATE}`"
    );
}

// ---------------------------------------------------------------- kustomize

/// The real kubectl (`$KUBECTL`, else the first on `PATH`), or `None` (with
/// a loud warning) when it is not installed outside CI. In CI (`CI=true`) a
/// missing kubectl is a failure.
fn kubectl() -> Option<PathBuf> {
    let path = ephemeral_testkit::kubectl();
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "kubectl not found at {} (put it on PATH or set KUBECTL): the manifests cannot be checked",
            path.display()
        );
    }
    eprintln!(
        "\n!!!!!!!! WARNING: kubectl not found at {} (put it on PATH or set KUBECTL); \
         the kustomize bases under manifests/ were NOT checked !!!!!!!!\n",
        path.display()
    );
    None
}

/// `kubectl kustomize manifests/<dir>`, parsed.
fn kustomize(kubectl: &Path, dir: &str) -> Vec<Value> {
    let path = workspace_root().join("manifests").join(dir);
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(&path)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        output.status.success(),
        "kubectl kustomize manifests/{dir} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 output");
    serde_saphyr::from_multiple(&text).expect("kustomize prints a YAML stream")
}

/// Every folder under `manifests/` that `kubectl kustomize` builds.
const FOLDERS: [&str; 6] = [
    "crds",
    "base",
    "default",
    "cert-manager",
    "samples",
    "receiver-ingress",
];

// ---------------------------------------------------------------- typed objects

/// The first place where `want` (the rendered object) and `got` (the object
/// after a trip through its type) differ, as a JSON pointer and what happened.
fn first_difference(want: &Value, got: &Value, path: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}/{key}");
                match b.get(key) {
                    None => return Some(format!("{here}: not a field of the type (dropped)")),
                    Some(other) => {
                        if let Some(d) = first_difference(value, other, &here) {
                            return Some(d);
                        }
                    }
                }
            }
            b.keys()
                .find(|k| !a.contains_key(*k))
                .map(|k| format!("{path}/{k}: added by the type"))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}/{i}"))),
        _ if want == got => None,
        _ => Some(format!("{path}: {want} became {got}")),
    }
}

/// Parses `object` as `T` and serialises it back; the result must be the
/// same object. A field `T` does not know is dropped on the way, so an
/// unknown or misspelt field fails.
fn round_trip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<(), String> {
    let typed: T =
        serde_json::from_value(object.clone()).map_err(|e| format!("does not parse: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("does not serialise: {e}"))?;
    match first_difference(object, &back, "") {
        None => Ok(()),
        Some(difference) => Err(difference),
    }
}

type Check = fn(&Value) -> Result<(), String>;

fn k8s<T: Resource + DeserializeOwned + Serialize>() -> (&'static str, &'static str, Check) {
    (T::API_VERSION, T::KIND, round_trip::<T>)
}

/// The type every kind under `manifests/` is checked against.
fn types() -> Vec<(&'static str, &'static str, Check)> {
    vec![
        k8s::<Namespace>(),
        k8s::<ServiceAccount>(),
        k8s::<Service>(),
        k8s::<Ingress>(),
        k8s::<Deployment>(),
        k8s::<PodDisruptionBudget>(),
        k8s::<ClusterRole>(),
        k8s::<ClusterRoleBinding>(),
        k8s::<Role>(),
        k8s::<RoleBinding>(),
        k8s::<MutatingWebhookConfiguration>(),
        k8s::<ValidatingWebhookConfiguration>(),
        k8s::<CustomResourceDefinition>(),
        (
            "cert-manager.io/v1",
            "Issuer",
            round_trip::<cert_manager::Issuer>,
        ),
        (
            "cert-manager.io/v1",
            "Certificate",
            round_trip::<cert_manager::Certificate>,
        ),
        (
            "ephemeral.io/v1alpha1",
            "Environment",
            round_trip::<ephemeral_core::Environment>,
        ),
        (
            "ephemeral.io/v1alpha1",
            "AppTemplate",
            round_trip::<ephemeral_core::AppTemplate>,
        ),
        (
            "ephemeral.io/v1alpha1",
            "AppBundle",
            round_trip::<ephemeral_core::AppBundle>,
        ),
        (
            "ephemeral.io/v1alpha1",
            "EnvironmentSet",
            round_trip::<ephemeral_core::set::EnvironmentSet>,
        ),
    ]
}

/// The fields of cert-manager's `cert-manager.io/v1` Issuer and Certificate
/// that the manifests use, and no others (cert-manager publishes no Rust
/// types; these follow its API reference). Unknown fields are refused.
mod cert_manager {
    use super::*;

    /// `cert-manager.io/v1` Issuer.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Issuer {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: IssuerSpec,
    }

    /// An Issuer is self-signed or a CA.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct IssuerSpec {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub self_signed: Option<SelfSigned>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ca: Option<CaIssuer>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SelfSigned {}

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct CaIssuer {
        pub secret_name: String,
    }

    /// `cert-manager.io/v1` Certificate.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Certificate {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: CertificateSpec,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct CertificateSpec {
        pub secret_name: String,
        #[serde(rename = "isCA", skip_serializing_if = "Option::is_none")]
        pub is_ca: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub common_name: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub dns_names: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub duration: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub renew_before: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub private_key: Option<PrivateKey>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub usages: Vec<String>,
        pub issuer_ref: IssuerRef,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct PrivateKey {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub algorithm: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub size: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub encoding: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rotation_policy: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct IssuerRef {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub group: Option<String>,
    }
}

/// The objects of `kind` in a build.
fn of_kind<'a>(objects: &'a [Value], api_version: &str, kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| o["apiVersion"] == api_version && o["kind"] == kind)
        .collect()
}

/// The one `T` called `name` in a build, typed.
fn one<T: Resource + DeserializeOwned>(objects: &[Value], name: &str) -> T {
    let found: Vec<&Value> = of_kind(objects, T::API_VERSION, T::KIND)
        .into_iter()
        .filter(|o| o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {} {name}", T::KIND);
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{} {name}: {e}", T::KIND))
}

#[test]
fn every_object_of_every_folder_parses_into_its_type_and_back() {
    let Some(kubectl) = kubectl() else { return };
    let types = types();
    let mut failures = Vec::new();
    for folder in FOLDERS {
        let objects = kustomize(&kubectl, folder);
        assert!(!objects.is_empty(), "manifests/{folder} builds to nothing");
        let mut seen = BTreeSet::new();
        for object in &objects {
            let (api_version, kind) = (
                object["apiVersion"].as_str().unwrap_or_default(),
                object["kind"].as_str().unwrap_or_default(),
            );
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
            assert!(
                seen.insert((kind.to_owned(), namespace.to_owned(), name.to_owned())),
                "manifests/{folder}: {kind} {namespace}/{name} twice"
            );
            let Some((_, _, check)) = types
                .iter()
                .find(|(v, k, _)| *v == api_version && *k == kind)
            else {
                failures.push(format!(
                    "manifests/{folder}: {api_version} {kind} {name}: no type to check it \
                     against; add one to types()"
                ));
                continue;
            };
            if let Err(e) = check(object) {
                failures.push(format!("manifests/{folder}: {kind} {name}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_type_check_refuses_unknown_and_misspelt_fields() {
    // The check above can fail: a field k8s-openapi does not know, a
    // misspelt cert-manager field and a wrong value type are all caught.
    let mut deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [
            {"name": "c", "securityContext": {"readOnlyRootFileSystem": true}}
        ]}}}
    });
    let error = round_trip::<Deployment>(&deployment).unwrap_err();
    assert!(
        error.contains("/spec/template/spec/containers/0/securityContext/readOnlyRootFileSystem"),
        "{error}"
    );
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
        json!({"readOnlyRootFilesystem": true});
    round_trip::<Deployment>(&deployment).expect("the corrected object passes");

    let certificate = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "x"},
        "spec": {"secretName": "s", "dnsName": ["a"], "issuerRef": {"name": "i"}}
    });
    let error = round_trip::<cert_manager::Certificate>(&certificate).unwrap_err();
    assert!(error.contains("dnsName"), "{error}");

    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "443"}]}
    });
    assert!(
        round_trip::<Service>(&service).is_err(),
        "a port must be a number"
    );
}

// ---------------------------------------------------------------- the install

/// How the serving certificate is provided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    /// `manifests/default`: ephemeral-webhook creates and renews it itself.
    SelfManaged,
    /// `manifests/cert-manager`: cert-manager issues it into a mounted Secret.
    CertManager,
}

impl Flavour {
    fn folder(self) -> &'static str {
        match self {
            Flavour::SelfManaged => "default",
            Flavour::CertManager => "cert-manager",
        }
    }
}

fn assert_crds(objects: &[Value]) {
    for name in CRD_NAMES {
        let crd: CustomResourceDefinition = one(objects, name);
        assert_eq!(crd.spec.group, "ephemeral.io");
        assert!(
            crd.spec
                .versions
                .iter()
                .any(|v| v.name == "v1alpha1" && v.served && v.storage),
            "{name} serves and stores v1alpha1"
        );
    }
}

fn assert_namespace(objects: &[Value]) {
    let namespace: Namespace = one(objects, NAMESPACE);
    let labels = namespace.metadata.labels.unwrap_or_default();
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            labels
                .get(&format!("pod-security.kubernetes.io/{mode}"))
                .map(String::as_str),
            Some("restricted"),
            "namespace {NAMESPACE} is labelled PodSecurity {mode}=restricted"
        );
    }
}

/// The flags `ephemeral-webhook serve --help` lists.
fn serve_flags() -> BTreeSet<String> {
    let output = Command::new(binary("ephemeral-webhook"))
        .args(["serve", "--help"])
        .output()
        .expect("run ephemeral-webhook serve --help");
    assert!(
        output.status.success(),
        "`ephemeral-webhook serve --help` failed; the Deployment runs `serve`:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect()
}

fn port_of(address: &str) -> i32 {
    address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{address} has no port"))
}

/// A container port by name or number.
fn container_port(container: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .unwrap_or_else(|| panic!("container has no port named {name}")),
    }
}

/// Whether `selector` selects pods labelled `labels`.
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    assert!(
        selector.match_expressions.is_none(),
        "selectors here are matchLabels only"
    );
    let wanted = selector.match_labels.clone().unwrap_or_default();
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The container's arguments after `serve`, as flag name → value.
fn flags(container: &Container) -> BTreeMap<String, String> {
    let args = container.args.clone().unwrap_or_default();
    assert_eq!(
        args.first().map(String::as_str),
        Some("serve"),
        "the container runs `serve`"
    );
    let known = serve_flags();
    let mut flags = BTreeMap::new();
    for arg in &args[1..] {
        let (name, value) = arg
            .split_once('=')
            .unwrap_or_else(|| panic!("argument {arg:?}: write flags as --flag=value"));
        assert!(name.starts_with("--"), "argument {arg:?} is not a flag");
        assert!(
            known.contains(name),
            "the Deployment passes {name}, which `ephemeral-webhook serve --help` does not \
             list (it lists: {known:?})"
        );
        assert!(
            flags.insert(name.to_owned(), value.to_owned()).is_none(),
            "{name} given twice"
        );
    }
    flags
}

/// The Deployment: high availability, hardening (PodSecurity `restricted`),
/// probes on the admin port, the downward API, and where the certificate
/// comes from. Returns its flags.
fn assert_deployment(objects: &[Value], flavour: Flavour) -> BTreeMap<String, String> {
    let deployment: Deployment = one(objects, NAME);
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2), "two replicas serve admission");
    let rolling = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .expect("rolling update");
    assert_eq!(
        rolling.max_unavailable,
        Some(IntOrString::Int(0)),
        "updates never take a serving replica away first"
    );
    let template = spec.template;
    let pod_labels = template
        .metadata
        .and_then(|m| m.labels)
        .expect("pod labels");
    assert!(
        selects(&spec.selector, &pod_labels),
        "selector matches the pods"
    );
    let pod: PodSpec = template.spec.expect("pod spec");
    assert_eq!(pod.containers.len(), 1);
    let container = &pod.containers[0];

    // Spread over nodes.
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("preferred pod anti-affinity");
    assert!(
        anti.iter().any(
            |t| t.pod_affinity_term.topology_key == "kubernetes.io/hostname"
                && t.pod_affinity_term
                    .label_selector
                    .as_ref()
                    .is_some_and(|s| selects(s, &pod_labels))
        ),
        "replicas prefer different nodes"
    );

    // The image of this version.
    let image = container.image.as_deref().expect("image");
    assert_eq!(
        image,
        format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION")),
        "the image tag is the workspace version (manifests/base/kustomization.yaml images:)"
    );

    // The downward API gives the namespace and the pod name.
    for (var, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let env = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == var)
            .unwrap_or_else(|| panic!("env {var}"));
        assert_eq!(
            env.value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.as_str()),
            Some(field),
            "{var} comes from the downward API"
        );
    }

    // Ports: admission where the Service sends it, admin where the probes look.
    let flags = flags(container);
    let listen = flags.get("--listen").map_or("0.0.0.0:8443", String::as_str);
    let admin = flags
        .get("--admin-listen")
        .map_or("0.0.0.0:8080", String::as_str);
    assert_eq!(
        container_port(container, &IntOrString::String("webhook".into())),
        port_of(listen)
    );
    for (probe, path) in [
        (&container.liveness_probe, "/livez"),
        (&container.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("HTTP probes");
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(
            container_port(container, &get.port),
            port_of(admin),
            "{path} goes to the admin listener"
        );
        assert!(
            get.scheme.as_deref().is_none_or(|s| s == "HTTP"),
            "admin is plain HTTP"
        );
    }
    let service: Service = one(objects, SERVICE);
    assert_eq!(service.metadata.namespace.as_deref(), Some(NAMESPACE));
    let service_spec = service.spec.expect("service spec");
    let https = service_spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == 443)
        .expect("the Service listens on 443, where the webhooks call it");
    assert_eq!(
        container_port(container, https.target_port.as_ref().expect("targetPort")),
        port_of(listen),
        "Service 443 reaches the admission listener"
    );
    // The receiver of GitHub's deliveries: a Service port of its own.
    let receiver = service_spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("receiver"))
        .expect("the Service has a port named receiver");
    let receiver_listen = flags
        .get("--receiver-listen")
        .expect("--receiver-listen is set");
    assert_eq!(
        container_port(
            container,
            receiver.target_port.as_ref().expect("targetPort")
        ),
        port_of(receiver_listen),
        "the Service's receiver port reaches --receiver-listen"
    );
    assert!(
        service_spec
            .type_
            .as_deref()
            .is_none_or(|t| t == "ClusterIP"),
        "the receiver is not exposed outside the cluster by default"
    );
    let service_selector = service_spec.selector.expect("service selector");
    assert!(
        service_selector
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v)),
        "the Service selects the Deployment's pods"
    );

    // Disruptions leave one replica.
    let budget: PodDisruptionBudget = one(objects, NAME);
    assert_eq!(budget.metadata.namespace.as_deref(), Some(NAMESPACE));
    let budget = budget.spec.expect("pdb spec");
    assert_eq!(budget.min_available, Some(IntOrString::Int(1)));
    assert!(
        selects(budget.selector.as_ref().expect("pdb selector"), &pod_labels),
        "the PodDisruptionBudget covers the pods"
    );

    // PodSecurity `restricted` and the rest of the hardening.
    let pod_security = pod.security_context.clone().unwrap_or_default();
    let security = container.security_context.clone().unwrap_or_default();
    assert!(
        security.run_as_non_root == Some(true) || pod_security.run_as_non_root == Some(true),
        "runAsNonRoot"
    );
    assert!(
        security
            .run_as_user
            .or(pod_security.run_as_user)
            .is_some_and(|uid| uid > 0),
        "a non-zero runAsUser"
    );
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_ne!(security.privileged, Some(true));
    let capabilities = security.capabilities.clone().unwrap_or_default();
    assert_eq!(capabilities.drop, Some(vec!["ALL".to_owned()]), "drop ALL");
    assert!(
        capabilities.add.unwrap_or_default().is_empty(),
        "no capability added"
    );
    let seccomp = security
        .seccomp_profile
        .or(pod_security.seccomp_profile)
        .expect("seccompProfile");
    assert_eq!(seccomp.type_, "RuntimeDefault");
    for host in [pod.host_network, pod.host_pid, pod.host_ipc] {
        assert_ne!(host, Some(true), "no host namespaces");
    }
    assert!(
        container
            .ports
            .iter()
            .flatten()
            .all(|p| p.host_port.is_none()),
        "no host ports"
    );
    for volume in pod.volumes.iter().flatten() {
        assert!(volume.host_path.is_none(), "no hostPath volumes");
    }
    let resources = container.resources.clone().expect("resources");
    for (what, list) in [
        ("requests", resources.requests),
        ("limits", resources.limits),
    ] {
        let list = list.unwrap_or_default();
        for resource in ["cpu", "memory"] {
            assert!(list.contains_key(resource), "resources.{what}.{resource}");
        }
    }

    // The pod mounts a token (the account does not by default) for its API access.
    let account = pod
        .service_account_name
        .as_deref()
        .expect("serviceAccountName");
    let sa: ServiceAccount = one(objects, account);
    assert_eq!(sa.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(sa.automount_service_account_token, Some(false));
    assert_eq!(pod.automount_service_account_token, Some(true));
    assert_eq!(
        flags
            .get("--controller-service-account")
            .map(String::as_str),
        Some(format!("system:serviceaccount:{NAMESPACE}:{account}").as_str()),
        "--controller-service-account is the pod's own identity"
    );
    assert_eq!(
        flags.get("--leader-election-lease").map(String::as_str),
        Some(LEASE),
        "the Lease the Role allows"
    );

    // Shutdown: the kubelet waits longer than the server drains.
    let grace = flags
        .get("--shutdown-grace")
        .expect("--shutdown-grace is set");
    let grace_seconds: i64 = grace
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("--shutdown-grace={grace}: write it in whole seconds"));
    let termination = pod.termination_grace_period_seconds.unwrap_or(30);
    assert!(
        termination > grace_seconds,
        "terminationGracePeriodSeconds ({termination}) must exceed --shutdown-grace ({grace}), \
         or the kubelet kills requests the server is still finishing"
    );

    // Where the certificate comes from.
    let mounts = container.volume_mounts.clone().unwrap_or_default();
    let volumes = pod.volumes.clone().unwrap_or_default();
    match flavour {
        Flavour::SelfManaged => {
            for flag in ["--tls-cert-file", "--tls-key-file"] {
                assert!(
                    !flags.contains_key(flag),
                    "{flag}: self-managed certificates are kept in memory"
                );
            }
            assert!(
                mounts.is_empty() && volumes.is_empty(),
                "no volumes: the root filesystem is read-only and the certificate in memory"
            );
            for (flag, value) in [
                ("--cert-secret", CERT_SECRET),
                ("--service-name", SERVICE),
                ("--webhook-configuration", WEBHOOK_CONFIGURATION),
            ] {
                assert_eq!(flags.get(flag).map(String::as_str), Some(value), "{flag}");
            }
        }
        Flavour::CertManager => {
            assert_eq!(
                flags.get("--tls-cert-file").map(String::as_str),
                Some("/tls/tls.crt")
            );
            assert_eq!(
                flags.get("--tls-key-file").map(String::as_str),
                Some("/tls/tls.key")
            );
            for flag in ["--cert-secret", "--service-name", "--webhook-configuration"] {
                assert!(
                    !flags.contains_key(flag),
                    "{flag} is for self-managed certificates"
                );
            }
            let mount = mounts
                .iter()
                .find(|m| m.mount_path == "/tls")
                .expect("a volume mounted at /tls");
            assert!(
                mount.sub_path.is_none(),
                "no subPath: renewed certificates must reach the pod"
            );
            assert_eq!(mount.read_only, Some(true));
            let volume = volumes
                .iter()
                .find(|v| v.name == mount.name)
                .expect("the /tls volume");
            assert_eq!(
                volume
                    .secret
                    .as_ref()
                    .and_then(|s| s.secret_name.as_deref()),
                Some(CERT_SECRET)
            );
        }
    }
    flags
}

// ---------------------------------------------------------------- RBAC

/// One permission: where (`*` = cluster-wide, else a namespace), API group,
/// resource, verb, and the one object it is limited to (`None`: any).
type Grant = (String, String, String, String, Option<String>);

/// Everything the pod's service account may do, through every binding in the build.
fn granted(objects: &[Value]) -> BTreeSet<Grant> {
    Grants::of(objects)
        .grants
        .into_iter()
        .map(|g| {
            (
                g.namespace.unwrap_or_else(|| "*".to_owned()),
                g.group,
                g.resource,
                g.verb,
                g.name,
            )
        })
        .collect()
}

/// The permissions the binary needs (docs/operations.md, "RBAC: what each rule is for"), exactly.
fn expected_grants(flavour: Flavour) -> BTreeSet<Grant> {
    let mut want = BTreeSet::new();
    let mut add =
        |scope: &str, group: &str, resources: &[&str], verbs: &[&str], name: Option<&str>| {
            for resource in resources {
                for verb in verbs {
                    want.insert((
                        scope.to_owned(),
                        group.to_owned(),
                        (*resource).to_owned(),
                        (*verb).to_owned(),
                        name.map(str::to_owned),
                    ));
                }
            }
        };
    // Watched into memory (reflectors), never read by name.
    add(
        "*",
        "ephemeral.io",
        &["apptemplates", "appbundles"],
        &["list", "watch"],
        None,
    );
    // Environments: watched and expired by the Environment controller;
    // applied (create, patch), looked up by name (get) and deleted by the
    // EnvironmentSet controller.
    add(
        "*",
        "ephemeral.io",
        &["environments"],
        &["get", "list", "watch", "create", "patch", "delete"],
        None,
    );
    add(
        "*",
        "ephemeral.io",
        &["environmentsets"],
        &["list", "watch"],
        None,
    );
    add(
        "*",
        "ephemeral.io",
        &["environmentsets/status"],
        &["patch"],
        None,
    );
    add(
        "*",
        "ephemeral.io",
        &["environmentsets/finalizers"],
        &["update"],
        None,
    );
    // The Secrets EnvironmentSets name, by name only (its own ClusterRole,
    // so it can be bound per namespace instead).
    add("*", "", &["secrets"], &["get"], None);
    add(
        "*",
        "ephemeral.io",
        &["environments/status"],
        &["patch"],
        None,
    );
    add(
        "*",
        "ephemeral.io",
        &["environments/finalizers"],
        &["update"],
        None,
    );
    for (group, resource) in [
        ("kustomize.toolkit.fluxcd.io", "kustomizations"),
        ("helm.toolkit.fluxcd.io", "helmreleases"),
        ("image.toolkit.fluxcd.io", "imagepolicies"),
        ("source.toolkit.fluxcd.io", "gitrepositories"),
    ] {
        add(
            "*",
            group,
            &[resource],
            &["get", "list", "watch", "create", "patch", "delete"],
            None,
        );
    }
    // kube's Recorder publishes events.k8s.io/v1 Events only.
    add(
        "*",
        "events.k8s.io",
        &["events"],
        &["create", "patch"],
        None,
    );
    add(
        NAMESPACE,
        "coordination.k8s.io",
        &["leases"],
        &["get", "update"],
        Some(LEASE),
    );
    add(
        NAMESPACE,
        "coordination.k8s.io",
        &["leases"],
        &["create"],
        None,
    );
    if flavour == Flavour::SelfManaged {
        // What webhook/src/certs/manager.rs calls: get and replace (update);
        // caBundles are JSON-patched.
        add(
            NAMESPACE,
            "",
            &["secrets"],
            &["get", "update"],
            Some(CERT_SECRET),
        );
        add(NAMESPACE, "", &["secrets"], &["create"], None);
        add(
            "*",
            "admissionregistration.k8s.io",
            &[
                "mutatingwebhookconfigurations",
                "validatingwebhookconfigurations",
            ],
            &["get", "patch"],
            Some(WEBHOOK_CONFIGURATION),
        );
    }
    want
}

fn assert_rbac(objects: &[Value], flavour: Flavour) {
    let granted = granted(objects);
    let want = expected_grants(flavour);
    let extra: Vec<&Grant> = granted.difference(&want).collect();
    let missing: Vec<&Grant> = want.difference(&granted).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "RBAC of {NAMESPACE}/{NAME} in manifests/{} differs from what the binary needs (docs/operations.md, RBAC table)\n\
         (scope, group, resource, verb, resourceName)\nmore than needed: {extra:#?}\nmissing: {missing:#?}",
        flavour.folder()
    );
    // Said twice on purpose: nothing cluster-wide touches Leases, and
    // Secrets only with `get` (no list or watch: only the Secrets a set names
    // are read, by name; no write).
    for (scope, _, resource, verb, _) in &granted {
        if scope == "*" {
            assert!(resource != "leases", "no cluster-wide access to {resource}");
            assert!(
                resource != "secrets" || verb == "get",
                "cluster-wide Secrets: get only, not {verb}"
            );
        }
    }
}

// ---------------------------------------------------------------- webhooks

/// One admission webhook as the manifests configure it.
struct Hook<'a> {
    kind: &'static str,
    client_config: &'a WebhookClientConfig,
    rules: &'a [RuleWithOperations],
    namespace_selector: Option<&'a LabelSelector>,
    side_effects: &'a str,
    review_versions: &'a [String],
    failure_policy: Option<&'a str>,
    timeout_seconds: Option<i32>,
}

/// The path and operations each webhook configuration calls, checking the
/// rest of its settings on the way.
fn assert_webhooks(objects: &[Value], flavour: Flavour) -> Vec<(String, Vec<String>)> {
    let mutating: MutatingWebhookConfiguration = one(objects, WEBHOOK_CONFIGURATION);
    let validating: ValidatingWebhookConfiguration = one(objects, WEBHOOK_CONFIGURATION);
    let mutating_hooks = mutating.webhooks.clone().unwrap_or_default();
    let validating_hooks = validating.webhooks.clone().unwrap_or_default();
    assert_eq!(mutating_hooks.len(), 1, "one mutating webhook");
    assert_eq!(validating_hooks.len(), 1, "one validating webhook");
    let m = &mutating_hooks[0];
    let v = &validating_hooks[0];
    assert_eq!(m.reinvocation_policy.as_deref(), Some("Never"));
    let hooks = [
        (
            "/mutate",
            ["CREATE", "UPDATE"],
            Hook {
                kind: "MutatingWebhookConfiguration",
                client_config: &m.client_config,
                rules: m.rules.as_deref().unwrap_or_default(),
                namespace_selector: m.namespace_selector.as_ref(),
                side_effects: &m.side_effects,
                review_versions: &m.admission_review_versions,
                failure_policy: m.failure_policy.as_deref(),
                timeout_seconds: m.timeout_seconds,
            },
        ),
        (
            "/validate",
            ["UPDATE", "DELETE"],
            Hook {
                kind: "ValidatingWebhookConfiguration",
                client_config: &v.client_config,
                rules: v.rules.as_deref().unwrap_or_default(),
                namespace_selector: v.namespace_selector.as_ref(),
                side_effects: &v.side_effects,
                review_versions: &v.admission_review_versions,
                failure_policy: v.failure_policy.as_deref(),
                timeout_seconds: v.timeout_seconds,
            },
        ),
    ];
    let service: Service = one(objects, SERVICE);
    let service_ports: Vec<i32> = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .iter()
        .map(|p| p.port)
        .collect();
    let mut calls = Vec::new();
    for (path, operations, hook) in hooks {
        let kind = hook.kind;
        let target = hook
            .client_config
            .service
            .as_ref()
            .unwrap_or_else(|| panic!("{kind} calls the Service, not a URL"));
        assert_eq!(target.name, SERVICE, "{kind} service");
        assert_eq!(target.namespace, NAMESPACE, "{kind} namespace");
        let port = target.port.unwrap_or(443);
        assert!(
            service_ports.contains(&port),
            "{kind} calls port {port}, which the Service has"
        );
        assert_eq!(target.path.as_deref(), Some(path), "{kind} path");
        assert_eq!(hook.rules.len(), 1, "{kind} has one rule");
        let rule = &hook.rules[0];
        assert_eq!(
            rule.api_groups.as_deref(),
            Some(&["ephemeral.io".to_owned()][..])
        );
        assert_eq!(
            rule.api_versions.as_deref(),
            Some(&["v1alpha1".to_owned()][..])
        );
        assert_eq!(
            rule.resources.as_deref(),
            Some(&["environments".to_owned()][..])
        );
        let mut got: Vec<String> = rule.operations.clone().unwrap_or_default();
        got.sort();
        let mut want: Vec<String> = operations.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(got, want, "{kind} operations");
        assert_eq!(hook.side_effects, "None", "{kind} sideEffects");
        assert_eq!(
            hook.review_versions,
            ["v1"],
            "{kind} admissionReviewVersions"
        );
        assert_eq!(hook.failure_policy, Some("Fail"), "{kind} failurePolicy");
        let timeout = hook.timeout_seconds.expect("timeoutSeconds");
        assert!(
            (1..=10).contains(&timeout),
            "{kind} timeout {timeout}s is short"
        );
        let selector = hook
            .namespace_selector
            .unwrap_or_else(|| panic!("{kind} has a namespaceSelector"));
        let excluded: BTreeSet<&str> = selector
            .match_expressions
            .iter()
            .flatten()
            .filter(|e| e.key == "kubernetes.io/metadata.name" && e.operator == "NotIn")
            .flat_map(|e| e.values.iter().flatten().map(String::as_str))
            .collect();
        for namespace in EXCLUDED_NAMESPACES {
            assert!(
                excluded.contains(namespace),
                "{kind} skips namespace {namespace}"
            );
        }
        assert!(
            selector.match_labels.is_none()
                && selector
                    .match_expressions
                    .as_ref()
                    .is_some_and(|e| e.len() == 1),
            "{kind}: the namespaceSelector only excludes, so Environments anywhere else are admitted"
        );
        calls.push((path.to_owned(), got));
    }

    // The caBundle: written at run time by the pod, or injected by cert-manager.
    for (kind, metadata, bundles) in [
        (
            "MutatingWebhookConfiguration",
            &mutating.metadata,
            mutating_hooks
                .iter()
                .map(|h| &h.client_config.ca_bundle)
                .collect::<Vec<_>>(),
        ),
        (
            "ValidatingWebhookConfiguration",
            &validating.metadata,
            validating_hooks
                .iter()
                .map(|h| &h.client_config.ca_bundle)
                .collect(),
        ),
    ] {
        assert!(
            bundles.iter().all(|b| b.is_none()),
            "{kind}: no caBundle in the manifests (re-applying them must not undo a rotation)"
        );
        let inject = metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("cert-manager.io/inject-ca-from"));
        match flavour {
            Flavour::SelfManaged => assert!(inject.is_none(), "{kind}: no cert-manager"),
            Flavour::CertManager => assert_eq!(
                inject.map(String::as_str),
                Some(format!("{NAMESPACE}/{NAME}").as_str()),
                "{kind} gets the CA of the Certificate {NAME}"
            ),
        }
    }
    calls
}

/// cert-manager issues the Secret the pod mounts, for the names the API
/// server calls, from a CA Issuer bootstrapped by a self-signed one.
fn assert_cert_manager_objects(objects: &[Value]) {
    let certificates: Vec<cert_manager::Certificate> =
        of_kind(objects, "cert-manager.io/v1", "Certificate")
            .into_iter()
            .map(|o| serde_json::from_value(o.clone()).unwrap())
            .collect();
    let issuers: Vec<cert_manager::Issuer> = of_kind(objects, "cert-manager.io/v1", "Issuer")
        .into_iter()
        .map(|o| serde_json::from_value(o.clone()).unwrap())
        .collect();
    let issuer = |name: &str| {
        issuers
            .iter()
            .find(|i| i.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("the Issuer {name} exists"))
    };
    let serving = certificates
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(NAME))
        .expect("the Certificate the webhooks inject");
    assert_eq!(serving.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(serving.spec.secret_name, CERT_SECRET);
    assert!(
        serving
            .spec
            .dns_names
            .contains(&format!("{SERVICE}.{NAMESPACE}.svc")),
        "the certificate is valid for the name the API server calls"
    );
    assert!(serving.spec.usages.iter().any(|u| u == "server auth"));
    let ca_issuer = issuer(&serving.spec.issuer_ref.name);
    let ca_secret = &ca_issuer
        .spec
        .ca
        .as_ref()
        .expect("signed by a CA Issuer")
        .secret_name;
    let ca = certificates
        .iter()
        .find(|c| &c.spec.secret_name == ca_secret)
        .expect("a Certificate for the CA");
    assert_eq!(ca.spec.is_ca, Some(true));
    assert!(
        issuer(&ca.spec.issuer_ref.name).spec.self_signed.is_some(),
        "the CA is self-signed"
    );
    for object in issuers
        .iter()
        .map(|i| &i.metadata)
        .chain(certificates.iter().map(|c| &c.metadata))
    {
        assert_eq!(object.namespace.as_deref(), Some(NAMESPACE));
    }
}

fn assert_install(objects: &[Value], flavour: Flavour) -> Vec<(String, Vec<String>)> {
    assert_crds(objects);
    assert_namespace(objects);
    assert_deployment(objects, flavour);
    assert_rbac(objects, flavour);
    let calls = assert_webhooks(objects, flavour);
    let cert_manager_objects = objects
        .iter()
        .filter(|o| o["apiVersion"] == "cert-manager.io/v1")
        .count();
    match flavour {
        Flavour::SelfManaged => assert_eq!(cert_manager_objects, 0, "no cert-manager objects"),
        Flavour::CertManager => assert_cert_manager_objects(objects),
    }
    calls
}

#[test]
fn crds_folder_builds_only_the_crds() {
    let Some(kubectl) = kubectl() else { return };
    let objects = kustomize(&kubectl, "crds");
    assert_eq!(objects.len(), CRD_NAMES.len(), "only the CRDs");
    assert_crds(&objects);
}

#[test]
fn default_is_a_hardened_install_with_self_managed_certificates() {
    let Some(kubectl) = kubectl() else { return };
    let objects = kustomize(&kubectl, "default");
    assert_install(&objects, Flavour::SelfManaged);
    // The webhook crate's API scenarios check each request against the RBAC
    // files themselves: they must be what the install grants.
    assert_eq!(
        Grants::of(&objects).grants,
        Grants::self_managed().grants,
        "ephemeral_testkit::rbac::SELF_MANAGED_FILES hold all of manifests/default's RBAC"
    );
}

#[test]
fn cert_manager_is_the_same_install_with_certificates_from_cert_manager() {
    let Some(kubectl) = kubectl() else { return };
    assert_install(&kustomize(&kubectl, "cert-manager"), Flavour::CertManager);
}

#[test]
fn base_is_what_both_flavours_share() {
    let Some(kubectl) = kubectl() else { return };
    let base = kustomize(&kubectl, "base");
    let key = |o: &Value| {
        (
            o["kind"].as_str().unwrap_or_default().to_owned(),
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    for flavour in [Flavour::SelfManaged, Flavour::CertManager] {
        let install = kustomize(&kubectl, flavour.folder());
        for object in &base {
            let (kind, name) = key(object);
            let same = install
                .iter()
                .find(|o| key(o) == (kind.clone(), name.clone()));
            let same =
                same.unwrap_or_else(|| panic!("{} has the base's {kind} {name}", flavour.folder()));
            // The flavours only add certificate settings to these three.
            let changed = [
                "Deployment",
                "MutatingWebhookConfiguration",
                "ValidatingWebhookConfiguration",
            ];
            if !changed.contains(&kind.as_str()) {
                assert_eq!(
                    same,
                    object,
                    "{} keeps the base's {kind} {name}",
                    flavour.folder()
                );
            }
        }
    }
    assert!(
        base.iter()
            .all(|o| o["kind"] != "CustomResourceDefinition"
                && o["apiVersion"] != "cert-manager.io/v1"),
        "the base has no CRDs and no certificates"
    );
    // Secrets only in the EnvironmentSets' ClusterRole of their own (so it
    // can be bound per namespace instead), and only `get`.
    for o in &base {
        if !o["rules"].to_string().contains("secrets") {
            continue;
        }
        assert_eq!(
            (&o["kind"], &o["metadata"]["name"], &o["rules"]),
            (
                &json!("ClusterRole"),
                &json!("ephemeral-webhook-set-secrets"),
                &json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
            ),
            "the base reads Secrets only by name, in a ClusterRole of their own"
        );
    }
}

/// The paths the webhook configurations call are served by the real
/// `ephemeral-webhook serve`, for every operation they send there.
#[tokio::test]
async fn webhook_configurations_call_paths_the_server_serves() {
    let Some(kubectl) = kubectl() else { return };
    let mut calls = BTreeSet::new();
    for flavour in [Flavour::SelfManaged, Flavour::CertManager] {
        calls.extend(assert_webhooks(
            &kustomize(&kubectl, flavour.folder()),
            flavour,
        ));
    }
    assert_eq!(calls.len(), 2, "/mutate and /validate: {calls:?}");

    let pki = Pki::new();
    let server = Webhook::start(
        binary("ephemeral-webhook"),
        tempfile::tempdir().unwrap(),
        &pki,
        Some(&pki.server_cert(1)),
        [
            "--catalog-dir".to_owned(),
            workspace_root()
                .join("examples/catalog")
                .display()
                .to_string(),
        ],
    );
    bounded(async {
        server.wait_ready().await;
        let text =
            fs::read_to_string(workspace_root().join("examples/environments/alice.yaml")).unwrap();
        let mut environment: Value = serde_saphyr::from_str(&text).unwrap();
        environment["metadata"]["annotations"] = json!({"ephemeral.io/owner": "alice"});
        for (path, operations) in &calls {
            for operation in operations {
                let (object, old) = match operation.as_str() {
                    "CREATE" => (Some(environment.clone()), None),
                    "UPDATE" => (Some(environment.clone()), Some(environment.clone())),
                    "DELETE" => (None, Some(environment.clone())),
                    other => panic!("unexpected operation {other}"),
                };
                let response = server
                    .admit(path, &review(operation, "alice", object, old))
                    .await;
                assert_eq!(
                    response["uid"], REVIEW_UID,
                    "{path} {operation}: {response}"
                );
                assert_eq!(
                    response["allowed"], true,
                    "{path} admits the owner's {operation}: {response}"
                );
            }
        }
        // A path the server does not serve is told apart.
        let (status, _) = server.post("/mutate-environments", "{}").await;
        assert_eq!(status.as_u16(), 404, "an unknown path is 404");
    })
    .await;
}

// ---------------------------------------------------------------- samples

/// The catalog and Environments under `examples/` (what `render` reads).
fn examples() -> Vec<Value> {
    let mut objects = Vec::new();
    for file in [
        "examples/catalog/templates.yaml",
        "examples/environments/alice.yaml",
        "examples/environments/infra.yaml",
    ] {
        let text = fs::read_to_string(workspace_root().join(file)).unwrap();
        objects.extend(serde_saphyr::from_multiple::<Value>(&text).unwrap());
    }
    objects
}

#[test]
fn samples_are_the_examples_in_their_namespace() {
    let Some(kubectl) = kubectl() else { return };
    let samples = kustomize(&kubectl, "samples");
    let examples = examples();
    let namespace: Namespace = one(&samples, "ephemeral");
    let namespace = namespace.metadata.name.unwrap();
    // The EnvironmentSet is the samples' own (examples/ is what render reads
    // without GitHub); see the next test.
    let rest: Vec<&Value> = samples
        .iter()
        .filter(|o| o["kind"] != "Namespace" && o["kind"] != "EnvironmentSet")
        .collect();
    for object in &rest {
        assert_eq!(object["metadata"]["namespace"], namespace.as_str());
        assert!(
            examples.contains(object),
            "manifests/samples has {} {} that examples/ does not (or differently): keep them identical",
            object["kind"],
            object["metadata"]["name"]
        );
    }
    for example in &examples {
        assert!(
            rest.contains(&example),
            "examples/ has {} {} that manifests/samples lacks",
            example["kind"],
            example["metadata"]["name"]
        );
    }
    let kinds: BTreeSet<&str> = rest.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["AppBundle", "AppTemplate", "Environment"])
    );
}

#[test]
fn the_sample_set_renders_an_environment_for_each_matching_pull_request() {
    use ephemeral_testkit::fake_github::PullRequestFixture;
    let Some(kubectl) = kubectl() else { return };
    let samples = kustomize(&kubectl, "samples");
    let sets = of_kind(&samples, "ephemeral.io/v1alpha1", "EnvironmentSet");
    assert_eq!(sets.len(), 1, "one sample EnvironmentSet");
    assert_eq!(sets[0]["metadata"]["namespace"], "ephemeral");
    // Labelled "preview": in. Unlabelled, or by dependabot: out.
    let mut seven = PullRequestFixture::new("acme", "shop", 7);
    seven.labels = vec!["preview".into()];
    let eight = PullRequestFixture::new("acme", "shop", 8);
    let mut nine = PullRequestFixture::new("acme", "shop", 9);
    nine.labels = vec!["preview".into()];
    nine.author = "dependabot[bot]".into();
    let dir = tempfile::tempdir().unwrap();
    let pulls = dir.path().join("pulls.json");
    fs::write(
        &pulls,
        serde_json::to_vec(&json!([seven.json(), eight.json(), nine.json()])).unwrap(),
    )
    .unwrap();
    let root = workspace_root();
    let output = std::process::Command::new(binary("kubectl-ephemeral"))
        .arg("render")
        .arg("-f")
        .arg(root.join("manifests/samples/catalog.yaml"))
        .arg("-f")
        .arg(root.join("manifests/samples/shop-prs.yaml"))
        .arg("--pull-requests")
        .arg(&pulls)
        .args(["--now", "2026-12-01T09:00:00Z", "-o", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "render the sample set: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A v1 List of the Environments (render prints them with their Flux
    // objects only with -o yaml's stream; -o json is the list).
    let rendered: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("render -o json: {e}: {stdout}"));
    let names: Vec<&str> = rendered["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a List: {stdout}"))
        .iter()
        .filter(|o| o["kind"] == "Environment")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["shop-prs-pr-7"], "{stdout}");
}

// ---------------------------------------------------------------- receiver

#[test]
fn the_receiver_ingress_example_exposes_only_post_github_of_the_receiver_port() {
    let Some(kubectl) = kubectl() else { return };
    let objects = kustomize(&kubectl, "receiver-ingress");
    assert_eq!(objects.len(), 1, "only the Ingress");
    let ingress: Ingress = one(&objects, "ephemeral-webhook-receiver");
    assert_eq!(ingress.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = ingress.spec.expect("ingress spec");
    assert!(
        spec.tls.is_some_and(|t| !t.is_empty()),
        "TLS at the Ingress"
    );
    let paths: Vec<_> = spec
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.http.iter().flat_map(|h| h.paths.iter()))
        .collect();
    assert_eq!(paths.len(), 1, "one path");
    assert_eq!(paths[0].path.as_deref(), Some("/github"));
    assert_eq!(paths[0].path_type, "Exact");
    let backend = paths[0]
        .backend
        .service
        .as_ref()
        .expect("a Service backend");
    assert_eq!(backend.name, SERVICE);
    assert_eq!(
        backend.port.as_ref().and_then(|p| p.name.as_deref()),
        Some("receiver")
    );
}
