//! TLS material: the rustls server configuration from a PEM certificate chain
//! and key, held in a [`LiveTls`] whose configuration can be swapped while the
//! server runs. The PEM comes either from files, re-read by a [`Reloader`]
//! when they change, or from memory (the self-managed certificates of
//! `certs`, which builds on this module). New handshakes use the new certificate; open connections
//! keep theirs. A pair that does not load is logged and the previous one kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;

use crate::metrics::Metrics;

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The material is not PEM.
    #[error("{origin}: not PEM: {source}")]
    Pem {
        /// Where it came from (a file path, or a Secret and key).
        origin: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate holds no certificate.
    #[error("{origin}: no CERTIFICATE block found")]
    NoCertificate {
        /// Where it came from.
        origin: String,
    },
    /// The key holds no private key.
    #[error("{origin}: no PRIVATE KEY block found")]
    NoKey {
        /// Where it came from.
        origin: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("certificate {cert} and key {key} do not make a TLS configuration: {source}")]
    Config {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
        /// The cause.
        source: rustls::Error,
    },
}

/// Where a certificate and its key came from, for error messages: two file
/// paths, or e.g. `Secret ns/name key tls.crt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Where the certificate chain came from.
    pub cert: String,
    /// Where the private key came from.
    pub key: String,
}

/// Builds a server configuration from PEM contents: TLS 1.2 and 1.3 with the
/// ring provider, ALPN `h2` and `http/1.1`, no client authentication.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    origin: &Origin,
) -> Result<ServerConfig, TlsError> {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            origin: origin.cert.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            origin: origin.cert.clone(),
        });
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|source| TlsError::Pem {
            origin: origin.key.clone(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            origin: origin.key.clone(),
        })?;
    let config_err = |source| TlsError::Config {
        cert: origin.cert.clone(),
        key: origin.key.clone(),
        source,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(config_err)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(config_err)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The raw PEM of a certificate chain and its key.
type Contents = (Vec<u8>, Vec<u8>);

/// The configuration the admission server accepts connections with, and the
/// PEM it was built from: [`LiveTls::update`] swaps in a new pair.
#[derive(Debug)]
pub struct LiveTls {
    live: RustlsConfig,
    loaded: Contents,
}

impl LiveTls {
    /// Builds the first configuration from PEM contents.
    pub fn new(cert_pem: &[u8], key_pem: &[u8], origin: &Origin) -> Result<LiveTls, TlsError> {
        let config = server_config(cert_pem, key_pem, origin)?;
        Ok(LiveTls {
            live: RustlsConfig::from_config(Arc::new(config)),
            loaded: (cert_pem.to_vec(), key_pem.to_vec()),
        })
    }

    /// The configuration handle the server uses; it follows every update.
    pub fn live(&self) -> RustlsConfig {
        self.live.clone()
    }

    /// Whether this pair is the one being served.
    pub fn is_serving(&self, cert_pem: &[u8], key_pem: &[u8]) -> bool {
        self.loaded.0 == cert_pem && self.loaded.1 == key_pem
    }

    /// Swaps in a new pair: `Ok(true)` when swapped, `Ok(false)` when the pair
    /// is the one already served; on error the current one stays.
    pub fn update(
        &mut self,
        cert_pem: &[u8],
        key_pem: &[u8],
        origin: &Origin,
    ) -> Result<bool, TlsError> {
        if self.is_serving(cert_pem, key_pem) {
            return Ok(false);
        }
        let config = server_config(cert_pem, key_pem, origin)?;
        self.live.reload_from_config(Arc::new(config));
        self.loaded = (cert_pem.to_vec(), key_pem.to_vec());
        Ok(true)
    }
}

/// Certificate files and how often they are re-read.
#[derive(Clone, Debug)]
pub struct FileSettings {
    /// The files.
    pub files: TlsFiles,
    /// How often they are checked for changes.
    pub reload_interval: Duration,
}

/// The certificate and key files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

impl TlsFiles {
    fn read(&self) -> Result<Contents, TlsError> {
        Ok((read(&self.cert)?, read(&self.key)?))
    }

    fn origin(&self) -> Origin {
        Origin {
            cert: self.cert.display().to_string(),
            key: self.key.display().to_string(),
        }
    }

    /// Reads both files and builds a server configuration.
    pub fn load(&self) -> Result<ServerConfig, TlsError> {
        let (cert, key) = self.read()?;
        server_config(&cert, &key, &self.origin())
    }
}

/// Swaps the live configuration when the files' contents change.
#[derive(Debug)]
pub struct Reloader {
    files: TlsFiles,
    tls: LiveTls,
    last_failed: Option<Contents>,
}

impl Reloader {
    /// Loads the files once; the returned reloader serves that configuration.
    pub fn start(files: TlsFiles) -> Result<Reloader, TlsError> {
        let (cert, key) = files.read()?;
        let tls = LiveTls::new(&cert, &key, &files.origin())?;
        Ok(Reloader {
            files,
            tls,
            last_failed: None,
        })
    }

    /// The configuration the server accepts connections with.
    pub fn live(&self) -> RustlsConfig {
        self.tls.live()
    }

    /// Re-reads the files; if their contents changed and make a valid pair,
    /// swaps the configuration in. `Ok(true)` when swapped, `Ok(false)` when
    /// nothing changed (or the same bad pair was already reported).
    pub fn poll(&mut self) -> Result<bool, TlsError> {
        let contents = self.files.read()?;
        if self.last_failed.as_ref() == Some(&contents) {
            return Ok(false);
        }
        match self
            .tls
            .update(&contents.0, &contents.1, &self.files.origin())
        {
            Ok(swapped) => {
                self.last_failed = None;
                Ok(swapped)
            }
            Err(e) => {
                self.last_failed = Some(contents);
                Err(e)
            }
        }
    }

    /// Waits until the files make a valid pair (logging why not every
    /// `interval`); the returned reloader serves that pair.
    pub async fn wait(files: TlsFiles, interval: Duration) -> Reloader {
        loop {
            let attempt = {
                let files = files.clone();
                tokio::task::spawn_blocking(move || Reloader::start(files)).await
            };
            match attempt {
                Ok(Ok(r)) => return r,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "TLS certificate not loadable yet; retrying")
                }
                Err(error) => tracing::error!(%error, "TLS loader failed; retrying"),
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Polls every `interval`; never returns unless the blocking poll itself
    /// fails (its caller stops it by dropping it).
    pub async fn run(mut self, interval: Duration, metrics: Arc<Metrics>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let (result, me) = match tokio::task::spawn_blocking(move || (self.poll(), self)).await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "certificate poller failed");
                    return;
                }
            };
            self = me;
            match result {
                Ok(true) => {
                    metrics.tls_reload(true);
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Ok(false) => {}
                Err(error @ TlsError::Read { .. }) => {
                    tracing::warn!(%error, "cannot re-read the TLS files; keeping the current certificate");
                }
                Err(error) => {
                    metrics.tls_reload(false);
                    tracing::error!(%error, "new TLS certificate rejected; keeping the current one");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (key.cert.pem(), key.signing_key.serialize_pem())
    }

    fn files(dir: &Path, (cert, key): &(String, String)) -> TlsFiles {
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    #[test]
    fn a_mismatched_pair_is_refused_and_the_old_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = pair("localhost");
        let f = files(dir.path(), &first);
        let mut reloader = Reloader::start(f.clone()).unwrap();
        let before = Arc::as_ptr(&reloader.live().get_inner());
        assert!(
            !reloader.poll().unwrap(),
            "unchanged files are not reloaded"
        );

        let second = pair("localhost");
        std::fs::write(&f.cert, &second.0).unwrap(); // key not yet rotated
        let err = reloader.poll().unwrap_err().to_string();
        assert!(err.contains("do not make a TLS configuration"), "{err}");
        assert_eq!(Arc::as_ptr(&reloader.live().get_inner()), before);
        assert!(
            !reloader.poll().unwrap(),
            "the same bad pair is reported once"
        );

        std::fs::write(&f.key, &second.1).unwrap();
        assert!(reloader.poll().unwrap());
        assert_ne!(Arc::as_ptr(&reloader.live().get_inner()), before);
    }

    #[test]
    fn empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path(), &(String::new(), String::new()));
        let err = f.load().unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}: no CERTIFICATE block found", f.cert.display())
        );
        let f = files(dir.path(), &(pair("x").0, String::new()));
        let err = f.load().unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}: no PRIVATE KEY block found", f.key.display())
        );
        let missing = TlsFiles {
            cert: dir.path().join("absent.crt"),
            key: f.key.clone(),
        };
        assert!(
            missing
                .load()
                .unwrap_err()
                .to_string()
                .starts_with("cannot read ")
        );
    }
}
