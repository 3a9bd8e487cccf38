//! Alerts of one incident leave in the order the engine made them. The first alert of an
//! incident waits for its evidence bundle; a later alert of the same incident (the recon tool
//! the shell ran) needs no bundle and would overtake it, so it waits behind it.

use std::collections::{HashMap, VecDeque};

use crate::alert::Alert;

#[derive(Default)]
pub struct IncidentOrder {
    /// Incidents with alerts away (writing a bundle, waiting for a container's names): how
    /// many, and the alerts made after them, in order.
    held: HashMap<String, (usize, Vec<Alert>)>,
    /// Alerts let go when their incident had nothing away any more, oldest first.
    released: VecDeque<Alert>,
}

impl IncidentOrder {
    /// An alert of `incident` is away until [`IncidentOrder::arrived`] is called for it.
    pub fn away(&mut self, incident: &str) {
        self.held.entry(incident.to_owned()).or_default().0 += 1;
    }

    /// The alert back when its incident has nothing away; otherwise it waits behind it.
    pub fn pass(&mut self, alert: Alert) -> Option<Alert> {
        match self.held.get_mut(&alert.lineage.incident.id) {
            Some((_, waiting)) => {
                waiting.push(alert);
                None
            }
            None => Some(alert),
        }
    }

    /// An alert of `incident` that was away is back: once none is away, the alerts that
    /// waited go next.
    pub fn arrived(&mut self, incident: &str) {
        if let Some((away, _)) = self.held.get_mut(incident) {
            *away = away.saturating_sub(1);
            if *away == 0
                && let Some((_, waiting)) = self.held.remove(incident)
            {
                self.released.extend(waiting);
            }
        }
    }

    pub fn next_released(&mut self) -> Option<Alert> {
        self.released.pop_front()
    }

    /// At shutdown: everything still waiting, released first.
    pub fn drain(&mut self) -> Vec<Alert> {
        let mut all: Vec<Alert> = self.released.drain(..).collect();
        all.extend(self.held.drain().flat_map(|(_, (_, waiting))| waiting));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Engine, HostInfo, test_support::*};

    fn alerts() -> Vec<Alert> {
        let mut config = crate::config::Config::default();
        config.rate_limit.window_secs = 0;
        let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
        let mut out = Vec::new();
        engine.process(exec(1, 10, 1, "/usr/sbin/nginx", &["nginx"]), &mut out);
        engine.process(fork(2, 11, 10), &mut out);
        engine.process(exec(3, 11, 10, "/bin/sh", &["sh", "-c", "id"]), &mut out);
        engine.process(exec(4, 11, 10, "/usr/bin/id", &["id"]), &mut out);
        engine.process(exec(5, 20, 1, "/usr/sbin/apache2", &["apache2"]), &mut out);
        engine.process(fork(6, 21, 20), &mut out);
        engine.process(exec(7, 21, 20, "/bin/sh", &["sh", "-c", "id"]), &mut out);
        out
    }

    #[test]
    fn a_later_alert_of_the_incident_waits_for_the_one_away_and_others_do_not() {
        let all = alerts();
        let [shell, recon, other, ..] = all.as_slice() else {
            panic!("want three alerts, got {all:#?}")
        };
        assert_eq!(shell.lineage.incident, recon.lineage.incident);
        assert_ne!(shell.lineage.incident, other.lineage.incident);
        let incident = shell.lineage.incident.id.as_str();
        let mut order = IncidentOrder::default();
        order.away(incident);
        assert!(order.pass(recon.clone()).is_none(), "recon waits");
        assert_eq!(
            order.pass(other.clone()).as_ref(),
            Some(other),
            "another incident"
        );
        assert!(order.next_released().is_none());
        // The shell back from its bundle goes on to wait for its container's names.
        order.away(incident);
        order.arrived(incident);
        assert!(order.next_released().is_none(), "still one away");
        order.arrived(incident);
        assert_eq!(order.next_released().as_ref(), Some(recon));
        assert!(order.next_released().is_none());
        assert_eq!(
            order.pass(recon.clone()).as_ref(),
            Some(recon),
            "nothing away"
        );
        order.away(incident);
        assert!(order.pass(recon.clone()).is_none());
        assert_eq!(order.drain().len(), 1, "nothing is lost at shutdown");
    }
}
