//! Server families compiled from `[detect]`: which executed image is a server of which family.

use regex::RegexSet;
use rustc_hash::FxHashMap;

use super::{
    DetectError,
    matcher::{ExeMatcher, effective_name, regex_set},
};
use crate::{
    config::{DetectConfig, FamilyConfig, Technique},
    lineage::Image,
};

pub type FamilyId = u16;

pub struct Families {
    names: Vec<String>,
    techniques: Vec<Technique>,
    executables: ExeMatcher,
    interpreters: ExeMatcher,
    argv: Vec<Option<RegexSet>>,
    not_servers: ExeMatcher,
    transparent: ExeMatcher,
    /// `listen_ports` of every family: port -> family.
    listen_ports: FxHashMap<u16, FamilyId>,
}

impl Families {
    pub fn new(config: &DetectConfig) -> Result<Self, DetectError> {
        // The defaults (or their replacement) first, then the additions: config order is the
        // order of preference when several families match.
        let all: Vec<(String, &FamilyConfig)> = config
            .families
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("detect.families[{i}]"), f))
            .chain(
                config
                    .extra_families
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (format!("detect.extra_families[{i}]"), f)),
            )
            .collect();
        if all.len() > usize::from(FamilyId::MAX) {
            return Err(DetectError::invalid("detect.families", "too many families"));
        }
        let mut exes = Vec::new();
        let mut interps = Vec::new();
        let mut argv = Vec::new();
        let mut listen_ports = FxHashMap::default();
        for (i, (field, f)) in all.iter().enumerate() {
            let f = *f;
            if f.name.is_empty() {
                return Err(DetectError::invalid(&format!("{field}.name"), "empty"));
            }
            if all[..i].iter().any(|(_, g)| g.name == f.name) {
                return Err(DetectError::invalid(
                    &format!("{field}.name"),
                    format!("{:?} defined twice", f.name),
                ));
            }
            if f.executables.is_empty() && f.interpreters.is_empty() && f.listen_ports.is_empty() {
                return Err(DetectError::invalid(
                    field,
                    "needs executables, interpreters or listen_ports",
                ));
            }
            for (j, &port) in f.listen_ports.iter().enumerate() {
                let port_field = format!("{field}.listen_ports[{j}]");
                if port == 0 {
                    return Err(DetectError::invalid(&port_field, "0 is not a port"));
                }
                let owner = FamilyId::try_from(i).unwrap_or(FamilyId::MAX);
                if let Some(other) = listen_ports.insert(port, owner)
                    && other != owner
                {
                    return Err(DetectError::invalid(
                        &port_field,
                        format!(
                            "port {port} already belongs to {:?}",
                            all.get(usize::from(other))
                                .map_or("", |(_, g)| g.name.as_str())
                        ),
                    ));
                }
            }
            if !f.interpreters.is_empty() && f.argv_patterns.is_empty() {
                return Err(DetectError::invalid(
                    &format!("{field}.argv_patterns"),
                    "interpreters match only with argv patterns; list at least one",
                ));
            }
            for (j, e) in f.executables.iter().enumerate() {
                exes.push((i, e.as_str(), format!("{field}.executables[{j}]")));
            }
            for (j, e) in f.interpreters.iter().enumerate() {
                interps.push((i, e.as_str(), format!("{field}.interpreters[{j}]")));
            }
            argv.push(if f.argv_patterns.is_empty() {
                None
            } else {
                Some(regex_set(
                    &f.argv_patterns,
                    &format!("{field}.argv_patterns"),
                )?)
            });
        }
        Ok(Self {
            names: all.iter().map(|(_, f)| f.name.clone()).collect(),
            techniques: all.iter().map(|(_, f)| f.technique).collect(),
            executables: ExeMatcher::new_owned(&exes)?,
            interpreters: ExeMatcher::new_owned(&interps)?,
            argv,
            not_servers: ExeMatcher::new(&config.not_servers, "detect.not_servers")?,
            transparent: ExeMatcher::new(&config.transparent, "detect.transparent")?,
            listen_ports,
        })
    }

    pub fn id(&self, name: &str) -> Option<FamilyId> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| FamilyId::try_from(i).ok())
    }

    pub fn name(&self, id: FamilyId) -> &str {
        self.names.get(usize::from(id)).map_or("", String::as_str)
    }

    pub fn technique(&self, id: FamilyId) -> Technique {
        self.techniques
            .get(usize::from(id))
            .copied()
            .unwrap_or_default()
    }

    /// The family of an executed image, the first in config order when several match.
    /// `scratch` and `owners` are reused buffers, so classifying allocates nothing.
    pub fn classify(
        &self,
        image: &Image,
        scratch: &mut Vec<usize>,
        owners: &mut Vec<usize>,
    ) -> Option<FamilyId> {
        let name = effective_name(image);
        owners.clear();
        self.executables
            .owners_into(&image.exe, name, scratch, owners);
        let direct = owners.iter().min().copied();
        owners.clear();
        self.interpreters
            .owners_into(&image.exe, name, scratch, owners);
        let mut found = direct;
        if !owners.is_empty() {
            owners.sort_unstable();
            let command_line = image.command_line();
            for &owner in owners.iter() {
                if found.is_some_and(|f| f <= owner) {
                    break;
                }
                if self
                    .argv
                    .get(owner)
                    .and_then(Option::as_ref)
                    .is_some_and(|set| set.is_match(&command_line))
                {
                    found = Some(owner);
                    break;
                }
            }
        }
        let found = found?;
        if self.not_servers.is_match(&image.exe, image.name()) {
            return None;
        }
        FamilyId::try_from(found).ok()
    }

    /// Whether any family has `listen_ports`.
    pub fn has_listen_ports(&self) -> bool {
        !self.listen_ports.is_empty()
    }

    /// The family that listens on `port`, if any.
    pub fn by_listen_port(&self, port: u16) -> Option<FamilyId> {
        self.listen_ports.get(&port).copied()
    }

    pub fn is_transparent(&self, image: &Image) -> bool {
        !self.transparent.is_empty() && self.transparent.is_match(&image.exe, image.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lineage::test_image as image;

    fn family_of(f: &Families, exe: &str, argv: &[&str]) -> Option<String> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        f.classify(&image(exe, argv), &mut a, &mut b)
            .map(|id| f.name(id).to_owned())
    }

    #[test]
    fn defaults_recognise_servers_by_file_and_argv_not_comm() {
        let f = Families::new(&DetectConfig::default()).expect("defaults compile");
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            ("/usr/sbin/php-fpm8.2", &["php-fpm: pool www"], Some("php")),
            (
                "/usr/bin/uwsgi-core",
                &["uwsgi", "--ini", "app.ini"],
                Some("python-web"),
            ),
            (
                "/usr/bin/python3.11",
                &["/usr/bin/python3", "/usr/bin/gunicorn", "app:app"],
                Some("python-web"),
            ),
            (
                "/usr/bin/python3.11",
                &["python3", "-m", "uvicorn", "main:app"],
                Some("python-web"),
            ),
            ("/usr/bin/python3.11", &["python3", "backup.py"], None),
            (
                "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
                &[
                    "java",
                    "-classpath",
                    "/usr/share/tomcat9/bin/bootstrap.jar",
                    "org.apache.catalina.startup.Bootstrap",
                    "start",
                ],
                Some("java-appserver"),
            ),
            ("/usr/bin/java", &["java", "-jar", "build-tool.jar"], None),
            ("/etc/init.d/nginx", &["/etc/init.d/nginx", "reload"], None),
            ("/usr/sbin/nginx", &["nginx: worker process"], Some("nginx")),
            (
                "/usr/lib/postgresql/16/bin/postgres",
                &["postgres", "-D", "/var/lib/postgresql"],
                Some("database"),
            ),
            ("/usr/sbin/mariadbd", &["mariadbd"], Some("database")),
            ("/usr/bin/bash", &["bash"], None),
        ];
        for (exe, argv, want) in cases {
            assert_eq!(family_of(&f, exe, argv).as_deref(), *want, "{exe} {argv:?}");
        }
        assert!(f.is_transparent(&image(
            "/usr/lib/jvm/java-17/lib/jspawnhelper",
            &["jspawnhelper"]
        )));
        assert_eq!(
            f.technique(f.id("database").expect("db")),
            Technique::SqlStoredProcedures
        );
    }

    #[test]
    fn bad_glob_and_regex_name_the_field() {
        let mut config = DetectConfig::default();
        config.families[1].executables.push("ng[inx".into());
        let err = Families::new(&config).err().expect("bad glob").to_string();
        assert!(err.contains("detect.families[1].executables[2]"), "{err}");
        let mut config = DetectConfig::default();
        config.families[4].argv_patterns.push("(unclosed".into());
        let err = Families::new(&config).err().expect("bad regex").to_string();
        assert!(err.contains("detect.families[4].argv_patterns[8]"), "{err}");
    }
}
