//! The kustomize bases under `manifests/`: the committed CRDs are what
//! `ephemeral-webhook crds` prints, every base builds with the real
//! `kubectl kustomize`, and what it builds wires the API server, the Service
//! and the Deployment together the way `ephemeral-webhook serve` expects.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ephemeral_e2e::{binary, workspace_root};
use serde_json::Value;

const NAMESPACE: &str = "ephemeral-system";
const SERVICE: &str = "ephemeral-webhook";
const REGENERATE: &str = "manifests/generate-crds.sh";
const CRD_NAMES: [&str; 3] = [
    "environments.ephemeral.io",
    "apptemplates.ephemeral.io",
    "appbundles.ephemeral.io",
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
        "ephemeral-webhook crds prints Environment, AppTemplate, AppBundle"
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

/// The real kubectl, or `None` (with a loud warning) when it is not
/// installed outside CI. In CI (`CI=true`) a missing kubectl is a failure.
fn kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "kubectl not found at {} (set KUBECTL): the manifests cannot be checked",
            path.display()
        );
    }
    eprintln!(
        "\n!!!!!!!! WARNING: kubectl not found at {} (set KUBECTL); \
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

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} {name}");
    found[0]
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn assert_crds(objects: &[Value]) {
    for name in CRD_NAMES {
        let crd = find(objects, "CustomResourceDefinition", name);
        assert_eq!(crd["spec"]["group"], "ephemeral.io");
        let versions = crd["spec"]["versions"].as_array().expect("versions");
        assert!(
            versions
                .iter()
                .any(|v| v["name"] == "v1alpha1" && v["served"] == true && v["storage"] == true),
            "{name} serves and stores v1alpha1"
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

fn port_of(address: &str) -> u64 {
    address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{address} has no port"))
}

/// A container port by name or number.
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().expect("port is a name or a number");
    container["ports"]
        .as_array()
        .expect("container ports")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("container has no port named {name}"))
}

/// The Deployment runs `serve` with flags that exist, listens where the
/// Service and probes point, and has the TLS files where it says.
fn assert_deployment(objects: &[Value]) {
    let deployment = find(objects, "Deployment", "ephemeral-webhook");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE);
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];

    let image = container["image"].as_str().expect("image");
    let tag = image
        .strip_prefix("ghcr.io/example/ephemeral-webhook:")
        .unwrap_or_else(|| panic!("image {image} is ghcr.io/example/ephemeral-webhook:<tag>"));
    assert!(
        !tag.is_empty() && tag != "latest",
        "image tag is pinned: {image}"
    );

    // Arguments: `serve`, then only `--flag=value` / `--flag` that serve knows.
    let args = strings(&container["args"]);
    assert_eq!(args.first(), Some(&"serve"), "the container runs `serve`");
    let known = serve_flags();
    let flag = |name: &str| -> Option<String> {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
    };
    for arg in &args[1..] {
        assert!(
            arg.starts_with("--"),
            "argument {arg:?}: write flags as --flag=value"
        );
        let name = arg.split_once('=').map_or(*arg, |(n, _)| n);
        assert!(
            known.contains(name),
            "the Deployment passes {name}, which `ephemeral-webhook serve --help` does not list \
             (it lists: {known:?})"
        );
    }

    // Ports: admission where the Service sends it, admin where the probes look.
    let listen = flag("listen").unwrap_or_else(|| "0.0.0.0:8443".to_owned());
    let admin = flag("admin-listen").unwrap_or_else(|| "0.0.0.0:8080".to_owned());
    assert_eq!(
        container_port(container, &Value::from("webhook")),
        port_of(&listen)
    );
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} path");
        assert_eq!(
            container_port(container, &get["port"]),
            port_of(&admin),
            "{probe} goes to the admin listener"
        );
        assert!(
            get["scheme"].is_null() || get["scheme"] == "HTTP",
            "admin is plain HTTP"
        );
    }
    let service = find(objects, "Service", SERVICE);
    assert_eq!(service["metadata"]["namespace"], NAMESPACE);
    let service_port = service["spec"]["ports"]
        .as_array()
        .expect("service ports")
        .iter()
        .find(|p| p["port"] == 443)
        .expect("the Service listens on 443, where the webhooks call it");
    assert_eq!(
        container_port(container, &service_port["targetPort"]),
        port_of(&listen),
        "Service 443 reaches the admission listener"
    );
    for (key, value) in service["spec"]["selector"]
        .as_object()
        .expect("service selector")
    {
        assert_eq!(
            &deployment["spec"]["template"]["metadata"]["labels"][key], value,
            "the Service selects the Deployment's pods"
        );
    }

    // TLS: the cert and key flags point into the mounted Secret.
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volume mounts")
        .iter()
        .find(|m| m["mountPath"] == "/tls")
        .expect("a volume mounted at /tls");
    assert!(
        mount["subPath"].is_null(),
        "no subPath: renewed certificates must reach the pod"
    );
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the /tls volume");
    assert_eq!(volume["secret"]["secretName"], "ephemeral-webhook-tls");
    assert_eq!(flag("tls-cert-file").as_deref(), Some("/tls/tls.crt"));
    assert_eq!(flag("tls-key-file").as_deref(), Some("/tls/tls.key"));

    // Hardening.
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert!(strings(&security["capabilities"]["drop"]).contains(&"ALL"));
    assert!(security["runAsNonRoot"] == true || pod["securityContext"]["runAsNonRoot"] == true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(
        container["resources"]["requests"].is_object(),
        "resource requests"
    );
    let grace = flag("shutdown-grace").expect("--shutdown-grace is set explicitly");
    let grace_seconds: u64 = grace
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("--shutdown-grace={grace}: write it in whole seconds"));
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    assert!(
        termination > grace_seconds,
        "terminationGracePeriodSeconds ({termination}) must exceed --shutdown-grace ({grace}), \
         or the kubelet kills requests the server is still finishing"
    );

    // Identity: the pod's service account is the one the ClusterRole is bound to.
    let account = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    let sa = find(objects, "ServiceAccount", account);
    assert_eq!(sa["metadata"]["namespace"], NAMESPACE);
    let binding = find(objects, "ClusterRoleBinding", "ephemeral-webhook");
    assert!(
        binding["subjects"]
            .as_array()
            .expect("subjects")
            .iter()
            .any(|s| s["kind"] == "ServiceAccount"
                && s["name"] == account
                && s["namespace"] == NAMESPACE),
        "the binding grants the pod's service account"
    );
    if let Some(controller) = flag("controller-service-account") {
        assert_eq!(
            controller,
            format!("system:serviceaccount:{NAMESPACE}:{account}"),
            "--controller-service-account is the pod's own identity"
        );
    }
}

fn allows(rules: &[Value], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        strings(&r["apiGroups"]).contains(&group)
            && strings(&r["resources"]).contains(&resource)
            && strings(&r["verbs"]).contains(&verb)
    })
}

fn assert_rbac(objects: &[Value]) {
    let binding = find(objects, "ClusterRoleBinding", "ephemeral-webhook");
    let role_name = binding["roleRef"]["name"].as_str().expect("roleRef.name");
    let role = find(objects, "ClusterRole", role_name);
    let rules = role["rules"].as_array().expect("rules");
    let mut need = vec![];
    for resource in ["environments", "apptemplates", "appbundles"] {
        for verb in ["get", "list", "watch"] {
            need.push(("ephemeral.io", resource, verb));
        }
    }
    for verb in ["update", "patch"] {
        need.push(("ephemeral.io", "environments", verb));
        need.push(("ephemeral.io", "environments/status", verb));
    }
    need.push(("ephemeral.io", "environments/finalizers", "update"));
    for (group, resource) in [
        ("kustomize.toolkit.fluxcd.io", "kustomizations"),
        ("helm.toolkit.fluxcd.io", "helmreleases"),
        ("image.toolkit.fluxcd.io", "imagepolicies"),
        ("source.toolkit.fluxcd.io", "gitrepositories"),
    ] {
        for verb in ["create", "patch", "get", "list", "watch", "delete"] {
            need.push((group, resource, verb));
        }
    }
    for group in ["", "events.k8s.io"] {
        need.push((group, "events", "create"));
        need.push((group, "events", "patch"));
    }
    for (group, resource, verb) in need {
        assert!(
            allows(rules, group, resource, verb),
            "the ClusterRole lets the controller {verb} {resource}.{group}"
        );
    }
    for rule in rules {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(
                !strings(&rule[field]).contains(&"*"),
                "no wildcards in the ClusterRole: {rule}"
            );
        }
        assert!(
            !strings(&rule["resources"]).contains(&"secrets"),
            "the controller never reads Secrets"
        );
    }
}

/// Both webhook configurations call the Service on the right path for the
/// right operations on Environments.
fn assert_webhooks(objects: &[Value]) {
    for (kind, path, operations) in [
        (
            "MutatingWebhookConfiguration",
            "/mutate",
            vec!["CREATE", "UPDATE"],
        ),
        (
            "ValidatingWebhookConfiguration",
            "/validate",
            vec!["UPDATE", "DELETE"],
        ),
    ] {
        let config = find(objects, kind, "ephemeral-webhook");
        let webhooks = config["webhooks"].as_array().expect("webhooks");
        assert_eq!(webhooks.len(), 1, "{kind} has one webhook");
        let webhook = &webhooks[0];
        let service = &webhook["clientConfig"]["service"];
        assert_eq!(service["name"], SERVICE, "{kind} service");
        assert_eq!(service["namespace"], NAMESPACE, "{kind} namespace");
        assert_eq!(service["path"], path, "{kind} path");
        assert!(
            service["port"].is_null() || service["port"] == 443,
            "{kind} calls port 443"
        );
        let rules = webhook["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 1, "{kind} has one rule");
        let rule = &rules[0];
        assert_eq!(strings(&rule["apiGroups"]), ["ephemeral.io"]);
        assert_eq!(strings(&rule["apiVersions"]), ["v1alpha1"]);
        assert_eq!(strings(&rule["resources"]), ["environments"]);
        let mut got = strings(&rule["operations"]);
        got.sort_unstable();
        let mut want = operations.clone();
        want.sort_unstable();
        assert_eq!(got, want, "{kind} operations");
        assert_eq!(webhook["sideEffects"], "None");
        assert_eq!(strings(&webhook["admissionReviewVersions"]), ["v1"]);
        assert_eq!(webhook["failurePolicy"], "Fail");
        assert_eq!(webhook["matchPolicy"], "Equivalent");
        let timeout = webhook["timeoutSeconds"].as_u64().expect("timeoutSeconds");
        assert!((1..=10).contains(&timeout), "{kind} timeout {timeout}s");
    }
    let mutating = find(objects, "MutatingWebhookConfiguration", "ephemeral-webhook");
    assert_eq!(mutating["webhooks"][0]["reinvocationPolicy"], "Never");
}

fn assert_base(objects: &[Value]) {
    find(objects, "Namespace", NAMESPACE);
    assert_deployment(objects);
    assert_rbac(objects);
    assert_webhooks(objects);
}

#[test]
fn crds_base_builds() {
    let Some(kubectl) = kubectl() else { return };
    let objects = kustomize(&kubectl, "crds");
    assert_eq!(objects.len(), CRD_NAMES.len(), "only the CRDs");
    assert_crds(&objects);
}

#[test]
fn base_builds_and_wires_the_webhook() {
    let Some(kubectl) = kubectl() else { return };
    let objects = kustomize(&kubectl, "base");
    assert_base(&objects);
    assert!(
        objects
            .iter()
            .all(|o| o["kind"] != "CustomResourceDefinition"),
        "the CRDs come from manifests/crds"
    );
}

#[test]
fn default_installs_crds_webhook_and_certificate() {
    let Some(kubectl) = kubectl() else { return };
    let objects = kustomize(&kubectl, "default");
    assert_crds(&objects);
    assert_base(&objects);

    // cert-manager issues the Secret the pod mounts, for the Service's name...
    let certificate = find(&objects, "Certificate", "ephemeral-webhook");
    assert_eq!(certificate["metadata"]["namespace"], NAMESPACE);
    assert_eq!(certificate["spec"]["secretName"], "ephemeral-webhook-tls");
    assert!(
        strings(&certificate["spec"]["dnsNames"])
            .contains(&format!("{SERVICE}.{NAMESPACE}.svc").as_str()),
        "the certificate is valid for the name the API server calls"
    );
    let issuer_name = certificate["spec"]["issuerRef"]["name"]
        .as_str()
        .expect("issuerRef");
    let issuer = find(&objects, "Issuer", issuer_name);
    assert_eq!(issuer["metadata"]["namespace"], NAMESPACE);

    // ...and injects its CA into both webhooks so the API server trusts it.
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = find(&objects, kind, "ephemeral-webhook");
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            format!("{NAMESPACE}/ephemeral-webhook"),
            "{kind} gets the certificate's CA"
        );
    }

    // No object twice.
    let mut seen = BTreeSet::new();
    for o in &objects {
        let key = (
            o["kind"].to_string(),
            o["metadata"]["namespace"].to_string(),
            o["metadata"]["name"].to_string(),
        );
        assert!(seen.insert(key.clone()), "duplicate object {key:?}");
    }
}
