//! A TLS front for DynamoDB Local: it terminates HTTPS on 127.0.0.1 with a certificate for
//! `localhost` from a throw-away CA, and passes the bytes on to DynamoDB Local. A deployed
//! function reaches DynamoDB over HTTPS only, so `nudge bench` runs the bootstraps through it
//! to measure what the first request pays for its handshake (and what opening the connection
//! at init saves). The CA is written beside the system's roots into one bundle, which the
//! bootstraps load as they would the system's (`SSL_CERT_FILE`; `AWS_CA_BUNDLE` for boto3).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The system's roots, as a Lambda image has them (Debian's path).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct TlsFront {
    /// `https://localhost:<port>`.
    pub url: String,
    /// The system's roots and the front's CA, PEM.
    pub ca_bundle: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.ca_bundle);
    }
}

impl TlsFront {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `upstream`
    /// (`host:port`); the CA bundle is written in `dir`.
    pub async fn start(upstream: &str, dir: &Path) -> Result<TlsFront> {
        let (ca_pem, leaf, key) = certificates()?;
        let mut bundle = std::fs::read_to_string(SYSTEM_ROOTS).unwrap_or_default();
        bundle.push_str(&ca_pem);
        let ca_bundle = dir.join(format!("nudge-bench-ca-{}.pem", std::process::id()));
        std::fs::write(&ca_bundle, bundle)
            .with_context(|| format!("writing {}", ca_bundle.display()))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth()
            .with_single_cert(vec![leaf], key)
            .context("the front's certificate")?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the TLS front")?;
        let port = listener.local_addr()?.port();
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Ok(TlsFront {
            url: format!("https://localhost:{port}"),
            ca_bundle,
            task,
        })
    }
}

/// A CA (its PEM) and a certificate for `localhost` and 127.0.0.1 it signed, with its key.
fn certificates() -> Result<(String, CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "nudge bench local CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok((
        ca_cert.pem(),
        leaf_cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The front answers HTTPS with a certificate the bundle's CA signed, and passes the
    /// request through: a reqwest client trusting only the bundle reaches a plain server.
    #[tokio::test]
    async fn forwards_https_to_the_plain_upstream_with_a_trusted_certificate() {
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = plain.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = plain.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nplain",
                    )
                    .await;
            }
        });
        let dir = std::env::temp_dir();
        let front = TlsFront::start(&upstream, &dir).await.unwrap();
        let pem = std::fs::read(&front.ca_bundle).unwrap();
        let mut builder = reqwest::Client::builder().tls_built_in_root_certs(false);
        for cert in reqwest::Certificate::from_pem_bundle(&pem).unwrap() {
            builder = builder.add_root_certificate(cert);
        }
        let body = builder
            .build()
            .unwrap()
            .get(format!("{}/", front.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "plain");
    }
}
