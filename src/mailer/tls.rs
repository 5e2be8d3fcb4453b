//! The socket an SMTP session speaks over, before or after TLS, and how TLS is put on
//! it (rustls, the system's root certificates, the server's name checked). Knows nothing
//! of SMTP: `session.rs` says when to upgrade.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How to put TLS on a connection to one server: the system's root certificates, and
/// the name the certificate must carry. Built once (loading the roots is not free).
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    pub(crate) fn new(host: &str) -> Result<Tls, String> {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                errors = found.errors.len(),
                "no system root certificates found: TLS to the mail server will fail (install ca-certificates)"
            );
        }
        Tls::with_roots(host, roots)
    }

    /// Trusting only the certificate authority in `ca_pem`.
    #[cfg(test)]
    pub(crate) fn trusting(host: &str, ca_pem: &str) -> Tls {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("a PEM certificate");
        roots.add(ca).expect("a usable CA certificate");
        Tls::with_roots(host, roots).expect("a TLS setup")
    }

    fn with_roots(host: &str, roots: rustls::RootCertStore) -> Result<Tls, String> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|error| format!("{host:?} is not a host name TLS can check: {error}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|error| format!("cannot set up TLS: {error}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// The socket, before or after TLS.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while `upgrade` runs, or after it failed.
    Gone,
}

impl Stream {
    /// Puts TLS on a plain socket (implicit TLS, or after STARTTLS).
    /// On failure, the reason (the socket is then gone).
    pub(crate) async fn upgrade(&mut self, tls: &Tls) -> Result<(), String> {
        let Stream::Plain(tcp) = std::mem::replace(self, Stream::Gone) else {
            return Err("TLS asked for twice".to_owned());
        };
        let secured = tls
            .connector
            .connect(tls.name.clone(), tcp)
            .await
            .map_err(|error| format!("TLS handshake failed: {error}"))?;
        *self = Stream::Tls(Box::new(secured));
        Ok(())
    }

    pub(crate) fn is_encrypted(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "the connection is closed")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}
