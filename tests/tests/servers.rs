//! Real servers end to end (issue 4): Debian's nginx + php-fpm, apache2 + mod_php, PostgreSQL,
//! gunicorn and Tomcat 10, and the application servers puma, starman, uWSGI and Node express
//! (issue 17: started before the sensor, with a learned baseline), each a private instance on loopback ports of its own, attacked the way
//! Atomic Red Team's T1505.003 / T1505.001 procedures do while the real `lineage-sensor run`
//! watches; benign traffic must stay quiet. Every scenario's result and latency lands in
//! docs/validation.md. `cargo xtask test` installs the packages (xtask/src/servers.rs).

#[path = "servers/apache.rs"]
mod apache;
#[path = "servers/app_servers.rs"]
mod app_servers;
#[path = "servers/check.rs"]
mod check;
#[path = "servers/daemon.rs"]
mod daemon;
#[path = "servers/enforce.rs"]
mod enforce;
#[path = "servers/gunicorn.rs"]
mod gunicorn;
#[path = "servers/http.rs"]
mod http;
#[path = "servers/netns.rs"]
mod netns;
#[path = "servers/nginx_php.rs"]
mod nginx_php;
#[path = "servers/postgres.rs"]
mod postgres;
#[path = "servers/report.rs"]
mod report;
#[path = "servers/tomcat.rs"]
mod tomcat;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use integration_tests::require_root;

/// The shipped configuration, as a defender deploys it, plus one upstream the applications may
/// call (in the test's namespace, on a documentation address that is otherwise unknown).
fn sensor_config(dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/lineage-sensor.toml"),
    )
    .expect("read deploy/lineage-sensor.toml");
    let config = dir.join("lineage-sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{shipped}\n\n# The test's upstream API.\n[[rules.server_outbound_unknown.allow]]\n\
             cidr = \"{}/32\"\nports = [{}]\nfamilies = []\n",
            netns::UPSTREAM,
            netns::UPSTREAM_PORT
        ),
    )
    .expect("write sensor config");
    config
}

/// The fixtures a server's web root is filled from.
fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/servers")
        .join(kind)
}

fn copy_fixtures(kind: &str, to: &Path) {
    std::fs::create_dir_all(to).expect("create web root");
    for entry in std::fs::read_dir(fixtures(kind))
        .expect("read fixtures")
        .flatten()
    {
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy fixture");
    }
}

const PLANTED: &str = "upload form saves x.php into uploads/ (move_uploaded_file), then \
                       GET /uploads/x.php: system('/usr/bin/id')";
const PLANTED_EXPECTED: &str =
    "webroot-script-write (critical, worker as writer) + shell + recon, one incident";

/// The web root of a PHP server: the fixtures, and the uploads/ directory upload.php saves into,
/// which the workers may write as an upload form's target directory must be.
fn php_web_root(name: &str) -> tempfile::TempDir {
    let www = daemon::web_root(name);
    copy_fixtures("php", www.path());
    let uploads = www.path().join("uploads");
    std::fs::create_dir(&uploads).expect("create uploads/");
    let (uid, gid) = daemon::user("www-data");
    daemon::chown_r(&uploads, uid, gid);
    www
}

/// A web shell planted through the application (T1505.003 by unrestricted upload, CWE-434):
/// upload.php saves x.php into uploads/, then a request to it runs `id` through system().
fn planted_php_shell(
    t: &check::Target,
    base: &str,
    www: &Path,
    work: &Path,
) -> Result<Option<Duration>, String> {
    // A full path: `sh -c id` and `id` from this server were alerted by an earlier scenario
    // less than rate_limit.window_secs ago, and identical alerts would be held back.
    let cmd = "/usr/bin/id";
    let payload = work.join("x.php");
    std::fs::write(&payload, format!("<?php system('{cmd}');\n"))
        .map_err(|e| format!("write {}: {e}", payload.display()))?;
    let sum = daemon::run(Command::new("sha256sum").arg(&payload))?;
    let sha256 = sum.split_whitespace().next().unwrap_or_default();
    let path = www.join("uploads/x.php");
    check::planted_shell(
        t,
        &check::Planted {
            path: &path.to_string_lossy(),
            sha256,
            cmd,
            tool: "id",
            output_marker: "uid=",
        },
        || http::upload_ok(&format!("{base}/upload.php"), "file", &payload, "x.php"),
        || http::get_ok(&format!("{base}/uploads/x.php"), &[]),
    )
}

#[test]
fn nginx_and_php_fpm() {
    require_root();
    nginx_php::run();
}

#[test]
fn nginx_and_php_fpm_enforce() {
    require_root();
    enforce::run();
}

#[test]
fn apache2_and_mod_php() {
    require_root();
    apache::run();
}

#[test]
fn postgresql_copy_from_program() {
    require_root();
    postgres::run();
}

#[test]
fn gunicorn_wsgi() {
    require_root();
    gunicorn::run();
}

#[test]
fn tomcat10_jsp() {
    require_root();
    tomcat::run();
}

#[test]
fn puma_rack() {
    require_root();
    app_servers::run(&app_servers::PUMA);
}

#[test]
fn starman_psgi() {
    require_root();
    app_servers::run(&app_servers::STARMAN);
}

#[test]
fn uwsgi_wsgi() {
    require_root();
    app_servers::run(&app_servers::UWSGI);
}

#[test]
fn node_express() {
    require_root();
    app_servers::run(&app_servers::EXPRESS);
}
