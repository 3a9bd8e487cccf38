//! What each subcommand does, beneath the CLI parsing in main.rs.

pub mod record;
pub mod replay;
pub mod run;

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM received, shutting down"),
        _ = int.recv() => log::info!("SIGINT received, shutting down"),
    }
    Ok(())
}
