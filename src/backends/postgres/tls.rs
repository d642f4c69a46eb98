//! TLS for the PostgreSQL connections (feature `postgres-tls`): rustls with the ring provider,
//! verifying the server against the roots of the URL's `sslrootcert` file.
//!
//! A `MakeTlsConnect` of our own over tokio-rustls rather than tokio-postgres-rustls: a few
//! lines instead of its certificate parser (used for SCRAM channel binding, which this
//! connector does not offer; the verified certificate already binds the server).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// The TLS side of a connection configuration: a rustls client configuration whose only roots
/// are the `sslrootcert` file's, read once when the backend is created.
#[derive(Debug, Clone)]
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
}

impl RustlsConnect {
    /// Reads the PEM certificates of `path` as the only trust anchors.
    pub(crate) fn from_pem_file(path: &Path) -> Result<Self, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(TlsSetupError::Unreadable)? {
            let cert = cert.map_err(TlsSetupError::Unreadable)?;
            roots.add(cert).map_err(TlsSetupError::Invalid)?;
        }
        if roots.is_empty() {
            return Err(TlsSetupError::Empty);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Invalid)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// The TLS settings of a URL cannot be used.
#[derive(Debug)]
pub(crate) enum TlsSetupError {
    /// TLS is required but no roots were given.
    NoRoots,
    /// Roots were given but the mode does not use TLS.
    RootsWithoutTls,
    /// The roots file cannot be read or is not PEM.
    Unreadable(rustls::pki_types::pem::Error),
    /// The roots file holds no certificate.
    Empty,
    /// A certificate is not a usable trust anchor (or the provider refused its defaults).
    Invalid(rustls::Error),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoRoots => {
                "sslmode require, verify-ca and verify-full need sslrootcert=PATH: a PEM file \
                 of the certificate authorities trusted to sign the server's certificate"
            }
            Self::RootsWithoutTls => {
                "sslrootcert is given but sslmode does not require TLS (require, verify-ca or \
                 verify-full)"
            }
            Self::Unreadable(_) => "the sslrootcert file cannot be read as PEM",
            Self::Empty => "the sslrootcert file holds no certificate",
            Self::Invalid(_) => "a certificate of the sslrootcert file is not a usable root",
        })
    }
}

impl std::error::Error for TlsSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreadable(e) => Some(e),
            Self::Invalid(e) => Some(e),
            Self::NoRoots | Self::RootsWithoutTls | Self::Empty => None,
        }
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = rustls::pki_types::InvalidDnsNameError;

    /// `domain` is the URL's host (not `hostaddr`): the name the certificate must carry, a DNS
    /// name or an IP address.
    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnectOne, Self::Error> {
        Ok(RustlsConnectOne {
            config: Arc::clone(&self.config),
            name: ServerName::try_from(domain)?.to_owned(),
        })
    }
}

/// One handshake with a named server.
#[derive(Debug)]
pub(crate) struct RustlsConnectOne {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            let stream = connector.connect(self.name, stream).await?;
            Ok(RustlsStream(stream))
        })
    }
}

/// A connection's TLS stream.
#[derive(Debug)]
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn setup(pem: Option<&str>) -> Result<RustlsConnect, TlsSetupError> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("roots.pem");
        if let Some(pem) = pem {
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("{e}"));
        }
        RustlsConnect::from_pem_file(&path)
    }

    #[test]
    fn unusable_roots_files_are_refused_with_their_cause() {
        // No file: unreadable, with the I/O error as source.
        let e = setup(None).err();
        assert!(matches!(e, Some(TlsSetupError::Unreadable(_))), "{e:?}");
        assert!(e.as_ref().and_then(|e| e.source()).is_some());
        // No certificate in it: empty, no further cause.
        for pem in ["", "not PEM at all\n"] {
            let e = setup(Some(pem)).err();
            assert!(matches!(e, Some(TlsSetupError::Empty)), "{e:?}");
            assert!(e.as_ref().and_then(|e| e.source()).is_none());
        }
        // A certificate block that is not a certificate: invalid, with rustls's reason.
        let e = setup(Some(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ))
        .err();
        assert!(matches!(e, Some(TlsSetupError::Invalid(_))), "{e:?}");
        assert!(e.as_ref().and_then(|e| e.source()).is_some());
        // The messages name the setting (and are fixed words: no path, no certificate).
        for e in [
            TlsSetupError::NoRoots,
            TlsSetupError::RootsWithoutTls,
            TlsSetupError::Empty,
        ] {
            assert!(e.to_string().contains("sslrootcert"), "{e}");
            assert!(e.source().is_none());
        }
    }
}
