//! Server families compiled from `[detect]`: which executed image is a server of which family.

use std::cell::RefCell;

use regex::{Regex, RegexSet};
use rustc_hash::FxHashMap;

use super::{
    DetectError,
    matcher::{ExeMatcher, effective_name, regex, regex_set},
};
use crate::{
    config::{DetectConfig, FamilyConfig, Technique},
    lineage::Image,
};

pub type FamilyId = u16;

/// The family of a server known only by its role (it listens).
pub const LISTENER: &str = "listener";

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
    /// The `listener` family of servers known by role alone; None when `servers_by_role` is off.
    listener: Option<FamilyId>,
    /// `not_servers_by_role`: executables, and per entry an optional command line pattern.
    role_exempt: ExeMatcher,
    role_exempt_argv: Vec<Option<Regex>>,
    /// What [`Self::classify`] found for recent executables. A host runs the same few hundred
    /// files over and over, and the glob sets cost far more than a lookup. Only behind `&self`
    /// because classify is a query; the engine that owns this is used by one thread at a time.
    by_exe: RefCell<FxHashMap<Box<str>, ExeVerdict>>,
}

/// Whatever of classify's answer an executable's path alone decides (its name is the path's
/// last component: not busybox, whose name comes from argv).
#[derive(Debug, Clone)]
struct ExeVerdict {
    /// The first family whose `executables` match.
    direct: Option<usize>,
    /// Families whose `interpreters` match, in config order: they also need the command line.
    interpreters: Box<[usize]>,
    not_server: bool,
}

/// Bounds on [`Families::classify`]'s cache: executables are attacker-chosen, so an unusually
/// long path is not kept, and a full cache starts over (its contents are only a speed-up).
const BY_EXE_MAX_ENTRIES: usize = 1024;
const BY_EXE_MAX_PATH: usize = 256;

/// What /proc/PID/exe adds to a file deleted since it was executed.
const DELETED: &str = " (deleted)";

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
        let mut names: Vec<String> = all.iter().map(|(_, f)| f.name.clone()).collect();
        let mut techniques: Vec<Technique> = all.iter().map(|(_, f)| f.technique).collect();
        // A site may define its own `listener` family (by ports); role then joins it.
        let listener = if !config.servers_by_role {
            None
        } else if let Some(i) = names.iter().position(|n| n == LISTENER) {
            FamilyId::try_from(i).ok()
        } else {
            names.push(LISTENER.to_owned());
            techniques.push(Technique::WebShell);
            FamilyId::try_from(names.len() - 1).ok()
        };
        let exempt: Vec<(usize, &str, String)> = config
            .not_servers_by_role
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let field = format!("detect.not_servers_by_role[{i}].executable");
                (i, e.executable.as_str(), field)
            })
            .collect();
        let role_exempt_argv = config
            .not_servers_by_role
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.argv_pattern
                    .as_deref()
                    .map(|p| regex(p, &format!("detect.not_servers_by_role[{i}].argv_pattern")))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            names,
            techniques,
            listener,
            role_exempt: ExeMatcher::new_owned(&exempt)?,
            role_exempt_argv,
            executables: ExeMatcher::new_owned(&exes)?,
            interpreters: ExeMatcher::new_owned(&interps)?,
            argv,
            not_servers: ExeMatcher::new(&config.not_servers, "detect.not_servers")?,
            transparent: ExeMatcher::new(&config.transparent, "detect.transparent")?,
            listen_ports,
            by_exe: RefCell::default(),
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
    /// `scratch` and `owners` are reused buffers, so classifying a known executable allocates
    /// nothing unless an interpreter's command line must be checked.
    pub fn classify(
        &self,
        image: &Image,
        scratch: &mut Vec<usize>,
        owners: &mut Vec<usize>,
    ) -> Option<FamilyId> {
        // A server seeded after its package was upgraded runs a file that is gone: /proc names
        // it "/usr/sbin/nginx (deleted)", which is still nginx.
        if let Some(exe) = image.exe.strip_suffix(DELETED) {
            let live = Image {
                exe: exe.to_owned(),
                ..image.clone()
            };
            return self.classify(&live, scratch, owners);
        }
        let name = effective_name(image);
        // busybox goes by an applet name taken from argv, so its path alone decides nothing.
        let cacheable = name == image.name() && image.exe.len() <= BY_EXE_MAX_PATH;
        let mut cache = if cacheable {
            self.by_exe.try_borrow_mut().ok()
        } else {
            None
        };
        if let Some(verdict) = cache.as_ref().and_then(|c| c.get(image.exe.as_str())) {
            return self.finish(
                verdict.direct,
                &verdict.interpreters,
                verdict.not_server,
                image,
            );
        }
        let verdict = self.verdict(image, name, scratch, owners);
        let found = self.finish(
            verdict.direct,
            &verdict.interpreters,
            verdict.not_server,
            image,
        );
        if let Some(cache) = cache.as_mut() {
            if cache.len() >= BY_EXE_MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(image.exe.as_str().into(), verdict);
        }
        found
    }

    /// The glob matching behind [`Self::classify`], for `name` as the image goes by.
    fn verdict(
        &self,
        image: &Image,
        name: &str,
        scratch: &mut Vec<usize>,
        owners: &mut Vec<usize>,
    ) -> ExeVerdict {
        owners.clear();
        self.executables
            .owners_into(&image.exe, name, scratch, owners);
        let direct = owners.iter().min().copied();
        owners.clear();
        self.interpreters
            .owners_into(&image.exe, name, scratch, owners);
        owners.sort_unstable();
        owners.dedup();
        // An interpreter after the direct match can never win: not worth keeping.
        let interpreters = owners
            .iter()
            .copied()
            .take_while(|&owner| direct.is_none_or(|d| owner < d))
            .collect();
        ExeVerdict {
            direct,
            interpreters,
            not_server: self.not_servers.is_match(&image.exe, image.name()),
        }
    }

    /// The answer from an executable's verdict: an interpreter whose family comes before the
    /// direct match wins if its command line matches.
    fn finish(
        &self,
        direct: Option<usize>,
        interpreters: &[usize],
        not_server: bool,
        image: &Image,
    ) -> Option<FamilyId> {
        if not_server {
            return None;
        }
        let mut found = direct;
        if !interpreters.is_empty() {
            let command_line = image.command_line();
            if let Some(&owner) = interpreters.iter().find(|&&owner| {
                self.argv
                    .get(owner)
                    .and_then(Option::as_ref)
                    .is_some_and(|set| set.is_match(&command_line))
            }) {
                found = Some(owner);
            }
        }
        FamilyId::try_from(found?).ok()
    }

    /// Whether a listening process can be a server by role (`servers_by_role`).
    pub fn by_role_enabled(&self) -> bool {
        self.listener.is_some()
    }

    /// Whether any family has `listen_ports`.
    pub fn has_listen_ports(&self) -> bool {
        !self.listen_ports.is_empty()
    }

    /// The family that listens on `port`, if any.
    pub fn by_listen_port(&self, port: u16) -> Option<FamilyId> {
        self.listen_ports.get(&port).copied()
    }

    /// The family of a process that listens on `port`, when it is a server by role: the
    /// family pinned to the port, else its runtime's (the first family whose `interpreters`
    /// match: `java -jar app.jar` is a Java application server), else `listener`. None when
    /// role recognition is off or the process gives shells by design.
    pub fn by_role(&self, image: &Image, port: u16) -> Option<FamilyId> {
        let listener = self.listener?;
        let name = effective_name(image);
        let exe = image.exe.strip_suffix(DELETED).unwrap_or(&image.exe);
        if self.not_servers.is_match(exe, name) || self.exempt_by_role(image, exe, name) {
            return None;
        }
        if let Some(f) = self.by_listen_port(port) {
            return Some(f);
        }
        let (mut scratch, mut owners) = (Vec::new(), Vec::new());
        self.interpreters
            .owners_into(exe, name, &mut scratch, &mut owners);
        let runtime = owners
            .iter()
            .min()
            .and_then(|&o| FamilyId::try_from(o).ok());
        Some(runtime.unwrap_or(listener))
    }

    fn exempt_by_role(&self, image: &Image, exe: &str, name: &str) -> bool {
        let (mut scratch, mut owners) = (Vec::new(), Vec::new());
        self.role_exempt
            .owners_into(exe, name, &mut scratch, &mut owners);
        if owners.is_empty() {
            return false;
        }
        let command_line = image.command_line();
        owners.iter().any(|&i| match self.role_exempt_argv.get(i) {
            Some(Some(re)) => re.is_match(&command_line),
            _ => true,
        })
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
            // Process titles, as /proc shows servers started before the sensor.
            (
                "/usr/bin/ruby3.1",
                &["puma: cluster worker 0: 17 [shop]"],
                Some("ruby-web"),
            ),
            (
                "/usr/bin/ruby3.1",
                &["puma 6.4.2 (tcp://0.0.0.0:9292) [shop]"],
                Some("ruby-web"),
            ),
            (
                "/usr/bin/ruby3.1",
                &["unicorn_rails worker[1] -c config/unicorn.rb -E production"],
                Some("ruby-web"),
            ),
            (
                "/usr/bin/perl",
                &["starman worker -l :5000 /srv/app.psgi"],
                Some("perl-web"),
            ),
            (
                "/usr/bin/python3.11",
                &["gunicorn: worker [app:app]"],
                Some("python-web"),
            ),
            (
                "/usr/bin/python3.11",
                &["uWSGI worker 2"],
                Some("python-web"),
            ),
            (
                "/usr/sbin/nginx (deleted)",
                &["nginx: worker process"],
                Some("nginx"),
            ),
            (
                "/usr/lib/postgresql/16/bin/postgres",
                &["postgres: 16/main: checkpointer"],
                Some("database"),
            ),
            ("/usr/bin/ruby3.1", &["rake", "assets:precompile"], None),
            // Spring Boot's launcher, from the jar's manifest or named on the command line.
            (
                "/usr/lib/jvm/java-21-openjdk-amd64/bin/java",
                &[
                    "java",
                    "-cp",
                    "/srv/app.jar",
                    "org.springframework.boot.loader.launch.JarLauncher",
                ],
                Some("java-appserver"),
            ),
            (
                "/usr/bin/java",
                &["java", "-jar", "/deployments/quarkus-run.jar"],
                Some("java-appserver"),
            ),
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

    /// The cache answers as a fresh lookup does: for the same executable with other arguments
    /// (interpreters), for busybox applets, and across families that match the same file by
    /// executable and by interpreter.
    #[test]
    fn cached_answers_match_fresh_ones() {
        let mut config = DetectConfig::default();
        let last = config.families.len() - 1;
        config.families[last].executables.push("python3*".into());
        config.not_servers.push("/opt/not/*".into());
        let cached = Families::new(&config).expect("config compiles");
        let cases: &[(&str, &[&str])] = &[
            (
                "/usr/bin/python3.11",
                &["python3", "-m", "uvicorn", "main:app"],
            ),
            ("/usr/bin/python3.11", &["python3", "backup.py"]),
            (
                "/usr/bin/python3.11",
                &["/usr/bin/python3", "/usr/bin/gunicorn"],
            ),
            ("/usr/bin/python3.11", &[]),
            ("/usr/bin/java", &["java", "-jar", "build-tool.jar"]),
            (
                "/usr/bin/java",
                &["java", "org.apache.catalina.startup.Bootstrap"],
            ),
            ("/usr/bin/java", &["java", "-jar", "build-tool.jar"]),
            ("/bin/busybox", &["httpd", "-f"]),
            ("/bin/busybox", &["sh", "-c", "id"]),
            ("/bin/busybox", &["busybox", "httpd"]),
            ("/bin/busybox", &["busybox"]),
            ("/bin/busybox", &[]),
            ("/usr/sbin/nginx", &["nginx: worker process"]),
            ("/opt/not/nginx", &["nginx"]),
            ("/usr/sbin/nginx", &["nginx: master process"]),
            ("", &[]),
        ];
        for round in 0..2 {
            for (exe, argv) in cases {
                let fresh = Families::new(&config).expect("config compiles");
                assert_eq!(
                    family_of(&cached, exe, argv),
                    family_of(&fresh, exe, argv),
                    "round {round}: {exe} {argv:?}"
                );
            }
        }
        assert_eq!(
            family_of(&cached, "/usr/bin/python3.11", &["python3", "x.py"]).as_deref(),
            Some(config.families[last].name.as_str())
        );
    }

    #[test]
    fn cache_stays_bounded() {
        let f = Families::new(&DetectConfig::default()).expect("defaults compile");
        for i in 0..BY_EXE_MAX_ENTRIES + 10 {
            assert_eq!(family_of(&f, &format!("/tmp/x{i}"), &["x"]), None);
        }
        let long = format!("/{}/nginx", "d".repeat(BY_EXE_MAX_PATH));
        assert_eq!(family_of(&f, &long, &["nginx"]).as_deref(), Some("nginx"));
        let cache = f.by_exe.borrow();
        assert!(cache.len() <= BY_EXE_MAX_ENTRIES);
        assert!(!cache.contains_key(long.as_str()));
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
        assert!(
            err.contains("detect.families[4].argv_patterns[14]"),
            "{err}"
        );
    }
}
