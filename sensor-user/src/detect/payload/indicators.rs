//! What always alerts below a server, decided from the exec event alone (its path and argv) and
//! from the commands of a shell payload: no file is read and no later event is awaited, so a
//! dropped binary that runs once and deletes itself is judged as surely as one that stays.
//! Sources: Sigma proc_creation_lnx_susp_pipe_shell, proc_creation_lnx_base64_execution,
//! proc_creation_lnx_curl_wget_exec_tmp, proc_creation_lnx_susp_exec_from_dev_shm,
//! proc_creation_lnx_susp_execution_tmp_folder, lnx_shell_susp_rev_shells, lnx_susp_dev_tcp;
//! Elastic persistence_webserver_suspicious_command_execution (pipes into shells, decoding,
//! /dev/tcp, `chmod +x`) and persistence_webserver_suspicious_child_execution (executables under
//! /tmp, /var/tmp, /dev/shm, /run).

use super::{Command, Joint, Payload, base_name, script_of};

/// Why a process below a server alerts whatever exclusions of habit say; shown in
/// `lineage.shell.indicators`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Indicator {
    /// A shell started interactive (`sh -i`), or a payload starting one.
    InteractiveShell,
    /// A download (curl, wget, …) piped into a shell or interpreter, or substituted into one.
    DownloadToShell,
    /// A decoder's output (base64 -d, xxd -r, openssl enc -d) piped into a shell or interpreter.
    DecodeToShell,
    /// A redirection to or from /dev/tcp or /dev/udp: bash's own network sockets.
    DevTcp,
    /// A file made executable and run by the same payload.
    ChmodAndRun,
    /// A binary executed from a world-writable temporary directory.
    TempExec,
    /// A binary executed from memory (memfd) or through a file descriptor (fexecve).
    Fileless,
}

impl Indicator {
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::InteractiveShell => "interactive-shell",
            Indicator::DownloadToShell => "download-to-shell",
            Indicator::DecodeToShell => "decode-to-shell",
            Indicator::DevTcp => "dev-tcp",
            Indicator::ChmodAndRun => "chmod-and-run",
            Indicator::TempExec => "temp-exec",
            Indicator::Fileless => "fileless",
        }
    }
}

/// World-writable places a dropped binary is run from (Sigma, Elastic above; /run/user is each
/// user's tmpfs).
const TEMP_DIRS: &[&str] = &["/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/"];

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "csh", "tcsh", "fish",
    "busybox",
];
const INTERPRETERS: &[&str] = &["python", "perl", "ruby", "php", "node", "nodejs", "lua"];
const DOWNLOADERS: &[&str] = &["curl", "wget", "fetch", "tftp", "lwp-download", "aria2c"];

/// Where the executed file is: under a temporary directory, or not a file at all.
pub fn exec_indicators(exe: &str, argv: &[String], is_shell: bool) -> Vec<Indicator> {
    let mut out = Vec::new();
    if TEMP_DIRS.iter().any(|d| exe.starts_with(d)) {
        out.push(Indicator::TempExec);
    }
    if is_fileless(exe) {
        out.push(Indicator::Fileless);
    }
    if is_shell && has_interactive_flag(argv.get(1..).unwrap_or(&[])) {
        out.push(Indicator::InteractiveShell);
    }
    out
}

/// execveat(fd, "", AT_EMPTY_PATH) reaches the kernel as /dev/fd/N; fexecve() on older
/// kernels goes through /proc/self/fd/N; a memfd's name is `memfd:NAME`.
fn is_fileless(exe: &str) -> bool {
    exe.starts_with("/dev/fd/")
        || exe.contains("memfd:")
        || exe
            .strip_prefix("/proc/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, rest)| rest.starts_with("fd/"))
}

/// `-i` alone or in a cluster of a shell's options, before the script or command operand.
fn has_interactive_flag(args: &[String]) -> bool {
    for a in args {
        if a == "--" || !a.starts_with('-') {
            return false;
        }
        // Long options (`--login`, `--norc`) come before the short ones too.
        if a.starts_with("--") {
            continue;
        }
        if a[1..].contains('i') && a[1..].chars().all(|c| c.is_ascii_alphabetic()) {
            return true;
        }
    }
    false
}

/// What in a payload's commands always alerts, each indicator once, in a fixed order.
pub fn payload_indicators(payload: &Payload) -> Vec<Indicator> {
    let mut out = Vec::new();
    collect(payload, 0, &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

/// How deep `sh -c "bash -c '…'"` nesting is followed; each level is shorter than the last, so
/// this only bounds the work on a crafted payload.
const MAX_NESTING: usize = 4;

fn collect(payload: &Payload, depth: usize, out: &mut Vec<Indicator>) {
    let commands = &payload.commands;
    for (i, c) in commands.iter().enumerate() {
        let program = c.program().map(base_name).unwrap_or("");
        if is_shell(program) && has_interactive_flag(c.args()) {
            out.push(Indicator::InteractiveShell);
        }
        // Only the shell itself opens /dev/tcp, in a redirection; as a word it is a file name.
        let touches_dev_tcp = c
            .redirects
            .iter()
            .any(|r| r.target.starts_with("/dev/tcp/") || r.target.starts_with("/dev/udp/"));
        if touches_dev_tcp {
            out.push(Indicator::DevTcp);
        }
        if is_shell(program) || is_interpreter(program) {
            for feeder in pipeline_before(commands, i) {
                if is_downloader(feeder) {
                    out.push(Indicator::DownloadToShell);
                }
                if is_decoder(feeder) {
                    out.push(Indicator::DecodeToShell);
                }
            }
            if substitutes_download(c) {
                out.push(Indicator::DownloadToShell);
            }
        }
        if let Some(path) = c.program()
            && path.contains('/')
            && TEMP_DIRS.iter().any(|d| path.starts_with(d))
        {
            out.push(Indicator::TempExec);
        }
        let later = commands.get(i + 1..).unwrap_or(&[]);
        if made_executable(c).any(|f| later.iter().any(|l| runs(l, f))) {
            out.push(Indicator::ChmodAndRun);
        }
        // A shell's own -c payload is judged like the outer one.
        if is_shell(program) && depth < MAX_NESTING {
            let argv: Vec<String> = c
                .program()
                .into_iter()
                .map(str::to_owned)
                .chain(c.args().iter().cloned())
                .collect();
            if let Some(inner) = script_of(&argv) {
                collect(&Payload::parse(inner), depth + 1, out);
            }
        }
    }
}

fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name)
}

/// python3.11, perl5.36, php8.2 and the like count as their interpreter.
fn is_interpreter(name: &str) -> bool {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETERS.contains(&stem)
}

/// The commands piped into command `i`, nearest first.
fn pipeline_before(commands: &[Command], i: usize) -> impl Iterator<Item = &Command> {
    let mut j = i;
    std::iter::from_fn(move || {
        let joined = commands.get(j).is_some_and(|c| c.joint == Joint::Pipe);
        if !joined || j == 0 {
            return None;
        }
        j -= 1;
        commands.get(j)
    })
}

fn is_downloader(c: &Command) -> bool {
    c.program()
        .is_some_and(|p| DOWNLOADERS.contains(&base_name(p)))
}

fn is_decoder(c: &Command) -> bool {
    let args = c.args();
    let has = |flags: &[&str]| args.iter().any(|a| flags.contains(&a.as_str()));
    match c.program().map(base_name) {
        Some("base64" | "base32" | "basenc") => {
            has(&["-d", "--decode", "-di", "-D"])
                || args
                    .iter()
                    .any(|a| a.starts_with('-') && !a.starts_with("--") && a[1..].contains('d'))
        }
        Some("xxd") => has(&["-r", "-revert"]),
        Some("openssl") => has(&["-d", "-base64"]) || has(&["base64"]) && has(&["-d"]),
        Some("uudecode" | "gunzip" | "zcat") => true,
        _ => false,
    }
}

/// A shell or interpreter given a download through a command substitution, `sh -c "$(curl
/// …)"`, or a process substitution, `bash <(wget -O- …)`.
fn substitutes_download(c: &Command) -> bool {
    c.words
        .iter()
        .chain(c.redirects.iter().map(|r| &r.target))
        .any(|w| {
            inner_scripts(w).any(|inner| Payload::parse(inner).commands.iter().any(is_downloader))
        })
}

/// The text inside each `$(…)`, `<(…)` and backquote pair of a word.
fn inner_scripts(word: &str) -> impl Iterator<Item = &str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        let open = ["$(", "<(", "`"]
            .iter()
            .filter_map(|o| rest.find(o).map(|at| (at, *o)))
            .min()?;
        let body = &rest[open.0 + open.1.len()..];
        let close = if open.1 == "`" {
            body.find('`')
        } else {
            body.rfind(')')
        };
        let inner = close.map_or(body, |end| &body[..end]);
        rest = close.map_or("", |end| &body[end + 1..]);
        Some(inner)
    })
}

/// The files a `chmod` command gives execute permission.
fn made_executable(c: &Command) -> impl Iterator<Item = &str> {
    let is_chmod = c.program().map(base_name) == Some("chmod");
    let args = if is_chmod { c.args() } else { &[] };
    let mut operands = args
        .iter()
        .filter(|a| !a.starts_with('-') || a.starts_with("-x"));
    let grants = operands.next().is_some_and(|mode| grants_execute(mode));
    operands.filter(move |_| grants).map(String::as_str)
}

/// `+x`, `u+x`, `a+rwx`, `=x` or an octal mode with an execute bit.
fn grants_execute(mode: &str) -> bool {
    if mode.chars().all(|c| c.is_digit(8)) {
        return mode
            .chars()
            .any(|d| d.to_digit(8).is_some_and(|v| v & 1 == 1));
    }
    mode.split(',')
        .any(|clause| clause.contains(['+', '=']) && clause.contains('x'))
}

/// Whether a command runs the file `f` (by the same path, as `./name` for a relative one, or as
/// the script of a shell).
fn runs(c: &Command, f: &str) -> bool {
    let same = |p: &str| {
        p == f
            || p.strip_prefix("./") == Some(f)
            || f.strip_prefix("./") == Some(p)
            || (p.contains('/')
                && f.contains('/')
                && base_name(p) == base_name(f)
                && p.ends_with(f))
    };
    match c.program() {
        Some(p) if same(p) => true,
        Some(p) if is_shell(base_name(p)) || is_interpreter(base_name(p)) => c
            .args()
            .iter()
            .find(|a| !a.starts_with('-'))
            .is_some_and(|a| same(a)),
        _ => false,
    }
}
