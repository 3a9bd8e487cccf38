//! One alert as the sensor printed it, stamped with the instant it reached the test.

use std::time::Instant;

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Alert {
    /// When the line was read from the sensor's stdout.
    pub at: Instant,
    /// The line exactly as printed (hostile-input tests check its bytes).
    pub line: String,
    pub doc: Value,
}

impl Alert {
    /// Parses one stdout line; every line the sensor prints must be one JSON object.
    pub fn parse(at: Instant, line: String) -> Result<Alert, String> {
        let doc: Value = serde_json::from_str(&line)
            .map_err(|e| format!("stdout line is not JSON ({e}): {line}"))?;
        if !doc.is_object() {
            return Err(format!("stdout line is not a JSON object: {line}"));
        }
        Ok(Alert { at, line, doc })
    }

    pub fn rule(&self) -> &str {
        self.doc["rule"]["id"].as_str().unwrap_or("")
    }

    pub fn root_pid(&self) -> Option<u64> {
        self.doc["lineage"]["ancestry"][0]["pid"].as_u64()
    }

    pub fn incident(&self) -> &str {
        self.doc["lineage"]["incident"]["id"].as_str().unwrap_or("")
    }

    pub fn args(&self) -> Vec<String> {
        self.doc["process"]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn executable(&self) -> &str {
        self.doc["process"]["executable"].as_str().unwrap_or("")
    }

    /// Whether the alerting process's own command line carries `marker`.
    pub fn has_marker(&self, marker: &str) -> bool {
        self.args().iter().any(|a| a.contains(marker))
    }

    /// Every pid the alert names: the process, its parent, its server and its ancestry.
    pub fn pids(&self) -> Vec<u64> {
        let doc = &self.doc;
        let mut pids: Vec<u64> = [
            &doc["process"]["pid"],
            &doc["process"]["parent"]["pid"],
            &doc["lineage"]["server"]["pid"],
        ]
        .into_iter()
        .filter_map(Value::as_u64)
        .collect();
        if let Some(ancestry) = doc["lineage"]["ancestry"].as_array() {
            pids.extend(ancestry.iter().filter_map(|a| a["pid"].as_u64()));
        }
        pids
    }

    /// Every executable the alert names: the process, its parent and its ancestry.
    pub fn executables(&self) -> Vec<&str> {
        let doc = &self.doc;
        let mut exes: Vec<&str> = [
            &doc["process"]["executable"],
            &doc["process"]["parent"]["executable"],
        ]
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
        if let Some(ancestry) = doc["lineage"]["ancestry"].as_array() {
            exes.extend(ancestry.iter().filter_map(|a| a["executable"].as_str()));
        }
        exes
    }

    /// One line for a failure message.
    pub fn brief(&self) -> String {
        let file = self.doc["file"]["path"]
            .as_str()
            .map_or_else(String::new, |p| format!(" file={p}"));
        format!(
            "{} {} {:?}{file} root={:?} server={} incident={}",
            self.rule(),
            self.executable(),
            self.args(),
            self.root_pid(),
            self.doc["lineage"]["server"]["executable"],
            self.incident()
        )
    }
}

/// The alerts, one brief line each, for failure messages.
pub fn briefs(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "no alert".into();
    }
    alerts
        .iter()
        .map(Alert::brief)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `alert["process"]["pid"]`: the document's fields, as on a `serde_json::Value`.
impl std::ops::Index<&str> for Alert {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        &self.doc[key]
    }
}

/// The document as one JSON line.
impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.doc)
    }
}
