//! Debian's Tomcat 10 run as Debian's unit runs it (java with catalina Bootstrap, as the tomcat
//! user) over a CATALINA_BASE of the test's own, with a cmd.jsp web shell. JDK 17 spawns every
//! child through jspawnhelper.

use std::{os::unix::process::CommandExt as _, process::Command, time::Duration};

use integration_tests::RunningSensor;

use super::{
    check::{self, Target},
    copy_fixtures,
    daemon::{Daemon, chown_r, free_ports, user, workdir},
    http,
    report::Report,
    sensor_config,
};

const HOME: &str = "/usr/share/tomcat10";

pub fn run() {
    let dir = workdir("tomcat");
    let base = dir.path();
    let [port] = free_ports();
    let conf = base.join("conf");
    std::fs::create_dir_all(&conf).expect("conf dir");
    for f in [
        "web.xml",
        "logging.properties",
        "catalina.properties",
        "context.xml",
    ] {
        std::fs::copy(format!("/etc/tomcat10/{f}"), conf.join(f))
            .unwrap_or_else(|e| panic!("copy /etc/tomcat10/{f}: {e} (is tomcat10 installed?)"));
    }
    // No shutdown port, one loopback connector, no AJP: nothing but the test's port is opened.
    std::fs::write(
        conf.join("server.xml"),
        format!(
            "<Server port=\"-1\" shutdown=\"SHUTDOWN\">\n  <Service name=\"Catalina\">\n\
             \x20   <Connector port=\"{port}\" address=\"127.0.0.1\" protocol=\"HTTP/1.1\" connectionTimeout=\"20000\"/>\n\
             \x20   <Engine name=\"Catalina\" defaultHost=\"localhost\">\n\
             \x20     <Host name=\"localhost\" appBase=\"webapps\" unpackWARs=\"false\" autoDeploy=\"false\"/>\n\
             \x20   </Engine>\n  </Service>\n</Server>\n"
        ),
    )
    .expect("write server.xml");
    copy_fixtures("jsp", &base.join("webapps/ROOT"));
    for d in ["logs", "temp", "work"] {
        std::fs::create_dir_all(base.join(d)).expect("catalina dirs");
    }
    let (uid, gid) = user("tomcat");
    chown_r(base, uid, gid);
    let config = sensor_config(base);
    let mut report = Report::new("tomcat10");

    let sensor = RunningSensor::start(&config);
    let b = base.display();
    let mut server = Daemon::spawn(
        "tomcat10",
        Command::new("/usr/bin/java")
            // Small heap and a quick JIT: CI has 2 cores.
            .args([
                "-Xms32m",
                "-Xmx192m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg(format!(
                "-Djava.util.logging.config.file={b}/conf/logging.properties"
            ))
            .arg("-Djava.util.logging.manager=org.apache.juli.ClassLoaderLogManager")
            .arg(format!("-Dcatalina.base={b}"))
            .arg(format!("-Dcatalina.home={HOME}"))
            .arg(format!("-Djava.io.tmpdir={b}/temp"))
            .arg("-classpath")
            .arg(format!(
                "{HOME}/bin/bootstrap.jar:{HOME}/bin/tomcat-juli.jar"
            ))
            .args(["org.apache.catalina.startup.Bootstrap", "start"])
            .current_dir(base)
            .uid(uid)
            .gid(gid),
        &base.join("catalina.out"),
        libc::SIGTERM,
    );
    server.wait_port(port, Duration::from_secs(120));
    let url = format!("http://127.0.0.1:{port}");
    let shell = |cmd: &str| http::get_ok(&format!("{url}/shell.jsp"), &[("cmd", cmd)]);
    let t = Target {
        sensor: &sensor,
        family: "java-appserver",
        technique: "T1505.003",
        root: server.pid(),
        worker_uid: None,
        shell: &shell,
    };

    report.record(
        "start-up of Tomcat (java, catalina Bootstrap)",
        "no alert",
        check::benign(&t, || Ok(())),
    );
    report.record(
        "static page GET /index.html",
        "no alert",
        check::benign(&t, || {
            http::get_ok(&format!("{url}/index.html"), &[]).map(drop)
        }),
    );
    report.record(
        "first request to a JSP (Jasper compiles it in-process)",
        "no alert",
        check::benign(&t, || {
            http::get_ok(&format!("{url}/shell.jsp"), &[]).map(drop)
        }),
    );
    report.record(
        "cmd.jsp Runtime.exec({\"/bin/sh\",\"-c\",\"id\"})",
        "shell + recon, one incident",
        check::web_shell(&t, "id", "id", "uid=", || shell("id")),
    );
    report.record(
        "cmd.jsp Runtime.exec({\"/bin/sh\",\"-c\",\"uname -a\"})",
        "shell + recon, one incident",
        check::web_shell(&t, "uname -a", "uname", "Linux", || shell("uname -a")),
    );
    report.record(
        "cmd.jsp Runtime.exec({\"/bin/sh\",\"-c\",\"cat /etc/passwd\"})",
        "shell + recon, one incident",
        check::web_shell(&t, "cat /etc/passwd", "cat", "root:x:0:0", || {
            shell("cat /etc/passwd")
        }),
    );
    drop(server);
    drop(sensor);
    report.finish();
}
