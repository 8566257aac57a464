//! Outgoing SMTP connections through a proxy (spec §23): a TCP tunnel opened with HTTP
//! `CONNECT`, SOCKS5 (optionally with a user name and password) or SOCKS4/4a, after which the
//! SMTP session runs over the tunnel as over a direct connection. The proxy is the submission's
//! `proxy`, else the account's, else the `proxyUrl` setting when `proxyEnabled` is on.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a tunnel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("Invalid proxy URL")]
    InvalidUrl,
    #[error("Unsupported proxy scheme {0}")]
    Unsupported(String),
    #[error("Proxy connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("Proxy refused the connection: {0}")]
    Refused(String),
    #[error("Proxy connection timed out")]
    Timeout,
}

/// Opens a TCP connection to `host:port` through `proxy`, binding to `local` when given.
pub async fn tunnel(
    proxy: &str,
    host: &str,
    port: u16,
    local: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, ProxyError> {
    let url = url::Url::parse(proxy).map_err(|_| ProxyError::InvalidUrl)?;
    let proxy_host = url.host_str().ok_or(ProxyError::InvalidUrl)?.to_string();
    let scheme = url.scheme().to_string();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "socks" | "socks5" | "socks4" | "socks4a" => 1080,
        other => return Err(ProxyError::Unsupported(other.to_string())),
    };
    let proxy_port = url.port().unwrap_or(default_port);
    let user = percent(url.username());
    let pass = url.password().map(percent);
    tokio::time::timeout(timeout, async {
        let mut stream = connect(&proxy_host, proxy_port, local).await?;
        match scheme.as_str() {
            "http" => http_connect(&mut stream, host, port, &user, pass.as_deref()).await?,
            "socks4" | "socks4a" => socks4(&mut stream, host, port, &user).await?,
            _ => socks5(&mut stream, host, port, &user, pass.as_deref()).await?,
        }
        Ok(stream)
    })
    .await
    .map_err(|_| ProxyError::Timeout)?
}

fn percent(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A TCP connection, from `local` when given.
pub async fn connect(host: &str, port: u16, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect((host, port)).await;
    };
    let mut last = None;
    for remote in tokio::net::lookup_host((host, port)).await? {
        if remote.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        match socket.connect(remote).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host} has no address reachable from {local}"),
        )
    }))
}

async fn http_connect(
    stream: &mut TcpStream,
    host: &str,
    port: u16,
    user: &str,
    pass: Option<&str>,
) -> Result<(), ProxyError> {
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if !user.is_empty() {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", pass.unwrap_or_default()));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    // Read the answer head byte by byte: what follows it belongs to the tunnel.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(ProxyError::Refused("answer too long".into()));
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(ProxyError::Refused("connection closed".into()));
        }
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head);
    let line = status.lines().next().unwrap_or_default().to_string();
    match line.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        _ => Err(ProxyError::Refused(line)),
    }
}

async fn socks5(
    stream: &mut TcpStream,
    host: &str,
    port: u16,
    user: &str,
    pass: Option<&str>,
) -> Result<(), ProxyError> {
    let with_auth = !user.is_empty();
    let methods: &[u8] = if with_auth { &[0x00, 0x02] } else { &[0x00] };
    let mut hello = vec![5, methods.len() as u8];
    hello.extend_from_slice(methods);
    stream.write_all(&hello).await?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await?;
    match choice {
        [5, 0x00] => {}
        [5, 0x02] if with_auth => {
            let pass = pass.unwrap_or_default();
            if user.len() > 255 || pass.len() > 255 {
                return Err(ProxyError::Refused("credentials too long".into()));
            }
            let mut auth = vec![1, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(pass.len() as u8);
            auth.extend_from_slice(pass.as_bytes());
            stream.write_all(&auth).await?;
            let mut answer = [0u8; 2];
            stream.read_exact(&mut answer).await?;
            if answer[1] != 0 {
                return Err(ProxyError::Refused("authentication failed".into()));
            }
        }
        _ => {
            return Err(ProxyError::Refused(
                "no acceptable authentication method".into(),
            ));
        }
    }
    let mut request = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            if host.len() > 255 {
                return Err(ProxyError::Refused("host name too long".into()));
            }
            request.push(3);
            request.push(host.len() as u8);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await?;
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await?;
    if reply[1] != 0 {
        return Err(ProxyError::Refused(format!("SOCKS5 reply {}", reply[1])));
    }
    let skip = match reply[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await?;
            usize::from(len[0])
        }
        other => return Err(ProxyError::Refused(format!("SOCKS5 address type {other}"))),
    };
    let mut rest = vec![0u8; skip + 2];
    stream.read_exact(&mut rest).await?;
    Ok(())
}

async fn socks4(
    stream: &mut TcpStream,
    host: &str,
    port: u16,
    user: &str,
) -> Result<(), ProxyError> {
    let mut request = vec![4, 1];
    request.extend_from_slice(&port.to_be_bytes());
    let ip = host.parse::<std::net::Ipv4Addr>().ok();
    // SOCKS4a: 0.0.0.1 and the host name after the user id.
    request.extend_from_slice(&ip.map_or([0, 0, 0, 1], |i| i.octets()));
    request.extend_from_slice(user.as_bytes());
    request.push(0);
    if ip.is_none() {
        request.extend_from_slice(host.as_bytes());
        request.push(0);
    }
    stream.write_all(&request).await?;
    let mut reply = [0u8; 8];
    stream.read_exact(&mut reply).await?;
    if reply[1] != 0x5a {
        return Err(ProxyError::Refused(format!("SOCKS4 reply {}", reply[1])));
    }
    Ok(())
}
