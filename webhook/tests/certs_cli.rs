//! The certificate flags of the real `ephemeral-webhook serve` binary.

use std::process::{Command, Output};

fn serve(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ephemeral-webhook"));
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--catalog-dir"])
        .arg(dir.path())
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", dir.path());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EPHEMERAL_") {
            command.env_remove(name);
        }
    }
    command.output().unwrap()
}

#[test]
fn one_certificate_file_alone_is_a_usage_error_naming_the_other() {
    let out = serve(&["--tls-cert-file", "/tls/tls.crt"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "the following required arguments were not provided:\n  --tls-key-file <FILE>"
        ),
        "{stderr}"
    );
    let out = serve(&["--tls-key-file", "/tls/tls.key"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert-file <FILE>"));
}

#[test]
fn self_managed_certificates_without_a_cluster_name_both_ways_out() {
    // No files: self-managed, which needs the API even with --catalog-dir
    // and the controller off.
    let out = serve(&["--controller=false"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: self-managed certificates need the Kubernetes API (run in a pod or with a kubeconfig), or pass --tls-cert-file and --tls-key-file: "),
        "{stderr}"
    );
}

#[test]
fn the_controller_without_a_cluster_says_how_to_run_without_one() {
    let out = serve(&["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: cannot create a Kubernetes client (the controller and the catalog watch need one; to run only the webhook without a cluster pass --controller=false --catalog-dir DIR): "),
        "{stderr}"
    );
}

#[test]
fn self_managed_names_are_checked_before_anything_starts() {
    let out = serve(&["--service-name", "Webhook"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--service-name 'Webhook': a DNS-1123 label must consist of lower-case letters, digits and '-'"),
        "{stderr}"
    );
}
