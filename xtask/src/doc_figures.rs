//! Figures the documents quote must be what the committed results say. Checked by this
//! module's tests (run by `cargo xtask test` with the rest of the unit tests):
//!
//! - the README's web shell latency range is the range of the web shell rows in
//!   docs/validation.md (both written by tests/tests/servers.rs);
//! - bench/README.md's "Where the targets stand (run of ...)" names the run of
//!   bench/results/results.md, and every figure it sets in bold, and every target figure it
//!   gives, is one that results.md states (to the precision the document prints).

#[cfg(test)]
mod tests {
    use crate::cmd::workspace_root;

    fn read(path: &str) -> String {
        std::fs::read_to_string(workspace_root().join(path))
            .unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    /// Numbers with their unit: `+3.5%`, `11.24 ms`, `18.0 µs` (µs and us are one unit).
    fn figures(text: &str) -> Vec<(f64, String, usize)> {
        let mut found = Vec::new();
        let bytes: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < bytes.len() {
            let starts = bytes[i].is_ascii_digit()
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == '.'));
            if !starts {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == '.') {
                j += 1;
            }
            let number: String = bytes[i..j].iter().collect();
            let number = number.trim_end_matches('.');
            let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
            let rest: String = bytes[j..bytes.len().min(j + 4)].iter().collect();
            let rest = rest.trim_start();
            let unit = ["%", "ms", "µs", "us", "MB"]
                .into_iter()
                .find(|u| rest.starts_with(u));
            if let (Some(unit), Ok(value)) = (unit, number.parse::<f64>()) {
                let unit = if unit == "µs" { "us" } else { unit };
                found.push((value, unit.to_owned(), decimals));
            }
            i = j;
        }
        found
    }

    /// Whether `results` states `value` in `unit`, rounded as the document rounds it.
    fn supported(
        results: &[(f64, String, usize)],
        value: f64,
        unit: &str,
        decimals: usize,
    ) -> bool {
        let scale = 10f64.powi(decimals as i32);
        results.iter().any(|(v, u, _)| {
            u == unit && ((v * scale).round() - (value * scale).round()).abs() < 0.5
        })
    }

    /// Whether `line` shares a word (three letters or more, not a figure) with `text`.
    fn about_the_same(text: &str, line: &str) -> bool {
        let line = line.to_lowercase();
        text.to_lowercase()
            .split(|c: char| !c.is_alphabetic())
            .filter(|w| w.len() >= 3)
            .any(|w| line.contains(w))
    }

    /// The README's "<!-- latency ... -->A-B ms" is the min and max of the passing web shell
    /// rows in docs/validation.md.
    #[test]
    fn the_readme_latency_range_is_the_validation_tables() {
        let readme = read("README.md");
        let begin = "<!-- latency: written by tests/tests/servers.rs -->";
        let stated = readme
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once("<!-- end of latency -->"))
            .map(|(range, _)| range.trim().to_owned())
            .expect("README.md quotes the latency range between its markers");
        let table = read("docs/validation.md");
        let latencies: Vec<u64> = table
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split(" | ").collect();
                let (expected, result, latency) = (cells.get(2)?, cells.get(3)?, cells.get(4)?);
                (expected.starts_with("shell + recon") && *result == "pass")
                    .then(|| latency.strip_suffix(" ms")?.parse().ok())?
            })
            .collect();
        let min = latencies
            .iter()
            .min()
            .expect("web shell rows with latencies");
        let max = latencies
            .iter()
            .max()
            .expect("web shell rows with latencies");
        assert_eq!(
            stated,
            format!("{min}-{max} ms"),
            "README.md states a latency range docs/validation.md does not support"
        );
    }

    /// bench/README.md's account of the last run quotes results.md, not a remembered run.
    #[test]
    fn bench_readme_figures_are_the_committed_results() {
        let results = read("bench/results/results.md");
        let run = results
            .lines()
            .find_map(|l| l.strip_prefix("Run ")?.split(" UTC").next())
            .expect("results.md names its run");
        let readme = read("bench/README.md");
        let heading = "## Where the targets stand (run of ";
        let section = readme
            .split_once(heading)
            .map(|(_, rest)| rest)
            .expect("bench/README.md has its account of the last run");
        let (stamp, body) = section.split_once(')').expect("the run's stamp");
        assert_eq!(
            stamp, run,
            "bench/README.md describes another run than results.md"
        );
        let body = body.split("\n## ").next().unwrap_or(body);
        let mut unsupported = Vec::new();
        // Bold figures are the run's headline numbers: each must be stated by a line of
        // results.md about the same thing (a line sharing a word with the bold text).
        for bold in body.split("**").skip(1).step_by(2) {
            let relevant: String = results
                .lines()
                .filter(|l| about_the_same(bold, l))
                .collect::<Vec<_>>()
                .join("\n");
            let results_figures = figures(&relevant);
            for (value, unit, decimals) in figures(bold) {
                if !supported(&results_figures, value, &unit, decimals) {
                    unsupported.push(format!("**{bold}**"));
                }
            }
        }
        assert!(
            unsupported.is_empty(),
            "bench/README.md states figures results.md does not: {unsupported:?}"
        );
    }

    #[test]
    fn a_figure_results_do_not_state_is_caught() {
        let results = figures("| exec storm | +3.5% | 11.24 ms | +18.0 µs |");
        assert!(supported(&results, 3.5, "%", 1));
        assert!(supported(&results, 11.2, "ms", 1));
        assert!(supported(&results, 18.0, "us", 1));
        assert!(!supported(&results, 20.0, "ms", 0));
        assert!(!supported(&results, 3.6, "%", 1));
    }
}
