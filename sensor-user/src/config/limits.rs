//! Bounds on every setting. An absurd value (a `hash_delay_ms` of 2^64-1 that withholds every
//! file alert and hangs shutdown, a list of millions of globs that takes seconds and gigabytes
//! to compile) is refused at load, naming the field, before any of it is used.

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::Config;

/// Largest config file read. The shipped default spells out every setting in 22 KiB.
pub const MAX_CONFIG_BYTES: u64 = 128 << 10;
/// Most entries of any list (globs, regexes, CIDRs, families, sinks, ...) or keys of a table.
pub const MAX_LIST: usize = 1024;
/// Longest string: a glob, regex, path, URL or header value.
pub const MAX_STRING: usize = 4096;

/// The first list or string of `text` over its bound: dotted field, byte offset and message.
pub fn check_shape(text: &str) -> Result<(), (String, usize, String)> {
    let Ok(root) = DeTable::parse(text) else {
        return Ok(()); // Syntax errors are the parser's to report.
    };
    let mut name = String::new();
    table(root.get_ref(), &mut name)
}

fn table(table: &DeTable<'_>, name: &mut String) -> Result<(), (String, usize, String)> {
    if table.len() > MAX_LIST {
        return Err((
            if name.is_empty() {
                "(top level)".into()
            } else {
                name.clone()
            },
            0,
            format!("{} keys; at most {MAX_LIST}", table.len()),
        ));
    }
    for (key, value) in table.iter() {
        let len = name.len();
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(key.get_ref());
        item(value, name)?;
        name.truncate(len);
    }
    Ok(())
}

fn item(value: &Spanned<DeValue<'_>>, name: &mut String) -> Result<(), (String, usize, String)> {
    match value.get_ref() {
        DeValue::Table(inner) => table(inner, name),
        DeValue::Array(items) => {
            if items.len() > MAX_LIST {
                return Err((
                    name.clone(),
                    value.span().start,
                    format!("{} entries; at most {MAX_LIST}", items.len()),
                ));
            }
            for (i, entry) in items.iter().enumerate() {
                let len = name.len();
                name.push_str(&format!("[{i}]"));
                item(entry, name)?;
                name.truncate(len);
            }
            Ok(())
        }
        DeValue::String(s) if s.len() > MAX_STRING => Err((
            name.clone(),
            value.span().start,
            format!("{} bytes long; at most {MAX_STRING}", s.len()),
        )),
        _ => Ok(()),
    }
}

/// A numeric setting and its inclusive range.
struct Range {
    field: &'static str,
    value: u64,
    min: u64,
    max: u64,
    unit: &'static str,
}

/// Every numeric setting's range, checked after parsing. Sinks are checked by their own
/// validation (`output.sinks[N].*`, below).
pub fn check_ranges(config: &Config) -> Result<(), (String, String)> {
    let web = &config.rules.webroot_script_write;
    let outbound = &config.rules.server_outbound_unknown;
    let n = |v: usize| v as u64;
    let ranges = [
        Range {
            field: "capture.ring_buffer_bytes",
            value: u64::from(config.capture.ring_buffer_bytes),
            min: 4096,
            max: 1 << 30,
            unit: "bytes",
        },
        Range {
            field: "prevention.hold_timeout_ms",
            value: config.prevention.hold_timeout_ms,
            min: 50,
            max: 10_000,
            unit: "ms",
        },
        Range {
            field: "lineage.exit_grace_secs",
            value: config.lineage.exit_grace_secs,
            min: 1,
            max: 86_400,
            unit: "s",
        },
        Range {
            field: "lineage.max_processes",
            value: n(config.lineage.max_processes),
            min: 1024,
            max: 10_000_000,
            unit: "",
        },
        Range {
            field: "rules.webroot_script_write.hash_max_bytes",
            value: web.hash_max_bytes,
            min: 0,
            max: 256 << 20,
            unit: "bytes",
        },
        Range {
            field: "rules.webroot_script_write.hash_delay_ms",
            value: web.hash_delay_ms,
            min: 0,
            max: 10_000,
            unit: "ms",
        },
        Range {
            field: "rules.server_outbound_unknown.learning_secs",
            value: outbound.learning_secs,
            min: 0,
            max: 30 * 86_400,
            unit: "s",
        },
        Range {
            field: "rules.server_outbound_unknown.max_learned",
            value: n(outbound.max_learned),
            min: 1,
            max: 1_000_000,
            unit: "",
        },
        Range {
            field: "rules.server_written_file_executed.max_tracked",
            value: n(config.rules.server_written_file_executed.max_tracked),
            min: 1,
            max: 1_000_000,
            unit: "",
        },
        Range {
            field: "incidents.span_secs",
            value: config.incidents.span_secs,
            min: 1,
            max: 7 * 86_400,
            unit: "s",
        },
        Range {
            field: "rate_limit.window_secs",
            value: config.rate_limit.window_secs,
            min: 0,
            max: 86_400,
            unit: "s",
        },
        Range {
            field: "baseline.learning_secs",
            value: config.baseline.learning_secs,
            min: 0,
            max: 365 * 86_400,
            unit: "s",
        },
        Range {
            field: "baseline.max_servers",
            value: n(config.baseline.max_servers),
            min: 1,
            max: 100_000,
            unit: "",
        },
        Range {
            field: "baseline.max_templates_per_server",
            value: n(config.baseline.max_templates_per_server),
            min: 1,
            max: 100_000,
            unit: "",
        },
        Range {
            field: "rate_limit.max_tracked",
            value: n(config.rate_limit.max_tracked),
            min: 1,
            max: 1_000_000,
            unit: "",
        },
        Range {
            field: "evidence.max_bundle_bytes",
            value: config.evidence.max_bundle_bytes,
            min: 4096,
            max: 64 << 20,
            unit: "bytes",
        },
        Range {
            field: "evidence.max_total_bytes",
            value: config.evidence.max_total_bytes,
            min: 0,
            max: 1 << 40,
            unit: "bytes",
        },
        Range {
            field: "evidence.retention_secs",
            value: config.evidence.retention_secs,
            min: 60,
            max: 365 * 86_400,
            unit: "s",
        },
        Range {
            field: "evidence.script_max_bytes",
            value: config.evidence.script_max_bytes,
            min: 0,
            max: 4 << 20,
            unit: "bytes",
        },
        Range {
            field: "evidence.max_fds_per_process",
            value: config.evidence.max_fds_per_process,
            min: 0,
            max: 65_536,
            unit: "",
        },
        Range {
            field: "workload.lookup_wait_ms",
            value: config.workload.lookup_wait_ms,
            min: 0,
            max: 1000,
            unit: "ms",
        },
        Range {
            field: "workload.cache_entries",
            value: n(config.workload.cache_entries),
            min: 16,
            max: 1_000_000,
            unit: "",
        },
    ];
    for r in &ranges {
        out_of(r.field.to_owned(), r.value, r.min, r.max, r.unit)?;
    }
    for (i, sink) in config.output.sinks.iter().enumerate() {
        let field = |name: &str| format!("output.sinks[{i}].{name}");
        out_of(
            field("batch_max_events"),
            n(sink.batch_max_events),
            1,
            100_000,
            "",
        )?;
        out_of(
            field("queue_max_events"),
            n(sink.queue_max_events),
            1,
            1_000_000,
            "",
        )?;
        out_of(field("timeout_secs"), sink.timeout_secs, 1, 300, "s")?;
        out_of(field("retry_max_secs"), sink.retry_max_secs, 1, 3600, "s")?;
        if let Some(max) = sink.spool_max_bytes {
            out_of(field("spool_max_bytes"), max, 0, 1 << 40, "bytes")?;
        }
    }
    Ok(())
}

fn out_of(
    field: String,
    value: u64,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<(), (String, String)> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    Err((
        field,
        format!("{value} is out of range ({min} to {max}{unit})"),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn error(text: &str) -> String {
        Config::parse(text, Path::new("t.toml"))
            .expect_err(text)
            .to_string()
    }

    #[test]
    fn each_numeric_setting_has_a_range_named_in_the_error() {
        for (text, field) in [
            (
                "[rules.webroot_script_write]\nhash_delay_ms = 18446744073709551615\n",
                "rules.webroot_script_write.hash_delay_ms",
            ),
            (
                "[rules.webroot_script_write]\nhash_max_bytes = 1099511627776\n",
                "rules.webroot_script_write.hash_max_bytes",
            ),
            (
                "[lineage]\nexit_grace_secs = 0\n",
                "lineage.exit_grace_secs",
            ),
            (
                "[lineage]\nmax_processes = 100000000\n",
                "lineage.max_processes",
            ),
            ("[incidents]\nspan_secs = 99999999\n", "incidents.span_secs"),
            ("[rate_limit]\nmax_tracked = 0\n", "rate_limit.max_tracked"),
            (
                "[[output.sinks]]\ntype = \"stdout\"\nretry_max_secs = 86400\n",
                "output.sinks[0].retry_max_secs",
            ),
        ] {
            let msg = error(text);
            // The field is on the last line of each case.
            let line = text.lines().count();
            assert!(msg.starts_with(&format!("t.toml:{line}:")), "{msg}");
            assert!(msg.contains(field) && msg.contains("out of range"), "{msg}");
        }
    }

    #[test]
    fn long_lists_and_strings_are_refused_with_their_field_and_line() {
        let many: Vec<String> = (0..=MAX_LIST).map(|i| format!("\"x{i}\"")).collect();
        let text = format!("# c\n[detect]\nnot_servers = [{}]\n", many.join(", "));
        let msg = error(&text);
        assert!(msg.starts_with("t.toml:3:"), "{msg}");
        assert!(
            msg.contains("detect.not_servers") && msg.contains("entries"),
            "{msg}"
        );
        let text = format!(
            "[rules.webroot_script_write]\nextensions = [\"php\", \"{}\"]\n",
            "a".repeat(MAX_STRING + 1)
        );
        let msg = error(&text);
        assert!(
            msg.contains("rules.webroot_script_write.extensions[1]") && msg.contains("bytes"),
            "{msg}"
        );
    }
}
