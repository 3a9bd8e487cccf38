//! What a defender checks for each procedure: the alerts that must arrive (and nothing else from
//! the server's tree), their rule, ancestry, incident and command.

use std::time::{Duration, Instant};

use super::sensor::{Alert, Sensor};

/// How long an expected alert may take before the scenario fails (generous: a JSP may compile,
/// CI machines are slow; the measured latency is reported separately).
const WITHIN: Duration = Duration::from_secs(20);
/// After the expected alerts, how long a duplicate or an extra alert is waited for.
const QUIET: Duration = Duration::from_secs(1);
/// How long benign traffic is watched.
const BENIGN_WATCH: Duration = Duration::from_secs(2);

/// The server tree a scenario runs against.
pub struct Target<'a> {
    pub sensor: &'a Sensor,
    /// `lineage.server.family`.
    pub family: &'a str,
    /// `threat.technique.subtechnique.id`: T1505.003 for web servers, T1505.001 for databases.
    pub technique: &'a str,
    /// The server's outermost process: `lineage.ancestry[0]`.
    pub root: u32,
    /// The uid of the worker that serves requests, when it is a fork of the root (php-fpm pool,
    /// apache2 child, gunicorn worker, postgres backend); `None` when the root serves itself (java).
    pub worker_uid: Option<u32>,
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
    let alerts = t.sensor.collect(&[t.root], WITHIN, QUIET, |got| {
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
    let (shell, recon) = (shells[0], recons[0]);
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
            "shell and recon alerts are not one incident: {}",
            briefs(&alerts)
        ));
    }
    rooted(t, shell)?;
    rooted(t, recon)?;
    let ancestry = &shell.doc["lineage"]["ancestry"];
    if ancestry
        .as_array()
        .and_then(|a| a.last())
        .map(|a| &a["pid"])
        != Some(&shell.doc["process"]["pid"])
    {
        return Err(format!("the shell does not end its ancestry: {ancestry}"));
    }
    Ok(latency)
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
    let alerts = t.sensor.collect(&[t.root], WITHIN, QUIET, |got| {
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

/// Traffic that must raise nothing from the server's tree.
pub fn benign(
    t: &Target,
    roots: &[u32],
    action: impl FnOnce() -> Result<(), String>,
) -> Result<Option<Duration>, String> {
    action()?;
    let mut all = roots.to_vec();
    all.push(t.root);
    let alerts = t
        .sensor
        .collect(&all, BENIGN_WATCH, Duration::ZERO, |_| false);
    if alerts.is_empty() {
        Ok(None)
    } else {
        Err(format!("benign traffic alerted: {}", briefs(&alerts)))
    }
}

/// The alert's tree starts at the server's root and names the right serving process.
fn rooted(t: &Target, alert: &Alert) -> Result<(), String> {
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
                || worker["user"]["id"] != uid.to_string()
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

fn briefs(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "no alert".into();
    }
    alerts
        .iter()
        .map(Alert::brief)
        .collect::<Vec<_>>()
        .join("; ")
}
