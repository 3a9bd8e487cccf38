//! The outbound rule's learned destinations: during an optional learning window, destinations
//! that servers connect to become allowed; afterwards only new ones alert. The set can persist in
//! a JSON state file across restarts.

use std::{collections::BTreeSet, net::IpAddr, path::Path};

use serde::{Deserialize, Serialize};

use super::DetectError;

#[derive(Debug, Default)]
pub struct Learned {
    /// Wall clock end of learning (ns since the epoch); None until the first event starts it.
    until_wall_ns: Option<u64>,
    window_ns: u64,
    max: usize,
    set: BTreeSet<(String, IpAddr, u16)>,
    dirty: bool,
}

/// The state file, as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    learning_until_wall_ns: u64,
    destinations: Vec<LearnedDestination>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnedDestination {
    family: String,
    ip: IpAddr,
    port: u16,
}

impl Learned {
    pub fn new(learning_secs: u64, max: usize) -> Self {
        Self {
            window_ns: learning_secs.saturating_mul(1_000_000_000),
            max,
            ..Self::default()
        }
    }

    pub fn enabled(&self) -> bool {
        self.window_ns > 0
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the destination is allowed by learning; learns it while the window is open.
    pub fn check(&mut self, family: &str, ip: IpAddr, port: u16, wall_ns: u64) -> bool {
        if !self.enabled() {
            return false;
        }
        let until = *self
            .until_wall_ns
            .get_or_insert(wall_ns.saturating_add(self.window_ns));
        let key = (family.to_owned(), ip, port);
        if self.set.contains(&key) {
            return true;
        }
        if wall_ns < until {
            if self.set.len() < self.max {
                self.set.insert(key);
                self.dirty = true;
            }
            return true;
        }
        false
    }

    /// Loads a state file; a missing file starts learning afresh.
    pub fn load(&mut self, path: &Path) -> Result<(), DetectError> {
        // Not through a link: the sensor reads it as root.
        let text = match crate::state_file::read_no_follow(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(DetectError::State {
                    path: path.to_owned(),
                    source: source.into(),
                });
            }
        };
        let state: StateFile = serde_json::from_slice(&text).map_err(|e| DetectError::State {
            path: path.to_owned(),
            source: e.into(),
        })?;
        self.until_wall_ns = Some(state.learning_until_wall_ns);
        self.set = state
            .destinations
            .into_iter()
            .take(self.max)
            .map(|d| (d.family, d.ip, d.port))
            .collect();
        Ok(())
    }

    /// Writes the state file (atomically, through a temporary file) if anything changed.
    pub fn save(&mut self, path: &Path) -> Result<(), DetectError> {
        let Some(until) = self.until_wall_ns else {
            return Ok(());
        };
        if !self.dirty && path.exists() {
            return Ok(());
        }
        let state = StateFile {
            version: 1,
            learning_until_wall_ns: until,
            destinations: self
                .set
                .iter()
                .map(|(family, ip, port)| LearnedDestination {
                    family: family.clone(),
                    ip: *ip,
                    port: *port,
                })
                .collect(),
        };
        let err = |source: std::io::Error| DetectError::State {
            path: path.to_owned(),
            source: source.into(),
        };
        let json = serde_json::to_vec_pretty(&state).map_err(|e| DetectError::State {
            path: path.to_owned(),
            source: e.into(),
        })?;
        crate::state_file::replace(path, &json).map_err(err)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_in_window_then_alerts_on_new_and_persists() {
        let s = 1_000_000_000;
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        let other: IpAddr = "203.0.113.9".parse().expect("ip");
        let mut l = Learned::new(100, 10);
        assert!(l.check("php", ip, 443, 1_000 * s));
        assert!(l.check("php", ip, 443, 1_200 * s), "learned");
        assert!(
            !l.check("php", other, 443, 1_200 * s),
            "window over: new destination"
        );
        assert!(!l.check("nginx", ip, 443, 1_200 * s), "learned per family");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("learned.json");
        l.save(&path).expect("save");
        let mut back = Learned::new(100, 10);
        back.load(&path).expect("load");
        assert!(back.check("php", ip, 443, 5_000 * s));
        assert!(
            !back.check("php", other, 443, 5_000 * s),
            "window end persisted"
        );
        std::fs::write(&path, "{not json").expect("write");
        let err = Learned::new(100, 10)
            .load(&path)
            .expect_err("corrupt")
            .to_string();
        assert!(err.contains("learned.json"), "{err}");
    }
}
