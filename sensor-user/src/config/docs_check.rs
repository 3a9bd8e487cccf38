//! Keeps docs/config.md in line with the code: every key the config accepts is found by asking
//! the parser itself (an unknown key's error lists the section's fields, `deny_unknown_fields`
//! being on everywhere), and each must have its row in the page, under its section's heading.
//! A list of tables without a heading of its own (`interpreters`, `tools`, `allow`,
//! `deployers`) is documented in its key's row, which must name each of its fields.

use std::collections::{BTreeMap, BTreeSet};

use super::Config;

const PROBE: &str = "zz_probe_key";

/// How a key's value is shaped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Table,
    ArrayOfTables,
}

/// The fields of the section whose headers (`[a]`, `[[a.b]]`, ...) are `headers`, if the parser
/// says it is a section at all.
fn fields(headers: &str) -> Option<Vec<String>> {
    let text = format!("{headers}{PROBE} = 1\n");
    let err = toml::from_str::<Config>(&text).err()?;
    let message = err.message();
    let expected = message
        .strip_prefix(&format!("unknown field `{PROBE}`, expected "))
        .or_else(|| {
            message
                .contains(&format!("unknown field `{PROBE}`"))
                .then_some("")
        })?;
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Every section the config accepts: dotted path -> its fields.
fn sections() -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    // (dotted path, the headers that open it)
    let mut todo = vec![(String::new(), String::new())];
    while let Some((path, headers)) = todo.pop() {
        let Some(keys) = fields(&headers) else {
            continue;
        };
        for key in &keys {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            for shape in [Shape::Table, Shape::ArrayOfTables] {
                let open = match shape {
                    Shape::Table => format!("{headers}[{child}]\n"),
                    Shape::ArrayOfTables => format!("{headers}[[{child}]]\n"),
                };
                if fields(&open).is_some() {
                    todo.push((child.clone(), open));
                    break;
                }
            }
        }
        found.insert(path, keys);
    }
    found
}

/// docs/config.md: section path under each heading (`## [lineage]`, `### [[output.sinks]]`)
/// -> key -> its row.
fn documented() -> BTreeMap<String, BTreeMap<String, String>> {
    let page = include_str!("../../../docs/config.md");
    let mut doc: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = None;
    for line in page.lines() {
        if line.starts_with('#') {
            current = line
                .split(['[', ']'])
                .find(|part| !part.is_empty() && !part.starts_with('#') && !part.contains(' '))
                .filter(|_| line.contains('['))
                .map(str::to_owned);
            if let Some(section) = &current {
                doc.entry(section.clone()).or_default();
            }
        } else if let (Some(section), Some(rest)) = (&current, line.strip_prefix("| `"))
            && let Some((key, _)) = rest.split_once("` |")
        {
            doc.entry(section.clone())
                .or_default()
                .insert(key.to_owned(), line.to_owned());
        }
    }
    doc
}

/// Exclusions are one section in the page for every rule.
fn normalise(path: &str) -> String {
    match path.split('.').collect::<Vec<_>>()[..] {
        ["rules", _, "exclude"] => "rules.RULE.exclude".into(),
        _ => path.into(),
    }
}

/// For `rules.X.exclude` and the tables below it, the dotted prefix of their keys' rows.
fn exclusion_prefix(path: &str) -> Option<String> {
    let rest = path.strip_prefix("rules.")?.split_once('.')?.1;
    let below = rest.strip_prefix("exclude")?;
    if below.is_empty() {
        return Some(String::new());
    }
    below.strip_prefix('.').map(|b| format!("{b}."))
}

fn parent_and_key(path: &str) -> (&str, &str) {
    path.rsplit_once('.').unwrap_or(("", path))
}

/// What docs/config.md lacks; empty when every key is documented.
fn missing(
    sections: &BTreeMap<String, Vec<String>>,
    doc: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<String> {
    let documented_fields: Vec<BTreeSet<&String>> = doc
        .keys()
        .filter_map(|d| sections.iter().find(|(p, _)| normalise(p) == *d))
        .map(|(_, f)| f.iter().collect())
        .collect();
    let mut missing = Vec::new();
    for (path, keys) in sections {
        // An exclusion's tables (`container.image`, ...) are dotted keys of its one table.
        if let Some(prefix) = exclusion_prefix(path) {
            let rows = doc.get("rules.RULE.exclude");
            for field in keys {
                let child = format!("{path}.{field}");
                let key = format!("{prefix}{field}");
                if !sections.contains_key(&child) && !rows.is_some_and(|r| r.contains_key(&key)) {
                    missing.push(child);
                }
            }
            continue;
        }
        let heading = doc.get(&normalise(path));
        let (parent, key) = parent_and_key(path);
        let row = doc.get(&normalise(parent)).and_then(|rows| rows.get(key));
        if heading.is_none() && doc.contains_key(&normalise(parent)) && row.is_none() {
            missing.push(path.clone());
        }
        let same_as_documented = documented_fields
            .iter()
            .any(|d| *d == keys.iter().collect::<BTreeSet<_>>());
        for field in keys {
            let child = if path.is_empty() {
                field.clone()
            } else {
                format!("{path}.{field}")
            };
            // A section is judged by its own fields (which need its row or heading).
            let ok = doc.contains_key(&normalise(&child))
                || sections.contains_key(&child)
                || heading.is_some_and(|rows| rows.contains_key(field))
                || (heading.is_none()
                    && (same_as_documented
                        || row.is_some_and(|r| r.contains(&format!("`{field}`")))));
            if !ok {
                missing.push(child);
            }
        }
    }
    missing
}

#[test]
fn every_config_key_is_in_docs_config_md() {
    let sections = sections();
    // The probe must find the nested sections, or the check below checks nothing.
    for path in [
        "capture",
        "detect.families",
        "rules.server_spawned_shell.interpreters",
        "rules.server_spawned_shell.exclude",
        "output.sinks",
    ] {
        assert!(
            sections.contains_key(path),
            "{path} not found: {sections:?}"
        );
    }
    let missing = missing(&sections, &documented());
    assert!(
        missing.is_empty(),
        "keys without a row in docs/config.md: {missing:?}"
    );
}

#[test]
fn a_key_missing_from_the_page_is_found() {
    let sections = sections();
    let mut doc = documented();
    if let Some(rows) = doc.get_mut("rules.server_outbound_unknown") {
        rows.remove("max_learned");
    }
    if let Some(row) = doc
        .get_mut("rules.webroot_script_write")
        .and_then(|rows| rows.get_mut("deployers"))
    {
        *row = row.replace("`users`", "users");
    }
    assert_eq!(
        missing(&sections, &doc),
        [
            "rules.server_outbound_unknown.max_learned",
            "rules.webroot_script_write.deployers.users"
        ]
    );
}
