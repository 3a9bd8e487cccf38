//! Shell payload analysis: the script of `sh -c SCRIPT` split into its commands, and what in
//! them always alerts below a server ([`Indicator`]). Words come from the `shlex` tokenizer; the
//! shell's operators (pipes, `;`, `&&`, `||`, `&`, newlines, subshell parentheses) and
//! redirections are found first by [`scan`], outside quotes and command substitutions, since a
//! word tokenizer knows nothing of them.

mod indicators;
mod scan;

use std::borrow::Cow;

pub use indicators::{Indicator, exec_indicators, payload_indicators};

/// How a command is joined to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Joint {
    #[default]
    First,
    /// `|` or `|&`: reads the previous command's output.
    Pipe,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `;`, a newline, `&` or a subshell boundary.
    Then,
}

/// A redirection: its operator (with any file descriptor, `2>`, `>&`, `<>`) and its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub op: String,
    pub target: String,
}

/// One simple command of a payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    pub joint: Joint,
    /// Its words as the shell would pass them, leading `NAME=value` assignments left out.
    pub words: Vec<String>,
    pub redirects: Vec<Redirect>,
}

impl Command {
    /// The program the command runs, past launchers that run their arguments as a command
    /// (`exec`, `nohup`, `env NAME=v`, `timeout 10`, `busybox wget`): what it really starts.
    pub fn program(&self) -> Option<&str> {
        self.program_index()
            .and_then(|i| self.words.get(i))
            .map(String::as_str)
    }

    /// The words after [`Command::program`].
    pub fn args(&self) -> &[String] {
        self.program_index()
            .and_then(|i| self.words.get(i + 1..))
            .unwrap_or(&[])
    }

    fn program_index(&self) -> Option<usize> {
        let mut i = 0;
        while let Some(w) = self.words.get(i) {
            match base_name(w) {
                "exec" | "nohup" | "command" | "builtin" | "setsid" | "time" | "nice"
                | "ionice" | "stdbuf" | "env" | "timeout" | "busybox" => {
                    i += 1;
                    // Their own options and operands: flags, assignments, a duration.
                    while let Some(next) = self.words.get(i) {
                        let operand = next.starts_with('-')
                            || is_assignment(next)
                            || (base_name(w) == "timeout"
                                && next.starts_with(|c: char| c.is_ascii_digit()));
                        if !operand {
                            break;
                        }
                        i += 1;
                    }
                }
                _ => return Some(i),
            }
        }
        None
    }

    /// The command as one line: its words, then its redirections.
    pub fn display(&self) -> String {
        let mut out = self.words.join(" ");
        for r in &self.redirects {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&r.op);
            out.push_str(&r.target);
        }
        out
    }
}

/// A parsed payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    pub commands: Vec<Command>,
    /// Every quote was closed: the words are those the shell would see.
    pub complete: bool,
}

impl Payload {
    pub fn parse(script: &str) -> Self {
        scan::parse(script)
    }
}

/// The script a shell runs from its command line: the argument after `-c` (alone or in a
/// cluster such as `-lc`), past an end-of-options `--` (glibc 2.38+ runs `system()` and
/// `popen()` as `sh -c -- CMD`).
pub fn script_of(argv: &[String]) -> Option<&str> {
    let mut saw_c = false;
    let mut args = argv.iter().skip(1);
    for arg in args.by_ref() {
        if arg == "--" {
            break;
        }
        let Some(flags) = arg.strip_prefix('-').or_else(|| arg.strip_prefix('+')) else {
            // The first operand: the script when -c came before it.
            return saw_c.then_some(arg.as_str());
        };
        if !flags.starts_with('-') && flags.contains('c') {
            saw_c = true;
        }
    }
    if saw_c {
        args.next().map(String::as_str)
    } else {
        None
    }
}

/// argv with the `--` of `sh -c -- CMD` left out, so that it reads as `sh -c CMD` does to
/// exclusions and rules: the two mean exactly the same to the shell.
pub fn without_end_of_options(argv: &[String]) -> Cow<'_, [String]> {
    match argv {
        [sh, c, dashdash, rest @ ..] if dashdash == "--" && is_c_cluster(c) => {
            let mut v = Vec::with_capacity(argv.len() - 1);
            v.push(sh.clone());
            v.push(c.clone());
            v.extend(rest.iter().cloned());
            Cow::Owned(v)
        }
        _ => Cow::Borrowed(argv),
    }
}

fn is_c_cluster(arg: &str) -> bool {
    arg.strip_prefix('-').is_some_and(|f| {
        !f.is_empty() && f.contains('c') && f.chars().all(|c| c.is_ascii_alphabetic())
    })
}

pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// A process's shell payload (when it is a shell) and what in it always alerts: the same facts
/// for the rule that decides whether the baseline may judge it and for the alert that lists them.
pub fn facts(exe: &str, argv: &[String], is_shell: bool) -> (Option<Payload>, Vec<Indicator>) {
    let mut indicators = exec_indicators(exe, argv, is_shell);
    let payload = script_of(argv).filter(|_| is_shell).map(Payload::parse);
    if let Some(payload) = &payload {
        indicators.extend(payload_indicators(payload));
        indicators.sort_unstable();
        indicators.dedup();
    }
    (payload, indicators)
}

#[cfg(test)]
mod tests;
