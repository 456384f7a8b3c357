//! `kubectl ephemeral describe`: everything a person needs to see why an
//! environment is (not) working, in the layout of `kubectl describe`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;

use ephemeral_core::Environment;
use ephemeral_core::api::App;
use ephemeral_core::expand::{ENVIRONMENT_LABEL, UPTIME_ANNOTATION};
use ephemeral_core::names::child_name;
use ephemeral_core::prefix::policy_pattern;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};

use super::{Ctx, Notes};
use crate::api;
use crate::cli::NameArgs;
use crate::error::{Error, Target};
use crate::events;
use crate::summary;
use crate::time::{self, Clock};

/// What `describe` found about an app's ImagePolicy when it has no tag.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyState {
    /// Not created yet.
    Missing,
    /// Exists; its Ready condition's message, if any.
    Found(Option<String>),
    /// Could not be read.
    Unreadable(String),
}

/// Everything `describe` shows, gathered from the API.
#[derive(Clone, Debug)]
pub struct Described {
    /// The environment.
    pub env: Environment,
    /// ImagePolicy state per app without a resolved tag.
    pub policies: Vec<(String, PolicyState)>,
    /// URLs from Ingresses labelled with the environment, or why they could not be listed.
    pub urls: Result<Vec<String>, String>,
    /// Recent Events, oldest first, or why they could not be listed.
    pub events: Result<Vec<Event>, String>,
}

/// Runs `describe`.
pub async fn run(ctx: &Ctx, args: &NameArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    let described = gather(ctx, &args.name).await?;
    out.write_all(text(&described, &ctx.clock).as_bytes())?;
    Ok(Notes::new())
}

/// Reads the environment, then its untagged apps' ImagePolicies, its Ingresses and its Events.
pub async fn gather(ctx: &Ctx, name: &str) -> Result<Described, Error> {
    let ns = ctx.namespace.as_str();
    let env = api::environments(&ctx.client, ns)
        .get(name)
        .await
        .map_err(|e| Error::from_kube(e, Target::environment(name, ns)))?;
    let policies_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &api::image_policy_resource());
    let mut policies = Vec::new();
    for app in env
        .spec
        .apps
        .iter()
        .filter(|a| a.image_tag_prefix.is_some())
    {
        if image_tag(&env, &app.name).is_some() {
            continue;
        }
        let state = match policies_api.get_opt(&child_name(name, &app.name)).await {
            Ok(Some(policy)) => PolicyState::Found(ready_message(&policy)),
            Ok(None) => PolicyState::Missing,
            Err(e) => PolicyState::Unreadable(api_message(e)),
        };
        policies.push((app.name.clone(), state));
    }
    let selector = format!("{ENVIRONMENT_LABEL}={name}");
    let urls = Api::<Ingress>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .map(|list| urls(&list.items))
        .map_err(api_message);
    let events = events(ctx, "Environment", name).await;
    Ok(Described {
        env,
        policies,
        urls,
        events,
    })
}

/// The most recent Events about the object `kind` `name` of the namespace,
/// oldest first, or why they could not be listed.
pub async fn events(ctx: &Ctx, kind: &str, name: &str) -> Result<Vec<Event>, String> {
    let fields = format!("involvedObject.kind={kind},involvedObject.name={name}");
    Api::<Event>::namespaced(ctx.client.clone(), &ctx.namespace)
        .list(&ListParams::default().fields(&fields))
        .await
        .map(|list| events::recent(list.items))
        .map_err(api_message)
}

/// What an API error says, for a line in the output instead of a failure.
pub fn api_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        other => crate::error::causes(&other),
    }
}

/// What the controller reads from the policy's Ready condition (the core's
/// one reader: a condition for an older generation is not trusted).
fn ready_message(policy: &DynamicObject) -> Option<String> {
    ephemeral_core::ready::health(policy.metadata.generation, policy.data.get("status")).message
}

/// `http(s)://host/path` for each Ingress rule; https when a TLS entry covers the host.
pub fn urls(ingresses: &[Ingress]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for ingress in ingresses {
        let Some(spec) = &ingress.spec else { continue };
        let tls_hosts: Vec<&str> = spec
            .tls
            .iter()
            .flatten()
            .flat_map(|t| t.hosts.iter().flatten())
            .map(String::as_str)
            .collect();
        for rule in spec.rules.iter().flatten() {
            let Some(host) = &rule.host else { continue };
            let scheme = if tls_hosts.contains(&host.as_str()) {
                "https"
            } else {
                "http"
            };
            let paths: Vec<&str> = rule
                .http
                .as_ref()
                .map(|h| h.paths.iter().filter_map(|p| p.path.as_deref()).collect())
                .unwrap_or_default();
            if paths.is_empty() {
                out.insert(format!("{scheme}://{host}/"));
            }
            for path in paths {
                out.insert(format!("{scheme}://{host}{path}"));
            }
        }
    }
    out.into_iter().collect()
}

fn image_tag<'a>(env: &'a Environment, app: &str) -> Option<&'a str> {
    env.status
        .as_ref()?
        .apps
        .iter()
        .find(|a| a.name == app)?
        .image_tag
        .as_deref()
}

fn app_kind(env: &Environment, app: &App) -> &'static str {
    let reported = env
        .status
        .as_ref()
        .and_then(|s| s.apps.iter().find(|a| a.name == app.name))
        .map(|a| a.kind.as_str());
    match reported {
        Some("HelmRelease") => "HelmRelease",
        Some("Kustomization") => "Kustomization",
        _ if app.helm.is_some() => "HelmRelease",
        _ => "Kustomization",
    }
}

/// The describe text. Pure.
pub fn text(d: &Described, clock: &Clock) -> String {
    let env = &d.env;
    let ns = env.namespace().unwrap_or_default();
    let mut s = String::new();
    let field = |s: &mut String, key: &str, value: &str| {
        let _ = writeln!(s, "{:<15} {value}", format!("{key}:"));
    };
    field(&mut s, "Name", &env.name_any());
    field(&mut s, "Namespace", &ns);
    field(&mut s, "Owner", summary::owner(env));
    if let Some(created) = env.creation_timestamp() {
        field(&mut s, "Created", &time::moment(created.0, clock));
    }
    field(&mut s, "Lease", &summary::lease(env, clock));
    if let Some(uptime) = env.annotations().get(UPTIME_ANNOTATION) {
        field(&mut s, "Uptime", uptime);
    }
    if let Some(after) = env
        .spec
        .lease
        .as_ref()
        .and_then(|l| l.expire_after.as_deref())
    {
        field(
            &mut s,
            "Expire after",
            &format!("{after} after the lease ends, the environment is deleted"),
        );
    }
    if let Some(branch) = &env.spec.source_branch {
        field(&mut s, "Source branch", branch);
    }
    if !env.spec.bundles.is_empty() {
        field(&mut s, "Bundles", &env.spec.bundles.join(", "));
    }
    let ready = match summary::ready_condition(env) {
        Some(c) => {
            let mut text = c.status.clone();
            if !c.reason.is_empty() {
                text.push_str(&format!("  {}", c.reason));
            }
            if !c.message.is_empty() {
                text.push_str(&format!(": {}", c.message));
            }
            text
        }
        None => "not reported yet (the controller has not processed this environment)".to_owned(),
    };
    field(&mut s, "Ready", &ready);
    field(&mut s, "Apps ready", &summary::ready_apps(env));
    if let Some(suspended) = env
        .status
        .as_ref()
        .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Suspended"))
    {
        let text = match (suspended.status.as_str(), suspended.message.as_str()) {
            ("True", m) if !m.is_empty() => format!("Yes: {m}"),
            ("True", _) => "Yes".to_owned(),
            _ => "No (suspended outside uptime; inside it now)".to_owned(),
        };
        field(&mut s, "Suspended", &text);
    }

    s.push_str("\nApps:\n");
    for app in &env.spec.apps {
        describe_app(&mut s, d, app, &ns);
    }
    if env.spec.apps.is_empty() {
        s.push_str("  <none>\n");
    }

    s.push_str("\nURLs:\n");
    match &d.urls {
        Ok(urls) if urls.is_empty() => {
            let _ = writeln!(
                s,
                "  <none> (no Ingress labelled {ENVIRONMENT_LABEL}={})",
                env.name_any()
            );
        }
        Ok(urls) => urls.iter().for_each(|u| {
            let _ = writeln!(s, "  {u}");
        }),
        Err(e) => {
            let _ = writeln!(s, "  <cannot list Ingresses: {e}>");
        }
    }

    events::section(&mut s, &d.events, clock);
    s
}

fn describe_app(s: &mut String, d: &Described, app: &App, ns: &str) {
    let env = &d.env;
    let child = child_name(&env.name_any(), &app.name);
    let _ = writeln!(s, "  {}:", app.name);
    let row = |s: &mut String, key: &str, value: &str| {
        let _ = writeln!(s, "    {:<12} {value}", format!("{key}:"));
    };
    row(s, "Kind", &format!("{} {child}", app_kind(env, app)));
    let repo = app
        .image_repository
        .as_ref()
        .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(ns), r.name));
    match &app.image_tag_prefix {
        Some(prefix) => {
            let mut follows = prefix.clone();
            if let Some(branch) = &app.branch {
                follows.push_str(&format!(" (branch {branch})"));
            }
            if let Some(repo) = &repo {
                follows.push_str(&format!(" in ImageRepository {repo}"));
            }
            row(s, "Follows", &follows);
            match image_tag(env, &app.name) {
                Some(tag) => row(s, "Image tag", tag),
                None => {
                    row(s, "Image tag", "none yet. Likely causes:");
                    no_tag_causes(s, d, app, prefix, repo.as_deref(), &child, ns);
                }
            }
        }
        None => row(s, "Follows", "a fixed image (no imageTagPrefix)"),
    }
    let status = env
        .status
        .as_ref()
        .and_then(|st| st.apps.iter().find(|a| a.name == app.name));
    let ready = match status {
        Some(a) => {
            let mut text = if a.ready { "True" } else { "False" }.to_owned();
            if let Some(reason) = &a.reason {
                text.push_str(&format!("  {reason}"));
            }
            if let Some(message) = a.message.as_deref().filter(|m| !m.is_empty()) {
                text.push_str(&format!(": {message}"));
            }
            text
        }
        None => "not reported yet".to_owned(),
    };
    row(s, "Ready", &ready);
}

fn no_tag_causes(
    s: &mut String,
    d: &Described,
    app: &App,
    prefix: &str,
    repo: Option<&str>,
    child: &str,
    ns: &str,
) {
    let pad = "                 ";
    let pattern = policy_pattern(prefix);
    match repo {
        Some(repo) => {
            let (repo_ns, repo_name) = repo.split_once('/').unwrap_or((ns, repo));
            let _ = writeln!(
                s,
                "{pad}- no tag in ImageRepository {repo} matches\n{pad}  {pattern}\n{pad}  check that it scans the right image: kubectl -n {repo_ns} describe imagerepository {repo_name}"
            );
        }
        None => {
            let _ = writeln!(
                s,
                "{pad}- the app names no imageRepository, so nothing is scanned"
            );
        }
    }
    let _ = writeln!(
        s,
        "{pad}- CI has not pushed a build with this prefix yet, or tags differently; builds must be\n{pad}  tagged <prefix>-<git sha>-<unix seconds>, e.g. {prefix}-3f2c1ab-1763712000"
    );
    match d
        .policies
        .iter()
        .find(|(name, _)| *name == app.name)
        .map(|(_, p)| p)
    {
        Some(PolicyState::Missing) => {
            let _ = writeln!(
                s,
                "{pad}- ImagePolicy {ns}/{child} does not exist yet (the controller creates it)"
            );
        }
        Some(PolicyState::Found(Some(message))) => {
            let _ = writeln!(s, "{pad}ImagePolicy {ns}/{child}: {message}");
        }
        Some(PolicyState::Unreadable(e)) => {
            let _ = writeln!(s, "{pad}(cannot read ImagePolicy {ns}/{child}: {e})");
        }
        Some(PolicyState::Found(None)) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(generation: i64, observed: i64) -> DynamicObject {
        let mut p = DynamicObject::new("alice-web", &api::image_policy_resource());
        p.metadata.generation = Some(generation);
        p.data = serde_json::json!({"status": {"observedGeneration": observed, "conditions": [
            {"type": "Ready", "status": "False", "reason": "DependencyNotReady",
             "message": "no image found for policy: no tags match the filter"}]}});
        p
    }

    /// The policy's message is the one the controller trusts: a Ready
    /// condition for an older generation says Flux has not caught up.
    #[test]
    fn the_policy_message_is_the_controllers() {
        assert_eq!(
            ready_message(&policy(2, 2)).as_deref(),
            Some("no image found for policy: no tags match the filter")
        );
        assert_eq!(
            ready_message(&policy(3, 2)).as_deref(),
            Some("waiting for Flux to reconcile generation 3 (last observed 2)")
        );
    }
}
