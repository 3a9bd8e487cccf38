//! The built-in detection content. Each list names the community rules it was drawn from
//! (paths in SigmaHQ/sigma, elastic/detection-rules, elastic/protections-artifacts,
//! falcosecurity/rules, aquasecurity/tracee, splunk/security_content); deploy/lineage-sensor.toml
//! spells out the same values and a unit test keeps the two equal.

use super::detection_entries::{
    AllowedDestination, Exclusion, FamilyConfig, InlineInterpreter, ReconTool, Technique,
};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn family(
    name: &str,
    technique: Technique,
    executables: &[&str],
    interpreters: &[&str],
    argv_patterns: &[&str],
) -> FamilyConfig {
    FamilyConfig {
        name: name.into(),
        technique,
        executables: strings(executables),
        interpreters: strings(interpreters),
        argv_patterns: strings(argv_patterns),
        listen_ports: Vec::new(),
    }
}

/// Init scripts carry the service's name but are shells (Elastic excludes
/// `/etc/init.d/nginx rotate`; see detection-content 8.2).
pub fn not_servers() -> Vec<String> {
    strings(&["/etc/init.d/*", "/etc/rc.d/init.d/*", "/etc/rc.d/*"])
}

/// The server families `[detect]` knows by default (docs/detection.md has the table).
pub fn families() -> Vec<FamilyConfig> {
    use Technique::{SqlStoredProcedures as Sql, WebShell as Web};
    vec![
        // Sigma proc_creation_lnx_webshell_detection (ParentImage /httpd, /apache2); Elastic
        // persistence_webserver_suspicious_command_execution (httpd.worker); Falco
        // http_server_binaries (apache, httpd-foregroun is a script, so not here).
        family(
            "apache",
            Web,
            &[
                "apache2",
                "httpd",
                "httpd.worker",
                "httpd-worker",
                "httpd-prefork",
                "apache",
            ],
            &[],
            &[],
        ),
        // Sigma (…/nginx), Falco http_server_binaries, Tracee TRC-1016; OpenResty from Elastic.
        family("nginx", Web, &["nginx", "openresty"], &[], &[]),
        // Elastic php-fpm*, php-cgi, php-fcgi, php-cgi.cagefs, lsphp*, frankenphp, sw-engine-fpm;
        // Debian names the binaries php-fpm8.2 and php-cgi8.2 (Falco's list misses them).
        family(
            "php",
            Web,
            &[
                "php-fpm*",
                "php-cgi*",
                "php-fcgi",
                "lsphp*",
                "frankenphp",
                "sw-engine-fpm",
            ],
            &[],
            &[],
        ),
        // Sigma (…/lighttpd, …/caddy); Elastic lshttpd, litespeed, unitd, fcgiwrap, h2o.
        family(
            "web-other",
            Web,
            &[
                "lighttpd",
                "caddy",
                "lshttpd",
                "litespeed",
                "openlitespeed",
                "unitd",
                "fcgiwrap",
                "h2o",
                "cherokee",
                "hiawatha",
            ],
            &[],
            &[],
        ),
        // Java application servers by argv only, since the executable is plain java: Falco
        // org.apache.catalina.startup.Bootstrap, org.jboss, com.sun.enterprise.glassfish; Sigma
        // proc_creation_lnx_webshell_detection (/bin/java + tomcat or websphere); Windows Sigma
        // catalina.home; Elastic CVE-2025-31324 SAP NetWeaver paths.
        family(
            "java-appserver",
            Web,
            &[],
            &["java"],
            &[
                r"org\.apache\.catalina\.startup\.Bootstrap",
                r"-Dcatalina\.(home|base)=",
                r"(?i)tomcat",
                r"(?i)jetty",
                r"org\.jboss|jboss-modules\.jar|(?i)wildfly",
                r"com\.sun\.enterprise\.glassfish",
                r"(?i)websphere|weblogic",
                r"/j2ee/cluster/apps/sap\.com",
                // Launcher classes of packaged applications (Elastic
                // persistence_webserver_suspicious_child_execution's java list): Spring Boot,
                // Quarkus, Micronaut, Dropwizard, Play, Helidon, Vert.x, Keycloak, Jenkins,
                // WebSphere Liberty, Resin. A bare `java -jar app.jar` is one by role once it
                // listens (detect.servers_by_role).
                r"org\.springframework\.boot\.loader\.",
                r"quarkus-run\.jar|io\.quarkus\.runner\.GeneratedMain",
                r"io\.micronaut\.runtime\.Micronaut|io\.dropwizard\.cli\.ServerCommand",
                r"play\.core\.server\.ProdServerStart|io\.helidon\.(microprofile\.server\.Main|webserver)",
                r"io\.vertx\.core\.Launcher|org\.keycloak|jenkins\.war",
                r"com\.ibm\.ws\.(runtime\.WsServer|kernel\.boot)|com\.caucho\.server\.resin",
            ],
        ),
        // Elastic gunicorn*, uwsgi, uvicorn, daphne, waitress-serve, hypercorn, granian, flask;
        // gunicorn and uvicorn run as python (detection-content 9), uwsgi as uwsgi-core.
        family(
            "python-web",
            Web,
            &[
                "gunicorn*",
                "uwsgi",
                "uwsgi-core",
                "uvicorn",
                "hypercorn",
                "granian",
                "daphne",
                "waitress-serve",
            ],
            &["python*"],
            &[
                r"(^|[ /])(gunicorn|uvicorn|uwsgi|hypercorn|granian|daphne|waitress-serve)( |$)",
                r"-m (gunicorn|uvicorn|hypercorn|daphne|flask run)",
                r"manage\.py runserver",
                // Process titles (setproctitle) that /proc shows for servers started before
                // the sensor: "gunicorn: worker [app:app]", "uWSGI worker 1".
                r"^gunicorn: (master|worker)|^uWSGI (master|worker|http)",
            ],
        ),
        // Elastic ruby* with puma, rails or passenger in the parent command line; Falco
        // unicorn_launche, PassengerWatchd.
        family(
            "ruby-web",
            Web,
            &["puma", "unicorn", "unicorn_rails", "thin", "rackup"],
            &["ruby*"],
            &[
                r"(^|[ /])(puma|unicorn|unicorn_rails|thin|rackup)( |$)",
                r"rails (server|s)( |$)",
                r"(?i)passenger",
                // Titles: "puma: cluster worker 0: 17 [app]", "unicorn_rails worker[0]".
                r"^(puma|unicorn|unicorn_rails|thin): |^(unicorn|unicorn_rails) (master|worker)",
            ],
        ),
        // Elastic starman, plackup, twiggy, hypnotoad, starlet.
        family(
            "perl-web",
            Web,
            &["starman", "plackup", "twiggy", "hypnotoad", "starlet"],
            &["perl*"],
            &[
                r"(^|[ /])(starman|plackup|twiggy|hypnotoad|starlet)( |$)",
                // Titles: "starman master -l :5000 app.psgi", "starman worker ...".
                r"^(starman|starlet) (master|worker)",
            ],
        ),
        // Sigma …/node and CVE-2025-55182 (React2Shell) parent markers; Elastic
        // initial_access_execution_susp_react_serv_child. node is also a build tool (Falco keeps
        // it opt-in), so only server-looking command lines count.
        family(
            "node-web",
            Web,
            &[],
            &["node", "nodejs", "bun"],
            &[
                r"next (start|dev)|next-server|/node_modules/next",
                r"react-scripts start|start-server\.js",
                r"(^|[ /])(server|app|main)\.(js|mjs|cjs|ts)( |$)",
                r"/var/www/|/srv/",
            ],
        ),
        // T1505.001: database servers that can run OS commands (PostgreSQL COPY … FROM PROGRAM,
        // MySQL UDFs, SQL Server xp_cmdshell). Falco db_server_binaries (mysqld, postgres).
        family(
            "database",
            Sql,
            &["postgres", "postmaster", "mysqld", "mariadbd", "sqlservr"],
            &[],
            &[],
        ),
    ]
}

/// Falco shell_binaries, Splunk linux_shells, Elastic process.name lists (detection-content 7.2).
pub fn shells() -> Vec<String> {
    strings(&[
        "sh", "bash", "dash", "ash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "csh", "tcsh", "fish",
        "bsh", "rbash", "ion", "eshell",
    ])
}

/// Sigma proc_creation_lnx_{python,perl,ruby,php}_reverse_shell; Elastic
/// persistence_webserver_suspicious_command_execution (python -c, php -r, perl -e, ruby -e,
/// lua -e, node -e).
pub fn inline_interpreters() -> Vec<InlineInterpreter> {
    let i = |executable: &str, flags: &[&str]| InlineInterpreter {
        executable: executable.into(),
        flags: strings(flags),
    };
    vec![
        i("python*", &["-c"]),
        i("perl*", &["-e", "-E"]),
        i("ruby*", &["-e"]),
        i("php", &["-r"]),
        i("php[0-9]*", &["-r"]),
        i("node", &["-e", "--eval", "-p", "--print"]),
        i("nodejs", &["-e", "--eval", "-p", "--print"]),
        i("lua*", &["-e"]),
    ]
}

/// Arguments without shell syntax: no `;`, `&`, `|`, `$`, backquote, redirections, brackets,
/// quotes or newlines, so a command line matched with it cannot chain a second command.
const PLAIN: &str = r#"[^;&|$`<>(){}'"\\\n\r]*"#;

/// What servers run through a shell in normal operation and is not an attack.
pub fn shell_exclusions() -> Vec<Exclusion> {
    let sh = r"(/usr)?(/bin/)?(sh|dash|bash)";
    vec![
        Exclusion {
            comment: "PHP mail() runs sendmail_path through popen(): php-src ext/standard/mail.c; \
                      the default sendmail_path is \"/usr/sbin/sendmail -t -i\" (php.net), and \
                      mail()'s additional parameters add -f <address> (detection-content 8.1)"
                .into(),
            args: Some(vec![
                sh.into(),
                "-c".into(),
                r"/usr/sbin/sendmail -t -i( -f ?[A-Za-z0-9._%+@=-]+)?".into(),
            ]),
            ..Exclusion::default()
        },
        Exclusion {
            comment: "Apache piped logs (CustomLog \"|/usr/bin/rotatelogs …\") run through sh -c; \
                      arguments without shell syntax only (detection-content 8.8)"
                .into(),
            family: Some("apache".into()),
            args: Some(vec![
                sh.into(),
                "-c".into(),
                format!(r"(exec )?/usr/(s?bin|local/bin)/(rotatelogs|cronolog)( {PLAIN})?"),
            ]),
            ..Exclusion::default()
        },
        Exclusion {
            comment: "PHP version probes of CMSs and panels; Elastic \
                      persistence_webserver_suspicious_command_execution exclusions"
                .into(),
            args: Some(vec![
                sh.into(),
                "-c".into(),
                r#"(/usr/(local/)?bin/)?php[0-9.]* -r ('echo phpversion\(\);'|'print_r\(phpversion\(\)\);'|"echo PHP_VERSION;")"#
                    .into(),
            ]),
            ..Exclusion::default()
        },
        Exclusion {
            comment: "The PHP CLI run by such a probe (php -r with the same fixed code)".into(),
            args: Some(vec![
                r"(/usr/(local/)?bin/)?php[0-9.]*".into(),
                "-r".into(),
                r#"echo phpversion\(\);|print_r\(phpversion\(\)\);|echo PHP_VERSION;"#.into(),
            ]),
            ..Exclusion::default()
        },
        Exclusion {
            comment: "lighttpd's include_shell at start-up (Falco PR #1996)".into(),
            family: Some("web-other".into()),
            args: Some(vec![
                sh.into(),
                "-c".into(),
                r"/usr/share/lighttpd/(create-mime\.conf\.pl|include-conf-enabled\.pl)".into(),
            ]),
            ..Exclusion::default()
        },
        Exclusion {
            comment: "Media and document helpers called through sh -c by PHP apps (Elastic \
                      exclusions ffmpeg*, wkhtmltopdf, rsvg-convert, pdftotext); plain \
                      arguments only"
                .into(),
            family: Some("php".into()),
            args: Some(vec![
                sh.into(),
                "-c".into(),
                format!(
                    r"(/usr/(local/)?bin/)?(ffmpeg|ffprobe|wkhtmltopdf|rsvg-convert|pdftotext)( {PLAIN})?"
                ),
            ]),
            ..Exclusion::default()
        },
        Exclusion {
            comment: "uWSGI's touch-logrotate hook (Elastic docker uwsgi exclusion)".into(),
            family: Some("python-web".into()),
            args: Some(vec![
                sh.into(),
                "-c".into(),
                r"\{? ?touch /run/uwsgi-logrotate ?\}?".into(),
            ]),
            ..Exclusion::default()
        },
    ]
}

/// Sigma proc_creation_lnx_webshell_detection sub_processes, system_network_discovery,
/// system_info_discovery, susp_network_utilities_execution; Falco network_tool_binaries and
/// suspicious_web_children; Elastic protections persistence_suspicious_web_server_child_process
/// (detection-content 7.3 and 7.4).
pub fn recon_tools() -> Vec<ReconTool> {
    let any = |names: &[&str]| {
        names
            .iter()
            .map(|n| ReconTool {
                executable: (*n).into(),
                args_pattern: None,
            })
            .collect::<Vec<_>>()
    };
    let with = |name: &str, pattern: &str| ReconTool {
        executable: name.into(),
        args_pattern: Some(pattern.into()),
    };
    let mut tools = any(&[
        // identity and system
        "id",
        "whoami",
        "w",
        "who",
        "groups",
        "uname",
        "hostname",
        "uptime",
        "pwd",
        "printenv",
        "lscpu",
        "lspci",
        "lsmod",
        "dmidecode",
        "ps",
        "lsof",
        // network discovery
        "ifconfig",
        "ip",
        "route",
        "netstat",
        "ss",
        "arp",
        "iptables",
        "ping",
        "traceroute",
        "dig",
        "nslookup",
        "host",
        // download, network and tunnel tools
        "curl",
        "wget",
        "nc",
        "ncat",
        "netcat",
        "nc.*",
        "netcat.*",
        "socat",
        "telnet",
        "nmap",
        "nping",
        "masscan",
        "zmap",
        "hping*",
        "tcpdump",
        "ngrok",
        // persistence and staging
        "crontab",
        "mkfifo",
        "mknod",
        "chattr",
    ]);
    let secrets = r"/etc/(passwd|shadow|group|hosts|hostname|issue|os-release|resolv\.conf|sudoers)|/proc/[^ ]*/(environ|cgroup|mountinfo)|\.aws/credentials|\.ssh/|serviceaccount|\.env( |$)";
    for reader in ["cat", "head", "tail", "less", "more"] {
        tools.push(with(reader, secrets));
    }
    tools.extend([
        // env lists the environment only without a command; `env sh -c …` is a launcher.
        with("env", r"^(-\S*\s*)*$"),
        with("base64", r"(^| )(-d|--decode|-[a-z]*d[a-z]*)( |$)"),
        with("base32", r"(^| )(-d|--decode)( |$)"),
        with("xxd", r"(^| )-r( |$)"),
        with("openssl", r"s_client|s_server|enc .*-d|base64 .*-d"),
        with("find", r"-perm|\.htpasswd|-writable"),
        with("sudo", r"(^| )-l( |$)"),
        with("awk", r"/inet/"),
        with("gawk", r"/inet/"),
    ]);
    tools
}

/// Loopback and private ranges where a web host's databases and upstreams live (Falco
/// rfc_1918_addresses, Sigma net_connection_lnx_susp_malware_callback_port). The documentation
/// ranges are deliberately absent (Elastic's list includes them; detection-content 7.5).
pub fn allowed_destinations() -> Vec<AllowedDestination> {
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ]
    .into_iter()
    .map(AllowedDestination::any)
    .collect()
}

/// Package managers and their front ends. Elastic persistence_web_server_webshell_creation and
/// the file-creation rules of elastic/detection-rules (linux/persistence_*) exclude dpkg, rpm,
/// yum, dnf, apt and friends; MaxPatrol Unix_Webshell_Created does the same for package
/// installs.
pub fn package_managers() -> Vec<String> {
    strings(&[
        "dpkg",
        "apt",
        "apt-get",
        "aptitude",
        "unattended-upgrade",
        "unattended-upgrades",
        "rpm",
        "dnf",
        "dnf-3",
        "yum",
        "zypper",
        "pacman",
        "apk",
        "snapd",
    ])
}

/// Web roots: Elastic persistence_web_server_webshell_creation (/var/www/*, /srv/www/*,
/// /usr/share/nginx/*, */webapps/*, */htdocs/*, */public_html/*); Atomic Red Team T1505.003
/// test 4 writes /var/www/html/<name>.php. Relative forms (`*/htdocs`) become absolute
/// patterns the kernel can filter on.
pub fn web_roots() -> Vec<String> {
    strings(&[
        "/var/www",
        "/srv/www",
        "/srv/http",
        "/usr/share/nginx",
        "/var/lib/tomcat*/webapps",
        "/opt/*/webapps",
        "/opt/*/htdocs",
        "/home/*/public_html",
    ])
}

/// Script and page extensions: Elastic persistence_web_server_webshell_creation (php, phtml,
/// php3-8, phar, jsp, jspx, war, asp, aspx, ashx, asmx, cfm, shtml, cgi, pl, py); MaxPatrol
/// PTAF_Webshell_Detected (the same families of server-side code).
pub fn script_extensions() -> Vec<String> {
    strings(&[
        "php", "phtml", "php3", "php4", "php5", "php6", "php7", "php8", "phar", "jsp", "jspx",
        "war", "asp", "aspx", "ashx", "asmx", "cfm", "shtml", "cgi", "pl", "py",
    ])
}

/// Server extension points: ATT&CK analytic AN1508 (rogue Apache, Nginx or Tomcat modules and
/// plugins, PHP auto_prepend_file in php.ini or conf.d).
pub fn module_paths() -> Vec<String> {
    strings(&[
        "/etc/apache2/mods-enabled",
        "/etc/apache2/mods-available",
        "/etc/apache2/conf-enabled",
        "/usr/lib/apache2/modules",
        "/etc/httpd/conf.modules.d",
        "/usr/lib64/httpd/modules",
        "/etc/nginx/modules-enabled",
        "/usr/lib/nginx/modules",
        "/usr/share/nginx/modules",
        "/etc/php/*/*/conf.d",
        "/etc/php/*/*/php.ini",
        "/etc/php.ini",
        "/etc/php.d",
        "/usr/share/tomcat*/lib",
        "/var/lib/tomcat*/lib",
        "/etc/tomcat*",
        "/var/lib/tomcat*/conf",
        "/opt/*/lib/catalina.jar",
    ])
}

/// Module-enabling tools (AN1508): Debian's a2enmod/a2enconf, apxs which builds and installs
/// an Apache module, phpenmod.
pub fn module_tools() -> Vec<String> {
    strings(&["a2enmod", "a2enconf", "apxs", "apxs2", "phpenmod"])
}
