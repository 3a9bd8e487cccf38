//! server-written-file-executed: a file that a server process (or a process below one) wrote
//! under a web root is later executed. The upload and the execution are one attack even when
//! the execution does not come from the server tree (a dropped binary started by cron), so the
//! alert joins the incident of the writer's server tree.

use std::collections::VecDeque;

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::{
    super::annotation::{Annotation, nearest_server},
    Finding, RuleCommon, RuleId,
};
use crate::{
    config::WrittenExecConfig,
    lineage::{EntityId, Image, Process},
};

/// What alerts and metrics say about this rule.
pub const META: super::RuleMeta = super::RuleMeta {
    id: "server-written-file-executed",
    name: "File written by a server process into a web root was executed",
    description: "A file that a server process (or a process below one) wrote under a web root \
    was executed: a dropped tool or web shell put to use. The alert joins the \
    incident of the server tree that wrote the file.",
    category: &["process"],
    event_type: &["start"],
    server_optional: true,
};

/// Who wrote a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    pub process: EntityId,
    /// The incident root of the writer's server tree.
    pub root: EntityId,
}

pub struct WrittenFiles {
    pub common: RuleCommon,
    max: usize,
    files: FxHashMap<String, Writer>,
    order: VecDeque<String>,
}

impl WrittenFiles {
    pub fn new(config: &WrittenExecConfig) -> Self {
        Self {
            common: RuleCommon {
                enabled: config.enabled,
                severity: config.severity,
                exclusions: Vec::new(),
            },
            max: config.max_tracked,
            files: FxHashMap::default(),
            order: VecDeque::new(),
        }
    }

    pub fn record(&mut self, path: &str, writer: Writer) {
        if !self.common.enabled || self.max == 0 {
            return;
        }
        if let Some(w) = self.files.get_mut(path) {
            *w = writer;
            return;
        }
        while self.files.len() >= self.max {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.files.remove(&old);
        }
        self.files.insert(path.to_owned(), writer);
        self.order.push_back(path.to_owned());
    }

    /// A write under a web root: remembered when a server tree wrote it, forgotten otherwise.
    pub fn on_write(&mut self, writer: &Process<Annotation>, path: &str) {
        match nearest_server(writer) {
            Some(s) => self.record(
                path,
                Writer {
                    process: writer.id,
                    root: s.root,
                },
            ),
            None => self.forget(path),
        }
    }

    /// An exec of a file a server tree wrote: alert in the writer's incident.
    pub fn on_exec(&self, p: &Process<Annotation>, ts_ns: u64) -> Option<Finding<'static>> {
        let (path, writer) = self.executed(&p.image)?;
        Some(Finding {
            file: Some(Cow::Owned(path.to_owned())),
            root: Some(writer.root),
            ..Finding::new(RuleId::ServerWrittenFileExecuted, p.id, ts_ns)
        })
    }

    /// A later write by someone outside a server replaced the content.
    pub fn forget(&mut self, path: &str) {
        if self.files.remove(path).is_some() {
            self.order.retain(|p| p != path);
        }
    }

    /// The tracked file an exec runs: the executed file itself (binaries and `#!` scripts), or
    /// an absolute script path given to an interpreter (`php /var/www/html/up/x.php`). Costs
    /// nothing while no file is tracked, the common case.
    pub fn executed<'a>(&self, image: &'a Image) -> Option<(&'a str, Writer)> {
        if self.files.is_empty() {
            return None;
        }
        std::iter::once(&image.exe)
            .chain(
                image
                    .argv
                    .iter()
                    .skip(1)
                    .take(2)
                    .filter(|a| a.starts_with('/')),
            )
            .find_map(|p| self.files.get(p.as_str()).map(|w| (p.as_str(), *w)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lineage::test_image as image;

    #[test]
    fn remembers_bounded_and_finds_executed_files() {
        let mut w = WrittenFiles::new(&WrittenExecConfig {
            max_tracked: 2,
            ..WrittenExecConfig::default()
        });
        let writer = Writer {
            process: EntityId::new(11, 2),
            root: EntityId::new(10, 1),
        };
        assert_eq!(w.executed(&image("/var/www/html/x", &["x"])), None);
        w.record("/var/www/html/a", writer);
        w.record("/var/www/html/b.php", writer);
        w.record("/var/www/html/c", writer);
        assert_eq!(
            w.executed(&image("/var/www/html/a", &["a"])),
            None,
            "evicted"
        );
        assert_eq!(
            w.executed(&image("/usr/bin/php8.2", &["php", "/var/www/html/b.php"])),
            Some(("/var/www/html/b.php", writer))
        );
        assert_eq!(
            w.executed(&image("/var/www/html/c", &["./c"])),
            Some(("/var/www/html/c", writer))
        );
        w.forget("/var/www/html/c");
        assert_eq!(w.executed(&image("/var/www/html/c", &["./c"])), None);
    }
}
