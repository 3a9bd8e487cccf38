//! What each subcommand does, beneath the CLI parsing in main.rs.

pub mod hold_watchdog;
pub mod record;
pub mod replay;
pub mod run;

/// Takes over SIGINT and SIGTERM now, and returns a future that resolves when one arrives.
///
/// The handlers are installed by this call, not when the future is first polled: a command
/// logs "ready" before its loop polls anything, and a signal in between would otherwise meet
/// the default action and kill the process without a clean shutdown. Call it inside the runtime.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => log::info!("SIGTERM received, shutting down"),
            _ = int.recv() => log::info!("SIGINT received, shutting down"),
        }
    })
}

/// The detection engine for `config`, built once per start and per reload: a glob, regex, CIDR
/// or family reference it cannot use is a config error naming file, line and field, like the
/// errors the config's own checks find.
pub fn build_engine(
    config: &crate::config::Config,
    config_path: Option<&std::path::Path>,
    host: crate::detect::HostInfo,
) -> Result<crate::detect::Engine, crate::config::ConfigError> {
    use crate::detect::DetectError;
    crate::detect::Engine::new(config, host).map_err(|err| {
        let (field, message) = match err {
            DetectError::Invalid { field, message } => (field, message),
            other => ("detect".into(), other.to_string()),
        };
        let path = config_path.unwrap_or(std::path::Path::new("(built-in defaults)"));
        crate::config::ConfigError::invalid_setting(path, field, message)
    })
}

#[cfg(test)]
mod tests {
    use super::build_engine;
    use crate::{
        config::{Config, ConfigError},
        detect::HostInfo,
    };

    #[test]
    fn bad_detection_settings_name_file_line_and_field() {
        let cases = [
            (
                "[[rules.server_outbound_unknown.allow]]\ncidr = \"10.0.0.0/40\"\n",
                "rules.server_outbound_unknown.allow[0].cidr",
                2,
            ),
            (
                "[[rules.server_spawned_recon.tools]]\nexecutable = \"id\"\nargs_pattern = \"(\"\n",
                "rules.server_spawned_recon.tools[0].args_pattern",
                3,
            ),
            (
                "[detect]\nnot_servers = [\"/etc/[init.d/*\"]\n",
                "detect.not_servers[0]",
                2,
            ),
            (
                "[[rules.server_spawned_shell.exclude]]\nfamily = \"iis\"\n",
                "rules.server_spawned_shell.exclude[0].family",
                2,
            ),
            (
                "[[rules.server_spawned_shell.exclude]]\ncomment = \"matches everything\"\n",
                "rules.server_spawned_shell.exclude[0]",
                1,
            ),
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        for (text, field, line) in cases {
            std::fs::write(&path, text).expect("write");
            let config = Config::parse(text, &path).expect("parses: checked by the engine");
            let err = build_engine(&config, Some(&path), HostInfo::default())
                .err()
                .expect(field);
            assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
            let want = format!("{}:{line}: {field}: ", path.display());
            assert!(
                err.to_string().starts_with(&want),
                "{err} should start {want}"
            );
        }
        assert!(build_engine(&Config::default(), None, HostInfo::default()).is_ok());
    }
}
