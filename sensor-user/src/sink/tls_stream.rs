//! A TLS connection of our own (syslog over TLS, RFC 5425, and the diagnosis of a failed https
//! request): the handshake, with the receiver's verdict on our client certificate awaited, and
//! the check that the receiver is still there before a batch.

use std::{io::Read as _, net::TcpStream, sync::Arc, time::Duration};

use rustls::{ClientConfig, ClientConnection, StreamOwned, pki_types::ServerName};

use super::tls;
use crate::config::SinkTls;

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// How long to wait after the handshake for the receiver to refuse our client certificate. In
/// TLS 1.3 the client finishes its handshake before the server has judged its certificate; a
/// refusal arrives as an alert afterwards, and a batch written before it would be lost.
const SETTLE: Duration = Duration::from_millis(300);

/// Connects to `address` and shakes hands, only to tell why TLS to it fails: an https request
/// that dies with a broken pipe did not read the alert the receiver sent first.
pub fn diagnose(address: &str, tls: &SinkTls, timeout: Duration) -> Option<String> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(address)
        .ok()?
        .next()?;
    let tcp = TcpStream::connect_timeout(&addr, timeout).ok()?;
    connect(tcp, address, tls, &mut None, timeout).err()
}

/// The name the receiver's certificate must hold: `tls.server_name`, else the address's host.
pub fn server_name(address: &str, tls: &SinkTls) -> String {
    tls.server_name.clone().unwrap_or_else(|| {
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    })
}

/// TLS over a connected `tcp`; `config` is built from the files on first use (and after SIGHUP).
pub fn connect(
    tcp: TcpStream,
    address: &str,
    tls: &SinkTls,
    config: &mut Option<Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<TlsStream, String> {
    let config = match config {
        Some(config) => config.clone(),
        None => config
            .insert(tls::client_config(tls).map_err(|e| format!("{address}: {e}"))?)
            .clone(),
    };
    let name = server_name(address, tls);
    let server = ServerName::try_from(name.clone())
        .map_err(|e| format!("{address}: {name:?} is not a server name: {e}"))?;
    let connection =
        ClientConnection::new(config, server).map_err(|e| format!("{address}: TLS: {e}"))?;
    let mut stream = StreamOwned::new(connection, tcp);
    let fail = |e: std::io::Error| match tls::rustls_error(&e) {
        Some(err) => format!("{address}: TLS: {}", tls::explain(err, &name, tls)),
        None => format!("{address}: TLS handshake: {e}"),
    };
    stream.sock.set_read_timeout(Some(timeout)).map_err(fail)?;
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).map_err(fail)?;
    }
    stream.sock.set_read_timeout(Some(SETTLE)).map_err(fail)?;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {
            return Err(format!(
                "{address}: TLS: the receiver closed the connection after the handshake (did it \
                 refuse our client certificate?)"
            ));
        }
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        Err(e) => return Err(fail(e)),
    }
    stream.sock.set_read_timeout(Some(timeout)).map_err(fail)?;
    Ok(stream)
}

/// Whether the receiver closed the connection (close_notify, EOF, an alert or a reset). The
/// receiver never sends data, so anything but "nothing to read" means it is gone; session
/// tickets are consumed by rustls on the way.
pub fn peer_closed(stream: &mut TlsStream) -> bool {
    if stream.sock.set_nonblocking(true).is_err() {
        return true;
    }
    let mut buf = [0u8; 256];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    closed || stream.sock.set_nonblocking(false).is_err()
}
