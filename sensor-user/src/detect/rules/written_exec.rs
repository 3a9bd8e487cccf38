//! server-written-file-executed: a file that a server process (or a process below one) wrote
//! under a web root is later executed. The upload and the execution are one attack even when
//! the execution does not come from the server tree (a dropped binary started by cron), so the
//! alert joins the incident of the writer's server tree.

use std::collections::VecDeque;

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::{
    super::{
        DetectError,
        annotation::{Annotation, nearest_server},
        family::Families,
    },
    Finding, RuleCommon, RuleId,
};
use crate::{
    config::WrittenExecConfig,
    event::{File, FileId, FileOp},
    lineage::{EntityId, Image, Process},
};

impl super::RuleUnit for WrittenFiles {
    /// What alerts and metrics say about this rule.
    const META: super::RuleMeta = super::RuleMeta {
        id: "server-written-file-executed",
        name: "File written by a server process into a web root was executed",
        description: "A file that a server process (or a process below one) wrote under a web root \
        was executed: a dropped tool or web shell put to use. The alert joins the \
        incident of the server tree that wrote the file.",
        category: &["process"],
        event_type: &["start"],
        server_optional: true,
    };

    fn compile(config: &crate::config::Config, _families: &Families) -> Result<Self, DetectError> {
        Ok(Self::new(&config.rules.server_written_file_executed))
    }

    fn common(&self) -> &RuleCommon {
        &self.common
    }

    /// A map lookup, skipped while no server-written file is tracked.
    fn on_exec<'e>(&mut self, cx: &super::ExecContext<'_>, out: &mut Vec<Finding<'e>>) {
        if let Some(f) = self.finding_for_exec(cx.process, cx.ts_ns) {
            out.push(f);
        }
    }

    fn wants_file(&self, _f: &crate::event::File, in_root: bool) -> bool {
        self.common.enabled && in_root
    }

    fn on_file<'e>(&mut self, cx: &super::FileContext<'_, 'e>, _out: &mut Vec<Finding<'e>>) {
        self.on_write(cx.process, cx.file);
    }
}

/// Who wrote a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    pub process: EntityId,
    /// The incident root of the writer's server tree.
    pub root: EntityId,
}

/// Files written by server trees, each map bounded to `max` entries (oldest first out).
pub struct WrittenFiles {
    pub common: RuleCommon,
    max: usize,
    /// By the name written: how the script an interpreter is handed is found (the interpreter
    /// opens it by that name), and the executed file of records that carry no identity.
    files: FxHashMap<String, Writer>,
    order: VecDeque<String>,
    /// By device and inode, with the name written: the executed file itself, under any name it
    /// has since (a hard link, a rename), and never another file put at that name.
    ids: FxHashMap<FileId, (String, Writer)>,
    id_order: VecDeque<FileId>,
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
            ids: FxHashMap::default(),
            id_order: VecDeque::new(),
        }
    }

    pub fn record(&mut self, path: &str, id: Option<FileId>, writer: Writer) {
        if !self.common.enabled || self.max == 0 {
            return;
        }
        bounded_insert(
            &mut self.files,
            &mut self.order,
            self.max,
            path.to_owned(),
            writer,
        );
        if let Some(id) = id {
            bounded_insert(
                &mut self.ids,
                &mut self.id_order,
                self.max,
                id,
                (path.to_owned(), writer),
            );
        }
    }

    /// A write under a web root: remembered when a server tree wrote it. Otherwise the name no
    /// longer stands for what a server wrote, and a file opened for writing by someone outside
    /// a server (its content replaced) is forgotten under any name; a rename or link outside a
    /// server leaves what the server wrote tracked under its other names.
    pub fn on_write(&mut self, writer: &Process<Annotation>, file: &File) {
        match nearest_server(writer) {
            Some(s) => self.record(
                &file.path,
                file.id(),
                Writer {
                    process: writer.id,
                    root: s.root,
                },
            ),
            None => {
                self.forget(&file.path);
                if let (FileOp::Open, Some(id)) = (file.op, file.id()) {
                    self.forget_id(id);
                }
            }
        }
    }

    /// An exec of a file a server tree wrote: alert in the writer's incident.
    pub fn finding_for_exec(
        &self,
        p: &Process<Annotation>,
        ts_ns: u64,
    ) -> Option<Finding<'static>> {
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

    /// Its content was replaced by someone outside a server.
    pub fn forget_id(&mut self, id: FileId) {
        if self.ids.remove(&id).is_some() {
            self.id_order.retain(|i| *i != id);
        }
    }

    /// The tracked file an exec runs: the executed file itself, by its device and inode when
    /// the kernel gave them (by its name only in records made without), or the script an
    /// interpreter is given (`php /var/www/html/up/x.php`, `sh x.sh`, and a `#!` script, which
    /// the kernel runs as `interpreter script`), by name. Any other program naming the file
    /// (`ls -l`, `stat`, `cat`, `chmod +x`, `rm`) does not execute it. A relative path (`./x`,
    /// `php x.php` in the file's directory) matches a tracked path ending in it. Costs nothing
    /// while no file is tracked, the common case.
    pub fn executed<'a>(&'a self, image: &Image) -> Option<(&'a str, Writer)> {
        if self.files.is_empty() && self.ids.is_empty() {
            return None;
        }
        let itself = match image.exe_id {
            Some(id) => self
                .ids
                .get(&id)
                .map(|(p, w)| (p.as_str(), *w))
                .or_else(|| self.shebang_script(image)),
            None => self.lookup(&image.exe),
        };
        itself.or_else(|| {
            let script = interpreter_script(image)?;
            self.lookup(script)
        })
    }

    /// For a `#!` script the kernel's executed file is the interpreter; the script is the path
    /// exec was given, which the kernel hands the interpreter as its operand (after the `#!`
    /// line's own argument, if any), and the interpreter opens it by that name.
    fn shebang_script(&self, image: &Image) -> Option<(&str, Writer)> {
        let operand = image.argv.iter().skip(1).take(2).any(|a| *a == image.exe);
        operand.then(|| self.lookup(&image.exe)).flatten()
    }

    fn lookup(&self, path: &str) -> Option<(&str, Writer)> {
        if path.starts_with('/') {
            return self
                .files
                .get_key_value(path)
                .map(|(p, w)| (p.as_str(), *w));
        }
        let tail = path.trim_start_matches("./");
        if tail.is_empty() || tail.split('/').any(|c| c == "..") {
            return None;
        }
        self.files
            .iter()
            .find(|(p, _)| p.strip_suffix(tail).is_some_and(|head| head.ends_with('/')))
            .map(|(p, w)| (p.as_str(), *w))
    }
}

/// Inserts or replaces `key`, first dropping the oldest keys while the map is full.
fn bounded_insert<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut FxHashMap<K, V>,
    order: &mut VecDeque<K>,
    max: usize,
    key: K,
    value: V,
) {
    if let Some(v) = map.get_mut(&key) {
        *v = value;
        return;
    }
    while map.len() >= max {
        let Some(old) = order.pop_front() else {
            break;
        };
        map.remove(&old);
    }
    order.push_back(key.clone());
    map.insert(key, value);
}

/// How an interpreter's command line names the code it runs.
struct Syntax {
    /// The code comes from the command line (`sh -c`, `php -r`): no script file.
    command: &'static [&'static str],
    /// Options whose value is the next argument (`php -d x=1`).
    value: &'static [&'static str],
    /// Options whose value is the script file (`php -f x.php`).
    file: &'static [&'static str],
}

/// The interpreter family of an executable's file name (`php8.2` is php), if any.
fn syntax(name: &str) -> Option<Syntax> {
    // Versioned names: php8.2, python3.11, perl5.36, lua5.4.
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let shell = Syntax {
        command: &["-c"],
        value: &["-o", "+o"],
        file: &[],
    };
    Some(match base {
        "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh" | "mksh" | "csh" | "tcsh" | "fish" => shell,
        "php" | "php-cgi" => Syntax {
            command: &["-r", "-R", "-B", "-E"],
            value: &["-d", "-c", "-z", "-t"],
            file: &["-f"],
        },
        "python" => Syntax {
            command: &["-c", "-m"],
            value: &["-W", "-X", "-Q"],
            file: &[],
        },
        "perl" => Syntax {
            command: &["-e", "-E"],
            value: &["-I"],
            file: &[],
        },
        "ruby" => Syntax {
            command: &["-e"],
            value: &["-I", "-r", "-C"],
            file: &[],
        },
        "node" | "nodejs" => Syntax {
            command: &["-e", "--eval", "-p", "--print"],
            value: &["-r", "--require"],
            file: &[],
        },
        "lua" => Syntax {
            command: &["-e"],
            value: &["-l"],
            file: &[],
        },
        _ => return None,
    })
}

/// The script operand of an interpreter's command line: the first argument that is not an
/// option (or the value of a script-file option), unless an option says the code comes from the
/// command line. `busybox sh x` counts.
fn interpreter_script(image: &Image) -> Option<&str> {
    let name = image.exe.rsplit('/').next().unwrap_or(&image.exe);
    let mut args = image.argv.iter().skip(1).map(String::as_str).peekable();
    let syntax = if name == "busybox" {
        let applet = args.next()?;
        syntax(applet)?
    } else {
        syntax(name)?
    };
    let shell = syntax.command == ["-c"];
    while let Some(arg) = args.next() {
        // A shell's -c may come in a cluster (-xc, -ec).
        let clustered_c =
            shell && arg.starts_with('-') && !arg.starts_with("--") && arg.contains('c');
        if syntax.command.contains(&arg) || clustered_c {
            return None;
        }
        if syntax.file.contains(&arg) {
            return args.next();
        }
        if syntax.value.contains(&arg) {
            args.next();
            continue;
        }
        if arg == "--" {
            return args.next();
        }
        if !arg.starts_with('-') && !arg.starts_with('+') {
            return Some(arg);
        }
    }
    None
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
        w.record("/var/www/html/a", None, writer);
        w.record("/var/www/html/b.php", None, writer);
        w.record("/var/www/html/c", None, writer);
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

    #[test]
    fn only_executing_the_file_counts_not_naming_it() {
        let mut w = WrittenFiles::new(&WrittenExecConfig::default());
        let writer = Writer {
            process: EntityId::new(11, 2),
            root: EntityId::new(10, 1),
        };
        let file = "/var/www/html/up/x.php";
        w.record(file, None, writer);
        for (exe, argv) in [
            ("/usr/bin/ls", &["ls", "-l", file][..]),
            ("/usr/bin/stat", &["stat", file]),
            ("/usr/bin/cat", &["cat", file]),
            ("/usr/bin/chmod", &["chmod", "+x", file]),
            ("/usr/bin/rm", &["rm", "-f", file]),
            ("/usr/bin/php8.2", &["php", "-r", "echo 1;", file]),
            ("/bin/sh", &["sh", "-c", "cat x.php", file]),
            ("/bin/bash", &["bash", "-xc", "ls", file]),
        ] {
            assert_eq!(w.executed(&image(exe, argv)), None, "{argv:?}");
        }
        for (exe, argv) in [
            ("/usr/bin/php8.2", &["php", file][..]),
            ("/usr/bin/php8.2", &["php", "-d", "x=1", file]),
            ("/bin/sh", &["sh", file]),
            ("/bin/dash", &["sh", "-x", "x.php"]),
            ("/usr/bin/python3.11", &["python3", "up/x.php"]),
            ("/usr/bin/php", &["php", "-f", file]),
            ("/bin/busybox", &["sh", "sh", file]),
            ("./x.php", &["/bin/sh", "./x.php"]),
            (file, &["/bin/sh", file]),
        ] {
            assert_eq!(
                w.executed(&image(exe, argv)).map(|(p, _)| p),
                Some(file),
                "{exe} {argv:?}"
            );
        }
        assert_eq!(w.executed(&image("/bin/sh", &["sh", "../x.php"])), None);
        assert_eq!(w.executed(&image("/bin/sh", &["sh", "y/x.php"])), None);
    }

    #[test]
    fn the_executed_file_is_matched_by_identity_not_by_name() {
        let mut w = WrittenFiles::new(&WrittenExecConfig::default());
        let writer = Writer {
            process: EntityId::new(11, 2),
            root: EntityId::new(10, 1),
        };
        let file = "/var/www/html/up/x";
        let written = FileId { dev: 2049, ino: 77 };
        let other = FileId { dev: 2049, ino: 78 };
        w.record(file, Some(written), writer);
        let run = |exe: &str, argv: &[&str], id: FileId| Image {
            exe_id: Some(id),
            ..image(exe, argv)
        };
        // A hard link (or a rename) elsewhere: the same file.
        assert_eq!(
            w.executed(&run("/tmp/.cache/y", &["y"], written)),
            Some((file, writer))
        );
        assert_eq!(
            w.executed(&run(file, &["./x"], written)),
            Some((file, writer))
        );
        // Another file put at the written name, or a copy: not what the server wrote.
        assert_eq!(w.executed(&run(file, &["./x"], other)), None);
        assert_eq!(w.executed(&run("/tmp/copy", &["copy"], other)), None);
        // The same device number with another inode, the same inode on another device.
        let elsewhere = FileId { dev: 2050, ino: 77 };
        assert_eq!(w.executed(&run(file, &[file], elsewhere)), None);
        // A script handed to an interpreter (or run through its `#!`, which makes the
        // interpreter the executed file) is still found by the name it is opened by.
        assert_eq!(
            w.executed(&run("/usr/bin/dash", &["/bin/sh", "./x"], other)),
            Some((file, writer))
        );
        // A `#!` script run as the program: the kernel's file is its interpreter, and the
        // interpreter is handed the script by the name exec was given.
        assert_eq!(
            w.executed(&run("./x", &["/bin/sh", "./x"], other)),
            Some((file, writer))
        );
        assert_eq!(
            w.executed(&run("./x", &["/usr/bin/env", "python3", "./x"], other)),
            Some((file, writer))
        );
        // Rewritten by someone outside a server: forgotten under every name.
        w.forget_id(written);
        assert_eq!(w.executed(&run("/tmp/.cache/y", &["y"], written)), None);
        // Records without identities keep matching by name.
        assert_eq!(
            w.executed(&image(file, &["./x"])).map(|(p, _)| p),
            Some(file)
        );
    }
}
