//! nginx in front of a php-fpm pool (FastCGI over loopback TCP), as Debian installs them.

use std::{path::Path, process::Command};

use integration_tests::RunningSensor;

use super::{
    PLANTED, PLANTED_EXPECTED,
    check::{self, Target},
    daemon::{Daemon, free_ports, run as run_cmd, user, workdir},
    http,
    netns::{self, Netns},
    php_web_root, planted_php_shell,
    report::Report,
    sensor_config,
};

/// Debian's php-fpm binary carries the PHP version (php-fpm8.2).
pub fn php_fpm_binary() -> String {
    let mut found: Vec<String> = std::fs::read_dir("/usr/sbin")
        .expect("read /usr/sbin")
        .flatten()
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| {
            p.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("php-fpm"))
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("no /usr/sbin/php-fpm*: is php-fpm installed?")
}

fn write_fpm_conf(dir: &Path, port: u16) -> std::path::PathBuf {
    let conf = dir.join("php-fpm.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "[global]\npid = {d}/php-fpm.pid\nerror_log = {d}/php-fpm.log\ndaemonize = no\n\n\
             [www]\nuser = www-data\ngroup = www-data\nlisten = 127.0.0.1:{port}\n\
             pm = static\npm.max_children = 2\n\
             php_admin_value[sendmail_path] = /usr/sbin/sendmail -t -i\n"
        ),
    )
    .expect("write php-fpm.conf");
    conf
}

fn write_nginx_conf(dir: &Path, www: &Path, port: u16, fpm_port: u16) -> std::path::PathBuf {
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    let w = www.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser www-data;\n\
             pid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  include /etc/nginx/mime.types;\n  access_log {d}/nginx-access.log;\n\
               client_body_temp_path {d}/tmp-body;\n  proxy_temp_path {d}/tmp-proxy;\n\
               fastcgi_temp_path {d}/tmp-fcgi;\n  uwsgi_temp_path {d}/tmp-uwsgi;\n\
               scgi_temp_path {d}/tmp-scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {w};\n    index index.html;\n\
                 location ~ \\.php$ {{\n      include /etc/nginx/fastcgi_params;\n\
                   fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n\
                   fastcgi_pass 127.0.0.1:{fpm_port};\n    }}\n  }}\n}}\n"
        ),
    )
    .expect("write nginx.conf");
    conf
}

/// An nginx + php-fpm pair's files: its work dir, web root, ports and configurations.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub www: tempfile::TempDir,
    pub port: u16,
    fpm_port: u16,
    fpm_conf: std::path::PathBuf,
    pub nginx_conf: std::path::PathBuf,
}

/// The running pair (stopped when dropped).
pub struct Servers {
    pub fpm: Daemon,
    pub nginx: Daemon,
}

impl Site {
    pub fn new(name: &str) -> Site {
        let dir = workdir(name);
        let www = php_web_root(name);
        let [port, fpm_port] = free_ports();
        let fpm_conf = write_fpm_conf(dir.path(), fpm_port);
        let nginx_conf = write_nginx_conf(dir.path(), www.path(), port, fpm_port);
        Site {
            dir,
            www,
            port,
            fpm_port,
            fpm_conf,
            nginx_conf,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// shell.php running `cmd` through `via` (system, shell_exec, proc_open).
    pub fn shell(&self, cmd: &str, via: &str) -> Result<String, String> {
        http::get_ok(
            &format!("{}/shell.php", self.base()),
            &[("cmd", cmd), ("via", via)],
        )
    }

    /// connect.php: fsockopen to `host`:`port`, the first line it reads.
    pub fn connect(&self, host: &str, port: u16) -> Result<String, String> {
        http::get_ok(
            &format!("{}/connect.php", self.base()),
            &[("host", host), ("port", &port.to_string())],
        )
    }

    /// The php-fpm tree the scenarios run against; `shell` is the sentinel's attack path.
    pub fn target<'a>(
        sensor: &'a RunningSensor,
        fpm: &Daemon,
        shell: &'a dyn Fn(&str) -> Result<String, String>,
    ) -> Target<'a> {
        Target {
            sensor,
            family: "php",
            technique: "T1505.003",
            root: fpm.pid(),
            worker_uid: Some(user("www-data").0),
            shell,
        }
    }

    /// Starts php-fpm, then nginx, each once it listens.
    pub fn start(&self) -> Servers {
        let d = self.dir.path();
        let mut fpm = Daemon::spawn(
            "php-fpm",
            Command::new(php_fpm_binary())
                .args(["-F", "-y"])
                .arg(&self.fpm_conf),
            &d.join("php-fpm.out"),
            libc::SIGTERM,
        );
        fpm.wait_port(self.fpm_port, std::time::Duration::from_secs(30));
        let mut nginx = Daemon::spawn(
            "nginx",
            Command::new("/usr/sbin/nginx")
                .arg("-c")
                .arg(&self.nginx_conf)
                .arg("-e")
                .arg(d.join("nginx-error.log")),
            &d.join("nginx.out"),
            libc::SIGTERM,
        );
        nginx.wait_port(self.port, std::time::Duration::from_secs(30));
        Servers { fpm, nginx }
    }
}

pub fn run() {
    let site = Site::new("nginx-php");
    let (d, www) = (site.dir.path(), site.www.path());
    let nginx_conf = &site.nginx_conf;
    let config = sensor_config(d);
    let mut report = Report::new("nginx + php-fpm");

    let ns = Netns::create();
    let sensor = RunningSensor::start(&config);
    let Servers { fpm, nginx } = site.start();
    let base = site.base();
    let shell = |cmd: &str, via: &str| site.shell(cmd, via);
    let sentinel_shell = |cmd: &str| shell(cmd, "system");
    let php = Site::target(&sensor, &fpm, &sentinel_shell);
    let connect = |host: &str, port: u16| site.connect(host, port);
    let nginx_signal = |signal: &str| {
        run_cmd(
            Command::new("/usr/sbin/nginx")
                .arg("-c")
                .arg(nginx_conf)
                .args(["-s", signal]),
        )
        .map(drop)
    };

    report.record(
        "start-up of nginx (master, worker) and php-fpm (master, static pool of 2)",
        "no alert",
        check::benign(&php, || Ok(())),
    );
    report.record(
        "static page GET /index.html",
        "no alert",
        check::benign(&php, || {
            http::get_ok(&format!("{base}/index.html"), &[]).map(drop)
        }),
    );
    report.record(
        "PHP mail(): sh -c '/usr/sbin/sendmail -t -i' -> sendmail",
        "no alert",
        check::benign(&php, || {
            http::get_ok(&format!("{base}/mail.php"), &[]).map(drop)
        }),
    );
    match &ns {
        Ok(_) => report.record(
            "PHP fsockopen to the allowlisted upstream 203.0.113.20:80",
            "no alert",
            check::benign(&php, || {
                connect(netns::UPSTREAM, netns::UPSTREAM_PORT).and_then(|b| {
                    b.contains("hello")
                        .then_some(())
                        .ok_or(format!("upstream not reached: {b}"))
                })
            }),
        ),
        Err(e) => report.record(
            "PHP fsockopen to the allowlisted upstream 203.0.113.20:80",
            "no alert",
            Err(format!("no namespace: {e}")),
        ),
    }
    report.record(
        "web shell system('id')",
        "shell + recon, one incident",
        check::web_shell(&php, "id", "id", "uid=", || shell("id", "system")),
    );
    report.record(
        "web shell shell_exec('uname -a')",
        "shell + recon, one incident",
        check::web_shell(&php, "uname -a", "uname", "Linux", || {
            shell("uname -a", "shell_exec")
        }),
    );
    report.record(
        "web shell proc_open('cat /etc/passwd')",
        "shell + recon, one incident",
        check::web_shell(&php, "cat /etc/passwd", "cat", "root:x:0:0", || {
            shell("cat /etc/passwd", "proc_open")
        }),
    );
    report.record(
        PLANTED,
        PLANTED_EXPECTED,
        planted_php_shell(&php, &base, www, d),
    );
    report.record(
        "PHP fsockopen to 203.0.113.66:4444 (reverse shell callback)",
        "server-outbound-unknown 203.0.113.66:4444",
        match &ns {
            Ok(_) => check::outbound(&php, netns::UNKNOWN, netns::UNKNOWN_PORT, || {
                connect(netns::UNKNOWN, netns::UNKNOWN_PORT)
            }),
            Err(e) => Err(format!("no namespace: {e}")),
        },
    );
    report.record(
        "nginx reload (nginx -s reload: new workers)",
        "no alert",
        check::benign(&php, || nginx_signal("reload")),
    );
    report.record(
        "nginx log reopen (nginx -s reopen, USR1 as logrotate sends it)",
        "no alert",
        check::benign(&php, || nginx_signal("reopen")),
    );
    report.record(
        "php-fpm log reopen (USR1 as logrotate sends it)",
        "no alert",
        check::benign(&php, || signal(fpm.pid(), libc::SIGUSR1)),
    );
    report.record(
        "php-fpm graceful reload (USR2: the master re-executes itself)",
        "no alert",
        check::benign(&php, || {
            signal(fpm.pid(), libc::SIGUSR2)?;
            // The re-executed master forks a new pool before it serves again.
            std::thread::sleep(std::time::Duration::from_millis(500));
            http::get_ok(&format!("{base}/index.html"), &[]).map(drop)
        }),
    );
    report.record(
        "web shell system('whoami') after the reloads",
        "shell + recon, one incident",
        check::web_shell(&php, "whoami", "whoami", "www-data", || {
            shell("whoami", "system")
        }),
    );
    drop(nginx);
    drop(fpm);
    drop(sensor);
    drop(ns);
    report.finish();
}

pub fn signal(pid: u32, signal: i32) -> Result<(), String> {
    // SAFETY: signalling a server this test started.
    if unsafe { libc::kill(pid as i32, signal) } == 0 {
        Ok(())
    } else {
        Err(format!(
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        ))
    }
}
