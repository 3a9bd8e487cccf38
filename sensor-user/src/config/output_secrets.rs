//! The parts of a sink that hold secrets or name key material: header values and tokens read
//! from a file or an environment variable, and the TLS settings (Vector's names).

use std::{os::unix::fs::MetadataExt as _, path::Path, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, OutputConfig};

/// A header value or token: inline text, or `{ file = "..." }` / `{ env = "..." }`, read when the
/// sink starts and again on SIGHUP (a rotated Kubernetes Secret or systemd credential is picked
/// up without a restart).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(
    untagged,
    expecting = "a string, or { file = \"...\" } or { env = \"...\" } (with an optional prefix)"
)]
pub enum Secret {
    /// The value itself, in the config file: only for values that are not secret.
    Inline(String),
    /// Where to read the value from.
    From(SecretSource),
}

/// Exactly one of `file` and `env`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// A file holding the value (a mounted Kubernetes Secret, `$CREDENTIALS_DIRECTORY/<name>`
    /// of systemd's `LoadCredential=`); leading and trailing whitespace is trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// An environment variable holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Text put before the value read, e.g. "ApiKey " or "Bearer " when the file holds the bare
    /// key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("environment variable {0} is not set (or not UTF-8)")]
    Env(String),
    #[error("{0} is empty")]
    Empty(String),
}

/// Longest secret file read: a token is short, a wrong path (a log file) must not be read whole.
const SECRET_MAX_BYTES: u64 = 64 << 10;

impl Secret {
    /// The value, read from its file or variable now.
    pub fn resolve(&self) -> Result<String, SecretError> {
        let source = match self {
            Secret::Inline(value) => return Ok(value.clone()),
            Secret::From(source) => source,
        };
        let (value, origin) = match (&source.file, &source.env) {
            (Some(path), _) => {
                let file = std::fs::File::open(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(file, SECRET_MAX_BYTES),
                    &mut text,
                )
                .map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                (text, path.display().to_string())
            }
            (None, Some(name)) => (
                std::env::var(name).map_err(|_| SecretError::Env(name.clone()))?,
                format!("environment variable {name}"),
            ),
            // validate() refuses a source without either.
            (None, None) => return Err(SecretError::Empty("a secret without file or env".into())),
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(SecretError::Empty(origin));
        }
        Ok(format!("{}{value}", source.prefix.as_deref().unwrap_or("")))
    }

    /// Checks the source's shape; the problem, if any.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Secret::Inline(_) => Ok(()),
            Secret::From(SecretSource {
                file: Some(_),
                env: Some(_),
                ..
            }) => Err("give one of file and env, not both".into()),
            Secret::From(SecretSource {
                file: None,
                env: None,
                ..
            }) => Err("give file = \"...\" or env = \"...\"".into()),
            Secret::From(_) => Ok(()),
        }
    }
}

/// TLS of a sink (`https://` URLs, syslog `protocol = "tls"`), named as in Vector.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkTls {
    /// PEM file of the CA certificates that may sign the receiver's certificate; when given,
    /// only these are trusted (not the system store), which pins an in-house CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (and its chain) for mutual TLS; with `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crt_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The name the receiver's certificate must carry (and sent as SNI), when the collector is
    /// reached by an address or a name its certificate does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

impl SinkTls {
    /// Checks what the types cannot express: (field, problem).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match (&self.crt_file, &self.key_file) {
            (Some(_), None) => return Err(("key_file", "required with crt_file".into())),
            (None, Some(_)) => return Err(("crt_file", "required with key_file".into())),
            _ => {}
        }
        if let Some(name) = &self.server_name
            && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return Err(("server_name", format!("{name:?} is not a host name")));
        }
        Ok(())
    }
}

/// Header names whose values are credentials.
fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["auth", "token", "key", "secret", "password", "cookie"]
        .iter()
        .any(|word| name.contains(word))
}

/// The inline secrets of `output`, by dotted field.
pub fn inline_secrets(output: &OutputConfig) -> Vec<String> {
    let mut found = Vec::new();
    for (i, sink) in output.sinks.iter().enumerate() {
        if matches!(sink.token, Some(Secret::Inline(_))) {
            found.push(format!("output.sinks[{i}].token"));
        }
        for (name, value) in &sink.headers {
            if matches!(value, Secret::Inline(_)) && is_credential_header(name) {
                found.push(format!("output.sinks[{i}].headers.{name}"));
            }
        }
    }
    found
}

/// Refuses a config file that holds an inline credential and can be read by group or others:
/// the credential is then known to every local user (and, in a ConfigMap or a repository, to
/// everyone who can read those). Refused rather than warned about, because the secret is already
/// exposed while the sensor runs; move it to a file or variable, or make the file 0600/0400.
pub fn check_inline_secrets(path: &Path, output: &OutputConfig) -> Result<(), ConfigError> {
    let fields = inline_secrets(output);
    if fields.is_empty() {
        return Ok(());
    }
    let mode = std::fs::metadata(path)
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?
        .mode();
    if mode & 0o044 == 0 {
        return Ok(());
    }
    Err(ConfigError::Unsafe {
        path: path.to_owned(),
        message: format!(
            "holds a credential inline ({}) and is readable by other users (mode {:o}); read it \
             from a file or an environment variable instead (headers.NAME = {{ file = \"...\" }}), \
             or make the config file readable by its owner only (chmod 600)",
            fields.join(", "),
            mode & 0o777
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn secrets_are_read_from_files_and_variables_trimmed_and_prefixed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key");
        std::fs::write(&path, "  abc123\n").expect("write");
        let from_file = Secret::From(SecretSource {
            file: Some(path.clone()),
            env: None,
            prefix: Some("ApiKey ".into()),
        });
        assert_eq!(from_file.resolve().expect("read"), "ApiKey abc123");
        // PATH is set in every test environment.
        let from_env = Secret::From(SecretSource {
            file: None,
            env: Some("PATH".into()),
            prefix: None,
        });
        assert_eq!(
            from_env.resolve().expect("read"),
            std::env::var("PATH").expect("PATH").trim()
        );
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(from_file.resolve(), Err(SecretError::Empty(_))));
        std::fs::remove_file(&path).expect("rm");
        assert!(matches!(from_file.resolve(), Err(SecretError::File { .. })));
    }

    #[test]
    fn tls_token_and_secret_sources_are_validated() {
        let cases = [
            (
                "url = \"http://x/\"\ntls = { ca_file = \"/ca.pem\" }\n",
                "output.sinks[0].tls",
            ),
            (
                "url = \"https://x/\"\ntls = { crt_file = \"/c.pem\" }\n",
                "output.sinks[0].tls.key_file",
            ),
            (
                "url = \"https://x/\"\ntls = { server_name = \"a b\" }\n",
                "output.sinks[0].tls.server_name",
            ),
            (
                "url = \"https://x/\"\nformat = \"splunk_hec\"\n",
                "output.sinks[0].token",
            ),
            (
                "url = \"https://x/\"\ntoken = { env = \"T\" }\n",
                "output.sinks[0].token",
            ),
            (
                "url = \"https://x/\"\nheaders = { Authorization = { file = \"/k\", env = \"K\" } }\n",
                "output.sinks[0].headers.Authorization",
            ),
        ];
        for (sink, field) in cases {
            let text = format!("[[output.sinks]]\ntype = \"http\"\n{sink}");
            let err = parse(&text).expect_err(field).to_string();
            assert!(
                err.contains(&format!("{field}:")),
                "{err} should name {field}"
            );
        }
        let typo = parse(
            "[[output.sinks]]\ntype = \"http\"\nurl = \"https://x/\"\nheaders = { A = { fiel = \"/k\" } }\n",
        )
        .expect_err("typo")
        .to_string();
        assert!(typo.contains("{ file = "), "{typo}");
        let ok = parse(
            "[[output.sinks]]\ntype = \"syslog\"\naddress = \"siem:6514\"\nprotocol = \"tls\"\n\
             tls = { ca_file = \"/ca.pem\", crt_file = \"/c.pem\", key_file = \"/k.pem\" }\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn an_inline_credential_in_a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sensor.toml");
        let inline = "[[output.sinks]]\ntype = \"http\"\nurl = \"https://x/\"\n\
                      headers = { Authorization = \"ApiKey abc\", X-Tenant = \"t\" }\n";
        std::fs::write(&path, inline).expect("write");
        let mode = |m| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m));
        mode(0o644).expect("chmod");
        let err = Config::load(&path).expect_err("world-readable").to_string();
        assert!(
            err.contains("output.sinks[0].headers.Authorization")
                && !err.contains("X-Tenant")
                && err.contains("chmod 600"),
            "{err}"
        );
        mode(0o640).expect("chmod");
        assert!(Config::load(&path).is_err(), "group-readable");
        mode(0o600).expect("chmod");
        Config::load(&path).expect("owner-only file");
        // From a file: nothing secret in the config, any mode.
        std::fs::write(
            &path,
            inline.replace("\"ApiKey abc\"", "{ file = \"/run/secrets/key\" }"),
        )
        .expect("write");
        mode(0o644).expect("chmod");
        Config::load(&path).expect("no inline secret");
    }
}
