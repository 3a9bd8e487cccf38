//! Real servers end to end (issue 4): Debian's nginx + php-fpm, apache2 + mod_php, PostgreSQL,
//! gunicorn and Tomcat 10, each a private instance on loopback ports of its own, attacked the way
//! Atomic Red Team's T1505.003 / T1505.001 procedures do while the real `lineage-sensor run`
//! watches; benign traffic must stay quiet. Every scenario's result and latency lands in
//! docs/validation.md. `cargo xtask test` installs the packages (xtask/src/servers.rs).

#[path = "servers/apache.rs"]
mod apache;
#[path = "servers/check.rs"]
mod check;
#[path = "servers/daemon.rs"]
mod daemon;
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
#[path = "servers/sensor.rs"]
mod sensor;
#[path = "servers/tomcat.rs"]
mod tomcat;

use std::path::{Path, PathBuf};

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

#[test]
fn nginx_and_php_fpm() {
    require_root();
    nginx_php::run();
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
