//! Compiled matchers shared by families, rules and exclusions: executable globs and regexes,
//! each compiled once from the config with the config field named in any error.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use regex::{Regex, RegexSet};

use super::DetectError;
use crate::lineage::Image;

/// A set of globs on an executable: a glob containing `/` matches the whole path, one without
/// matches the file name only (so `nginx` matches /usr/sbin/nginx).
#[derive(Debug, Clone)]
pub struct ExeMatcher {
    by_name: GlobSet,
    name_owner: Vec<usize>,
    by_path: GlobSet,
    path_owner: Vec<usize>,
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
        self.by_name.is_match(name) || (!self.by_path.is_empty() && self.by_path.is_match(exe))
    }

    /// Owners of the matching patterns, appended to `out` (which the caller reuses).
    pub fn owners_into(
        &self,
        exe: &str,
        name: &str,
        scratch: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) {
        scratch.clear();
        self.by_name.matches_into(name, scratch);
        out.extend(scratch.iter().filter_map(|&i| self.name_owner.get(i)));
        if !self.by_path.is_empty() {
            scratch.clear();
            self.by_path.matches_into(exe, scratch);
            out.extend(scratch.iter().filter_map(|&i| self.path_owner.get(i)));
        }
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
