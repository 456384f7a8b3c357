//! `serve::run_until` in-process: the lifecycle ends every task it started,
//! whichever way it stops.

use std::time::Duration;

use clap::Parser;
use ephemeral_webhook::args::ServeArgs;
use ephemeral_webhook::serve::{ServeError, run_until};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn settings(dir: &std::path::Path, admin: &str) -> ephemeral_webhook::serve::ServeSettings {
    let (cert, key) = (dir.join("absent.crt"), dir.join("absent.key"));
    let args = vec![
        "serve".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        format!("--admin-listen={admin}"),
        "--controller=false".to_owned(),
        format!("--catalog-dir={}", dir.display()),
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-key-file={}", key.display()),
        "--tls-reload-interval=100ms".to_owned(),
    ];
    Cli::parse_from(args).serve.to_settings().unwrap()
}

#[tokio::test]
async fn a_stop_before_the_certificate_exists_ends_every_task() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serve = tokio::spawn(run_until(settings(dir.path(), "127.0.0.1:0"), async {
        let _ = rx.await;
        "test"
    }));
    // Waiting for the certificate files (retried every 100ms) keeps it running.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!serve.is_finished());
    tx.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), serve)
        .await
        .expect("serve stops once asked to")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn an_address_in_use_stops_startup_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = run_until(
        settings(dir.path(), &addr.to_string()),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, ServeError::Listen { what: "admin", .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot listen on {addr} (admin): ")),
        "{error}"
    );
}
