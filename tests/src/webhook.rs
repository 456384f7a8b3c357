//! Driving the real `ephemeral-webhook serve` binary over real TLS: a test CA
//! and server certificates ([`Pki`]), a started server that is killed on drop
//! ([`Webhook`]), a hyper 1 client that trusts the test CA, AdmissionReview
//! requests ([`review`]) and their JSONPatch answers ([`apply_patch`]).
//!
//! Every helper takes the binary's path, so that the webhook crate's own
//! integration tests (`env!("CARGO_BIN_EXE_ephemeral-webhook")`) and the
//! cross-binary tests (`crate::binary("ephemeral-webhook")`) share them.
//! Every wait is bounded.

use std::ffi::OsStr;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long [`bounded`] lets a test run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(40);

/// `request.uid` of every AdmissionReview [`review`] builds.
pub const REVIEW_UID: &str = "3f1c2c5e-0000-4000-8000-000000000001";

/// A test CA and the server certificates it signs.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate for `localhost` and `127.0.0.1`, signed by a [`Pki`].
pub struct ServerCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The certificate, DER (to compare with what a server presents).
    pub der: CertificateDer<'static>,
}

impl Pki {
    /// A new self-signed test CA.
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ephemeral test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    /// A new server certificate with a fresh key and the given serial number.
    pub fn server_cert(&self, serial: u64) -> ServerCert {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.serial_number = Some(serial.into());
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A TLS client configuration that trusts this CA only.
    pub fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where [`write_cert`] puts the certificate and the key in `dir`:
/// `tls.crt` and `tls.key`.
pub fn cert_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("tls.crt"), dir.join("tls.key"))
}

/// Writes `cert` to [`cert_paths`] in `dir`, through temporary names and a
/// rename, as a Secret volume update does.
pub fn write_cert(dir: &Path, cert: &ServerCert) {
    let (cert_file, key_file) = cert_paths(dir);
    std::fs::write(dir.join("tls.key.new"), &cert.key_pem).unwrap();
    std::fs::write(dir.join("tls.crt.new"), &cert.cert_pem).unwrap();
    std::fs::rename(dir.join("tls.key.new"), key_file).unwrap();
    std::fs::rename(dir.join("tls.crt.new"), cert_file).unwrap();
}

/// A running `ephemeral-webhook serve` on free local ports, killed on drop.
///
/// Its certificate, key and log (`webhook.log`, the server's stderr at
/// `RUST_LOG=info`) live in a temporary directory it owns.
pub struct Webhook {
    child: Child,
    dir: tempfile::TempDir,
    https: SocketAddr,
    admin: SocketAddr,
    connector: TlsConnector,
}

impl Webhook {
    /// Starts `binary serve` with `--listen`, `--admin-listen`,
    /// `--tls-cert-file` and `--tls-key-file` filled in, followed by `args`
    /// (e.g. `--catalog-dir`, `--fixed-now`, policy flags).
    ///
    /// `dir` becomes the server's directory (files the caller put there, such
    /// as a catalog, stay until the server is dropped); `cert` is written to
    /// it first unless `None`. `KUBECONFIG` and every `EPHEMERAL_*` variable
    /// are removed from the server's environment, so only `args` count. Does
    /// not wait: see [`Webhook::wait_ready`].
    pub fn start<I, S>(
        binary: impl AsRef<Path>,
        dir: tempfile::TempDir,
        pki: &Pki,
        cert: Option<&ServerCert>,
        args: I,
    ) -> Webhook
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        if let Some(cert) = cert {
            write_cert(dir.path(), cert);
        }
        let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let (cert_file, key_file) = cert_paths(dir.path());
        let log = std::fs::File::create(dir.path().join("webhook.log")).unwrap();
        let mut command = Command::new(binary.as_ref());
        command
            .arg("serve")
            .args([
                "--listen",
                &https.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .arg("--tls-cert-file")
            .arg(&cert_file)
            .arg("--tls-key-file")
            .arg(&key_file)
            // Admission only: the controller would need a cluster.
            .arg("--controller=false")
            .args(args)
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("EPHEMERAL_") {
                command.env_remove(name);
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.as_ref().display()));
        Webhook {
            child,
            dir,
            https,
            admin,
            connector: pki.connector(),
        }
    }

    /// The server's directory (certificate, key, log, and what the caller put there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Address of the HTTPS admission server.
    pub fn https(&self) -> SocketAddr {
        self.https
    }

    /// Address of the plain-HTTP admin server.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// Process id of the server.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the server has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Replaces the certificate the server reads (see [`write_cert`]).
    pub fn write_cert(&self, cert: &ServerCert) {
        write_cert(self.dir.path(), cert);
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("webhook.log")).unwrap_or_default()
    }

    /// GET on the admin server: status and body, or `None` if it cannot be
    /// reached.
    pub async fn admin_get(&self, path: &str) -> Option<(StatusCode, String)> {
        let stream = TcpStream::connect(self.admin).await.ok()?;
        let mut sender = handshake(stream).await?;
        let request = Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        Some(send(&mut sender, request).await)
    }

    /// Waits (at most 20 s) until `/readyz` answers 200; panics with the log
    /// otherwise.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((StatusCode::OK, _)) = self.admin_get("/readyz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready in time; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new HTTPS connection to `localhost`, verified against the test CA,
    /// and the certificate the server presented.
    pub async fn connect<B>(&self) -> (SendRequest<B>, CertificateDer<'static>)
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tcp = TcpStream::connect(self.https).await.unwrap();
        let tls = self
            .connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake");
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0]
            .clone()
            .into_owned();
        (handshake(tls).await.unwrap(), presented)
    }

    /// POSTs a JSON body on a new HTTPS connection: status and body.
    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> (StatusCode, String) {
        let (mut sender, _) = self.connect().await;
        send(&mut sender, post_request(path, body)).await
    }

    /// POSTs an AdmissionReview to `path` (`/mutate`, `/validate`), expects
    /// HTTP 200 and an `admission.k8s.io/v1` AdmissionReview back, and
    /// returns its `response`.
    pub async fn admit(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, review.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        response_of(&body)
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1 client handshake over `io` (TCP or TLS); the connection is
/// driven by a spawned task. `None` if the handshake fails.
pub async fn handshake<T, B>(io: T) -> Option<SendRequest<B>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// A `POST` of a JSON body to `path` on `localhost`.
pub fn post_request(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

/// Sends `request` on an open connection: status and body (UTF-8).
pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> (StatusCode, String) {
    sender.ready().await.expect("connection ready");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// An `admission.k8s.io/v1` AdmissionReview about an `ephemeral.io/v1alpha1`
/// Environment, as the API server sends it: `operation` (`CREATE`, `UPDATE`,
/// `DELETE`) by `user` (in `system:authenticated`), uid [`REVIEW_UID`].
///
/// `request.name` and `request.namespace` come from the metadata of `object`,
/// else of `old` (the name is empty for an object with only a `generateName`).
pub fn review(op: &str, user: &str, object: Option<Value>, old: Option<Value>) -> Value {
    let metadata = |field: &str| {
        [&object, &old]
            .into_iter()
            .flatten()
            .find_map(|o| o.pointer(&format!("/metadata/{field}"))?.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (name, namespace) = (metadata("name"), metadata("namespace"));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": REVIEW_UID,
            "kind": {"group": "ephemeral.io", "version": "v1alpha1", "kind": "Environment"},
            "resource": {"group": "ephemeral.io", "version": "v1alpha1", "resource": "environments"},
            "name": name,
            "namespace": namespace,
            "operation": op,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

/// The `response` of an AdmissionReview body; panics (with the body) unless
/// it is an `admission.k8s.io/v1` AdmissionReview.
pub fn response_of(body: &str) -> Value {
    let review: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{body}");
    assert_eq!(review["kind"], "AdmissionReview", "{body}");
    review["response"].clone()
}

/// `object` with the JSONPatch of an admission `response` applied: `patchType`
/// must be `JSONPatch` and `patch` the base64 of the patch's JSON.
pub fn apply_patch(object: &Value, response: &Value) -> Value {
    use base64::Engine as _;
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let encoded = response["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut doc = object.clone();
    json_patch::patch(&mut doc, &patch).unwrap();
    doc
}

/// Runs `f`, failing the test if it takes longer than [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out")
}
