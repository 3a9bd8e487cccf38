//! Command templates: an argv with what changes from run to run (temporary names, numbers, hex
//! and uuids, dates, paths below upload and cache directories) replaced by placeholders, so
//! that an application's helper is one template however many files it has handled. Every
//! argument is split at whitespace and normalised word by word (an `sh -c` payload included:
//! this is not a shell parser, and need not be one, since a word the template keeps literal
//! stays literal). Only runs of plain file-name characters are ever collapsed; every shell
//! metacharacter is kept, so a payload that chains, pipes or substitutes never takes the
//! template of the plain helper it imitates.

use crate::lineage::Image;

/// How a template is made, from `baseline.volatile_dirs`.
#[derive(Debug, Clone, Default)]
pub struct Normaliser {
    /// Absolute prefixes without a trailing slash (`/tmp`).
    prefixes: Vec<String>,
    /// Directory names that make what follows them data (`uploads`).
    names: Vec<String>,
}

/// Characters of file names and plain words; anything else is kept as it is.
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '~' | '%' | '@' | '/')
}

impl Normaliser {
    pub fn new(volatile_dirs: &[String]) -> Self {
        let (prefixes, names) = volatile_dirs
            .iter()
            .map(|d| d.trim_end_matches('/'))
            .filter(|d| !d.is_empty())
            .partition::<Vec<&str>, _>(|d| d.starts_with('/'));
        Self {
            prefixes: prefixes.into_iter().map(str::to_owned).collect(),
            names: names.into_iter().map(str::to_owned).collect(),
        }
    }

    /// Whether `path` lies below one of the absolute volatile prefixes.
    pub fn below_prefix(&self, path: &str) -> bool {
        self.prefixes.iter().any(|p| {
            path.strip_prefix(p.as_str())
                .is_some_and(|tail| tail.starts_with('/'))
        })
    }

    /// The template of a process: `[executable] argv...`, each argument normalised, those of
    /// several words quoted. `sh -c -- CMD` (glibc 2.38's system()) is `sh -c CMD`.
    pub fn template(&self, image: &Image) -> String {
        let mut out = String::with_capacity(image.exe.len() + 64);
        out.push('[');
        out.push_str(&image.exe);
        out.push(']');
        let mut after_c = false;
        for (i, arg) in image.argv.iter().enumerate() {
            if after_c && arg == "--" {
                after_c = false;
                continue;
            }
            after_c = i > 0 && arg == "-c";
            out.push(' ');
            self.push_arg(arg, &mut out);
        }
        if image.argv_truncated {
            out.push_str(" <truncated>");
        }
        out
    }

    /// An argument, or a server's application (jar, script) alone.
    pub fn push_arg(&self, arg: &str, out: &mut String) {
        let mut words = arg.split_ascii_whitespace().peekable();
        let single = words.clone().count() == 1 && !arg.contains('\'');
        if !single {
            out.push('\'');
        }
        while let Some(word) = words.next() {
            self.push_word(word, out);
            if words.peek().is_some() {
                out.push(' ');
            }
        }
        if !single {
            out.push('\'');
        }
    }

    fn push_word(&self, word: &str, out: &mut String) {
        let mut rest = word;
        while !rest.is_empty() {
            let end = rest.find(|c: char| !plain(c)).unwrap_or(rest.len());
            let (piece, after) = rest.split_at(end);
            if piece.contains('/') {
                self.push_path(piece, out);
            } else {
                push_plain(piece, out);
            }
            // The metacharacter (or any other character) as it is.
            let mut chars = after.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
    }

    fn push_path(&self, path: &str, out: &mut String) {
        for prefix in &self.prefixes {
            if let Some(tail) = path.strip_prefix(prefix.as_str())
                && (tail.is_empty() || tail.starts_with('/'))
            {
                out.push_str(prefix);
                if tail.len() > 1 {
                    out.push_str("/<path>");
                } else {
                    out.push_str(tail);
                }
                return;
            }
        }
        let mut components = path.split('/').peekable();
        while let Some(c) = components.next() {
            push_plain(c, out);
            let Some(next) = components.peek() else { break };
            out.push('/');
            if self.names.iter().any(|n| n == c) && !next.is_empty() {
                out.push_str("<path>");
                return;
            }
        }
    }
}

/// A word without slashes: uuids, then each run of letters and digits between separators.
fn push_plain(piece: &str, out: &mut String) {
    let bytes = piece.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if is_uuid(&bytes[i..]) && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        if !bytes[i].is_ascii_alphanumeric() {
            out.push(char::from(bytes[i]));
            i += 1;
            continue;
        }
        let end = bytes[i..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map_or(bytes.len(), |n| i + n);
        push_run(&piece[i..end], out);
        i = end;
    }
}

/// 8-4-4-4-12 hex digits, not followed by more of them.
fn is_uuid(b: &[u8]) -> bool {
    b.len() >= 36
        && b[..36].iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
        && b.get(36).is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// A run of ASCII letters and digits: all digits is a number; a long mix of hex digits is a
/// hash or id; a long mix of letters and digits that switches often is a temporary name
/// (mkstemp, PHP's upload names); otherwise the letters stay and digit runs become `<n>`
/// (versions, sizes: `php8`, `800x600`).
fn push_run(run: &str, out: &mut String) {
    let b = run.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if digits == b.len() {
        out.push_str("<n>");
        return;
    }
    let switches = b
        .windows(2)
        .filter(|w| w[0].is_ascii_digit() != w[1].is_ascii_digit())
        .count();
    if digits > 0 && b.len() >= 8 && b.iter().all(u8::is_ascii_hexdigit) {
        out.push_str("<hex>");
        return;
    }
    if digits > 0 && b.len() >= 6 && switches >= 3 {
        out.push_str("<id>");
        return;
    }
    let mut in_digits = false;
    for &c in b {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str("<n>");
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(char::from(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BaselineConfig;
    use crate::lineage::test_image as image;

    fn t(exe: &str, argv: &[&str]) -> String {
        Normaliser::new(&BaselineConfig::default().volatile_dirs).template(&image(exe, argv))
    }

    #[test]
    fn temporary_names_numbers_ids_and_dates_do_not_make_a_new_template() {
        let pairs = [
            (
                &[
                    "sh",
                    "-c",
                    "convert /tmp/phpA1b2C3 -resize 800x600 /tmp/thumb_17.png",
                ][..],
                &[
                    "sh",
                    "-c",
                    "convert /tmp/phpZz9Qq1 -resize 120x90 /tmp/thumb_4242.png",
                ][..],
            ),
            (
                &[
                    "sh",
                    "-c",
                    "clamdscan --no-summary /var/www/app/storage/uploads/2024/05/a.pdf",
                ],
                &[
                    "sh",
                    "-c",
                    "clamdscan --no-summary /var/www/app/storage/uploads/x/y/z.docx",
                ],
            ),
            (
                &["sh", "-c", "gzip -9 report-2024-05-01.csv"],
                &["sh", "-c", "gzip -9 report-2026-12-31.csv"],
            ),
            (
                &[
                    "sh",
                    "-c",
                    "tar -xzf job-550e8400-e29b-41d4-a716-446655440000.tgz",
                ],
                &[
                    "sh",
                    "-c",
                    "tar -xzf job-123e4567-e89b-12d3-a456-426614174000.tgz",
                ],
            ),
            (
                &[
                    "sh",
                    "-c",
                    "git cat-file -p d41d8cd98f00b204e9800998ecf8427e",
                ],
                &[
                    "sh",
                    "-c",
                    "git cat-file -p 9e107d9d372bb6826bd81d3542a419d6",
                ],
            ),
            (
                &["sh", "-c", "unoconv -f pdf doc_aB3xY9kQ.docx"],
                &["sh", "-c", "unoconv -f pdf doc_Qw7eR2tZ.docx"],
            ),
            (
                &["sh", "-c", "pdftotext '/var/cache/app/f 1.pdf' -"],
                &["sh", "-c", "pdftotext '/var/cache/app/other 22.pdf' -"],
            ),
        ];
        for (a, b) in pairs {
            assert_eq!(t("/bin/sh", a), t("/bin/sh", b), "{a:?} vs {b:?}");
        }
        assert_eq!(
            t(
                "/bin/sh",
                &["sh", "-c", "convert /tmp/phpA1b2C3 -resize 800x600 x.png"]
            ),
            "[/bin/sh] sh -c 'convert /tmp/<path> -resize <n>x<n> x.png'"
        );
    }

    #[test]
    fn what_the_command_does_stays_in_the_template() {
        let base = t("/bin/sh", &["sh", "-c", "convert /tmp/a.png /tmp/b.png"]);
        for other in [
            "convert /tmp/a.png /tmp/b.png; id",
            "convert /tmp/a.png /tmp/b.png|sh",
            "convert /tmp/a.png $(id)",
            "convert /tmp/a.png `id`",
            "convert /tmp/a.png > /var/www/html/x.php",
            "curl /tmp/a.png /tmp/b.png",
            "convert /tmp/a.png /tmp/b.png &",
        ] {
            assert_ne!(base, t("/bin/sh", &["sh", "-c", other]), "{other}");
        }
        // Not a path below /tmp: the name stays.
        assert_ne!(
            t("/bin/sh", &["sh", "-c", "php /var/www/html/cron.php"]),
            t("/bin/sh", &["sh", "-c", "php /var/www/html/shell.php"])
        );
        assert_ne!(
            t("/bin/sh", &["sh", "-c", "x"]),
            t("/bin/bash", &["sh", "-c", "x"]),
            "the executable is part of it"
        );
        // A prefix is a whole component: /tmpfoo is not below /tmp.
        assert_eq!(
            t("/bin/sh", &["sh", "-c", "ls /tmpfoo/a"]),
            "[/bin/sh] sh -c 'ls /tmpfoo/a'"
        );
    }

    #[test]
    fn glibc_sh_c_double_dash_is_sh_c() {
        assert_eq!(
            t("/bin/sh", &["sh", "-c", "--", "/usr/sbin/sendmail -t -i"]),
            t("/bin/sh", &["sh", "-c", "/usr/sbin/sendmail -t -i"])
        );
        let mut truncated = image("/bin/sh", &["sh", "-c", "x"]);
        truncated.argv_truncated = true;
        let n = Normaliser::new(&["/tmp".into()]);
        assert_eq!(n.template(&truncated), "[/bin/sh] sh -c x <truncated>");
    }

    #[test]
    fn runs_and_placeholders() {
        let mut out = String::new();
        for w in [
            "12345",
            "php8",
            "base64",
            "deadbeef01",
            "tmpA1b2C3",
            "abc",
            "v2.1.0",
        ] {
            push_plain(w, &mut out);
            out.push(' ');
        }
        assert_eq!(out, "<n> php<n> base<n> <hex> <id> abc v<n>.<n>.<n> ");
    }
}
