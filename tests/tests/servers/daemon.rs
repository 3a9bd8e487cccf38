//! A server run in the foreground as the test's child, in a process group of its own, stopped
//! when the guard drops (an assertion failing included) so nothing outlives the test.

use std::{
    net::{Ipv4Addr, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Daemon {
    pub name: &'static str,
    child: Child,
    stop_signal: i32,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd`, whose stdout and stderr go to `log`.
    pub fn spawn(name: &'static str, cmd: &mut Command, log: &Path, stop_signal: i32) -> Daemon {
        let out = std::fs::File::create(log).expect("create server log");
        let err = out.try_clone().expect("clone log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        Daemon {
            name,
            child,
            stop_signal,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the server accepts connections on `port`; panics with its log otherwise.
    pub fn wait_port(&mut self, port: u16, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} not listening on {port} after {within:?}: {}",
            self.name,
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signalling our own child and, below, the process group it leads.
        unsafe { libc::kill(pid, self.stop_signal) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Workers that outlived their master, or a master that ignored the signal.
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// `N` distinct loopback ports nobody listens on now (the system's own nginx, apache or tomcat
/// keep theirs); held together while chosen so they differ.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free loopback port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("bound address").port())
}

/// uid and gid of a system user, from /etc/passwd.
pub fn user(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .unwrap_or_else(|| panic!("no user {name} (is the package installed?)"))
}

/// Runs a command to completion; its output on failure.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A work directory every server user can traverse (tempfile makes them 0700).
pub fn workdir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("lineage-servers-{name}-"))
        .tempdir()
        .expect("temp dir");
    chmod(dir.path(), 0o755);
    dir
}

/// A private web root under /var/www, one of the shipped `rules.webroot_script_write.web_roots`:
/// what the application writes there is judged as on a deployed site, with the shipped config.
pub fn web_root(name: &str) -> tempfile::TempDir {
    std::fs::create_dir_all("/var/www").expect("create /var/www");
    let dir = tempfile::Builder::new()
        .prefix(&format!("lineage-servers-{name}-"))
        .tempdir_in("/var/www")
        .expect("temp dir in /var/www");
    chmod(dir.path(), 0o755);
    dir
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Recursively hands `path` to a server user.
pub fn chown_r(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir").flatten() {
            chown_r(&entry.path(), uid, gid);
        }
    }
}
