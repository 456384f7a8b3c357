//! The RBAC that `manifests/` grants ephemeral-webhook's ServiceAccount, and
//! whether it allows one API request the way the API server's RBAC
//! authorizer decides it. The tower-test scenarios of the webhook crate run
//! every request they see through [`Grants::allow`], so a call the code
//! makes but the manifests do not grant fails a test, not a cluster.

use std::fs;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use serde_json::Value;

use crate::workspace_root;

/// The ServiceAccount the manifests bind: `(namespace, name)`.
pub const SERVICE_ACCOUNT: (&str, &str) = ("ephemeral-system", "ephemeral-webhook");

/// The RBAC files of the self-managed install, `manifests/default`
/// (`tests/tests/manifests.rs` checks that the rendered install grants exactly
/// what these files do).
pub const SELF_MANAGED_FILES: [&str; 2] = [
    "manifests/base/rbac.yaml",
    "manifests/default/certificates-rbac.yaml",
];

/// One granted permission.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// `None`: cluster-wide (a ClusterRoleBinding); else the namespace of the
    /// RoleBinding.
    pub namespace: Option<String>,
    /// API group (`""` for the core group).
    pub group: String,
    /// Resource, `resource/subresource` for a subresource.
    pub resource: String,
    /// Verb.
    pub verb: String,
    /// The one object it is limited to (`resourceNames`), or any.
    pub name: Option<String>,
}

/// What an API request asks the authorizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// Verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource, `resource/subresource` for a subresource.
    pub resource: String,
    /// Namespace of a namespaced request.
    pub namespace: Option<String>,
    /// Object name, when the path has one.
    pub name: Option<String>,
}

/// Reads an API request as the RBAC authorizer does: the verb from the
/// method (and `watch` in the query), the rest from the path. `None` for a
/// path that is not a resource path.
pub fn attributes(method: &str, path_and_query: &str) -> Option<Attributes> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(*namespace), rest),
        rest => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, subresource] => (*resource, Some(*name), Some(*subresource)),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, name) {
        ("GET", _) if watch => "watch",
        ("GET", Some(_)) => "get",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        _ => return None,
    };
    Some(Attributes {
        verb: verb.to_owned(),
        group: group.to_owned(),
        resource: match subresource {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_owned(),
        },
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    })
}

/// Everything the manifests grant the ServiceAccount.
#[derive(Clone, Debug)]
pub struct Grants {
    /// Each permission, expanded to one verb, resource and name.
    pub grants: Vec<Grant>,
}

fn ours(subjects: &Option<Vec<Subject>>) -> bool {
    subjects.iter().flatten().any(|s| {
        s.kind == "ServiceAccount"
            && s.name == SERVICE_ACCOUNT.1
            && s.namespace.as_deref() == Some(SERVICE_ACCOUNT.0)
    })
}

/// The objects of `kind`, typed.
fn typed<T: serde::de::DeserializeOwned>(objects: &[Value], kind: &str) -> Vec<T> {
    objects
        .iter()
        .filter(|o| o["apiVersion"] == "rbac.authorization.k8s.io/v1" && o["kind"] == kind)
        .map(|o| {
            serde_json::from_value(o.clone())
                .unwrap_or_else(|e| panic!("{kind} {}: {e}", o["metadata"]["name"]))
        })
        .collect()
}

fn expand(namespace: Option<&str>, rules: &[PolicyRule], into: &mut Vec<Grant>) {
    for rule in rules {
        assert!(
            rule.non_resource_urls.is_none(),
            "no non-resource URLs: {rule:?}"
        );
        let names: Vec<Option<String>> = match &rule.resource_names {
            Some(names) if !names.is_empty() => names.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for field in [group, resource, verb] {
                        assert!(!field.contains('*'), "no wildcards in RBAC: {rule:?}");
                    }
                    for name in &names {
                        into.push(Grant {
                            namespace: namespace.map(str::to_owned),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            name: name.clone(),
                        });
                    }
                }
            }
        }
    }
}

impl Grants {
    /// What `objects` (parsed manifests) grant the ServiceAccount through
    /// their bindings. Panics on a binding to a role that is not there.
    pub fn of(objects: &[Value]) -> Grants {
        let cluster_roles: Vec<ClusterRole> = typed(objects, "ClusterRole");
        let roles: Vec<Role> = typed(objects, "Role");
        let cluster_role = |name: &str| {
            cluster_roles
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("a binding names the missing ClusterRole {name}"))
                .rules
                .clone()
                .unwrap_or_default()
        };
        let mut grants = Vec::new();
        for binding in typed::<ClusterRoleBinding>(objects, "ClusterRoleBinding") {
            if ours(&binding.subjects) {
                expand(None, &cluster_role(&binding.role_ref.name), &mut grants);
            }
        }
        for binding in typed::<RoleBinding>(objects, "RoleBinding") {
            if !ours(&binding.subjects) {
                continue;
            }
            let namespace = binding.metadata.namespace.clone().expect("namespaced");
            let rules = match binding.role_ref.kind.as_str() {
                "Role" => roles
                    .iter()
                    .find(|r| {
                        r.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())
                            && r.metadata.namespace.as_deref() == Some(namespace.as_str())
                    })
                    .unwrap_or_else(|| panic!("missing Role {}", binding.role_ref.name))
                    .rules
                    .clone()
                    .unwrap_or_default(),
                _ => cluster_role(&binding.role_ref.name),
            };
            expand(Some(&namespace), &rules, &mut grants);
        }
        grants.sort();
        grants.dedup();
        Grants { grants }
    }

    /// What the self-managed install (`manifests/default`) grants, read from
    /// [`SELF_MANAGED_FILES`] (no kubectl needed).
    pub fn self_managed() -> Grants {
        let mut objects = Vec::new();
        for file in SELF_MANAGED_FILES {
            let path = workspace_root().join(file);
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            objects.extend(
                serde_saphyr::from_multiple::<Value>(&text)
                    .unwrap_or_else(|e| panic!("{file} is not YAML: {e}")),
            );
        }
        Grants::of(&objects)
    }

    /// Whether one permission covers `request`.
    fn covers(grant: &Grant, request: &Attributes, verb: &str) -> bool {
        let scope = match (&grant.namespace, &request.namespace) {
            (None, _) => true,
            (Some(granted), Some(asked)) => granted == asked,
            (Some(_), None) => false,
        };
        let name = match (&grant.name, &request.name) {
            (None, _) => true,
            (Some(granted), Some(asked)) => granted == asked,
            // resourceNames never match a request without a name (create, list).
            (Some(_), None) => false,
        };
        scope
            && name
            && grant.verb == verb
            && grant.group == request.group
            && grant.resource == request.resource
    }

    /// Whether the request `method path_and_query` (with its `content_type`)
    /// is allowed. A server-side apply (`application/apply-patch+yaml`) of an
    /// object may create it, which the API server authorizes as `create` too.
    pub fn allow(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: Option<&str>,
    ) -> Result<(), String> {
        let request = attributes(method, path_and_query)
            .ok_or_else(|| format!("{method} {path_and_query} is not a resource request"))?;
        let mut verbs = vec![request.verb.clone()];
        let apply = content_type.is_some_and(|c| c.starts_with("application/apply-patch"));
        if apply && !request.resource.contains('/') {
            verbs.push("create".to_owned());
        }
        for verb in verbs {
            if !self
                .grants
                .iter()
                .any(|g| Grants::covers(g, &request, &verb))
            {
                return Err(format!(
                    "the manifests do not allow {}/{} to {verb} {} (group {:?}{}{}), which {method} {path_and_query} needs: \
                     add it to the RBAC in manifests/ (with a comment saying what for) and to the RBAC table of docs/operations.md (RBAC: what each rule is for)",
                    SERVICE_ACCOUNT.0,
                    SERVICE_ACCOUNT.1,
                    request.resource,
                    request.group,
                    request
                        .namespace
                        .as_ref()
                        .map(|n| format!(", namespace {n}"))
                        .unwrap_or_default(),
                    request
                        .name
                        .as_ref()
                        .map(|n| format!(", name {n}"))
                        .unwrap_or_default(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_the_authorizer_reads_them() {
        let a = |m, p| attributes(m, p).unwrap();
        let got = a(
            "GET",
            "/api/v1/namespaces/ephemeral-system/secrets/ephemeral-webhook-tls",
        );
        assert_eq!(
            got,
            Attributes {
                verb: "get".into(),
                group: String::new(),
                resource: "secrets".into(),
                namespace: Some("ephemeral-system".into()),
                name: Some("ephemeral-webhook-tls".into()),
            }
        );
        let got = a(
            "GET",
            "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/team-a/kustomizations?&labelSelector=x",
        );
        assert_eq!((got.verb.as_str(), got.name), ("list", None));
        assert_eq!(
            a("GET", "/apis/ephemeral.io/v1alpha1/environments?watch=true").verb,
            "watch"
        );
        let got = a(
            "PATCH",
            "/apis/ephemeral.io/v1alpha1/namespaces/a/environments/e/status?fieldManager=x",
        );
        assert_eq!(
            (got.verb.as_str(), got.resource.as_str()),
            ("patch", "environments/status")
        );
        let got = a(
            "PATCH",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/ephemeral-webhook",
        );
        assert_eq!(
            (got.namespace, got.name.as_deref()),
            (None, Some("ephemeral-webhook"))
        );
        assert_eq!(a("POST", "/api/v1/namespaces/a/secrets?").verb, "create");
        assert_eq!(a("PUT", "/api/v1/namespaces/a/secrets/s").verb, "update");
        assert_eq!(
            a("DELETE", "/api/v1/namespaces/a/secrets").verb,
            "deletecollection"
        );
        assert!(attributes("GET", "/version").is_none());
    }

    #[test]
    fn the_check_refuses_what_is_not_granted() {
        let grants = Grants::self_managed();
        let ns = "/api/v1/namespaces/ephemeral-system/secrets";
        grants
            .allow("GET", &format!("{ns}/ephemeral-webhook-tls"), None)
            .unwrap();
        grants
            .allow("POST", &format!("{ns}?&fieldManager=x"), None)
            .unwrap();
        // Secrets elsewhere are only read by name (the ones EnvironmentSets
        // name): a GET anywhere, but no list, watch, write or delete.
        grants
            .allow("GET", "/api/v1/namespaces/team-a/secrets/github", None)
            .unwrap();
        for (method, path) in [
            ("GET", "/api/v1/namespaces/team-a/secrets".to_owned()),
            (
                "GET",
                "/api/v1/namespaces/team-a/secrets?watch=true".to_owned(),
            ),
            ("PUT", "/api/v1/namespaces/team-a/secrets/github".to_owned()),
            (
                "DELETE",
                "/api/v1/namespaces/team-a/secrets/github".to_owned(),
            ),
            ("DELETE", format!("{ns}/ephemeral-webhook-tls")),
            ("GET", ns.to_owned()),
            ("POST", "/api/v1/namespaces/team-a/events".to_owned()),
        ] {
            let error = grants.allow(method, &path, None).unwrap_err();
            assert!(error.contains("the manifests do not allow"), "{error}");
        }
        // A server-side apply needs create too; a status apply does not.
        let flux = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/team-a/kustomizations/e-a";
        grants
            .allow("PATCH", flux, Some("application/apply-patch+yaml"))
            .unwrap();
        let only_patch = Grants {
            grants: grants
                .grants
                .iter()
                .filter(|g| !(g.resource == "kustomizations" && g.verb == "create"))
                .cloned()
                .collect(),
        };
        only_patch
            .allow("PATCH", flux, Some("application/merge-patch+json"))
            .unwrap();
        let error = only_patch
            .allow("PATCH", flux, Some("application/apply-patch+yaml"))
            .unwrap_err();
        assert!(error.contains("to create kustomizations"), "{error}");
        grants
            .allow(
                "PATCH",
                "/apis/ephemeral.io/v1alpha1/namespaces/a/environments/e/status",
                Some("application/apply-patch+yaml"),
            )
            .unwrap();
    }
}
