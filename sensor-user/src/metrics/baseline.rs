//! The learned baseline's metrics: what it held back, and how far learning has come.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct BaselineMetrics {
    baselined: IntCounterVec,
    servers: IntGaugeVec,
    templates: IntGauge,
}

impl BaselineMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let baselined = IntCounterVec::new(
            Opts::new(
                "alerts_baselined_total",
                "Alerts not emitted because the server's learned baseline knows the command \
                 (its learning window is over and the template was seen during it), by rule.",
            ),
            &["rule"],
        )?;
        let servers = IntGaugeVec::new(
            Opts::new(
                "baseline_servers",
                "Servers in the learned baseline, by state: `learning` (window still open: \
                 their shells alert as before) or `learned`.",
            ),
            &["state"],
        )?;
        let templates = IntGauge::new(
            "baseline_templates",
            "Command templates in the learned baseline, over all servers.",
        )?;
        registry.register(Box::new(baselined.clone()))?;
        registry.register(Box::new(servers.clone()))?;
        registry.register(Box::new(templates.clone()))?;
        for state in ["learning", "learned"] {
            servers.with_label_values(&[state]);
        }
        baselined.with_label_values(&["server-spawned-shell"]);
        Ok(Self {
            baselined,
            servers,
            templates,
        })
    }

    pub fn alert_baselined(&self, rule: &str) {
        self.baselined.with_label_values(&[rule]).inc();
    }

    pub fn alerts_baselined(&self, rule: &str) -> u64 {
        self.baselined.with_label_values(&[rule]).get()
    }

    /// Servers being learned, servers learned, templates.
    pub fn set_sizes(&self, learning: usize, learned: usize, templates: usize) {
        let g = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.servers
            .with_label_values(&["learning"])
            .set(g(learning));
        self.servers.with_label_values(&["learned"]).set(g(learned));
        self.templates.set(g(templates));
    }
}
