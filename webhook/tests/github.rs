//! The GitHub client against the fake GitHub API (`ephemeral_testkit::fake_github`,
//! a real HTTP server on loopback), and the `POST /github` receiver.

use std::time::Duration;

use ephemeral_testkit::fake_github::{FakeGitHub, Fault, PullRequestFixture};
use ephemeral_webhook::clock::Clock;
use ephemeral_webhook::github::{
    AppCredentials, Client, ClientSettings, CommentUpsert, CommitState, CommitStatus, Credentials,
    Error, RateLimitKind, Repository, Secret,
};
use jiff::{SignedDuration, Timestamp};

const TOKEN: &str = "ghp_test_token";

fn repo() -> Repository {
    Repository::new("acme", "shop").unwrap()
}

fn settings(fake: &FakeGitHub) -> ClientSettings {
    let mut s = ClientSettings::new(Credentials::Token(Secret::from(TOKEN)));
    s.api_url = fake.url().to_string();
    s.timeout = Duration::from_secs(5);
    s
}

fn client(fake: &FakeGitHub) -> Client {
    Client::new(settings(fake)).unwrap()
}

/// `count` open pull requests 1..=count, plus closed ones that must never be listed.
fn seed(fake: &FakeGitHub, count: u64) {
    let mut pulls: Vec<_> = (1..=count)
        .map(|n| PullRequestFixture::new("acme", "shop", n).json())
        .collect();
    for n in count + 1..count + 6 {
        let mut closed = PullRequestFixture::new("acme", "shop", n);
        closed.state = "closed".into();
        pulls.push(closed.json());
    }
    fake.set_pull_requests("acme", "shop", pulls);
}

fn numbers(prs: &[ephemeral_core::set::PullRequest]) -> Vec<u64> {
    let mut n: Vec<u64> = prs.iter().map(|p| p.number).collect();
    n.sort_unstable();
    n
}

#[tokio::test]
async fn lists_all_250_open_pull_requests_over_three_pages() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 250);
    let prs = client(&fake)
        .list_open_pull_requests(&repo())
        .await
        .unwrap();
    assert_eq!(numbers(&prs), (1..=250).collect::<Vec<_>>());

    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/repos/acme/shop/pulls");
        assert!(r.query.contains("state=open"), "{}", r.query);
        assert!(r.query.contains("per_page=100"), "{}", r.query);
        if i > 0 {
            assert!(r.query.contains(&format!("page={}", i + 1)), "{}", r.query);
        }
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            r.header("user-agent")
                .unwrap()
                .starts_with("ephemeral-webhook/")
        );
        assert_eq!(r.header("authorization"), Some("Bearer ghp_test_token"));
    }
}

#[tokio::test]
async fn a_repeated_list_is_answered_304_free_of_rate_limit_with_the_same_pull_requests() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 150);
    let client = client(&fake);
    let first = client.list_open_pull_requests(&repo()).await.unwrap();
    let remaining = fake.rate_limit_remaining();
    assert_eq!(client.rate_limit().unwrap().remaining, remaining);
    fake.clear_requests();

    let second = client.list_open_pull_requests(&repo()).await.unwrap();
    assert_eq!(second, first);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.header("if-none-match").is_some()));
    assert_eq!(
        fake.rate_limit_remaining(),
        remaining,
        "304s cost no rate limit"
    );

    // A change is seen: the first page's ETag no longer matches.
    let mut pr = PullRequestFixture::new("acme", "shop", 150);
    pr.head_sha = "f".repeat(40);
    fake.upsert_pull_request("acme", "shop", pr.json());
    let third = client.list_open_pull_requests(&repo()).await.unwrap();
    let changed = third.iter().find(|p| p.number == 150).unwrap();
    assert_eq!(changed.head.sha, "f".repeat(40));
    assert_eq!(third.len(), 150);
}

#[tokio::test]
async fn the_primary_rate_limit_is_typed_and_nothing_is_sent_before_the_reset() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 3);
    let client = client(&fake);
    fake.fail_next(Fault::PrimaryRateLimit { reset_in_secs: 120 });
    let before = Timestamp::now();
    let err = client.list_open_pull_requests(&repo()).await.unwrap_err();
    let Error::RateLimited { kind, until } = err else {
        panic!("expected a rate limit, got {err:?}");
    };
    assert_eq!(kind, RateLimitKind::Primary);
    assert!(until >= before + SignedDuration::from_secs(115), "{until}");
    assert_eq!(client.rate_limit().unwrap().remaining, 0);

    // Every operation refuses at once, without a request.
    let again = client.get_pull_request(&repo(), 1).await.unwrap_err();
    assert_eq!(again.retry_at(), Some(until));
    assert!(!again.is_answer());
    assert_eq!(client.blocked_until(), Some(until));
    assert_eq!(fake.requests().len(), 1, "nothing sent while rate limited");
}

#[tokio::test]
async fn an_answer_spending_the_last_request_stops_the_client_until_the_reset() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 1);
    fake.set_rate_limit_remaining(1);
    let client = client(&fake);
    assert_eq!(client.get_pull_request(&repo(), 1).await.unwrap().number, 1);
    assert_eq!(client.rate_limit().unwrap().remaining, 0);
    let reset = client.rate_limit().unwrap().reset.unwrap();
    let err = client.get_pull_request(&repo(), 1).await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { kind: RateLimitKind::Primary, until } if until == reset),
        "{err:?}"
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "the known-empty budget is not spent on a 403"
    );
}

#[tokio::test]
async fn a_secondary_rate_limit_waits_for_retry_after_then_resumes() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 3);
    let client = client(&fake);
    fake.fail_next(Fault::SecondaryRateLimit {
        retry_after_secs: 1,
        forbidden: false,
    });
    let err = client.list_open_pull_requests(&repo()).await.unwrap_err();
    let Error::RateLimited { kind, until } = err else {
        panic!("expected a rate limit, got {err:?}");
    };
    assert_eq!(kind, RateLimitKind::Secondary);

    // Before Retry-After: refused without a request.
    assert!(matches!(
        client.list_open_pull_requests(&repo()).await,
        Err(Error::RateLimited { .. })
    ));
    assert_eq!(fake.requests().len(), 1);

    // After: it works, and the request went out no earlier than `until`.
    let wait = until.duration_since(Timestamp::now()).unsigned_abs() + Duration::from_millis(50);
    tokio::time::sleep(wait).await;
    let prs = client.list_open_pull_requests(&repo()).await.unwrap();
    assert_eq!(prs.len(), 3);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let sent = Timestamp::try_from(requests[1].at).unwrap();
    assert!(sent >= until, "sent at {sent}, Retry-After until {until}");
}

#[tokio::test]
async fn a_403_secondary_limit_is_a_rate_limit_and_a_403_without_one_is_githubs_answer() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 1);
    let limited = client(&fake);
    fake.fail_next(Fault::SecondaryRateLimit {
        retry_after_secs: 30,
        forbidden: true,
    });
    let err = limited.get_pull_request(&repo(), 1).await.unwrap_err();
    assert!(matches!(
        err,
        Error::RateLimited {
            kind: RateLimitKind::Secondary,
            ..
        }
    ));

    let other = client(&fake);
    fake.fail_next(Fault::Status(403));
    let err = other.get_pull_request(&repo(), 1).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    // A plain 403 does not stop the client.
    assert_eq!(other.get_pull_request(&repo(), 1).await.unwrap().number, 1);
}

#[tokio::test]
async fn a_500_on_any_page_fails_the_whole_list() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 250);
    let client = client(&fake);
    // First page fine, second page 500.
    fake.fail_next(Fault::None);
    fake.fail_next(Fault::Status(500));
    let err = client.list_open_pull_requests(&repo()).await.unwrap_err();
    let Error::Status {
        status, message, ..
    } = &err
    else {
        panic!("expected a status, got {err:?}");
    };
    assert_eq!(*status, 500);
    assert_eq!(message, "Internal Server Error");
    assert!(err.to_string().contains("GitHub answered 500"), "{err}");
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 1);
    let mut s = settings(&fake);
    s.timeout = Duration::from_millis(300);
    let client = Client::new(s).unwrap();
    fake.fail_next(Fault::Slow(Duration::from_secs(3)));
    let err = client.list_open_pull_requests(&repo()).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(!err.is_answer());
}

#[tokio::test]
async fn malformed_or_misshapen_json_is_a_decode_error_with_its_path() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 150);
    let client = client(&fake);
    fake.fail_next(Fault::None);
    fake.fail_next(Fault::MalformedJson);
    let err = client.list_open_pull_requests(&repo()).await.unwrap_err();
    let Error::Decode { path, url, .. } = &err else {
        panic!("expected a decode error, got {err:?}");
    };
    assert!(url.contains("page=2"), "{url}");
    assert!(
        path.starts_with('['),
        "the path points into the list: {path}"
    );

    fake.fail_next(Fault::WrongShape);
    let err = client.get_pull_request(&repo(), 1).await.unwrap_err();
    let Error::Decode { path, message, .. } = &err else {
        panic!("expected a decode error, got {err:?}");
    };
    assert_eq!(path, ".");
    assert!(message.contains("missing field"), "{message}");
}

#[tokio::test]
async fn a_wrong_token_is_githubs_answer_401_bad_credentials() {
    let fake = FakeGitHub::start().await;
    fake.require_token("the-right-one");
    let err = client(&fake)
        .get_pull_request(&repo(), 1)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.is_answer());
    assert!(err.to_string().contains("Bad credentials"), "{err}");
    assert!(!err.to_string().contains(TOKEN), "{err}");
}

#[tokio::test]
async fn get_pull_request_says_closed_and_merged() {
    let fake = FakeGitHub::start().await;
    let mut merged = PullRequestFixture::new("acme", "shop", 7);
    merged.state = "closed".into();
    merged.merged = true;
    fake.set_pull_requests("acme", "shop", vec![merged.json()]);
    let pr = client(&fake).get_pull_request(&repo(), 7).await.unwrap();
    assert_eq!(pr.state, "closed");
    assert!(pr.merged_at.is_some());
    let missing = client(&fake)
        .get_pull_request(&repo(), 8)
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
}

#[tokio::test]
async fn github_enterprise_api_url_keeps_its_path() {
    let fake = FakeGitHub::start_with_prefix("/api/v3").await;
    seed(&fake, 120);
    assert!(fake.url().ends_with("/api/v3"));
    let mut s = settings(&fake);
    s.api_url = format!("{}/", fake.url());
    let prs = Client::new(s)
        .unwrap()
        .list_open_pull_requests(&repo())
        .await
        .unwrap();
    assert_eq!(prs.len(), 120);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.path == "/repos/acme/shop/pulls")
    );
}

#[tokio::test]
async fn commit_status_goes_to_the_head_sha_with_a_description_github_accepts() {
    let fake = FakeGitHub::start().await;
    let sha = "abc1234def5678abc1234def5678abc1234def56";
    let long = "é".repeat(200);
    client(&fake)
        .create_commit_status(
            &repo(),
            sha,
            &CommitStatus {
                state: CommitState::Pending,
                target_url: Some("https://shop-7.preview.example.com".into()),
                description: Some(long),
                context: "ephemeral/shop-prs".into(),
            },
        )
        .await
        .unwrap();
    let statuses = fake.statuses("acme", "shop");
    assert_eq!(statuses.len(), 1);
    let s = &statuses[0];
    assert_eq!(s["sha"], sha);
    assert_eq!(s["state"], "pending");
    assert_eq!(s["context"], "ephemeral/shop-prs");
    assert_eq!(s["target_url"], "https://shop-7.preview.example.com");
    assert_eq!(s["description"].as_str().unwrap().chars().count(), 140);

    let err = client(&fake)
        .create_commit_status(
            &repo(),
            "../../x",
            &CommitStatus {
                state: CommitState::Success,
                target_url: None,
                description: None,
                context: "c".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn the_marked_comment_is_created_once_then_updated_in_place() {
    let fake = FakeGitHub::start().await;
    // 120 comments by others: ours will be on the second page.
    for i in 0..120 {
        fake.add_comment("acme", "shop", 7, &format!("LGTM {i}"));
    }
    let client = client(&fake);
    let marker = "<!-- ephemeral:previews/shop-prs -->";

    let created = client
        .upsert_comment(&repo(), 7, marker, "Environment: pending")
        .await
        .unwrap();
    assert!(matches!(created, CommentUpsert::Created(_)), "{created:?}");
    let id = created.comment().id;

    fake.clear_requests();
    let same = client
        .upsert_comment(&repo(), 7, marker, "Environment: pending")
        .await
        .unwrap();
    assert!(matches!(same, CommentUpsert::Unchanged(_)), "{same:?}");
    assert!(
        fake.requests().iter().all(|r| r.method == "GET"),
        "unchanged text sends no write"
    );

    let updated = client
        .upsert_comment(
            &repo(),
            7,
            marker,
            "Environment: ready at https://shop-7.example.com",
        )
        .await
        .unwrap();
    assert!(matches!(updated, CommentUpsert::Updated(_)), "{updated:?}");
    assert_eq!(updated.comment().id, id);

    let comments = fake.comments("acme", "shop", 7);
    assert_eq!(comments.len(), 121, "updated, not duplicated");
    let ours: Vec<_> = comments
        .iter()
        .filter(|c| c["body"].as_str().unwrap().contains(marker))
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(
        ours[0]["body"],
        format!("{marker}\nEnvironment: ready at https://shop-7.example.com")
    );
    let patches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].path,
        format!("/repos/acme/shop/issues/comments/{id}")
    );

    let err = client
        .upsert_comment(&repo(), 7, "plain text", "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTML comment"), "{err}");
}

// --- GitHub App ---------------------------------------------------------

const APP_KEY: &str = include_str!("fixtures/github-app/test-app.private-key.pem");
const APP_KEY_PKCS8: &str = include_str!("fixtures/github-app/test-app.private-key.pkcs8.pem");
const APP_PUBLIC_KEY: &str = include_str!("fixtures/github-app/test-app.public-key.pem");

fn app_client(fake: &FakeGitHub, key: &str, now: Timestamp) -> Client {
    let mut s = settings(fake);
    s.credentials = Credentials::App(AppCredentials {
        app_id: 123,
        installation_id: 42,
        private_key_pem: Secret::from(key),
    });
    s.clock = Clock::Fixed(now);
    Client::new(s).unwrap()
}

#[derive(serde::Deserialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

#[tokio::test]
async fn a_github_app_exchanges_a_signed_jwt_and_reuses_the_installation_token() {
    let fake = FakeGitHub::start().await;
    fake.require_token("no-personal-token-works-here");
    seed(&fake, 2);
    let now = Timestamp::now();
    let client = app_client(&fake, APP_KEY, now);
    client.list_open_pull_requests(&repo()).await.unwrap();
    client.get_pull_request(&repo(), 1).await.unwrap();

    let requests = fake.requests();
    let exchanges: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/app/"))
        .collect();
    assert_eq!(
        exchanges.len(),
        1,
        "one token for both calls: {requests:#?}"
    );
    let exchange = exchanges[0];
    assert_eq!(exchange.method, "POST");
    assert_eq!(exchange.path, "/app/installations/42/access_tokens");

    // The JWT verifies with the App's public key and carries GitHub's claims.
    let jwt = exchange
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(APP_PUBLIC_KEY.as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<Claims>(jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims.iss, "123");
    assert_eq!(claims.iat, now.as_second() - 60);
    assert_eq!(claims.exp, now.as_second() + 9 * 60);

    for r in requests.iter().filter(|r| r.path.starts_with("/repos/")) {
        assert_eq!(r.header("authorization"), Some("Bearer ghs_fake_1"));
    }
}

#[tokio::test]
async fn an_installation_token_near_its_expiry_is_renewed() {
    let fake = FakeGitHub::start().await;
    fake.require_token("no-personal-token-works-here");
    // GitHub's tokens live an hour; these expire within the 5-minute margin.
    fake.set_installation_token_lifetime(SignedDuration::from_mins(4));
    seed(&fake, 1);
    let client = app_client(&fake, APP_KEY_PKCS8, Timestamp::now());
    client.get_pull_request(&repo(), 1).await.unwrap();
    client.get_pull_request(&repo(), 1).await.unwrap();
    let requests = fake.requests();
    let exchanges = requests
        .iter()
        .filter(|r| r.path.starts_with("/app/"))
        .count();
    assert_eq!(exchanges, 2);
    let last = requests.last().unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer ghs_fake_2"));
}

#[tokio::test]
async fn a_rejected_app_is_githubs_answer() {
    let fake = FakeGitHub::start().await;
    seed(&fake, 1);
    let client = app_client(&fake, APP_KEY, Timestamp::now());
    fake.fail_next(Fault::Status(401));
    let err = client.get_pull_request(&repo(), 1).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(
        err.to_string()
            .contains("/app/installations/42/access_tokens"),
        "{err}"
    );
}
