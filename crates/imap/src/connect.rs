//! Opening an IMAP session: TCP, then implicit TLS, STARTTLS or plain text, then LOGIN, or
//! AUTHENTICATE OAUTHBEARER / XOAUTH2 with an OAuth2 access token.
//! Failures are classified, because a refused login (`authenticationError`) must be told apart
//! from a network or protocol failure (`connectError`). [`Abilities`] reads what the server
//! offers and introduces the client (ID, ENABLE) on the account's main connection.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use emailengine_core::account::{ServerSettings, TokenLogin, TokenMechanism};
use emailengine_oauth::app::SaslMechanism;
use emailengine_oauth::sasl;

use crate::wire_log::WireLog;

pub type Session = async_imap::Session<ImapStream>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The server refused the credentials.
    #[error("{0}")]
    Auth(String),
    /// Network, TLS or protocol failure.
    #[error("{0}")]
    Network(String),
}

/// A plain or TLS-wrapped TCP stream.
#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The connection's stream, and its protocol log when the account keeps one.
#[derive(Debug)]
pub struct ImapStream {
    transport: Transport,
    log: Option<WireLog>,
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = match &mut this.transport {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let (Poll::Ready(Ok(())), Some(log)) = (&result, this.log.as_mut()) {
            log.received(&buf.filled()[before..]);
        }
        result
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = match &mut this.transport {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        if let (Poll::Ready(Ok(n)), Some(log)) = (&result, this.log.as_mut()) {
            log.sent(&buf[..*n]);
        }
        result
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What the server offers that the engine uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Abilities {
    pub condstore: bool,
    /// THREAD=REFERENCES: messages carry a `threadId` rooted as RFC 5256 roots threads.
    pub thread_references: bool,
    pub id: bool,
    pub enable: bool,
    pub imap4rev2: bool,
    pub gmail: bool,
    pub object_id: bool,
    /// LIST-EXTENDED and LIST-STATUS: one LIST answers subscriptions and counters.
    pub list_status: bool,
}

impl Abilities {
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut a = Abilities::default();
        for n in names {
            match n.to_ascii_uppercase().as_str() {
                "CONDSTORE" => a.condstore = true,
                "ID" => a.id = true,
                "ENABLE" => a.enable = true,
                "IMAP4REV2" => a.imap4rev2 = true,
                "X-GM-EXT-1" => a.gmail = true,
                "OBJECTID" => a.object_id = true,
                "LIST-STATUS" => a.list_status = true,
                "THREAD=REFERENCES" => a.thread_references = true,
                _ => {}
            }
        }
        a
    }

    /// Asks the server (CAPABILITY).
    pub async fn read(session: &mut Session) -> Result<Self, crate::error::ImapError> {
        let caps = session.capabilities().await?;
        let names: Vec<String> = caps
            .iter()
            .filter_map(|c| match c {
                async_imap::types::Capability::Atom(a) => Some(a.to_string()),
                async_imap::types::Capability::Imap4rev1 => Some("IMAP4rev1".into()),
                _ => None,
            })
            .collect();
        Ok(Self::from_names(names.iter().map(String::as_str)))
    }

    /// The ENABLE command for what the engine can use, if the server takes ENABLE.
    pub fn enable_command(&self, settings: &ServerSettings) -> Option<String> {
        if !self.enable {
            return None;
        }
        let mut wanted = Vec::new();
        if self.condstore {
            wanted.push("CONDSTORE");
        }
        if self.imap4rev2 && !settings.disable_imap4rev2 {
            wanted.push("IMAP4rev2");
        }
        (!wanted.is_empty()).then(|| format!("ENABLE {}", wanted.join(" ")))
    }

    /// Sends ID (who we are) and ENABLE where the server offers them. Refusals are logged, not
    /// fatal: both are courtesies the session works without.
    pub async fn introduce(&self, session: &mut Session, settings: &ServerSettings) {
        if self.id {
            let id = format!(
                "ID (\"name\" \"EmailEngine\" \"version\" \"{}\" \"vendor\" \"emailengine-rs\")",
                emailengine_core::COMPAT_VERSION
            );
            if let Err(e) = crate::command::run(session, &id).await {
                tracing::debug!(err = %e, "ID refused");
            }
        }
        if let Some(enable) = self.enable_command(settings)
            && let Err(e) = crate::command::run(session, &enable).await
        {
            tracing::debug!(err = %e, "ENABLE refused");
        }
    }
}

/// Whether a quiet session's connection is still open: nothing has arrived on it since its
/// last command (a closed connection reads as end of file, a server about to leave sends BYE).
pub async fn still_open(session: &Session) -> bool {
    let tcp = match &session.get_ref().transport {
        Transport::Plain(t) => t,
        Transport::Tls(t) => t.get_ref().0,
    };
    let mut byte = [0u8; 1];
    // A zero timeout polls the peek once: pending means the line is quiet and open.
    tokio::time::timeout(Duration::ZERO, tcp.peek(&mut byte))
        .await
        .is_err()
}

fn net(e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Network(e.to_string())
}

/// Connects and logs in.
pub async fn connect(settings: &ServerSettings) -> Result<Session, ConnectError> {
    connect_logged(settings, None).await
}

/// Connects and logs in, keeping the protocol log `log` of the connection.
pub async fn connect_logged(
    settings: &ServerSettings,
    log: Option<WireLog>,
) -> Result<Session, ConnectError> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(settings, log))
        .await
        .map_err(|_| ConnectError::Network("Connection timed out".into()))?
}

/// Connects from a chosen local address, trying each address the host name resolves to.
async fn bound_connect(
    local: std::net::IpAddr,
    host: &str,
    port: u16,
) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for remote in tokio::net::lookup_host((host, port)).await.map_err(net)? {
        if remote.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(net)?;
        socket
            .bind(std::net::SocketAddr::new(local, 0))
            .map_err(net)?;
        match socket.connect(remote).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => net(e),
        None => net(format!("{host} has no address reachable from {local}")),
    })
}

async fn connect_inner(
    settings: &ServerSettings,
    log: Option<WireLog>,
) -> Result<Session, ConnectError> {
    let tcp = match settings.local_address {
        None => TcpStream::connect((settings.host.as_str(), settings.port))
            .await
            .map_err(net)?,
        Some(local) => bound_connect(local, &settings.host, settings.port).await?,
    };
    let _ = tcp.set_nodelay(true);
    let transport = if settings.secure {
        Transport::Tls(Box::new(tls(tcp, settings).await?))
    } else {
        Transport::Plain(tcp)
    };
    let stream = ImapStream { transport, log };
    let mut client = async_imap::Client::new(stream);
    let greeting = client
        .read_response()
        .await
        .map_err(net)?
        .ok_or_else(|| net("Connection closed before the server greeting"))?;
    // Servers usually list their capabilities in the greeting; when they do and STARTTLS is not
    // among them, skip asking for it.
    let greeting_denies_starttls = match greeting.parsed() {
        imap_proto::Response::Data {
            outcome:
                imap_proto::Outcome {
                    code: Some(imap_proto::ResponseCode::Capabilities(caps)),
                    ..
                },
            ..
        } => !caps.iter().any(
            |c| matches!(c, imap_proto::Capability::Atom(a) if a.eq_ignore_ascii_case("STARTTLS")),
        ),
        _ => false,
    };
    if greeting_denies_starttls && settings.starttls == Some(true) {
        return Err(net("Server does not offer STARTTLS"));
    }

    if !settings.secure && settings.starttls != Some(false) && !greeting_denies_starttls {
        // Ask for STARTTLS directly: a server without it answers BAD/NO and the plain
        // session stays usable, which saves reading capabilities before login.
        match client.run_command_and_check_ok("STARTTLS", None).await {
            Ok(()) => {
                let ImapStream {
                    transport: Transport::Plain(tcp),
                    log,
                } = client.into_inner()
                else {
                    return Err(net("STARTTLS on a TLS stream"));
                };
                let transport = Transport::Tls(Box::new(tls(tcp, settings).await?));
                client = async_imap::Client::new(ImapStream { transport, log });
            }
            Err(async_imap::error::Error::Bad(_) | async_imap::error::Error::No(_))
                if settings.starttls.is_none() => {}
            Err(e) => return Err(net(format!("STARTTLS failed: {e}"))),
        }
    }

    let refused = |(e, _)| match e {
        async_imap::error::Error::No(msg) | async_imap::error::Error::Bad(msg) => {
            ConnectError::Auth(msg)
        }
        other => net(other),
    };
    match &settings.token {
        None => client
            .login(&settings.user, &settings.pass)
            .await
            .map_err(refused),
        Some(token) => {
            let capabilities = capability_names(&mut client).await?;
            let names: Vec<&str> = capabilities.iter().map(String::as_str).collect();
            let forced = token.mechanism.map(|m| match m {
                TokenMechanism::XOAuth2 => SaslMechanism::XOAuth2,
                TokenMechanism::OAuthBearer => SaslMechanism::OAuthBearer,
            });
            let mechanism = sasl::choose_imap_mechanism(&names, forced)
                .ok_or_else(|| ConnectError::Auth("Unsupported authentication mechanism".into()))?;
            let bearer = BearerLogin::new(mechanism, settings, token);
            client
                .authenticate(mechanism.as_str(), bearer)
                .await
                .map_err(refused)
        }
    }
}

/// The server's capabilities before login (asked, since STARTTLS may have changed them).
async fn capability_names(
    client: &mut async_imap::Client<ImapStream>,
) -> Result<Vec<String>, ConnectError> {
    use tokio::io::AsyncWriteExt as _;
    // The client offers no tagged command before login; a tag of our own cannot clash with
    // its numbered ones.
    const TAG: &str = "EECAP";
    let stream = client.get_mut();
    stream
        .write_all(format!("{TAG} CAPABILITY\r\n").as_bytes())
        .await
        .map_err(net)?;
    stream.flush().await.map_err(net)?;
    let mut names = Vec::new();
    loop {
        let response = client
            .read_response()
            .await
            .map_err(net)?
            .ok_or_else(|| net("Connection closed during CAPABILITY"))?;
        match response.parsed() {
            imap_proto::Response::Capabilities(caps) => {
                names.extend(caps.iter().filter_map(|c| match c {
                    imap_proto::Capability::Atom(a) => Some(a.to_string()),
                    imap_proto::Capability::Auth(a) => Some(format!("AUTH={a}")),
                    _ => None,
                }));
            }
            imap_proto::Response::Done { tag, .. } if tag.0 == TAG => return Ok(names),
            _ => {}
        }
    }
}

/// Answers AUTHENTICATE with the token's SASL string first; a second challenge is the
/// server's error report, answered as the mechanism says to end the exchange.
struct BearerLogin {
    initial: Option<Vec<u8>>,
    mechanism: SaslMechanism,
}

impl BearerLogin {
    fn new(mechanism: SaslMechanism, settings: &ServerSettings, token: &TokenLogin) -> Self {
        use base64::Engine as _;
        let encoded = match mechanism {
            SaslMechanism::OAuthBearer => sasl::oauthbearer(
                &settings.user,
                &settings.host,
                settings.port,
                &token.access_token,
            ),
            SaslMechanism::XOAuth2 => sasl::xoauth2(&settings.user, &token.access_token),
        };
        Self {
            initial: base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok(),
            mechanism,
        }
    }
}

impl async_imap::Authenticator for BearerLogin {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        match (self.initial.take(), self.mechanism) {
            (Some(initial), _) => initial,
            (None, SaslMechanism::OAuthBearer) => vec![0x01],
            (None, SaslMechanism::XOAuth2) => Vec::new(),
        }
    }
}

async fn tls(
    tcp: TcpStream,
    settings: &ServerSettings,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(net)?;
    let config = if settings.accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(net)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    let name = rustls::pki_types::ServerName::try_from(settings.host.clone()).map_err(net)?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(net)
}

/// Accepts any server certificate; used only when an account asks for it
/// (`tls.rejectUnauthorized: false`), e.g. self-signed test servers.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_follows_offers_and_settings() {
        let a = Abilities::from_names(["IMAP4rev1", "ENABLE", "CONDSTORE", "IMAP4rev2", "ID"]);
        let mut settings =
            ServerSettings::from_json(&serde_json::json!({"host": "h", "port": 1})).unwrap();
        assert_eq!(
            a.enable_command(&settings).as_deref(),
            Some("ENABLE CONDSTORE IMAP4rev2")
        );
        settings.disable_imap4rev2 = true;
        assert_eq!(
            a.enable_command(&settings).as_deref(),
            Some("ENABLE CONDSTORE")
        );
        assert_eq!(
            Abilities::from_names(["CONDSTORE"]).enable_command(&settings),
            None
        );
    }
}
