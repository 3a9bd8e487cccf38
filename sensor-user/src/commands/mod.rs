//! What each subcommand does, beneath the CLI parsing in main.rs.

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
