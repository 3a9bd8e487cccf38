//! The overhead chart: one group of horizontal bars per workload, one bar per monitor.
//!
//! Written by hand: plotters' SVG backend needs a font backend (font-kit or ab_glyph plus a
//! font file) just to lay out axis labels, far more than a dozen rectangles and labels need.

use std::fmt::Write as _;

use super::{monitor::MonitorKind, results::WorkloadResult};

const MONITORS: [(MonitorKind, &str); 3] = [
    (MonitorKind::Sensor, "#1b9e77"),
    (MonitorKind::Auditd, "#d95f02"),
    (MonitorKind::Bpftrace, "#7570b3"),
];
const WIDTH: f64 = 760.0;
const LABEL: f64 = 170.0;
const BAR: f64 = 14.0;
const GROUP_GAP: f64 = 16.0;
const TOP: f64 = 56.0;

pub fn overhead_svg(workloads: &[WorkloadResult]) -> String {
    let value = |w: &WorkloadResult, kind| {
        w.summary
            .iter()
            .find(|s| s.monitor == kind)
            .and_then(|s| s.overhead_pct)
    };
    let all: Vec<f64> = workloads
        .iter()
        .flat_map(|w| MONITORS.iter().filter_map(move |&(k, _)| value(w, k)))
        .collect();
    let lo = all.iter().copied().fold(0.0_f64, f64::min);
    let hi = all.iter().copied().fold(5.0_f64, f64::max);
    let plot = WIDTH - LABEL - 90.0;
    let x = |v: f64| LABEL + (v - lo) / (hi - lo) * plot;
    let group = MONITORS.len() as f64 * BAR + GROUP_GAP;
    let height = TOP + workloads.len() as f64 * group + 30.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="15" font-weight="bold">Overhead against no monitor (median, %; lower is better)</text>"#
    );
    for (i, (kind, colour)) in MONITORS.iter().enumerate() {
        let lx = LABEL + i as f64 * 130.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="30" width="12" height="12" fill="{colour}"/><text x="{}" y="41">{}</text>"#,
            lx + 16.0,
            kind.name()
        );
    }
    // The 0% line and the 5% target.
    for (v, dash, label) in [(0.0, "", "0%"), (5.0, r#" stroke-dasharray="4 3""#, "5%")] {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1:.1}" stroke="#888"{dash}/><text x="{0:.1}" y="{2:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
            x(v),
            height - 24.0,
            height - 10.0
        );
    }
    for (g, w) in workloads.iter().enumerate() {
        let y0 = TOP + g as f64 * group;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL - 8.0,
            y0 + MONITORS.len() as f64 * BAR / 2.0 + 4.0,
            escape(&w.name)
        );
        for (i, &(kind, colour)) in MONITORS.iter().enumerate() {
            let Some(v) = value(w, kind) else { continue };
            let y = y0 + i as f64 * BAR;
            let (a, b) = (x(0.0).min(x(v)), x(0.0).max(x(v)));
            let _ = writeln!(
                svg,
                r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="11">{v:+.1}%</text>"#,
                (b - a).max(1.0),
                BAR - 2.0,
                b + 4.0,
                y + BAR - 4.0
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
