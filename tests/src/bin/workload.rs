//! Process shapes the capture tests need, made exactly: a fork that never execs, a thread pool,
//! an exec storm. Prints the pids the test must look for, one `key=value` per line.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("fork-then-spawn") => fork_then_spawn(),
        Some("threads") => threads(count(args.get(1))),
        Some("storm") => storm(count(args.get(1))),
        Some("shell") => shell(args.get(1)),
        Some("connect") => connect(args.get(1)),
        _ => Err(
            "usage: workload fork-then-spawn | threads N | storm N | shell CMD | connect ADDR:PORT"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("workload: {err}");
            ExitCode::FAILURE
        }
    }
}

fn count(arg: Option<&String>) -> usize {
    arg.and_then(|a| a.parse().ok()).unwrap_or(1)
}

/// This process forks a child that never execs (like an apache or php-fpm worker); the child
/// spawns /bin/true. Prints `child=` and `grandchild=`.
fn fork_then_spawn() -> Result<(), String> {
    // SAFETY: single-threaded here; the child only spawns a process and exits.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error().to_string()),
        0 => {
            let code = match Command::new("/bin/true").spawn() {
                Ok(mut grandchild) => {
                    println!("child={}", std::process::id());
                    println!("grandchild={}", grandchild.id());
                    i32::from(grandchild.wait().map(|s| !s.success()).unwrap_or(true))
                }
                Err(_) => 1,
            };
            // SAFETY: leave the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        child => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(child, &mut status, 0) };
            if status == 0 {
                Ok(())
            } else {
                Err(format!("child failed with status {status}"))
            }
        }
    }
}

/// Starts `n` threads that live a little, then one real child process as a positive control.
fn threads(n: usize) -> Result<(), String> {
    let handles: Vec<_> = (0..n)
        .map(|_| std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(20))))
        .collect();
    for h in handles {
        h.join().map_err(|_| "thread panicked".to_string())?;
    }
    let status = Command::new("/bin/true")
        .status()
        .map_err(|e| e.to_string())?;
    println!("control={}", status.success());
    Ok(())
}

/// `n` fork+exec of /bin/true, one after the other, as fast as they go.
fn storm(n: usize) -> Result<(), String> {
    for _ in 0..n {
        Command::new("/bin/true")
            .status()
            .map_err(|e| e.to_string())?;
    }
    println!("spawned={n}");
    Ok(())
}

/// `/bin/sh -c CMD` as a child, the way a server's popen() or system() runs a command.
fn shell(command: Option<&String>) -> Result<(), String> {
    let command = command.ok_or("shell needs a command")?;
    let status = Command::new("/bin/sh")
        .args(["-c", command])
        .status()
        .map_err(|e| e.to_string())?;
    println!("status={}", status.code().unwrap_or(-1));
    Ok(())
}

/// One TCP connect; the result is printed, a refusal is not a failure.
fn connect(address: Option<&String>) -> Result<(), String> {
    let address = address.ok_or("connect needs ADDR:PORT")?;
    let result = std::net::TcpStream::connect(address.as_str());
    println!("connected={}", result.is_ok());
    Ok(())
}
