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
        Some("sh-storm") => sh_storm(count(args.get(1))),
        Some("tcp-storm") => tcp_storm(count(args.get(1))),
        Some("udp-storm") => udp_storm(count(args.get(1))),
        Some("hold") => hold(count(args.get(1))),
        _ => Err(
            "usage: workload fork-then-spawn | threads N | storm N | shell CMD | \
             connect ADDR:PORT | sh-storm N | tcp-storm N | udp-storm N | hold N"
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

/// `n` times a shell that forks a shell that forks /bin/true: the `; :` keeps each shell from
/// exec'ing its last command in place, so every level is its own fork+exec.
fn sh_storm(n: usize) -> Result<(), String> {
    for _ in 0..n {
        Command::new("/bin/sh")
            .args(["-c", "/bin/sh -c '/bin/true; :'; :"])
            .status()
            .map_err(|e| e.to_string())?;
    }
    println!("spawned={n}");
    Ok(())
}

/// `n` TCP connects to a listener of its own on loopback, each accepted and closed.
fn tcp_storm(n: usize) -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let acceptor = std::thread::spawn(move || {
        for _ in 0..n {
            if listener.accept().is_err() {
                break;
            }
        }
    });
    for _ in 0..n {
        std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    }
    acceptor
        .join()
        .map_err(|_| "acceptor panicked".to_string())?;
    println!("connected={n}");
    Ok(())
}

/// `n` fresh UDP sockets, each connect()ed to a loopback port: the syscall a monitor sees.
fn udp_storm(n: usize) -> Result<(), String> {
    let target = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let address = target.local_addr().map_err(|e| e.to_string())?;
    for _ in 0..n {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket.connect(address).map_err(|e| e.to_string())?;
    }
    println!("connected={n}");
    Ok(())
}

/// Forks `n` children that sleep until this process's stdin closes, then exits with them:
/// `n` live processes for a monitor to track. Prints `held=N` once all exist.
fn hold(n: usize) -> Result<(), String> {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two fds for pipe() to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let [read_end, write_end] = fds;
    for _ in 0..n {
        // SAFETY: single-threaded; the child only calls close, read and _exit.
        match unsafe { libc::fork() } {
            -1 => return Err(std::io::Error::last_os_error().to_string()),
            0 => {
                let mut byte = 0u8;
                // SAFETY: fds of our own; read blocks until every write end is closed.
                unsafe {
                    libc::close(write_end);
                    libc::read(read_end, (&raw mut byte).cast(), 1);
                    libc::_exit(0)
                }
            }
            _ => {}
        }
    }
    println!("held={n}");
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
    // SAFETY: closing our own fd wakes every child.
    unsafe { libc::close(write_end) };
    let mut status = 0;
    // SAFETY: reaping our own children.
    while unsafe { libc::wait(&mut status) } > 0 {}
    Ok(())
}
