//! The Flux kinds an Environment expands into: one table of kind,
//! `apiVersion`, group, version and plural, read by the controller (dynamic
//! API calls, watches, pruning), the plugin (`describe` reads ImagePolicies)
//! and messages.

use kube::core::ApiResource;

/// One of the four Flux kinds an Environment expands into. Ordered as
/// declared (the order of sets and maps keyed by kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FluxKind {
    /// `source.toolkit.fluxcd.io/v1` GitRepository (a `sourceBranch` copy).
    GitRepository,
    /// `kustomize.toolkit.fluxcd.io/v1` Kustomization.
    Kustomization,
    /// `helm.toolkit.fluxcd.io/v2` HelmRelease.
    HelmRelease,
    /// `image.toolkit.fluxcd.io/v1` ImagePolicy.
    ImagePolicy,
}

/// What the API calls a kind: one row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// `kind`, e.g. `HelmRelease`.
    pub kind: &'static str,
    /// API group, e.g. `helm.toolkit.fluxcd.io`.
    pub group: &'static str,
    /// API version, e.g. `v2`.
    pub version: &'static str,
    /// `apiVersion`: `<group>/<version>`.
    pub api_version: &'static str,
    /// Resource (plural) name, e.g. `helmreleases`.
    pub plural: &'static str,
}

/// The table, in the order of [`FluxKind`]'s variants.
const TABLE: [KindInfo; 4] = [
    KindInfo {
        kind: "GitRepository",
        group: "source.toolkit.fluxcd.io",
        version: "v1",
        api_version: "source.toolkit.fluxcd.io/v1",
        plural: "gitrepositories",
    },
    KindInfo {
        kind: "Kustomization",
        group: "kustomize.toolkit.fluxcd.io",
        version: "v1",
        api_version: "kustomize.toolkit.fluxcd.io/v1",
        plural: "kustomizations",
    },
    KindInfo {
        kind: "HelmRelease",
        group: "helm.toolkit.fluxcd.io",
        version: "v2",
        api_version: "helm.toolkit.fluxcd.io/v2",
        plural: "helmreleases",
    },
    KindInfo {
        kind: "ImagePolicy",
        group: "image.toolkit.fluxcd.io",
        version: "v1",
        api_version: "image.toolkit.fluxcd.io/v1",
        plural: "imagepolicies",
    },
];

impl FluxKind {
    /// Every kind, in the order the controller lists and watches them.
    pub const ALL: [FluxKind; 4] = [
        FluxKind::Kustomization,
        FluxKind::HelmRelease,
        FluxKind::ImagePolicy,
        FluxKind::GitRepository,
    ];

    /// The kind's row of the table.
    pub const fn info(self) -> &'static KindInfo {
        &TABLE[self as usize]
    }

    /// The kind's name, e.g. `HelmRelease`.
    pub const fn as_str(self) -> &'static str {
        self.info().kind
    }

    /// The kind whose `kind` is `name`, if it is one of the four.
    pub fn from_kind(name: &str) -> Option<FluxKind> {
        FluxKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Group, version, kind and plural, for dynamic API calls.
    pub fn api_resource(self) -> ApiResource {
        let info = self.info();
        ApiResource {
            group: info.group.to_owned(),
            version: info.version.to_owned(),
            api_version: info.api_version.to_owned(),
            kind: info.kind.to_owned(),
            plural: info.plural.to_owned(),
        }
    }

    /// Whether this kind deploys an app (its Ready condition is the app's).
    pub fn is_app(self) -> bool {
        matches!(self, FluxKind::Kustomization | FluxKind::HelmRelease)
    }
}

#[cfg(test)]
mod tests {
    use kube::Resource;

    use super::*;
    use crate::flux::{GitRepository, HelmRelease, ImagePolicy, Kustomization};

    /// The table says what the types' kube derives say.
    #[test]
    fn the_table_matches_the_types() {
        let erased = |k: FluxKind| match k {
            FluxKind::GitRepository => ApiResource::erase::<GitRepository>(&()),
            FluxKind::Kustomization => ApiResource::erase::<Kustomization>(&()),
            FluxKind::HelmRelease => ApiResource::erase::<HelmRelease>(&()),
            FluxKind::ImagePolicy => ApiResource::erase::<ImagePolicy>(&()),
        };
        for kind in FluxKind::ALL {
            assert_eq!(kind.api_resource(), erased(kind), "{kind:?}");
            assert_eq!(FluxKind::from_kind(kind.as_str()), Some(kind));
        }
        assert_eq!(HelmRelease::plural(&()), "helmreleases");
        assert_eq!(FluxKind::from_kind("Bucket"), None);
        let ar = FluxKind::HelmRelease.api_resource();
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("helm.toolkit.fluxcd.io", "v2", "helmreleases")
        );
        assert!(FluxKind::Kustomization.is_app() && !FluxKind::ImagePolicy.is_app());
    }
}
