//! Syslog (RFC 5424) with the alert JSON as the message: over TCP with octet-counting framing
//! (RFC 6587 3.4.1), over TLS with the same framing (RFC 5425), or over UDP, one datagram per
//! alert (RFC 5426).

use std::{
    io::{IoSlice, Write},
    net::{TcpStream, ToSocketAddrs, UdpSocket},
    os::fd::AsRawFd,
    time::Duration,
};

use bytes::Bytes;
use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    delivery::{Delivered, Transport},
    tls_stream::{self, TlsStream},
    vectored,
};
use crate::config::{SinkTls, SyslogProtocol};

/// The fields of an alert the syslog header needs.
#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: MetaEvent,
    rule: MetaRule,
}

#[derive(Deserialize)]
struct MetaEvent {
    severity: u8,
}

#[derive(Deserialize)]
struct MetaRule {
    id: String,
}

/// Largest UDP payload over IPv4; a longer alert cannot be sent as one datagram.
const UDP_MAX: usize = 65_507;

enum Connection {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    Udp(UdpSocket),
}

pub struct Syslog {
    address: String,
    protocol: SyslogProtocol,
    facility: u8,
    hostname: String,
    timeout: Duration,
    connection: Option<Connection>,
    tls: SinkTls,
    /// Built from the TLS files on first use; dropped on SIGHUP to read them again.
    tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Syslog {
    pub fn new(
        address: String,
        protocol: SyslogProtocol,
        facility: u8,
        timeout: Duration,
    ) -> Syslog {
        Syslog {
            address,
            protocol,
            facility,
            hostname: crate::clock::hostname(),
            timeout,
            connection: None,
            tls: SinkTls::default(),
            tls_config: None,
        }
    }

    /// The TLS settings (used with protocol tls).
    pub fn with_tls(mut self, tls: SinkTls) -> Syslog {
        self.tls = tls;
        self
    }

    fn connect(&mut self) -> Result<Connection, String> {
        let addrs: Vec<_> = self
            .address
            .to_socket_addrs()
            .map_err(|e| format!("resolving {}: {e}", self.address))?
            .collect();
        let mut last = format!("{} resolves to no address", self.address);
        for addr in addrs {
            let result = match self.protocol {
                SyslogProtocol::Tcp | SyslogProtocol::Tls => {
                    TcpStream::connect_timeout(&addr, self.timeout).and_then(|s| {
                        s.set_write_timeout(Some(self.timeout))?;
                        s.set_nodelay(true)?;
                        Ok(Connection::Tcp(s))
                    })
                }
                SyslogProtocol::Udp => {
                    let local = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    UdpSocket::bind(local).and_then(|s| {
                        s.connect(addr)?;
                        Ok(Connection::Udp(s))
                    })
                }
            };
            match result {
                Ok(Connection::Tcp(tcp)) if self.protocol == SyslogProtocol::Tls => {
                    return tls_stream::connect(
                        tcp,
                        &self.address,
                        &self.tls,
                        &mut self.tls_config,
                        self.timeout,
                    )
                    .map(|s| Connection::Tls(Box::new(s)));
                }
                Ok(connection) => return Ok(connection),
                Err(e) => last = format!("connecting to {addr}: {e}"),
            }
        }
        Err(last)
    }

    /// One RFC 5424 message: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG`.
    pub fn format(&self, record: &[u8], out: &mut Vec<u8>) {
        self.header(record, out);
        out.extend_from_slice(record);
    }

    /// The part of [`Syslog::format`] before the alert itself.
    fn header(&self, record: &[u8], out: &mut Vec<u8>) {
        let meta: Option<Meta> = serde_json::from_slice(record).ok();
        let severity = match meta.as_ref().map_or(47, |m| m.event.severity) {
            s if s >= 99 => 2, // crit
            s if s >= 73 => 3, // err
            s if s >= 47 => 4, // warning
            _ => 5,            // notice
        };
        let timestamp = meta
            .as_ref()
            .and_then(|m| syslog_time(&m.timestamp))
            .unwrap_or_else(|| "-".into());
        let msgid = meta
            .as_ref()
            .map(|m| header_field(&m.rule.id, 32))
            .unwrap_or_else(|| "-".into());
        let pri = u16::from(self.facility) * 8 + severity;
        let _ = write!(
            out,
            "<{pri}>1 {timestamp} {} lineage-sensor {} {msgid} - ",
            header_field(&self.hostname, 255),
            std::process::id()
        );
    }
}

/// RFC 5424 allows at most 6 fractional digits: the alert's nanoseconds are cut to micros.
fn syslog_time(rfc3339: &str) -> Option<String> {
    let t = OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?;
    let t = t.replace_nanosecond(t.microsecond() * 1000).ok()?;
    t.format(&Rfc3339).ok()
}

/// Header fields are printable US-ASCII without spaces, or "-" when empty.
fn header_field(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if field.is_empty() { "-".into() } else { field }
}

/// Whether the receiver closed the connection: a write to a closed TCP connection succeeds
/// locally and the data is lost, so this is checked before each batch. The receiver never
/// sends, so anything readable means EOF or a reset.
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: a valid descriptor and a one-byte buffer we own.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n == 0 {
        return true;
    }
    n < 0 && {
        let err = std::io::Error::last_os_error();
        err.kind() != std::io::ErrorKind::WouldBlock
    }
}

impl Transport for Syslog {
    /// SIGHUP: reconnect with the certificates read again (rotation without restart).
    fn reopen(&mut self) {
        if self.protocol == SyslogProtocol::Tls {
            self.tls_config = None;
            self.connection = None;
        }
    }

    fn send(&mut self, batch: &[Bytes]) -> Result<Delivered, String> {
        let closed = match &mut self.connection {
            Some(Connection::Tcp(stream)) => peer_closed(stream),
            Some(Connection::Tls(stream)) => tls_stream::peer_closed(stream),
            _ => false,
        };
        if closed {
            self.connection = None;
        }
        let connection = match self.connection.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        let connection = self.connection.insert(connection);
        let mut delivered = Delivered::default();
        let mut message = Vec::new();
        match connection {
            Connection::Tcp(_) | Connection::Tls(_) => {
                // `LEN SP HEADER` of every frame in one buffer; each alert goes out beside its
                // header, not copied.
                let mut heads = Vec::with_capacity(batch.len() * 128);
                let mut ends = Vec::with_capacity(batch.len());
                for record in batch {
                    message.clear();
                    self.header(record, &mut message);
                    let _ = write!(heads, "{} ", message.len() + record.len());
                    heads.extend_from_slice(&message);
                    ends.push(heads.len());
                }
                let mut slices = Vec::with_capacity(2 * batch.len());
                let mut start = 0;
                for (&end, record) in ends.iter().zip(batch) {
                    slices.push(IoSlice::new(&heads[start..end]));
                    slices.push(IoSlice::new(record));
                    start = end;
                }
                let written = match &mut self.connection {
                    Some(Connection::Tcp(stream)) => {
                        vectored::write_all(stream, &mut slices).and_then(|()| stream.flush())
                    }
                    Some(Connection::Tls(stream)) => {
                        vectored::write_all(stream.as_mut(), &mut slices)
                            .and_then(|()| stream.flush())
                    }
                    _ => Ok(()),
                };
                if let Err(e) = written {
                    self.connection = None;
                    return Err(format!("sending to {}: {e}", self.address));
                }
            }
            Connection::Udp(_) => {
                for record in batch {
                    message.clear();
                    self.format(record, &mut message);
                    if message.len() > UDP_MAX {
                        log::warn!(
                            "syslog sink: an alert of {} bytes does not fit a UDP datagram; \
                             dropped (use TCP for large alerts)",
                            message.len()
                        );
                        delivered.rejected += 1;
                        continue;
                    }
                    if let Some(Connection::Udp(socket)) = &self.connection
                        && let Err(e) = socket.send(&message)
                    {
                        self.connection = None;
                        return Err(format!("sending to {}: {e}", self.address));
                    }
                }
            }
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    const ALERT: &str = r#"{"@timestamp":"2023-11-14T22:13:20.123456789Z","event":{"id":"x","severity":73},"rule":{"id":"server-spawned-shell"}}"#;

    #[test]
    fn rfc5424_header_with_micros_and_severity() {
        let sink = Syslog::new(
            "127.0.0.1:1".into(),
            SyslogProtocol::Tcp,
            10,
            Duration::from_secs(1),
        );
        let mut out = Vec::new();
        sink.format(ALERT.as_bytes(), &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        // authpriv (10) * 8 + err (3)
        let expected_prefix = "<83>1 2023-11-14T22:13:20.123456Z ";
        assert!(text.starts_with(expected_prefix), "{text}");
        assert!(
            text.contains(&format!(
                " lineage-sensor {} server-spawned-shell - {ALERT}",
                std::process::id()
            )),
            "{text}"
        );
    }

    #[test]
    fn tcp_frames_are_octet_counted_and_a_closed_peer_is_noticed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let mut sink = Syslog::new(address, SyslogProtocol::Tcp, 10, Duration::from_secs(2));
        sink.send(&[
            Bytes::from_static(ALERT.as_bytes()),
            Bytes::from_static(ALERT.as_bytes()),
        ])
        .expect("send");
        let (mut conn, _) = listener.accept().expect("accept");
        drop(sink.connection.take().map(|c| match c {
            Connection::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Connection::Tls(_) | Connection::Udp(_) => Ok(()),
        }));
        let mut received = Vec::new();
        conn.read_to_end(&mut received).expect("read");
        let text = String::from_utf8(received).expect("utf-8");
        let (len, rest) = text.split_once(' ').expect("length prefix");
        let len: usize = len.parse().expect("number");
        assert!(rest[..len].ends_with(ALERT), "{text}");
        let (len2, rest2) = rest[len..].split_once(' ').expect("second frame");
        assert_eq!(rest2.len(), len2.parse::<usize>().expect("number"));

        // The receiver goes away: the next send must fail instead of vanishing into the socket.
        let mut sink = Syslog::new(
            listener.local_addr().expect("addr").to_string(),
            SyslogProtocol::Tcp,
            10,
            Duration::from_secs(2),
        );
        sink.send(&[Bytes::from_static(ALERT.as_bytes())])
            .expect("send");
        let (conn, _) = listener.accept().expect("accept");
        drop(conn);
        drop(listener);
        std::thread::sleep(Duration::from_millis(50));
        assert!(sink.send(&[Bytes::from_static(ALERT.as_bytes())]).is_err());
    }

    /// TCP frames byte for byte as they have always been sent: `LEN SP MSG`, back to back.
    #[test]
    fn tcp_framing_is_byte_identical() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let mut sink = Syslog::new(address, SyslogProtocol::Tcp, 10, Duration::from_secs(2));
        sink.hostname = "web-1".into();
        let other = r#"{"no":"meta"}"#;
        sink.send(&[Bytes::from_static(ALERT.as_bytes()), Bytes::from(other)])
            .expect("send");
        let (mut conn, _) = listener.accept().expect("accept");
        drop(sink);
        let mut received = Vec::new();
        conn.read_to_end(&mut received).expect("read");
        let pid = std::process::id();
        let first = format!(
            "<83>1 2023-11-14T22:13:20.123456Z web-1 lineage-sensor {pid} server-spawned-shell - {ALERT}"
        );
        let second = format!("<84>1 - web-1 lineage-sensor {pid} - - {other}");
        let expected = format!("{} {first}{} {second}", first.len(), second.len());
        assert_eq!(String::from_utf8(received).expect("utf-8"), expected);
    }

    #[test]
    fn udp_sends_one_datagram_per_alert_and_rejects_oversized_ones() {
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let address = receiver.local_addr().expect("addr").to_string();
        let mut sink = Syslog::new(address, SyslogProtocol::Udp, 4, Duration::from_secs(1));
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(UDP_MAX));
        let delivered = sink
            .send(&[Bytes::from_static(ALERT.as_bytes()), Bytes::from(huge)])
            .expect("send");
        assert_eq!(delivered.rejected, 1);
        let mut buf = vec![0u8; 70_000];
        let n = receiver.recv(&mut buf).expect("one datagram");
        let text = String::from_utf8_lossy(&buf[..n]);
        // auth (4) * 8 + err (3)
        assert!(
            text.starts_with("<35>1 ") && text.ends_with(ALERT),
            "{text}"
        );
    }
}
