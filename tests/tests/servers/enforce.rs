//! Execution and egress prevention in front of a real application (issue 20): Debian's nginx
//! and php-fpm, started after an enforcing sensor as a restart would start them, with the
//! shipped configuration. The web shell's `sh -c` is killed before its first instruction,
//! the callback to an unknown host is refused, and the application's own helpers (mail() through
//! sendmail, its upstream API) run as before.

use std::time::{Duration, Instant};

use integration_tests::{Alert, RunningSensor, briefs, metric};

use super::{
    check::{self, Target},
    http,
    netns::{self, Netns},
    nginx_php::{Servers, Site},
    report::Report,
    sensor_config,
};

const WITHIN: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_secs(1);

fn holds(sensor: &RunningSensor, verdict: &str) -> f64 {
    metric(
        &sensor.metrics(),
        &format!("lineage_sensor_exec_holds_total{{verdict=\"{verdict}\"}}"),
    )
    .unwrap_or_default()
}

/// The alert says the call was stopped.
fn says_blocked(alert: &Alert) -> Result<(), String> {
    let event = &alert.doc["event"];
    if event["action"] != "blocked"
        || event["outcome"] != "failure"
        || !event["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|v| v == "denied"))
    {
        return Err(format!("not reported as blocked: {event}"));
    }
    Ok(())
}

/// A web shell request: the shell never runs `cmd` (no `output_marker` in the response), the
/// server answers, and exactly one alert says the shell was blocked.
fn blocked_shell(
    t: &Target,
    output_marker: &str,
    request: impl FnOnce() -> Result<String, String>,
) -> Result<Option<Duration>, String> {
    let killed = holds(t.sensor, "killed");
    let start = Instant::now();
    let body = request()?;
    if body.contains(output_marker) {
        return Err(format!("the shell ran its payload: {body}"));
    }
    let alerts = t.sensor.collect(WITHIN, QUIET, |got| !got.is_empty());
    let latency = alerts.first().map(|a| a.at.duration_since(start));
    let [shell] = alerts.as_slice() else {
        return Err(format!("want one shell alert, got {}", briefs(&alerts)));
    };
    if shell.rule() != "server-spawned-shell" {
        return Err(format!("want server-spawned-shell, got {}", shell.brief()));
    }
    check::rooted(t, shell)?;
    says_blocked(shell)?;
    if holds(t.sensor, "killed") < killed + 1.0 {
        return Err("exec_holds_total{verdict=\"killed\"} did not count it".into());
    }
    Ok(latency)
}

/// PHP mail(): `sh -c '/usr/sbin/sendmail -t -i'` and the sendmail it runs are both held and
/// both continued (the shipped mail() exclusion), and nothing alerts.
fn mail_continues(t: &Target, base: &str) -> Result<Option<Duration>, String> {
    let continued = holds(t.sensor, "continued");
    check::benign(t, || {
        http::get_ok(&format!("{base}/mail.php"), &[]).map(drop)
    })?;
    let now = holds(t.sensor, "continued");
    if now < continued + 2.0 {
        return Err(format!(
            "the shell and sendmail were not held and continued: exec_holds_total\
             {{verdict=\"continued\"}} {continued} -> {now}"
        ));
    }
    Ok(None)
}

/// The reverse shell's callback: fsockopen fails in the kernel and the alert says blocked.
fn refused_callback(
    t: &Target,
    connect: impl FnOnce() -> Result<String, String>,
) -> Result<Option<Duration>, String> {
    let start = Instant::now();
    let body = connect()?;
    if body.contains("hello") {
        return Err(format!("the callback reached the listener: {body}"));
    }
    let alerts = t.sensor.collect(WITHIN, QUIET, |got| !got.is_empty());
    let latency = alerts.first().map(|a| a.at.duration_since(start));
    let [alert] = alerts.as_slice() else {
        return Err(format!("want one outbound alert, got {}", briefs(&alerts)));
    };
    if alert.rule() != "server-outbound-unknown"
        || alert.doc["destination"]["ip"] != netns::UNKNOWN
        || alert.doc["destination"]["port"] != netns::UNKNOWN_PORT
    {
        return Err(format!("want the callback's alert, got {}", alert.brief()));
    }
    check::rooted(t, alert)?;
    says_blocked(alert)?;
    Ok(latency)
}

pub fn run() {
    let site = Site::new("nginx-php-enforce");
    let config = sensor_config(site.dir.path());
    let shipped = std::fs::read_to_string(&config).expect("read the config");
    let off = "[prevention]\nmode = \"off\"\n";
    assert!(
        shipped.contains(off),
        "the shipped config has prevention off"
    );
    std::fs::write(
        &config,
        shipped.replace(off, "[prevention]\nmode = \"enforce\"\n"),
    )
    .expect("write the enforce config");
    let mut report = Report::new("nginx + php-fpm, enforce");

    let ns = Netns::create();
    let sensor = RunningSensor::start(&config);
    let Servers { fpm, nginx } = site.start();
    let base = site.base();
    let shell = |cmd: &str| site.shell(cmd, "system");
    let php = Site::target(&sensor, &fpm, &shell);
    let connect = |host: &str, port: u16| site.connect(host, port);

    report.record(
        "start-up of nginx and php-fpm after the sensor; static page GET /index.html",
        "no alert",
        check::benign(&php, || {
            http::get_ok(&format!("{base}/index.html"), &[]).map(drop)
        }),
    );
    report.record(
        "PHP mail(): sh -c '/usr/sbin/sendmail -t -i' -> sendmail, each held at exec",
        "no alert; both continued (exec_holds_total)",
        mail_continues(&php, &base),
    );
    report.record(
        "web shell system('id')",
        "shell killed at exec: no output, one alert event.action blocked",
        blocked_shell(&php, "uid=", || shell("id")),
    );
    report.record(
        "web shell system('cat /etc/passwd') through a second request",
        "shell killed at exec: no output, one alert event.action blocked",
        blocked_shell(&php, "root:x:0:0", || shell("cat /etc/passwd")),
    );
    match &ns {
        Ok(_) => {
            report.record(
                "PHP fsockopen to the allowlisted upstream 203.0.113.20:80",
                "connects; no alert",
                check::benign(&php, || {
                    connect(netns::UPSTREAM, netns::UPSTREAM_PORT).and_then(|b| {
                        b.contains("hello")
                            .then_some(())
                            .ok_or(format!("upstream not reached: {b}"))
                    })
                }),
            );
            report.record(
                "PHP fsockopen to 203.0.113.66:4444 (reverse shell callback)",
                "refused in the kernel; one alert event.action blocked",
                refused_callback(&php, || connect(netns::UNKNOWN, netns::UNKNOWN_PORT)),
            );
        }
        Err(e) => report.record(
            "PHP fsockopen (allowlisted upstream, reverse shell callback)",
            "connects / refused",
            Err(format!("no namespace: {e}")),
        ),
    }
    report.record(
        "the application after the kills: GET /index.html and mail()",
        "serves; no alert",
        check::benign(&php, || {
            http::get_ok(&format!("{base}/index.html"), &[])?;
            http::get_ok(&format!("{base}/mail.php"), &[]).map(drop)
        }),
    );
    drop(nginx);
    drop(fpm);
    drop(sensor);
    drop(ns);
    report.finish();
}
