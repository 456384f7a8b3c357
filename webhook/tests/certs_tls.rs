//! Self-managed certificates over real TLS: the admission router served by
//! axum-server with the generated certificate from memory, and rustls
//! clients that trust only the generated CA and connect by the Service's
//! DNS name, as the API server does.

use std::net::SocketAddr;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use ephemeral_testkit::mock_api;
use ephemeral_testkit::webhook::{handshake, post_request, response_of, review, send};
use ephemeral_webhook::admission::Access;
use ephemeral_webhook::catalog::SharedCatalog;
use ephemeral_webhook::certs::CertSettings;
use ephemeral_webhook::certs::inspect::{Decision, decide};
use ephemeral_webhook::certs::manager::CertManager;
use ephemeral_webhook::certs::pki::{Material, issue, renew_leaf};
use ephemeral_webhook::certs::secret;
use ephemeral_webhook::clock::Clock;
use ephemeral_webhook::metrics::Metrics;
use ephemeral_webhook::server::{self, AdmissionState};
use ephemeral_webhook::tls::LiveTls;
use http::Method;
use hyper::StatusCode;
use jiff::Timestamp;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const SERVICE: &str = "ephemeral-webhook.ephemeral-system.svc";

fn settings() -> CertSettings {
    CertSettings {
        namespace: "ephemeral-system".to_owned(),
        secret_name: "ephemeral-webhook-tls".to_owned(),
        service_name: "ephemeral-webhook".to_owned(),
        webhook_configuration: "ephemeral-webhook".to_owned(),
        extra_names: Vec::new(),
    }
}

fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn origin() -> ephemeral_webhook::tls::Origin {
    ephemeral_webhook::tls::Origin {
        cert: "test tls.crt".to_owned(),
        key: "test tls.key".to_owned(),
    }
}

/// The admission router on a free local port with `tls`.
fn serve(tls: RustlsConfig) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let catalog = SharedCatalog::new();
    catalog.mark_synced();
    let router = server::router(AdmissionState {
        catalog,
        config: Arc::new(ephemeral_core::Config::default()),
        access: Arc::new(Access {
            admin_groups: vec!["system:masters".to_owned()],
            controller_service_account: "system:serviceaccount:ephemeral-system:ephemeral-webhook"
                .to_owned(),
        }),
        clock: Clock::System,
        metrics: Arc::new(Metrics::new()),
        max_body_bytes: 1 << 20,
    });
    let server = axum_server::from_tcp_rustls(listener, tls)
        .unwrap()
        .serve(router.into_make_service());
    tokio::spawn(server);
    addr
}

/// A TLS connection to `addr` for `name` from a client that trusts only the
/// CAs in `ca_pem`.
async fn connect(
    ca_pem: &str,
    name: &str,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for der in ders(ca_pem) {
        roots.add(der).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
}

fn peer(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// A DELETE by the Environment's owner, which the validating webhook allows.
async fn validate_over(stream: TlsStream<TcpStream>) -> Value {
    let mut sender = handshake(stream)
        .await
        .expect("HTTP over the TLS connection");
    let environment = json!({
        "apiVersion": "ephemeral.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "alice-checkout", "namespace": "shop", "annotations": {"ephemeral.io/owner": "alice"}},
        "spec": {"apps": [{"name": "checkout"}]}
    });
    let body = review("DELETE", "alice", None, Some(environment)).to_string();
    let (status, body) = send(&mut sender, post_request("/validate", body)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    response_of(&body)
}

#[tokio::test]
async fn a_client_trusting_only_the_generated_ca_reaches_the_service_name() {
    let issued = issue(&settings(), Timestamp::now(), &[]).unwrap();
    let m = &issued.material;
    let tls = LiveTls::new(m.tls_crt.as_bytes(), m.tls_key.as_bytes(), &origin()).unwrap();
    let addr = serve(tls.live());

    for name in settings().subject_alt_names() {
        let stream = connect(&m.ca_crt, &name, addr)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(peer(&stream), ders(&m.tls_crt)[0]);
    }
    let stream = connect(&m.ca_crt, SERVICE, addr).await.unwrap();
    assert_eq!(validate_over(stream).await["allowed"], true);

    // Another CA, or another name, and the client refuses the server.
    let other = issue(&settings(), Timestamp::now(), &[]).unwrap();
    let err = connect(&other.material.ca_crt, SERVICE, addr)
        .await
        .unwrap_err();
    // Same CA name, other key: the signature does not verify.
    assert!(
        err.to_string()
            .contains("invalid peer certificate: BadSignature"),
        "{err}"
    );
    let err = connect(&m.ca_crt, "ephemeral-webhook.default.svc", addr)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("certificate not valid for name \"ephemeral-webhook.default.svc\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_renewed_certificate_reaches_new_connections_without_a_restart() {
    let now = Timestamp::now();
    let issued = issue(&settings(), now, &[]).unwrap();
    let m = &issued.material;
    let mut tls = LiveTls::new(m.tls_crt.as_bytes(), m.tls_key.as_bytes(), &origin()).unwrap();
    let addr = serve(tls.live());
    let before = connect(&m.ca_crt, SERVICE, addr).await.unwrap();
    assert_eq!(peer(&before), ders(&m.tls_crt)[0]);
    let mut open = handshake(before).await.unwrap();

    // What the renewal loop does when the Secret holds a new leaf.
    let Decision::RenewLeaf { ca, .. } =
        decide(Some(&secret::data(&without_leaf(m))), &settings(), now)
    else {
        panic!("a Secret without tls.crt needs a new serving certificate");
    };
    let renewed = renew_leaf(&settings(), &ca, now).unwrap().material;
    assert!(
        !tls.update(m.tls_crt.as_bytes(), m.tls_key.as_bytes(), &origin())
            .unwrap(),
        "the pair being served is not swapped again"
    );
    assert!(
        tls.update(
            renewed.tls_crt.as_bytes(),
            renewed.tls_key.as_bytes(),
            &origin()
        )
        .unwrap()
    );

    // Same CA, so clients need no new caBundle; new connections get the new
    // certificate, the open one keeps working.
    let after = connect(&m.ca_crt, SERVICE, addr).await.unwrap();
    assert_eq!(peer(&after), ders(&renewed.tls_crt)[0]);
    assert_eq!(validate_over(after).await["allowed"], true);
    let (status, _) = send(&mut open, post_request("/validate", "{}")).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the open connection still answers"
    );

    // A pair that does not match is refused and the current one kept.
    let err = tls
        .update(m.tls_crt.as_bytes(), renewed.tls_key.as_bytes(), &origin())
        .unwrap_err();
    assert!(
        err.to_string().contains("do not make a TLS configuration"),
        "{err}"
    );
    let again = connect(&m.ca_crt, SERVICE, addr).await.unwrap();
    assert_eq!(peer(&again), ders(&renewed.tls_crt)[0]);
}

fn without_leaf(m: &Material) -> Material {
    Material {
        tls_crt: String::new(),
        ..m.clone()
    }
}

#[tokio::test]
async fn start_serves_the_certificate_it_stored_once_the_secret_is_written() {
    let (client, mut api) = mock_api::client();
    let (stored_tx, stored_rx) = tokio::sync::oneshot::channel::<Value>();
    tokio::spawn(async move {
        let mut stored_tx = Some(stored_tx);
        let mut answered = Vec::new();
        // The first round: no Secret, create it, no configurations yet.
        for _ in 0..4 {
            let call = api.next_any().await.unwrap();
            answered.push(format!("{} {}", call.method, call.uri.path()));
            if call.method == Method::POST {
                let body = call.body.clone().unwrap();
                stored_tx.take().unwrap().send(body.clone()).unwrap();
                call.reply(201, &body);
            } else {
                call.fail(404, "NotFound");
            }
        }
        assert_eq!(
            answered,
            [
                "GET /api/v1/namespaces/ephemeral-system/secrets/ephemeral-webhook-tls",
                "POST /api/v1/namespaces/ephemeral-system/secrets",
                "GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/ephemeral-webhook",
                "GET /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/ephemeral-webhook",
            ]
        );
        // Keep the API "up" for the renewal loop's next round.
        std::future::pending::<()>().await;
    });

    let manager = CertManager::new(client, settings());
    let (live, _issued) = manager.ready().await;
    let tls = live.live();
    let stored = stored_rx.await.unwrap();
    let ca_pem = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            stored["data"]["ca.crt"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();

    let addr = serve(tls);
    let stream = connect(&ca_pem, SERVICE, addr).await.unwrap();
    assert_eq!(validate_over(stream).await["allowed"], true);
}
