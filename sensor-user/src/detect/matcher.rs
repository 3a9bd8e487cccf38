//! Compiled matchers shared by families, rules and exclusions: executable globs and regexes,
//! each compiled once from the config with the config field named in any error.

use std::cell::RefCell;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use regex::{Regex, RegexSet};
use rustc_hash::FxHashMap;

use super::DetectError;
use crate::lineage::Image;

/// A set of globs on an executable: a glob containing `/` matches the whole path, one without
/// matches the file name only (so `nginx` matches /usr/sbin/nginx).
#[derive(Debug)]
pub struct ExeMatcher {
    by_name: GlobSet,
    name_owner: Vec<usize>,
    by_path: GlobSet,
    path_owner: Vec<usize>,
    /// Matches of recently seen names and paths. Every exec asks several matchers about the
    /// same few hundred executables a host runs over and over, and a glob set (candidate
    /// parsing, then every strategy, a regex over the path among them) costs many times a
    /// lookup. Behind `&self` since matching is a query; an engine and its matchers are used by
    /// one thread at a time.
    memo: RefCell<Memo>,
}

impl Clone for ExeMatcher {
    fn clone(&self) -> Self {
        Self {
            by_name: self.by_name.clone(),
            name_owner: self.name_owner.clone(),
            by_path: self.by_path.clone(),
            path_owner: self.path_owner.clone(),
            memo: RefCell::default(),
        }
    }
}

/// Matching pattern indices by name and by path.
#[derive(Debug, Default)]
struct Memo {
    names: FxHashMap<Box<str>, Box<[usize]>>,
    paths: FxHashMap<Box<str>, Box<[usize]>>,
}

/// Bounds on each memo map: names and paths are attacker-chosen, so unusually long ones are not
/// kept and a full map starts over (it is only a speed-up).
const MEMO_MAX_ENTRIES: usize = 1024;
const MEMO_MAX_NAME: usize = 128;
const MEMO_MAX_PATH: usize = 256;

#[derive(Clone, Copy)]
enum Part {
    Name,
    Path,
}

impl ExeMatcher {
    /// `patterns[i]` is owned by `owners[i]`; [`Self::owners_into`] reports owners.
    pub fn new_owned(patterns: &[(usize, &str, String)]) -> Result<Self, DetectError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        let mut name_owner = Vec::new();
        let mut path_owner = Vec::new();
        for (owner, pattern, field) in patterns {
            let glob = compile_glob(pattern, field)?;
            if pattern.contains('/') {
                paths.add(glob);
                path_owner.push(*owner);
            } else {
                names.add(glob);
                name_owner.push(*owner);
            }
        }
        Ok(Self {
            by_name: build_set(names)?,
            name_owner,
            by_path: build_set(paths)?,
            path_owner,
            memo: RefCell::default(),
        })
    }

    /// Every pattern its own owner; `field` names the config list.
    pub fn new(patterns: &[String], field: &str) -> Result<Self, DetectError> {
        let owned: Vec<(usize, &str, String)> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.as_str(), format!("{field}[{i}]")))
            .collect();
        Self::new_owned(&owned)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.by_path.is_empty()
    }

    pub fn is_match(&self, exe: &str, name: &str) -> bool {
        let mut scratch = Vec::new();
        self.with_matches(Part::Name, name, &mut scratch, |m| !m.is_empty())
            || self.with_matches(Part::Path, exe, &mut scratch, |m| !m.is_empty())
    }

    /// Owners of the matching patterns, appended to `out` (which the caller reuses).
    pub fn owners_into(
        &self,
        exe: &str,
        name: &str,
        scratch: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) {
        self.with_matches(Part::Name, name, scratch, |m| {
            out.extend(m.iter().filter_map(|&i| self.name_owner.get(i)));
        });
        self.with_matches(Part::Path, exe, scratch, |m| {
            out.extend(m.iter().filter_map(|&i| self.path_owner.get(i)));
        });
    }

    /// Calls `f` with the indices of `part`'s patterns that match `text`, from the memo when it
    /// has them. `scratch` holds them when they cannot be kept.
    fn with_matches<R>(
        &self,
        part: Part,
        text: &str,
        scratch: &mut Vec<usize>,
        f: impl FnOnce(&[usize]) -> R,
    ) -> R {
        let (set, max_len) = match part {
            Part::Name => (&self.by_name, MEMO_MAX_NAME),
            Part::Path => (&self.by_path, MEMO_MAX_PATH),
        };
        if set.is_empty() {
            return f(&[]);
        }
        let mut memo = match self.memo.try_borrow_mut() {
            Ok(memo) if text.len() <= max_len => memo,
            _ => {
                scratch.clear();
                set.matches_into(text, scratch);
                return f(scratch);
            }
        };
        let map = match part {
            Part::Name => &mut memo.names,
            Part::Path => &mut memo.paths,
        };
        if let Some(found) = map.get(text) {
            return f(found);
        }
        if map.len() >= MEMO_MAX_ENTRIES {
            map.clear();
        }
        let found = map
            .entry(text.into())
            .or_insert_with(|| set.matches(text).into_boxed_slice());
        f(found)
    }
}

fn compile_glob(pattern: &str, field: &str) -> Result<Glob, DetectError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|err| DetectError::invalid(field, format!("bad glob {pattern:?}: {err}")))
}

fn build_set(builder: GlobSetBuilder) -> Result<GlobSet, DetectError> {
    builder
        .build()
        .map_err(|err| DetectError::invalid("glob set", err.to_string()))
}

/// One glob on an executable, same rule as [`ExeMatcher`].
pub fn single_exe(pattern: &str, field: &str) -> Result<ExeMatcher, DetectError> {
    ExeMatcher::new_owned(&[(0, pattern, field.to_owned())])
}

pub fn regex(pattern: &str, field: &str) -> Result<Regex, DetectError> {
    Regex::new(pattern)
        .map_err(|err| DetectError::invalid(field, format!("bad regular expression: {err}")))
}

/// A regex that must match the whole text.
pub fn anchored_regex(pattern: &str, field: &str) -> Result<Regex, DetectError> {
    regex(pattern, field)?;
    regex(&format!("^(?:{pattern})$"), field)
}

pub fn regex_set(patterns: &[String], field: &str) -> Result<RegexSet, DetectError> {
    for (i, p) in patterns.iter().enumerate() {
        regex(p, &format!("{field}[{i}]"))?;
    }
    RegexSet::new(patterns).map_err(|err| DetectError::invalid(field, err.to_string()))
}

/// The name a process goes by: the executed file's name, except for busybox, whose applet is
/// argv[0] (`sh` linked to busybox) or argv[1] (`busybox sh -c …`).
pub fn effective_name(image: &Image) -> &str {
    let name = image.name();
    if name != "busybox" {
        return name;
    }
    let arg0 = image
        .argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a));
    match arg0 {
        Some(a) if a != "busybox" && !a.is_empty() => a,
        _ => image.argv.get(1).map_or(name, String::as_str),
    }
}

/// Absolute path globs of the file rules: a path matches when it is a match or lies below one.
/// `*` stays within one component (`/home/*/public_html` does not match
/// `/home/a/b/public_html`).
#[derive(Debug, Clone)]
pub struct PathMatcher {
    set: GlobSet,
}

impl PathMatcher {
    pub fn new(patterns: &[String], field: &str) -> Result<Self, DetectError> {
        let mut builder = GlobSetBuilder::new();
        for (i, pattern) in patterns.iter().enumerate() {
            let field = format!("{field}[{i}]");
            if !pattern.starts_with('/') {
                return Err(DetectError::invalid(
                    &field,
                    format!("{pattern:?} is not an absolute path"),
                ));
            }
            let base = pattern.trim_end_matches('/');
            builder.add(compile_glob(base, &field)?);
            builder.add(compile_glob(&format!("{base}/**"), &field)?);
        }
        Ok(Self {
            set: build_set(builder)?,
        })
    }

    pub fn is_match(&self, path: &str) -> bool {
        !self.set.is_empty() && self.set.is_match(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(m: &ExeMatcher, exe: &str, name: &str) -> Vec<usize> {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        m.owners_into(exe, name, &mut scratch, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn remembered_matches_are_the_glob_sets_answers() {
        let patterns = [
            (0, "nginx", "a".to_owned()),
            (1, "php-fpm*", "b".to_owned()),
            (2, "/usr/lib/postgresql/*/bin/postgres", "c".to_owned()),
            (3, "post*", "d".to_owned()),
        ];
        let m = ExeMatcher::new_owned(&patterns).expect("globs");
        let long = format!("/{}/nginx", "d".repeat(MEMO_MAX_PATH));
        let cases = [
            ("/usr/sbin/nginx", "nginx", vec![0]),
            ("/usr/sbin/php-fpm8.2", "php-fpm8.2", vec![1]),
            (
                "/usr/lib/postgresql/16/bin/postgres",
                "postgres",
                vec![2, 3],
            ),
            ("/opt/postgres", "postgres", vec![3]),
            ("/bin/busybox", "nginx", vec![0]),
            ("/usr/sbin/nginx", "busybox", vec![]),
            (long.as_str(), "nginx", vec![0]),
            ("", "", vec![]),
        ];
        for round in 0..3 {
            for (exe, name, want) in &cases {
                assert_eq!(&owners(&m, exe, name), want, "round {round}: {exe} {name}");
                assert_eq!(m.is_match(exe, name), !want.is_empty(), "{exe} {name}");
                let fresh = m.clone();
                assert_eq!(&owners(&fresh, exe, name), want, "{exe} {name}");
            }
        }
        assert!(!m.memo.borrow().paths.contains_key(long.as_str()));
    }

    #[test]
    fn memo_stays_bounded() {
        let m = ExeMatcher::new(&["sh".to_owned(), "/bin/*".to_owned()], "f").expect("globs");
        for i in 0..MEMO_MAX_ENTRIES * 2 + 3 {
            let name = format!("x{i}");
            assert!(!m.is_match(&format!("/usr/{name}"), &name));
        }
        assert!(m.is_match("/bin/x", "x") && m.is_match("/usr/sh", "sh"));
        let memo = m.memo.borrow();
        assert!(memo.names.len() <= MEMO_MAX_ENTRIES && memo.paths.len() <= MEMO_MAX_ENTRIES);
    }
}
