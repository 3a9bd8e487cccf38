//! Certificates made in the test (rcgen): CAs, server certificates for loopback (valid, expired,
//! for another name) and client certificates, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// PEM files of one certificate and its key.
#[derive(Clone, Debug)]
pub struct Pair {
    pub crt: PathBuf,
    pub key: PathBuf,
}

/// How a leaf certificate is made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// For 127.0.0.1 and "localhost", valid now.
    Server,
    /// For 127.0.0.1 and "localhost", expired yesterday.
    ExpiredServer,
    /// For "elsewhere.example" only.
    OtherNameServer,
    /// A client certificate (CN "sensor").
    Client,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.pem()).expect("write CA");
        path.to_owned()
    }

    /// Issues a leaf and writes it as `<dir>/<name>.crt` and `<dir>/<name>.key`.
    pub fn issue(&self, leaf: Leaf, dir: &Path, name: &str) -> Pair {
        let names: Vec<String> = match leaf {
            Leaf::Server | Leaf::ExpiredServer => vec!["localhost".into(), "127.0.0.1".into()],
            Leaf::OtherNameServer => vec!["elsewhere.example".into()],
            Leaf::Client => vec!["sensor.test".into()],
        };
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            if leaf == Leaf::Client {
                "sensor"
            } else {
                "receiver"
            },
        );
        params.extended_key_usages = vec![if leaf == Leaf::Client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let now = OffsetDateTime::now_utc();
        if leaf == Leaf::ExpiredServer {
            params.not_before = now - Duration::days(30);
            params.not_after = now - Duration::days(1);
        } else {
            params.not_before = now - Duration::days(1);
            params.not_after = now + Duration::days(30);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let pair = Pair {
            crt: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&pair.crt, cert.pem()).expect("write crt");
        std::fs::write(&pair.key, key.serialize_pem()).expect("write key");
        pair
    }
}

/// Writes `from`'s content to `path` as a rotation tool would: whole, by rename.
pub fn replace(path: &Path, from: &Path) {
    let tmp = path.with_extension("new");
    std::fs::copy(from, &tmp).expect("copy");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The certificates of a client certificate rotation: a receiver CA with the receiver's
/// certificate, and two client CAs (this year's and next year's) with a client certificate
/// each. The sensor reads the client certificate from `live`, which holds the old one until
/// [`Rotation::install_new_client`].
pub struct Rotation {
    /// The receiver CA, as the sensor's `ca_file`.
    pub ca_file: PathBuf,
    /// The receiver's certificate.
    pub server: Pair,
    /// The CA of the old client certificate, as the receiver's client CA.
    pub old_client_ca: PathBuf,
    /// The CA of the new client certificate.
    pub new_client_ca: PathBuf,
    /// The files the sensor's `crt_file` and `key_file` name.
    pub live: Pair,
    new: Pair,
}

impl Rotation {
    /// Makes every certificate in `dir`; `live` holds the old client certificate.
    pub fn new(dir: &Path, ca_name: &str, server_name: &str) -> Rotation {
        let ca = Ca::new(ca_name);
        let old_clients = Ca::new("client CA 2026");
        let new_clients = Ca::new("client CA 2027");
        let old = old_clients.issue(Leaf::Client, dir, "old");
        let live = Pair {
            crt: dir.join("client.crt"),
            key: dir.join("client.key"),
        };
        replace(&live.crt, &old.crt);
        replace(&live.key, &old.key);
        Rotation {
            ca_file: ca.write(&dir.join("ca.pem")),
            server: ca.issue(Leaf::Server, dir, server_name),
            old_client_ca: old_clients.write(&dir.join("old-client-ca.pem")),
            new_client_ca: new_clients.write(&dir.join("new-client-ca.pem")),
            new: new_clients.issue(Leaf::Client, dir, "new"),
            live,
        }
    }

    /// Replaces the live client certificate and key with the new ones, as a rotation tool would.
    pub fn install_new_client(&self) {
        replace(&self.live.crt, &self.new.crt);
        replace(&self.live.key, &self.new.key);
    }
}
