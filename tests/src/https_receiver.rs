//! An HTTPS receiver of our own (hyper on tokio-rustls, ring provider) that records every request
//! (path, headers, body) and answers as a webhook, an Elasticsearch `_bulk` endpoint or a Splunk
//! HEC endpoint would. It can require client certificates from a given CA, and be stopped and
//! started on the same port with other certificates.

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    sync::{Arc, Mutex, mpsc},
};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::WebPkiClientVerifier,
};

use crate::{free_port, pki::Pair};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The receiver's certificate, and the CA its clients' certificates must come from (None: no
/// client certificate asked for).
#[derive(Clone)]
pub struct ServerTls {
    pub cert: Pair,
    pub client_ca: Option<PathBuf>,
}

type Requests = Arc<Mutex<Vec<Request>>>;

pub struct HttpsReceiver {
    pub port: u16,
    requests: Requests,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

// ring, as the sensor uses (its provider is deprecated for lacking post-quantum key exchange).
#[allow(deprecated)]
fn server_config(tls: &ServerTls) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert.crt)
        .expect("server crt")
        .collect::<Result<_, _>>()
        .expect("server crt PEM");
    let key = PrivateKeyDer::from_pem_file(&tls.cert.key).expect("server key");
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).expect("client CA") {
                roots.add(cert.expect("client CA PEM")).expect("client CA");
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(builder.with_single_cert(chain, key).expect("server cert"))
}

async fn answer(
    requests: Requests,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<axum::body::Body>, std::convert::Infallible> {
    let path = request.uri().path().to_owned();
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = axum::body::to_bytes(axum::body::Body::new(request.into_body()), 64 << 20)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    requests.lock().expect("requests").push(Request {
        path: path.clone(),
        headers,
        body,
    });
    let text = if path.ends_with("/_bulk") {
        r#"{"took":1,"errors":false,"items":[]}"#
    } else if path == "/services/collector/event" {
        r#"{"text":"Success","code":0}"#
    } else {
        "ok"
    };
    Ok(hyper::Response::new(axum::body::Body::from(text)))
}

impl HttpsReceiver {
    pub fn new() -> HttpsReceiver {
        HttpsReceiver {
            port: free_port(),
            requests: Arc::default(),
            running: None,
        }
    }

    pub fn start(&mut self, tls: &ServerTls) {
        let config = server_config(tls);
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = mpsc::channel();
        let requests = self.requests.clone();
        let port = self.port;
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                    .await
                    .expect("bind the HTTPS receiver");
                let _ = bound_tx.send(());
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                loop {
                    let tcp = tokio::select! {
                        _ = &mut stop_rx => return,
                        accepted = listener.accept() => match accepted {
                            Ok((tcp, _)) => tcp,
                            Err(_) => continue,
                        },
                    };
                    let acceptor = acceptor.clone();
                    let requests = requests.clone();
                    tokio::spawn(async move {
                        // A refused handshake (wrong client certificate) just ends here.
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |request| {
                            answer(requests.clone(), request)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        bound_rx.recv().expect("HTTPS receiver bound");
        self.running = Some((stop_tx, thread));
    }

    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            thread.join().expect("HTTPS receiver thread");
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }

    /// Alerts (JSON values) in the NDJSON, `_bulk` or HEC bodies posted to `path`: `_bulk`'s
    /// action lines are skipped and HEC's envelopes opened.
    pub fn alerts(&self, path: &str) -> Vec<serde_json::Value> {
        let mut alerts = Vec::new();
        for request in self.requests().iter().filter(|r| r.path == path) {
            let values =
                serde_json::Deserializer::from_str(&request.body).into_iter::<serde_json::Value>();
            for value in values {
                let value = value.expect("JSON in the body");
                if value.get("create").is_some() {
                    continue;
                }
                alerts.push(match value.get("sourcetype") {
                    Some(_) => value["event"].clone(),
                    None => value,
                });
            }
        }
        alerts
    }
}

impl Default for HttpsReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HttpsReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}
