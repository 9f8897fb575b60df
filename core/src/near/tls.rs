//! TLS for tracking connections (`rediss://`): rustls driven by hand over the TCP socket,
//! so the reader thread can block in a read while the supervisor writes a PING (a rustls
//! stream cannot be split; its session can be shared, and the socket read outside the
//! lock). Roots and `#insecure` follow redis-rs: the system's certificates, or no
//! verification at all for a self-signed development server.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::{Error, Result};

/// A TLS session shared by the reader and the writer of one connection.
pub(super) type Session = Arc<Mutex<ClientConnection>>;

fn lock(session: &Session) -> std::sync::MutexGuard<'_, ClientConnection> {
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config(insecure: bool) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS: {e}")))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// Shakes hands on `socket` (whose timeouts bound it) and returns the session.
pub(super) fn connect(socket: &TcpStream, host: &str, insecure: bool) -> io::Result<Session> {
    let config = config(insecure).map_err(|e| io::Error::other(e.to_string()))?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut session = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
    let mut io = socket;
    while session.is_handshaking() {
        session.complete_io(&mut io)?;
    }
    Ok(Arc::new(Mutex::new(session)))
}

/// Encrypts and sends `bytes`.
pub(super) fn send(session: &Session, mut socket: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    let mut session = lock(session);
    session.writer().write_all(bytes)?;
    while session.wants_write() {
        session.write_tls(&mut socket)?;
    }
    Ok(())
}

/// The plaintext side of a session: blocks in the socket read without holding the lock.
pub(super) struct Reader {
    pub(super) socket: TcpStream,
    pub(super) session: Session,
    pub(super) raw: Vec<u8>,
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match lock(&self.session).reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
            let n = (&self.socket).read(&mut self.raw)?;
            if n == 0 {
                return Ok(0);
            }
            let mut session = lock(&self.session);
            let mut fresh = &self.raw[..n];
            while !fresh.is_empty() {
                session.read_tls(&mut fresh)?;
                session
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            while session.wants_write() {
                session.write_tls(&mut &self.socket)?;
            }
        }
    }
}

/// `#insecure`: accepts any certificate (signatures are still checked), as redis-rs does.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
