//! apache2 with mod_php under the prefork MPM, as Debian's libapache2-mod-php sets it up.

use std::{path::Path, process::Command, time::Duration};

use integration_tests::RunningSensor;

use super::{
    PLANTED, PLANTED_EXPECTED,
    check::{self, Target},
    daemon::{Daemon, free_ports, run as run_cmd, user, workdir},
    http, php_web_root, planted_php_shell,
    report::Report,
    sensor_config,
};

fn php_module() -> String {
    let dir = "/usr/lib/apache2/modules";
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .expect("read apache2 modules")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("libphp") && n.ends_with(".so"))
        .collect();
    found.sort();
    format!(
        "{dir}/{}",
        found
            .pop()
            .expect("no libphp*.so: is libapache2-mod-php installed?")
    )
}

fn write_conf(dir: &Path, www: &Path, port: u16) -> std::path::PathBuf {
    let conf = dir.join("apache2.conf");
    let d = dir.display();
    let w = www.display();
    let m = "/usr/lib/apache2/modules";
    std::fs::write(
        &conf,
        format!(
            "ServerRoot {d}\nServerName localhost\nListen 127.0.0.1:{port}\n\
             PidFile {d}/apache2.pid\nDefaultRuntimeDir {d}\nMutex file:{d}\n\
             ErrorLog {d}/apache2-error.log\nUser www-data\nGroup www-data\n\
             LoadModule mpm_prefork_module {m}/mod_mpm_prefork.so\n\
             LoadModule authz_core_module {m}/mod_authz_core.so\n\
             LoadModule mime_module {m}/mod_mime.so\n\
             LoadModule dir_module {m}/mod_dir.so\n\
             LoadModule php_module {}\n\
             StartServers 2\nMinSpareServers 1\nMaxSpareServers 3\n\
             TypesConfig /etc/mime.types\nDocumentRoot {w}\nDirectoryIndex index.html\n\
             <Directory {w}>\n  Require all granted\n</Directory>\n\
             <FilesMatch \"\\.php$\">\n  SetHandler application/x-httpd-php\n</FilesMatch>\n\
             php_admin_value sendmail_path \"/usr/sbin/sendmail -t -i\"\n",
            php_module()
        ),
    )
    .expect("write apache2.conf");
    conf
}

pub fn run() {
    let dir = workdir("apache");
    let d = dir.path();
    let www_dir = php_web_root("apache");
    let www = www_dir.path();
    let [port] = free_ports();
    let conf = write_conf(d, www, port);
    let config = sensor_config(d);
    let mut report = Report::new("apache2 + mod_php");

    let sensor = RunningSensor::start(&config);
    let mut apache = Daemon::spawn(
        "apache2",
        Command::new("/usr/sbin/apache2")
            .arg("-f")
            .arg(&conf)
            .arg("-DFOREGROUND"),
        &d.join("apache2.out"),
        libc::SIGTERM,
    );
    apache.wait_port(port, Duration::from_secs(30));
    let (www_uid, _) = user("www-data");
    let base = format!("http://127.0.0.1:{port}");
    let shell = |cmd: &str, via: &str| {
        http::get_ok(&format!("{base}/shell.php"), &[("cmd", cmd), ("via", via)])
    };
    let sentinel_shell = |cmd: &str| shell(cmd, "system");
    let t = Target {
        sensor: &sensor,
        family: "apache",
        technique: "T1505.003",
        root: apache.pid(),
        worker_uid: Some(www_uid),
        shell: &sentinel_shell,
    };

    report.record(
        "start-up of apache2 (root parent, prefork children)",
        "no alert",
        check::benign(&t, || Ok(())),
    );
    report.record(
        "static page GET /index.html",
        "no alert",
        check::benign(&t, || {
            http::get_ok(&format!("{base}/index.html"), &[]).map(drop)
        }),
    );
    report.record(
        "PHP mail(): sh -c '/usr/sbin/sendmail -t -i' -> sendmail",
        "no alert",
        check::benign(&t, || {
            http::get_ok(&format!("{base}/mail.php"), &[]).map(drop)
        }),
    );
    report.record(
        "web shell system('id')",
        "shell + recon, one incident",
        check::web_shell(&t, "id", "id", "uid=", || shell("id", "system")),
    );
    report.record(
        "web shell shell_exec('uname -a')",
        "shell + recon, one incident",
        check::web_shell(&t, "uname -a", "uname", "Linux", || {
            shell("uname -a", "shell_exec")
        }),
    );
    report.record(
        "web shell proc_open('cat /etc/passwd')",
        "shell + recon, one incident",
        check::web_shell(&t, "cat /etc/passwd", "cat", "root:x:0:0", || {
            shell("cat /etc/passwd", "proc_open")
        }),
    );
    report.record(
        PLANTED,
        PLANTED_EXPECTED,
        planted_php_shell(&t, &base, www, d),
    );
    report.record(
        "graceful restart (apache2 -k graceful, as logrotate's postrotate does)",
        "no alert",
        check::benign(&t, || {
            run_cmd(
                Command::new("/usr/sbin/apache2")
                    .arg("-f")
                    .arg(&conf)
                    .args(["-k", "graceful"]),
            )?;
            // The new generation of children must serve before the next scenario.
            std::thread::sleep(Duration::from_millis(500));
            http::get_ok(&format!("{base}/index.html"), &[]).map(drop)
        }),
    );
    report.record(
        "web shell system('whoami') after the graceful restart",
        "shell + recon, one incident",
        check::web_shell(&t, "whoami", "whoami", "www-data", || {
            shell("whoami", "system")
        }),
    );
    drop(apache);
    drop(sensor);
    report.finish();
}
