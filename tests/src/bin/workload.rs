//! Process shapes the capture tests need, made exactly: a fork that never execs, a thread pool,
//! an exec storm. Prints the pids the test must look for, one `key=value` per line.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    // Hostile argv is not UTF-8: these take their arguments as raw bytes.
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let raw_result = match raw.first().and_then(|a| a.to_str()) {
        Some("spawn") => Some(spawn(&raw[1..])),
        Some("listen-spawn") => Some(listen_spawn(&raw[1..])),
        Some("paced") => Some(paced(&raw[1..])),
        Some("wait-file") => Some(wait_file(raw.get(1), raw.get(2))),
        Some("prefork-wait-file") => Some(prefork_wait_file(raw.get(1), raw.get(2))),
        Some("detach") => Some(detach(raw.get(1))),
        Some("burst") => Some(burst(
            raw.get(1)
                .and_then(|a| a.to_str()?.parse().ok())
                .unwrap_or(1),
        )),
        _ => None,
    };
    if let Some(result) = raw_result {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("workload: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("fork-then-spawn") => fork_then_spawn(),
        Some("threads") => threads(count(args.get(1))),
        Some("storm") => storm(count(args.get(1))),
        Some("shell") => shell(args.get(1)),
        Some("connect") => connect(args.get(1)),
        Some("dial") => dial(args.get(1)),
        Some("wait-dial") => wait_dial(args.get(1), args.get(2)),
        Some("sh-storm") => sh_storm(count(args.get(1))),
        Some("tcp-storm") => tcp_storm(count(args.get(1))),
        Some("udp-storm") => udp_storm(count(args.get(1))),
        Some("hold") => hold(count(args.get(1))),
        Some("copy") => copy(args.get(1), args.get(2)),
        _ => Err(
            "usage: workload fork-then-spawn | threads N | storm N | shell CMD | \
             connect ADDR:PORT | sh-storm N | tcp-storm N | udp-storm N | hold N | copy SRC DST"
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

/// A TCP connect that says how it ended: `dial=ok`, or `dial_errno=N` (EPERM, 1, when
/// prevention refused it).
fn dial(address: Option<&String>) -> Result<(), String> {
    let address = address.ok_or("dial needs ADDR:PORT")?;
    match std::net::TcpStream::connect(address.as_str()) {
        Ok(_) => println!("dial=ok"),
        Err(err) => println!("dial_errno={}", err.raw_os_error().unwrap_or(-1)),
    }
    Ok(())
}

/// Waits for PATH to exist, then dials ADDR:PORT itself (no child: the process that was
/// running all along is the one that connects).
fn wait_dial(path: Option<&String>, address: Option<&String>) -> Result<(), String> {
    let path = path.ok_or("wait-dial needs PATH ADDR:PORT")?;
    while !std::path::Path::new(path).exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    dial(address)
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
    let abort = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    for _ in 0..n {
        let stream = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
        // Accepting in the same thread keeps the backlog at one: an acceptor thread that falls
        // behind on a busy machine lets the backlog fill, and SYNs dropped then wait a second.
        let accepted = listener.accept().map_err(|e| e.to_string())?;
        // Closing with a reset leaves no TIME_WAIT behind: tens of thousands of those would make
        // later connects hunt for a free port and time that instead of the connect.
        // SAFETY: a valid socket and a linger struct of the size passed.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&stream),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const abort).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(stream);
        drop(accepted);
    }
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

/// Spawns PROG with exactly the given arguments (bytes as they are) and waits for it.
fn spawn(argv: &[std::ffi::OsString]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("spawn needs PROG [ARGS...]")?;
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| e.to_string())?;
    println!("status={}", status.code().unwrap_or(-1));
    Ok(())
}

/// `paced DELAY_MS COUNT GAP_MS PROG [ARGS...]`: a long-lived parent (a server, when this binary
/// is copied under a server's name) that waits DELAY_MS, then runs PROG COUNT times, GAP_MS
/// apart.
fn paced(argv: &[std::ffi::OsString]) -> Result<(), String> {
    const USAGE: &str = "paced needs DELAY_MS COUNT GAP_MS PROG [ARGS...]";
    let number = |i: usize| -> Result<u64, String> {
        argv.get(i)
            .and_then(|a| a.to_str()?.parse().ok())
            .ok_or_else(|| USAGE.to_owned())
    };
    let (delay, count, gap) = (number(0)?, number(1)?, number(2)?);
    let (program, args) = argv.get(3..).and_then(|a| a.split_first()).ok_or(USAGE)?;
    std::thread::sleep(std::time::Duration::from_millis(delay));
    for _ in 0..count {
        Command::new(program)
            .args(args)
            .status()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(std::time::Duration::from_millis(gap));
    }
    println!("ran={count}");
    Ok(())
}

/// A server of no known name: listens on 127.0.0.1:PORT, runs PROG, then keeps the socket open
/// until stdin closes (the sensor reads the listener from /proc after the child's exec).
fn listen_spawn(argv: &[std::ffi::OsString]) -> Result<(), String> {
    use std::io::{Read as _, Write as _};
    let (port, argv) = argv
        .split_first()
        .ok_or("listen-spawn needs PORT PROG [ARGS...]")?;
    let port: u16 = port
        .to_str()
        .and_then(|p| p.parse().ok())
        .ok_or("listen-spawn: PORT is not a port")?;
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("bind {port}: {e}"))?;
    spawn(argv)?;
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(listener);
    Ok(())
}

/// Prints `pid=`, waits until PATH exists, then runs `sh -c CMD`: a server already running when
/// the sensor starts, whose shell comes later.
fn wait_file(
    path: Option<&std::ffi::OsString>,
    command: Option<&std::ffi::OsString>,
) -> Result<(), String> {
    use std::io::Write as _;
    let (path, command) = path.zip(command).ok_or("wait-file needs PATH CMD")?;
    println!("pid={}", std::process::id());
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    while !std::path::Path::new(path).exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .status()
        .map_err(|e| e.to_string())?;
    println!("status={}", status.code().unwrap_or(-1));
    Ok(())
}

/// `prefork-wait-file PATH CMD`: a master that forks its worker at once, as a pre-forking server
/// does before anything can know it is a server; the worker does what `wait-file` does.
fn prefork_wait_file(
    path: Option<&std::ffi::OsString>,
    command: Option<&std::ffi::OsString>,
) -> Result<(), String> {
    // SAFETY: single-threaded here; the child runs `wait_file` and leaves with _exit.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error().to_string()),
        0 => {
            let code = i32::from(wait_file(path, command).is_err());
            // SAFETY: leave the forked worker without running the master's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        worker => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(worker, &mut status, 0) };
            if status == 0 {
                Ok(())
            } else {
                Err(format!("worker failed with status {status}"))
            }
        }
    }
}

/// A double fork: the grandchild waits until its parent has exited (it is re-parented to init
/// or a subreaper), then execs `sh -c CMD`. Prints `grandchild=`.
fn detach(command: Option<&std::ffi::OsString>) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt as _;
    let command = command.ok_or("detach needs CMD")?;
    let c_command = std::ffi::CString::new(command.as_bytes()).map_err(|e| e.to_string())?;
    let (read_fd, write_fd) = {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        (fds[0], fds[1])
    };
    // SAFETY: single-threaded; the children only call async-signal-safe functions.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error().to_string()),
        0 => {
            // Read before forking: the grandchild asking getppid() itself could find the middle
            // child already gone and read init's pid, then wait forever for it to change.
            // SAFETY: getpid has no preconditions.
            let middle = unsafe { libc::getpid() };
            // SAFETY: as above.
            let grandchild = unsafe { libc::fork() };
            if grandchild == 0 {
                // SAFETY: as above; the middle child's exit is awaited through getppid.
                unsafe {
                    while libc::getppid() == middle {
                        libc::usleep(10_000);
                    }
                    let sh = c"/bin/sh";
                    let dash_c = c"-c";
                    let argv = [
                        sh.as_ptr(),
                        dash_c.as_ptr(),
                        c_command.as_ptr(),
                        std::ptr::null(),
                    ];
                    libc::execv(sh.as_ptr(), argv.as_ptr());
                    libc::_exit(127)
                }
            }
            let bytes = grandchild.to_ne_bytes();
            // SAFETY: writing a local buffer to our pipe, then leaving without atexit handlers.
            unsafe {
                libc::write(write_fd, bytes.as_ptr().cast(), bytes.len());
                libc::_exit(0)
            }
        }
        child => {
            let mut status = 0;
            let mut bytes = [0u8; 4];
            // SAFETY: waiting for our own child, reading into a local buffer.
            unsafe {
                libc::waitpid(child, &mut status, 0);
                libc::read(read_fd, bytes.as_mut_ptr().cast(), bytes.len());
                libc::close(read_fd);
                libc::close(write_fd);
            }
            println!("grandchild={}", i32::from_ne_bytes(bytes));
            Ok(())
        }
    }
}

/// `n` shells started at once, then waited for: events arrive faster than any consumer reads.
fn burst(n: usize) -> Result<(), String> {
    let children = (0..n)
        .map(|_| Command::new("/bin/sh").args(["-c", ":"]).spawn())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for mut child in children {
        child.wait().map_err(|e| e.to_string())?;
    }
    println!("spawned={n}");
    Ok(())
}

/// The process itself writes DST (a copy of SRC with its mode): a server dropping a program,
/// without a `cp` the guest kernel's minimal root may lack.
fn copy(from: Option<&String>, to: Option<&String>) -> Result<(), String> {
    let (Some(from), Some(to)) = (from, to) else {
        return Err("copy needs SRC and DST".into());
    };
    std::fs::copy(from, to).map_err(|e| format!("copy {from} {to}: {e}"))?;
    Ok(())
}
