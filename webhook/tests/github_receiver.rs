//! The `POST /github` receiver: which deliveries trigger a set, and which are
//! refused with which status, without the trigger firing.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ephemeral_testkit::fake_github::{PullRequestFixture, pull_request_event, webhook_signature};
use ephemeral_webhook::github::receiver::{self, Candidate, MAX_BODY_BYTES, SetRef, Sets};
use ephemeral_webhook::github::{Repository, Secret};
use http_body_util::BodyExt;
use tower::ServiceExt;

const SECRET: &[u8] = b"It's a Secret to Everybody";

/// Sets following repositories, and the triggers received.
#[derive(Default)]
struct FakeSets {
    sets: Vec<(String, Candidate)>,
    triggered: Mutex<Vec<SetRef>>,
}

impl FakeSets {
    fn with(mut self, repository: &str, name: &str, secret: Option<&[u8]>) -> Self {
        self.sets.push((
            repository.to_string(),
            Candidate {
                set: SetRef {
                    namespace: "previews".into(),
                    name: name.into(),
                },
                webhook_secret: secret.map(Secret::new),
            },
        ));
        self
    }

    fn triggered(&self) -> Vec<String> {
        self.triggered
            .lock()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

impl Sets for FakeSets {
    fn for_repository(&self, repository: &Repository) -> Vec<Candidate> {
        self.sets
            .iter()
            .filter(|(r, _)| {
                let (owner, name) = r.split_once('/').unwrap();
                Repository::new(owner, name).unwrap().same_as(repository)
            })
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn trigger(&self, set: &SetRef) {
        self.triggered.lock().unwrap().push(set.clone());
    }
}

fn payload(repository: &str) -> Vec<u8> {
    let (owner, name) = repository.split_once('/').unwrap();
    let pr = PullRequestFixture::new(owner, name, 7).json();
    serde_json::to_vec(&pull_request_event("synchronize", &pr)).unwrap()
}

fn sign(secret: &[u8], body: &[u8]) -> String {
    webhook_signature(secret, body)
}

async fn deliver(
    sets: Arc<FakeSets>,
    event: &str,
    signature: Option<String>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut request = Request::post("/github")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    if let Some(s) = signature {
        request = request.header("x-hub-signature-256", s);
    }
    let response = receiver::router(sets)
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

fn shop() -> Arc<FakeSets> {
    Arc::new(FakeSets::default().with("acme/shop", "shop-prs", Some(SECRET)))
}

#[tokio::test]
async fn a_well_signed_pull_request_event_triggers_its_set_at_once() {
    let sets = shop();
    let body = payload("acme/shop");
    let (status, text) = deliver(
        sets.clone(),
        "pull_request",
        Some(sign(SECRET, &body)),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(sets.triggered(), vec!["previews/shop-prs"]);
    assert!(text.contains("previews/shop-prs"), "{text}");
}

#[tokio::test]
async fn the_signing_these_tests_use_matches_githubs_documented_example() {
    // docs.github.com, "Validating webhook deliveries": secret "It's a Secret
    // to Everybody", payload "Hello, World!".
    let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(sign(SECRET, b"Hello, World!"), expected);
}

#[tokio::test]
async fn only_the_set_whose_secret_signed_the_delivery_is_triggered() {
    let sets = Arc::new(
        FakeSets::default()
            .with("acme/shop", "shop-prs", Some(SECRET))
            .with("Acme/Shop", "shop-other", Some(b"another secret"))
            .with("acme/shop", "shop-polling", None),
    );
    let body = payload("acme/shop");
    let (status, _) = deliver(
        sets.clone(),
        "pull_request",
        Some(sign(b"another secret", &body)),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(sets.triggered(), vec!["previews/shop-other"]);
}

#[tokio::test]
async fn unsigned_missigned_wrong_secret_and_changed_bodies_are_refused_without_trigger() {
    let body = payload("acme/shop");
    let good = sign(SECRET, &body);
    // One byte changed, the JSON still valid: `synchronize` becomes `synchronizd`.
    let mut changed = body.clone();
    let at = body.windows(11).position(|w| w == b"synchronize").unwrap() + 10;
    changed[at] = b'd';
    let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("unsigned", None, body.clone()),
        ("not hex", Some("sha256=zz".into()), body.clone()),
        (
            "sha1 only",
            Some(format!("sha1={}", "0".repeat(40))),
            body.clone(),
        ),
        (
            "bad signature",
            Some(format!("sha256={}", "0".repeat(64))),
            body.clone(),
        ),
        ("wrong secret", Some(sign(b"guessed", &body)), body.clone()),
        (
            "replayed signature, one byte changed",
            Some(good.clone()),
            changed,
        ),
    ];
    for (what, signature, body) in cases {
        let sets = shop();
        let (status, text) = deliver(sets.clone(), "pull_request", signature, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {text}");
        assert!(sets.triggered().is_empty(), "{what} must not trigger");
    }

    // A changed byte that breaks the JSON is refused before any set is looked up.
    let mut broken = body.clone();
    broken[0] = b'[';
    let sets = shop();
    let (status, _) = deliver(sets.clone(), "pull_request", Some(good), broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(sets.triggered().is_empty());
}

#[tokio::test]
async fn a_set_without_webhook_secret_never_accepts_deliveries() {
    for secret in [None, Some(&b""[..])] {
        let sets = Arc::new(FakeSets::default().with("acme/shop", "shop-prs", secret));
        let body = payload("acme/shop");
        // Signed with the empty key: anyone could compute that.
        let (status, text) =
            deliver(sets.clone(), "pull_request", Some(sign(b"", &body)), body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
        assert!(text.contains("webhookSecretRef"), "{text}");
        assert!(sets.triggered().is_empty());
    }
}

#[tokio::test]
async fn ping_is_answered_and_other_events_are_ignored() {
    let sets = shop();
    let (status, text) = deliver(
        sets.clone(),
        "ping",
        None,
        br#"{"zen":"Keep it logically awesome."}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let body = payload("acme/shop");
    let (status, text) = deliver(sets.clone(), "push", Some(sign(SECRET, &body)), body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(text.contains("ignored"), "{text}");
    assert!(sets.triggered().is_empty());
}

#[tokio::test]
async fn an_unknown_repository_is_404_and_malformed_json_400() {
    let sets = shop();
    let body = payload("acme/other");
    let (status, text) = deliver(
        sets.clone(),
        "pull_request",
        Some(sign(SECRET, &body)),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(text.contains("acme/other"), "{text}");

    let body = b"{\"repository\": ".to_vec();
    let (status, _) = deliver(
        sets.clone(),
        "pull_request",
        Some(sign(SECRET, &body)),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let body = payload("acme/../etc");
    let (status, _) = deliver(
        sets.clone(),
        "pull_request",
        Some(sign(SECRET, &body)),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(sets.triggered().is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_413_without_trigger() {
    let sets = shop();
    let mut body = payload("acme/shop");
    body.resize(MAX_BODY_BYTES + 1, b' ');
    let signature = sign(SECRET, &body);
    let (status, _) = deliver(sets.clone(), "pull_request", Some(signature), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(sets.triggered().is_empty());
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let app = receiver::router(shop());
    let get = app
        .clone()
        .oneshot(Request::get("/github").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let other = app
        .oneshot(Request::post("/hooks").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn deliveries_are_logged_with_their_id_and_outcome_never_payload_signature_or_secret() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let body = payload("acme/shop");
    let good = sign(SECRET, &body);
    let (status, _) = deliver(shop(), "pull_request", Some(good.clone()), body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let wrong = sign(b"guessed", &body);
    let (status, _) = deliver(shop(), "pull_request", Some(wrong.clone()), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    for line in &lines {
        assert!(
            line.contains("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            "{line}"
        );
        assert!(line.contains("acme/shop"), "{line}");
    }
    assert!(
        lines[0].contains("202") && lines[0].contains("previews/shop-prs"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("401"), "{}", lines[1]);
    let pr = PullRequestFixture::new("acme", "shop", 7);
    for secret_or_payload in [
        String::from_utf8_lossy(SECRET).into_owned(),
        good.trim_start_matches("sha256=").to_string(),
        wrong.trim_start_matches("sha256=").to_string(),
        pr.head_sha.clone(),
        "Change 7".to_string(),
    ] {
        assert!(
            !log.contains(&secret_or_payload),
            "{secret_or_payload:?} logged: {log}"
        );
    }
}
