//! What the fuzz targets share: the fixed catalog, config and clock they run
//! against, and the admission path exactly as the server takes it.

use std::path::Path;
use std::sync::OnceLock;

use ephemeral_core::{Catalog, Config};
use ephemeral_webhook::admission::{self, Access, Outcome, Review};
use jiff::Timestamp;

/// The fixed "now" of every run (a Saturday, inside the examples' schedules).
pub fn now() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().expect("a timestamp")
}

/// The examples' catalog (`examples/catalog`), compiled in.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut catalog = Catalog::default();
        for (path, text) in [
            (
                "examples/catalog/templates.yaml",
                include_str!("../../examples/catalog/templates.yaml"),
            ),
            (
                "examples/catalog/sources.yaml",
                include_str!("../../examples/catalog/sources.yaml"),
            ),
        ] {
            ephemeral_webhook::catalog::add_documents(&mut catalog, Path::new(path), text)
                .expect("the examples' catalog loads");
        }
        catalog
    })
}

/// The default policy, with the `staging` Environment (a render fixture) always on.
pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config {
        always_on: vec!["staging".to_owned()],
        ..Config::default()
    })
}

/// The admins: one group and the controller's service account.
pub fn access() -> &'static Access {
    static ACCESS: OnceLock<Access> = OnceLock::new();
    ACCESS.get_or_init(|| Access {
        admin_groups: vec!["platform-admins".to_owned()],
        controller_service_account: "system:serviceaccount:ephemeral-system:ephemeral-webhook"
            .to_owned(),
    })
}

/// Which admission endpoint a body is posted to.
#[derive(Clone, Copy, Debug)]
pub enum Endpoint {
    /// `POST /mutate`.
    Mutate,
    /// `POST /validate`.
    Validate,
}

/// What `server.rs` does with a request body that fits the limit: decode it
/// as an AdmissionReview, answer a malformed one (with an AdmissionReview when
/// its uid can be read), else decide and serialise the answer.
pub fn admit(endpoint: Endpoint, body: &[u8]) {
    let review: Review = match admission::parse_review(body) {
        Ok(review) => review,
        Err(malformed) => {
            let _ = malformed.error.to_string();
            if let Some(answer) =
                admission::malformed_review(&malformed).and_then(|review| review.response)
            {
                serde_json::to_vec(&answer).expect("a malformed-body answer serialises");
            }
            return;
        }
    };
    let decision = match endpoint {
        Endpoint::Mutate => admission::mutate(&review, catalog(), config(), now()),
        Endpoint::Validate => admission::validate(&review, access()),
    };
    // The metric outcome and the answer tell the same story.
    assert_eq!(
        decision.response.allowed,
        decision.outcome == Outcome::Allowed,
        "outcome {} for {:?}",
        decision.outcome.as_str(),
        decision.response.result
    );
    let response = decision.response;
    let body = admission::response_body(&response);
    // The answer must always be a JSON object the API server can read back.
    let answer: serde_json::Value =
        serde_json::from_slice(&body).expect("the answer is JSON the API server can read");
    assert!(answer.is_object());
}

/// What `render` does with the contents of one `-f` file: read it as text
/// (bytes that are not UTF-8 are a read error, as for `read_to_string`), read
/// its YAML/JSON documents, then expand every Environment found against the
/// file's own catalog and write the YAML stream.
pub fn render_file(contents: &[u8]) {
    let Ok(text) = std::str::from_utf8(contents) else {
        return;
    };
    let mut input = kubectl_ephemeral::input::Input::default();
    if let Err(error) = input.add_text(
        Path::new("fuzz.yaml"),
        text,
        kubectl_ephemeral::input::DEFAULT_NAMESPACE,
    ) {
        let _ = error.to_string();
        return;
    }
    let catalog = input.catalog_with_image_tags();
    let mut objects = Vec::new();
    for (_, environment) in &input.environments {
        match ephemeral_core::expand(environment, &catalog, config(), now(), "alice") {
            Ok(expansion) => {
                objects.push(
                    serde_json::to_value(&expansion.environment)
                        .expect("an Environment always serialises"),
                );
                objects.extend(expansion.objects.iter().map(|o| o.to_value()));
            }
            Err(denied) => {
                let _ = denied.to_string();
            }
        }
    }
    kubectl_ephemeral::output::yaml_stream(&mut Vec::new(), &objects).expect("YAML output");
}
