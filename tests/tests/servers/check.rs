//! What a defender checks for each procedure: the alerts that must arrive (and nothing else from
//! the server's tree), their rule, ancestry, incident and command.

use std::time::{Duration, Instant};

use integration_tests::{Alert, RunningSensor, briefs};

/// How long an expected alert may take before the scenario fails (generous: a JSP may compile,
/// CI machines are slow; the measured latency is reported separately).
const WITHIN: Duration = Duration::from_secs(20);
/// After the expected alerts, how long a duplicate or an extra alert is waited for. (A
/// duplicate arriving later still fails the run: the next scenario's alerts, or its sentinel,
/// would come after it and it would be judged there.)
const QUIET: Duration = Duration::from_secs(1);

/// The server tree a scenario runs against.
pub struct Target<'a> {
    pub sensor: &'a RunningSensor,
    /// `lineage.server.family`.
    pub family: &'a str,
    /// `threat.technique.subtechnique.id`: T1505.003 for web servers, T1505.001 for databases.
    pub technique: &'a str,
    /// The server's outermost process: `lineage.ancestry[0]`.
    pub root: u32,
    /// The uid of the worker that serves requests, when it is a fork of the root (php-fpm pool,
    /// apache2 child, gunicorn worker, postgres backend); `None` when the root serves itself (java).
    pub worker_uid: Option<u32>,
    /// Runs `sh -c CMD` through the server's own attack path (a web shell, COPY FROM PROGRAM):
    /// the sentinel that ends a negative check.
    pub shell: &'a dyn Fn(&str) -> Result<String, String>,
}

/// A web shell request running `cmd` through `sh -c`: exactly one shell alert and one recon alert
/// for the tool, one incident, rooted at the server.
pub fn web_shell(
    t: &Target,
    cmd: &str,
    tool: &str,
    output_marker: &str,
    request: impl FnOnce() -> Result<String, String>,
) -> Result<Option<Duration>, String> {
    let start = Instant::now();
    let body = request()?;
    if !body.contains(output_marker) {
        return Err(format!(
            "the web shell did not run {cmd:?} (no {output_marker:?} in the response): {body}"
        ));
    }
    let alerts = t.sensor.collect(WITHIN, QUIET, |got| {
        count(got, "server-spawned-shell") >= 1 && count(got, "server-spawned-recon") >= 1
    });
    let latency = alerts.first().map(|a| a.at.duration_since(start));
    let shells: Vec<&Alert> = by_rule(&alerts, "server-spawned-shell");
    let recons: Vec<&Alert> = by_rule(&alerts, "server-spawned-recon");
    if shells.len() != 1 || recons.len() != 1 || alerts.len() != 2 {
        return Err(format!(
            "want one shell and one recon alert, got {}",
            briefs(&alerts)
        ));
    }
    shell_and_recon(t, shells[0], recons[0], cmd, tool)?;
    evidence(t, shells[0], cmd)?;
    Ok(latency)
}

/// The shell alert names its incident's evidence bundle, which holds the server and the shell
/// with its command line; where the server shows the request's connection (a worker that
/// accepted it, or a front server on this host before php-fpm), `client.ip` is the test's
/// client address.
fn evidence(t: &Target, shell: &Alert, cmd: &str) -> Result<(), String> {
    let doc = &shell.doc;
    let reference = &doc["lineage"]["evidence"];
    let status = reference["status"].as_str().unwrap_or_default();
    if !["written", "earlier"].contains(&status) {
        return Err(format!(
            "no evidence bundle: {reference} ({})",
            shell.brief()
        ));
    }
    let path = reference["path"].as_str().unwrap_or_default();
    let bundle: serde_json::Value = std::fs::read(path)
        .map_err(|e| format!("evidence bundle {path}: {e}"))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{path}: {e}")))?;
    let processes = bundle["processes"].as_array().cloned().unwrap_or_default();
    if processes.first().map(|p| &p["pid"]) != Some(&serde_json::Value::from(t.root)) {
        return Err(format!(
            "the bundle does not start at the server {}: {bundle}",
            t.root
        ));
    }
    if status == "written" {
        let last = processes
            .last()
            .map(|p| p["args"].to_string())
            .unwrap_or_default();
        if !last.contains(cmd) {
            return Err(format!(
                "the bundle's last process is not the shell of {cmd:?}: {last}"
            ));
        }
    }
    // The client is named only while the worker still holds the request's connection; a
    // request that ended before /proc was read says why instead (`lineage.client.reason`).
    let how = &doc["lineage"]["client"];
    let named = doc["client"]["ip"].as_str();
    if named.is_some_and(|ip| ip != super::http::CLIENT)
        || (named.is_none() && how["reason"].as_str().is_none_or(str::is_empty))
    {
        return Err(format!(
            "client.ip {named:?}, want {} or a reason ({how})",
            super::http::CLIENT
        ));
    }
    Ok(())
}

/// A script an attacker uploads through the application, and what it runs when requested.
pub struct Planted<'a> {
    /// Where the application saves it: the expected `file.path`.
    pub path: &'a str,
    /// sha256 of the uploaded content: the expected `file.hash.sha256`.
    pub sha256: &'a str,
    /// The command the script passes to `sh -c`.
    pub cmd: &'a str,
    /// The executable of the recon tool `cmd` runs.
    pub tool: &'a str,
    /// Printed by `cmd`: proves the script ran it.
    pub output_marker: &'a str,
}

/// A web shell planted through an upload form, then requested: exactly one critical
/// webroot-script-write alert whose writer is the serving worker, and the shell and recon alerts
/// of the command the planted script runs, all one incident rooted at the server.
pub fn planted_shell(
    t: &Target,
    planted: &Planted,
    upload: impl FnOnce() -> Result<String, String>,
    request: impl FnOnce() -> Result<String, String>,
) -> Result<Option<Duration>, String> {
    let start = Instant::now();
    let body = upload()?;
    if !body.contains("saved") {
        return Err(format!("the upload was not saved: {body}"));
    }
    // The write's alert first, so that it is known to come from the upload and not the request.
    let mut alerts = t.sensor.collect(WITHIN, Duration::ZERO, |got| {
        count(got, "webroot-script-write") >= 1
    });
    let latency = alerts
        .iter()
        .find(|a| a.rule() == "webroot-script-write")
        .map(|a| a.at.duration_since(start));
    let body = request()?;
    if !body.contains(planted.output_marker) {
        return Err(format!(
            "the planted script did not run {:?} (no {:?} in the response): {body}",
            planted.cmd, planted.output_marker
        ));
    }
    alerts.extend(t.sensor.collect(WITHIN, QUIET, |got| {
        count(got, "server-spawned-shell") >= 1 && count(got, "server-spawned-recon") >= 1
    }));
    let writes = by_rule(&alerts, "webroot-script-write");
    let shells = by_rule(&alerts, "server-spawned-shell");
    let recons = by_rule(&alerts, "server-spawned-recon");
    if writes.len() != 1 || shells.len() != 1 || recons.len() != 1 || alerts.len() != 3 {
        return Err(format!(
            "want one webroot-script-write, one shell and one recon alert, got {}",
            briefs(&alerts)
        ));
    }
    let write = writes[0];
    file_written(t, write, planted)?;
    shell_and_recon(t, shells[0], recons[0], planted.cmd, planted.tool)?;
    if write.incident() != shells[0].incident() {
        return Err(format!(
            "the upload and the shell it ran are not one incident: {}",
            briefs(&alerts)
        ));
    }
    Ok(latency)
}

/// The write alert names the planted file and its writer, the worker that served the upload.
fn file_written(t: &Target, alert: &Alert, planted: &Planted) -> Result<(), String> {
    let doc = &alert.doc;
    let file = &doc["file"];
    let name = planted.path.rsplit('/').next().unwrap_or(planted.path);
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    if file["path"] != planted.path || file["name"] != name || file["extension"] != extension {
        return Err(format!(
            "file is not {} (name {name}, extension {extension}): {file} ({})",
            planted.path,
            alert.brief()
        ));
    }
    if file["hash"]["sha256"] != planted.sha256 {
        return Err(format!(
            "file.hash.sha256 is not the upload's {}: {file}",
            planted.sha256
        ));
    }
    // move_uploaded_file renames PHP's temporary copy into place when both are on one
    // filesystem, and copies it (a creating open) otherwise.
    if !matches!(doc["event"]["action"].as_str(), Some("rename" | "creation")) {
        return Err(format!(
            "event.action is neither rename nor creation: {}",
            doc["event"]
        ));
    }
    if doc["event"]["severity"] != 99 || doc["lineage"]["severity"] != "critical" {
        return Err(format!(
            "an upload through the server is not critical: event {}, lineage.severity {}",
            doc["event"], doc["lineage"]["severity"]
        ));
    }
    rooted(t, alert)?;
    let server = &doc["lineage"]["server"];
    if t.worker_uid.is_some()
        && (doc["process"]["pid"] != server["pid"]
            || doc["process"]["executable"] != server["executable"])
    {
        return Err(format!(
            "the writer is not the serving worker {server}: {}",
            alert.brief()
        ));
    }
    ends_ancestry(alert)
}

/// `sh -c cmd` and `tool` below it, one incident, both rooted at the server.
fn shell_and_recon(
    t: &Target,
    shell: &Alert,
    recon: &Alert,
    cmd: &str,
    tool: &str,
) -> Result<(), String> {
    let args = shell.args();
    let shell_name = shell.executable().rsplit('/').next().unwrap_or("");
    if !matches!(shell_name, "sh" | "dash" | "bash")
        || args.get(1..) != Some(&["-c".into(), cmd.into()])
    {
        return Err(format!(
            "shell alert is not `sh -c {cmd}`: {}",
            shell.brief()
        ));
    }
    if !recon.executable().ends_with(&format!("/{tool}")) || recon.args().join(" ") != cmd {
        return Err(format!("recon alert is not `{cmd}`: {}", recon.brief()));
    }
    if shell.incident().is_empty() || shell.incident() != recon.incident() {
        return Err(format!(
            "shell and recon alerts are not one incident: {}; {}",
            shell.brief(),
            recon.brief()
        ));
    }
    rooted(t, shell)?;
    rooted(t, recon)?;
    ends_ancestry(shell)
}

/// The alerting process is the last of its ancestry.
fn ends_ancestry(alert: &Alert) -> Result<(), String> {
    let ancestry = &alert.doc["lineage"]["ancestry"];
    if ancestry
        .as_array()
        .and_then(|a| a.last())
        .map(|a| &a["pid"])
        != Some(&alert.doc["process"]["pid"])
    {
        return Err(format!(
            "{} does not end its ancestry: {ancestry}",
            alert.rule()
        ));
    }
    Ok(())
}

/// A connect from the server's tree to an address off the allowlist: exactly one
/// server-outbound-unknown alert with that destination.
pub fn outbound(
    t: &Target,
    ip: &str,
    port: u16,
    request: impl FnOnce() -> Result<String, String>,
) -> Result<Option<Duration>, String> {
    let start = Instant::now();
    let body = request()?;
    if !body.contains("hello") {
        return Err(format!("the connection did not reach the listener: {body}"));
    }
    let alerts = t.sensor.collect(WITHIN, QUIET, |got| {
        count(got, "server-outbound-unknown") >= 1
    });
    let latency = alerts.first().map(|a| a.at.duration_since(start));
    let [alert] = alerts.as_slice() else {
        return Err(format!("want one outbound alert, got {}", briefs(&alerts)));
    };
    if alert.rule() != "server-outbound-unknown"
        || alert.doc["destination"]["ip"] != ip
        || alert.doc["destination"]["port"] != port
        || alert.doc["network"]["transport"] != "tcp"
    {
        return Err(format!(
            "want server-outbound-unknown to {ip}:{port}, got {} to {}",
            alert.brief(),
            alert.doc["destination"]
        ));
    }
    rooted(t, alert)?;
    Ok(latency)
}

/// Traffic that must raise nothing from the test's tree (the servers, the clients the test ran,
/// anything else it started): ended by a sentinel shell through the server, whose alert comes
/// after any the benign traffic caused.
pub fn benign(
    t: &Target,
    action: impl FnOnce() -> Result<(), String>,
) -> Result<Option<Duration>, String> {
    action()?;
    let alerts = t.sensor.quiet_until_sentinel(WITHIN, |marker| {
        (t.shell)(&format!("true {marker}")).map(drop)
    })?;
    if alerts.is_empty() {
        Ok(None)
    } else {
        Err(format!("benign traffic alerted: {}", briefs(&alerts)))
    }
}

/// A helper the application runs through `sh -c` while the server's baseline is still
/// learning: it alerts as before (one shell alert, rooted at the server, not marked new), and
/// its template is learned.
pub fn while_learning(
    t: &Target,
    cmd: &str,
    request: impl FnOnce() -> Result<String, String>,
) -> Result<Option<Duration>, String> {
    let start = Instant::now();
    request()?;
    let alerts = t
        .sensor
        .collect(WITHIN, QUIET, |got| count(got, "server-spawned-shell") >= 1);
    let latency = alerts.first().map(|a| a.at.duration_since(start));
    let [shell] = alerts.as_slice() else {
        return Err(format!("want one shell alert, got {}", briefs(&alerts)));
    };
    rooted(t, shell)?;
    if !shell.doc["process"]["command_line"]
        .as_str()
        .is_some_and(|c| c.contains(cmd))
    {
        return Err(format!("not the helper's shell: {}", shell.brief()));
    }
    if !shell.doc["lineage"]["baseline"].is_null() {
        return Err(format!(
            "judged by the baseline while learning: {}",
            shell.doc["lineage"]["baseline"]
        ));
    }
    Ok(latency)
}

/// The alert's tree starts at the server's root and names the right serving process.
pub fn rooted(t: &Target, alert: &Alert) -> Result<(), String> {
    let doc = &alert.doc;
    let ancestry = doc["lineage"]["ancestry"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let server = &doc["lineage"]["server"];
    if doc["lineage"]["server"]["family"] != t.family {
        return Err(format!("family is not {}: {}", t.family, alert.brief()));
    }
    if doc["threat"]["technique"]["subtechnique"]["id"] != t.technique {
        return Err(format!(
            "technique is not {}: {}",
            t.technique, doc["threat"]["technique"]
        ));
    }
    let Some(root) = ancestry.first() else {
        return Err(format!("no ancestry: {}", alert.brief()));
    };
    if root["pid"] != t.root {
        return Err(format!(
            "ancestry not rooted at {}: {}",
            t.root,
            alert.brief()
        ));
    }
    match t.worker_uid {
        Some(uid) => {
            let worker = ancestry.get(1).cloned().unwrap_or_default();
            if server["pid"] != worker["pid"]
                || worker["executable"] != root["executable"]
                || worker["user"]["id"].as_str() != Some(uid.to_string().as_str())
            {
                return Err(format!(
                    "lineage.server is not the root's worker (uid {uid}): server {server}, ancestry {}",
                    serde_json::Value::Array(ancestry.clone())
                ));
            }
        }
        None => {
            if server["pid"] != t.root {
                return Err(format!("lineage.server is not {}: {server}", t.root));
            }
        }
    }
    Ok(())
}

fn count(alerts: &[Alert], rule: &str) -> usize {
    alerts.iter().filter(|a| a.rule() == rule).count()
}

fn by_rule<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.rule() == rule).collect()
}
