//! What the real-server suite (tests/tests/servers.rs) runs against: Debian's own packages,
//! installed only when missing. The suite starts private instances on ports of its own, so
//! instances a package install may have started are left alone.

use crate::apt;

/// The servers, the client tools and a local MTA (msmtp-mta gives PHP's mail() the standard
/// /usr/sbin/sendmail, as a real host has; it needs no daemon and sends nothing unconfigured).
const PACKAGES: &[&str] = &[
    "nginx",
    "php-fpm",
    "apache2",
    "libapache2-mod-php",
    "tomcat10",
    "python3",
    "gunicorn",
    "postgresql",
    "curl",
    "msmtp-mta",
    "iproute2",
    // Application servers (tests/tests/servers/app_servers.rs): puma, starman, uWSGI with its
    // Python plugin, and Node with Debian's express.
    "puma",
    "starman",
    "uwsgi-core",
    "uwsgi-plugin-python3",
    "nodejs",
    "node-express",
];

pub fn install() -> anyhow::Result<()> {
    apt::ensure(PACKAGES)
}
