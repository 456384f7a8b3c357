//! End-to-end tests of `ephemeral-webhook serve`: the real binary, real TLS
//! (a test CA and a server certificate for localhost), a catalog directory and
//! a fixed clock. Every wait is bounded.

use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

use ephemeral_testkit::webhook::{
    Pki, ServerCert, Webhook, apply_patch, bounded, cert_paths, post_request, response_of, review,
    send, write_cert,
};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;

const NOW: &str = "2026-11-21T10:00:00Z";

const CATALOG: &str = r#"
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: checkout, namespace: shop}
spec:
  kustomization:
    path: ./apps/checkout/preview
    sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}
  imageRepository: {name: checkout, namespace: flux-system}
  imageTagPrefix: main
  substitute: {port: "8080"}
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: payments, namespace: shop}
spec:
  kustomization:
    path: ./apps/payments/preview
    sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}
  imageRepository: {name: payments, namespace: flux-system}
  imageTagPrefix: main
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored, namespace: shop}
data: {a: b}
"#;

/// Starts the binary with [`CATALOG`] as its catalog directory, the fixed
/// clock [`NOW`] and a fast certificate reload, then `extra`; `cert` is
/// written first unless `None`.
fn start(pki: &Pki, cert: Option<&ServerCert>, extra: &[&str]) -> Webhook {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(catalog.join("shop.yaml"), CATALOG).unwrap();
    let mut args: Vec<OsString> = vec![
        "--catalog-dir".into(),
        catalog.into_os_string(),
        "--fixed-now".into(),
        NOW.into(),
        "--tls-reload-interval".into(),
        "200ms".into(),
    ];
    args.extend(extra.iter().map(Into::into));
    Webhook::start(
        env!("CARGO_BIN_EXE_ephemeral-webhook"),
        dir,
        pki,
        cert,
        args,
    )
}

fn environment() -> Value {
    json!({
        "apiVersion": "ephemeral.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "alice-checkout", "namespace": "shop", "annotations": {"ephemeral.io/owner": "mallory"}},
        "spec": {"apps": [{"name": "checkout", "branch": "feature/new-basket"}, {"name": "payments"}]}
    })
}

#[tokio::test]
async fn create_is_patched_to_the_expanded_environment() {
    bounded(async {
        let pki = Pki::new();
        let webhook = start(&pki, Some(&pki.server_cert(1)), &[]);
        webhook.wait_ready().await;

        let object = environment();
        let (status, body) = webhook
            .post("/mutate", review("CREATE", "alice", Some(object.clone()), None).to_string())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let response = response_of(&body);
        assert_eq!(response["uid"], "3f1c2c5e-0000-4000-8000-000000000001");
        assert_eq!(response["allowed"], true);
        let admitted = apply_patch(&object, &response);
        assert_eq!(
            admitted,
            json!({
                "apiVersion": "ephemeral.io/v1alpha1",
                "kind": "Environment",
                "metadata": {
                    "name": "alice-checkout",
                    "namespace": "shop",
                    "annotations": {
                        "ephemeral.io/owner": "alice",
                        "downscaler/uptime": "2026-11-21T10:00:00+00:00-2026-11-21T19:00:00+00:00"
                    }
                },
                "spec": {
                    "apps": [
                        {
                            "name": "checkout",
                            "template": "checkout",
                            "branch": "feature/new-basket",
                            "imageTagPrefix": "feature-new-basket",
                            "kustomization": {
                                "path": "./apps/checkout/preview",
                                "sourceRef": {"kind": "GitRepository", "name": "platform", "namespace": "flux-system"}
                            },
                            "imageRepository": {"name": "checkout", "namespace": "flux-system"},
                            "substitute": {"port": "8080"}
                        },
                        {
                            "name": "payments",
                            "template": "payments",
                            "imageTagPrefix": "main",
                            "kustomization": {
                                "path": "./apps/payments/preview",
                                "sourceRef": {"kind": "GitRepository", "name": "platform", "namespace": "flux-system"}
                            },
                            "imageRepository": {"name": "payments", "namespace": "flux-system"}
                        }
                    ],
                    "lease": {"until": "2026-11-21T19:00:00Z"}
                }
            })
        );
        assert_eq!(
            response["warnings"],
            json!(["spec.apps[0].branch: imageTagPrefix sanitised from 'feature/new-basket' to 'feature-new-basket'"])
        );

        // Admitting the admitted object again changes nothing.
        let (status, body) = webhook
            .post("/mutate", review("CREATE", "alice", Some(admitted.clone()), None).to_string())
            .await;
        assert_eq!(status, StatusCode::OK);
        let again = response_of(&body);
        assert_eq!(again["allowed"], true);
        assert!(again.get("patch").is_none(), "{body}");

        // Someone else may not delete it.
        let (status, body) = webhook
            .post("/validate", review("DELETE", "bob", None, Some(admitted)).to_string())
            .await;
        assert_eq!(status, StatusCode::OK);
        let denied = response_of(&body);
        assert_eq!(denied["allowed"], false);
        assert_eq!(denied["status"]["code"], 403);
        assert!(
            denied["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with("metadata.annotations[ephemeral.io/owner]: Environment shop/alice-checkout is owned by 'alice'"),
            "{body}"
        );

        let (status, metrics) = webhook.admin_get("/metrics").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(
            metrics.contains(r#"ephemeral_webhook_requests_total{endpoint="mutate",outcome="allowed"} 2"#),
            "{metrics}"
        );
        assert!(metrics.contains(r#"ephemeral_webhook_requests_total{endpoint="validate",outcome="denied"} 1"#));
        assert!(metrics.contains(r#"ephemeral_webhook_request_duration_seconds_count{endpoint="mutate"} 2"#));
        assert_eq!(webhook.admin_get("/livez").await.unwrap(), (StatusCode::OK, "ok\n".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn bad_requests_get_exact_statuses_and_messages() {
    bounded(async {
        let pki = Pki::new();
        let webhook = start(&pki, Some(&pki.server_cert(1)), &["--max-body-bytes", "65536", "--log-format", "json"]);
        webhook.wait_ready().await;

        let (status, body) = webhook.post("/mutate", "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            "request body is not valid JSON: key must be a string at line 1 column 2\n"
        );

        let mut wrong_version = review("CREATE", "alice", Some(environment()), None);
        wrong_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
        let (status, body) = webhook.post("/mutate", wrong_version.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let response = response_of(&body);
        assert_eq!(response["uid"], "3f1c2c5e-0000-4000-8000-000000000001");
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        assert_eq!(
            response["status"]["message"],
            "request body is not an admission.k8s.io/v1 AdmissionReview: apiVersion is 'admission.k8s.io/v1beta1'"
        );

        let (status, body) = webhook
            .post("/validate", r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
            .await;
        assert_eq!((status, body.as_str()), (StatusCode::BAD_REQUEST, "AdmissionReview has no request\n"));

        let mut wrong_kind = review("CREATE", "alice", Some(environment()), None);
        wrong_kind["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
        let (status, body) = webhook.post("/mutate", wrong_kind.to_string()).await;
        assert_eq!(status, StatusCode::OK);
        let response = response_of(&body);
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        assert_eq!(
            response["status"]["message"],
            "request.kind: this webhook admits only ephemeral.io/v1alpha1 Environment, not v1 ConfigMap. Fix: register the webhook for environments.ephemeral.io only"
        );

        let huge = vec![b' '; 200 * 1024];
        let (status, body) = webhook.post("/mutate", huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body, "request body is larger than 65536 bytes (--max-body-bytes)\n");

        let (status, body) = webhook.post("/admit", "{}").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, "not found: the admission endpoints are POST /mutate and POST /validate\n");

        let (mut sender, _) = webhook.connect().await;
        let get = Request::get("/mutate")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, body) = send(&mut sender, get).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body, "method not allowed: send AdmissionReviews with POST\n");

        // The server is still healthy and counted the malformed requests.
        let (_, metrics) = webhook.admin_get("/metrics").await.unwrap();
        assert!(
            metrics.contains(r#"ephemeral_webhook_requests_total{endpoint="mutate",outcome="invalid"} 4"#),
            "{metrics}"
        );
        let log = webhook.log();
        let lines: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
            .collect();
        let malformed = lines
            .iter()
            .find(|l| l["message"] == "malformed AdmissionReview")
            .unwrap_or_else(|| panic!("no malformed request logged: {log}"));
        assert_eq!(malformed["level"], "INFO");
        assert_eq!(malformed["endpoint"], "mutate");
    })
    .await;
}

#[tokio::test]
async fn rotated_certificate_is_served_to_new_connections_only() {
    bounded(async {
        let pki = Pki::new();
        let first = pki.server_cert(1001);
        let second = pki.server_cert(2002);
        let webhook = start(&pki, Some(&first), &[]);
        webhook.wait_ready().await;

        let (mut kept, presented) = webhook.connect().await;
        assert_eq!(presented, first.der);
        let body = review("CREATE", "alice", Some(environment()), None).to_string();
        let (status, _) = send(&mut kept, post_request("/mutate", body.clone())).await;
        assert_eq!(status, StatusCode::OK);

        webhook.write_cert(&second);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, presented) = webhook.connect::<Full<Bytes>>().await;
            if presented == second.der {
                break;
            }
            assert_eq!(presented, first.der);
            assert!(
                Instant::now() < deadline,
                "new certificate not served in time; log:\n{}",
                webhook.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // The connection opened before the rotation still works.
        let (status, answer) = send(&mut kept, post_request("/mutate", body)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(response_of(&answer)["allowed"], true);
        assert!(webhook.log().contains("TLS certificate reloaded"));

        // A key that does not match is refused; the server keeps the second pair.
        let third = pki.server_cert(3003);
        std::fs::write(webhook.dir().join("tls.crt"), &third.cert_pem).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !webhook.log().contains("new TLS certificate rejected") {
            assert!(
                Instant::now() < deadline,
                "bad pair not reported; log:\n{}",
                webhook.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, presented) = webhook.connect::<Full<Bytes>>().await;
        assert_eq!(presented, second.der);
    })
    .await;
}

#[tokio::test]
async fn not_ready_until_the_certificate_exists() {
    bounded(async {
        let pki = Pki::new();
        let webhook = start(&pki, None, &[]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let not_ready = loop {
            if let Some(answer) = webhook.admin_get("/readyz").await {
                break answer;
            }
            assert!(
                Instant::now() < deadline,
                "admin server not up; log:\n{}",
                webhook.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            not_ready,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: TLS certificate not loaded\n".to_owned()
            )
        );
        webhook.write_cert(&pki.server_cert(7));
        webhook.wait_ready().await;
        let (status, _) = webhook
            .post(
                "/mutate",
                review("CREATE", "alice", Some(environment()), None).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
}

type Chunks =
    StreamBody<futures::stream::BoxStream<'static, Result<Frame<Bytes>, std::convert::Infallible>>>;

/// A request body sent in pieces through the returned channel.
fn streamed_body() -> (tokio::sync::mpsc::UnboundedSender<Bytes>, Chunks) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(Frame::data(chunk)), rx))
    });
    (tx, StreamBody::new(futures::StreamExt::boxed(stream)))
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    bounded(async {
        let pki = Pki::new();
        let mut webhook = start(&pki, Some(&pki.server_cert(1)), &["--shutdown-grace", "5s"]);
        webhook.wait_ready().await;

        // An idle keep-alive connection must not hold the process up.
        let (mut idle, _) = webhook.connect().await;
        let body = review("CREATE", "alice", Some(environment()), None).to_string();
        assert_eq!(
            send(&mut idle, post_request("/mutate", body.clone()))
                .await
                .0,
            StatusCode::OK
        );

        // A request in flight: half of its body is sent before SIGTERM.
        let (mut sender, _) = webhook.connect::<Chunks>().await;
        let (tx, streamed) = streamed_body();
        let request = Request::post("/mutate")
            .header("host", "localhost")
            .header("content-length", body.len().to_string())
            .body(streamed)
            .unwrap();
        let in_flight = tokio::spawn(sender.send_request(request));
        let (first, rest) = body.as_bytes().split_at(body.len() / 2);
        tx.send(Bytes::copy_from_slice(first)).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let started = Instant::now();
        let killed = Command::new("kill")
            .args(["-TERM", &webhook.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());

        // Not ready and no new connections once shutdown has begun.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(webhook.https()).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "still accepting after SIGTERM; log:\n{}",
                webhook.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            webhook.try_wait().is_none(),
            "exited before the in-flight request finished"
        );

        tx.send(Bytes::copy_from_slice(rest)).unwrap();
        let response = in_flight
            .await
            .unwrap()
            .expect("the in-flight request is answered");
        assert_eq!(response.status(), StatusCode::OK);
        let answer = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            response_of(std::str::from_utf8(&answer).unwrap())["allowed"],
            true
        );

        let status = webhook.wait_exit(Duration::from_secs(10)).await;
        let status = status
            .unwrap_or_else(|| panic!("still running after SIGTERM; log:\n{}", webhook.log()));
        assert!(
            status.success(),
            "exit status {status:?}; log:\n{}",
            webhook.log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(webhook.log().contains("shutting down"));
    })
    .await;
}

#[tokio::test]
async fn sigterm_with_a_shutdown_delay_reports_unready_but_keeps_admitting() {
    bounded(async {
        let pki = Pki::new();
        let delay = Duration::from_secs(2);
        let mut webhook = start(
            &pki,
            Some(&pki.server_cert(1)),
            &["--shutdown-delay", "2s", "--shutdown-grace", "1s"],
        );
        webhook.wait_ready().await;

        let started = Instant::now();
        let killed = Command::new("kill")
            .args(["-TERM", &webhook.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());

        // Readiness turns 503 at once ...
        loop {
            match webhook.admin_get("/readyz").await {
                Some((StatusCode::SERVICE_UNAVAILABLE, _)) => break,
                other => assert!(
                    started.elapsed() < delay,
                    "still {other:?} from /readyz after SIGTERM; log:\n{}",
                    webhook.log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ... while a new connection is still admitted during the delay.
        let body = review("CREATE", "alice", Some(environment()), None).to_string();
        let (status, answer) = webhook.post("/mutate", body).await;
        assert!(
            started.elapsed() < delay,
            "the check ran after the delay ({:?}); cannot tell",
            started.elapsed()
        );
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(response_of(&answer)["allowed"], true);

        let status = webhook
            .wait_exit(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("still running after SIGTERM; log:\n{}", webhook.log()));
        assert!(status.success(), "{status:?}; log:\n{}", webhook.log());
        assert!(
            started.elapsed() >= delay,
            "exited after {:?}, before the {delay:?} delay",
            started.elapsed()
        );
    })
    .await;
}

#[test]
fn a_broken_catalog_file_stops_startup_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    write_cert(dir.path(), &pki.server_cert(1));
    let broken = dir.path().join("catalog");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("bad.yaml"),
        "apiVersion: ephemeral.io/v1alpha1\nkind: AppBundle\nmetadata: {name: b}\nspec: {apps: 3}\n",
    )
    .unwrap();
    let (cert_file, key_file) = cert_paths(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_ephemeral-webhook"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--tls-cert-file")
        .arg(&cert_file)
        .arg("--tls-key-file")
        .arg(&key_file)
        .arg("--catalog-dir")
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {}, document 1: AppBundle 'b': field spec.apps: invalid type",
            broken.join("bad.yaml").display()
        )),
        "{stderr}"
    );
}
