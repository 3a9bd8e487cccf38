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
