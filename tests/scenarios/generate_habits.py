#!/usr/bin/env python3
"""Writes the habit scenarios: applications that shell out as part of their normal work.

Each scenario has NAME.learn.ndjson, a record in which the application ran its helper several
times with different file names, ids, sizes and dates, and NAME.ndjson, a later record in which
it runs the same helper on new files. The corpus runner (sensor-user/tests/scenarios.rs) replays
them as `lineage-sensor replay --baseline NAME.learn.ndjson NAME.ndjson` does: the baseline is
learned from the first record as if the learning window had passed over it, then the second is
detected with it. A benign- habit scenario must stay quiet with the baseline and alert without
it (so it is the baseline that silences it); an alert- habit scenario alerts, its shell alerts
carrying lineage.baseline.new where "new" is expected.

The vocabulary (Sc, servers, expectations) is generate.py's. Run
`python3 tests/scenarios/generate_habits.py` from the repository root after editing.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import (HERE, JAVA, SHELL, RECON, TOMCAT, WWW, Sc, apache, php_fpm,  # noqa: E402
                      tomcat_child)

scenarios = []


def scenario(fn):
    scenarios.append(fn)
    return fn


def gunicorn(s):
    m = s.spawn(1, "/usr/bin/python3.11", ["/usr/bin/python3", "/usr/bin/gunicorn", "--workers", "2", "app:app"], uid=1001)
    return m, s.fork(m)


def uwsgi(s):
    m = s.spawn(1, "/usr/bin/uwsgi-core", ["uwsgi", "--ini", "/etc/uwsgi/apps-enabled/app.ini"], uid=WWW)
    return m, s.fork(m)


def puma(s):
    m = s.spawn(1, "/usr/bin/ruby3.1", ["puma 6.4.0 (tcp://0.0.0.0:3000) [app]"], uid=1000)
    return m, s.fork(m)


def starman(s):
    m = s.spawn(1, "/usr/bin/perl", ["starman master", "/usr/local/bin/starman", "--listen", ":5000", "app.psgi"], uid=1000)
    return m, s.fork(m)


def node(s):
    m = s.spawn(1, "/usr/bin/node", ["node", "/srv/app/node_modules/.bin/next", "start"], uid=1000)
    return m, m


def postgres(s):
    m = s.spawn(1, "/usr/lib/postgresql/16/bin/postgres", ["/usr/lib/postgresql/16/bin/postgres", "-D", "/var/lib/postgresql/16/main"], uid=114)
    return m, s.fork(m)


def tomcat(s):
    t = s.spawn(1, JAVA, TOMCAT, uid=997)
    return t, t


def jetty(s):
    j = s.spawn(1, JAVA, [JAVA, "-Djetty.home=/usr/share/jetty9", "-Djetty.base=/var/lib/jetty9", "-jar", "/usr/share/jetty9/start.jar"], uid=998)
    return j, j


SERVERS = {"php-fpm": php_fpm, "apache": apache, "gunicorn": gunicorn, "uwsgi": uwsgi, "puma": puma,
           "starman": starman, "node": node, "postgres": postgres, "tomcat": tomcat, "jetty": jetty}


def shell_out(s, kind, worker, cmd, helper):
    """The worker runs `sh -c CMD` (Java through jspawnhelper), which runs the helper."""
    if kind in ("tomcat", "jetty"):
        sh = tomcat_child(s, worker, "/bin/sh", ["/bin/sh", "-c", cmd])
    else:
        sh = s.spawn(worker, "/bin/sh", ["sh", "-c", cmd])
    if helper:
        s.spawn(sh, helper[0], helper[1])
    s.exit(sh)
    return sh


def habit(name, source, description, kind, learn, test, alerts=None):
    """`learn` and `test`: lists of (cmd, (helper exe, helper argv) or None). `alerts`: for an
    alert- scenario, per test command: None (quiet), "new" (the sh alerts with
    lineage.baseline.new), "plain" (the sh alerts without it), "recon" (the helper raises the
    recon alert), "interactive" (the helper, an interactive shell, alerts) or "both" (the sh,
    whose payload starts an interactive shell, and that shell alert)."""
    pair = []
    for part, cmds in (("learn", learn), ("test", test)):
        s = Sc(name, source, description)
        root, worker = SERVERS[kind](s)
        for i, (cmd, helper) in enumerate(cmds):
            s.wait(3600)
            sh = shell_out(s, kind, worker, cmd, helper)
            if part == "test" and alerts is not None:
                want = alerts[i]
                if want in ("new", "plain"):
                    s.alert(SHELL, worker, sh, root=root)
                    if want == "new":
                        s.expect[-1]["baseline_new"] = True
                elif want == "recon":
                    s.alert(RECON, worker, s.next_pid - 1, root=root)
                elif want == "interactive":
                    s.alert(SHELL, worker, s.next_pid - 1, root=root)
                elif want == "both":
                    s.alert(SHELL, worker, sh, root=root)
                    s.alert(SHELL, worker, s.next_pid - 1, root=root)
        pair.append(s)
    return pair


def write(pair):
    learn, test = pair
    events = learn.events
    import json
    header = {"type": "header", "format": 1, "boot_wall_ns": 1_767_225_600_000_000_000, "hostname": "web01"}
    with open(os.path.join(HERE, learn.name + ".learn.ndjson"), "w") as f:
        for e in [header] + events:
            f.write(json.dumps(e) + "\n")
    test.write()


def h(exe, *argv):
    return (exe, [os.path.basename(exe), *argv])


# ---------------------------------------------------------------- benign: learned helpers stay quiet
@scenario
def imagemagick_thumbnails():
    def c(tmp, w, y, m, n):
        return (f"convert '/tmp/{tmp}' -strip -thumbnail {w}x{w} '/var/www/html/wp-content/uploads/{y}/{m}/img_{n}-{w}x{w}.jpg'",
                h("/usr/bin/convert", f"/tmp/{tmp}", "-thumbnail", f"{w}x{w}"))
    return habit("benign-habit-php-imagemagick-thumbnails",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (image processing); WordPress/Imagick-less hosts shelling to convert",
                 "php-fpm resizes uploads with sh -c 'convert /tmp/phpXXXXXX -thumbnail WxH uploads/Y/M/img_N-WxH.jpg'",
                 "php-fpm", [c("phpA1b2C3", 150, 2024, "05", 101), c("phpQ9w8E7", 300, 2024, "06", 2048), c("phpZx5Yw4", 1024, 2025, "01", 7)],
                 [c("phpKk3Jj2", 768, 2026, "12", 31337)])


@scenario
def ghostscript_pdf_preview():
    def c(n, page):
        return (f"gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=png16m -r72 -dFirstPage={page} -dLastPage={page} -sOutputFile=/tmp/preview_{n}.png /var/www/app/storage/uploads/doc_{n}.pdf",
                h("/usr/bin/gs", "-q", "-dSAFER"))
    return habit("benign-habit-php-ghostscript-preview",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (document previews); Nextcloud/Laravel PDF preview through gs",
                 "a Laravel app under apache renders a PDF page with Ghostscript through sh -c",
                 "apache", [c(17, 1), c(4242, 3)], [c(99001, 12)])


@scenario
def libreoffice_convert_java():
    def c(u, n):
        return (f"soffice --headless --norestore --convert-to pdf --outdir /tmp/conv-{u} /var/lib/tomcat9/work/uploads/upload_{n}.docx",
                h("/usr/lib/libreoffice/program/soffice.bin", "--headless"))
    return habit("benign-habit-tomcat-libreoffice-convert",
                 "Splunk linux_java_spawning_shell known false positives (document conversion); Falco Run shell untrusted tuning for Java apps",
                 "a Tomcat document service converts uploads to PDF with LibreOffice through /bin/sh -c (jspawnhelper in between)",
                 "tomcat", [c("550e8400-e29b-41d4-a716-446655440000", 1), c("123e4567-e89b-12d3-a456-426614174000", 88)],
                 [c("9b2f6c1e-0d3a-4f5b-8c7d-112233445566", 4711)])


@scenario
def clamav_scan_upload():
    def c(u):
        return (f"clamdscan --no-summary --fdpass /srv/app/uploads/{u}",
                h("/usr/bin/clamdscan", "--no-summary", "--fdpass", f"/srv/app/uploads/{u}"))
    return habit("benign-habit-gunicorn-clamav-scan",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (antivirus scanning of uploads)",
                 "a Django app under gunicorn scans each upload with clamdscan through sh -c",
                 "gunicorn", [c("a3f1c2d4e5f60718293a4b5c6d7e8f90"), c("0f1e2d3c4b5a69788796a5b4c3d2e1f0")], [c("deadbeef00112233445566778899aabb")])


@scenario
def exiftool_strip():
    def c(n):
        return (f"exiftool -all= -overwrite_original /var/www/html/uploads/IMG_{n}.jpg",
                h("/usr/bin/exiftool", "-all=", "-overwrite_original"))
    return habit("benign-habit-php-exiftool-strip",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (metadata stripping of uploaded photos)",
                 "php-fpm strips EXIF data from each uploaded photo with exiftool through sh -c",
                 "php-fpm", [c(2041), c(7), c(123456)], [c(9999)])


@scenario
def unzip_plugin_upload():
    def c(n, r):
        return (f"unzip -o -q /var/www/html/wp-content/upgrade/plugin-{n}.zip -d /var/www/html/wp-content/upgrade/plugin-{n}-{r}",
                h("/usr/bin/unzip", "-o", "-q"))
    return habit("benign-habit-php-unzip-upgrade",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (archive tools: plugin and theme updates)",
                 "a CMS under apache unpacks an uploaded plugin archive with unzip through sh -c",
                 "apache", [c(17, "aB3dE9kQ"), c(204, "Zz9Yy8Xx1")], [c(5150, "Qq7Ww6Ee5")])


@scenario
def zip_export():
    def c(n):
        return (f"cd /tmp/export_{n} && zip -r -q /var/www/app/storage/exports/export_{n}.zip .",
                h("/usr/bin/zip", "-r", "-q"))
    return habit("benign-habit-php-zip-export",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (archive tools: report exports)",
                 "php-fpm zips a user's export directory through sh -c 'cd /tmp/export_N && zip ...'",
                 "php-fpm", [c(551), c(90210)], [c(77)])


@scenario
def tar_backup_dated():
    def c(d):
        return (f"tar -czf /var/backups/app/db-{d}.tar.gz -C /var/lib/app data",
                h("/bin/tar", "-czf"))
    return habit("benign-habit-uwsgi-tar-backup",
                 "Falco Run shell untrusted tuning (scheduled jobs inside the app server); Elastic archive-tool exclusions",
                 "a Python app under uWSGI writes its nightly dated backup with tar through sh -c",
                 "uwsgi", [c("2024-05-01T0300"), c("2024-05-02T0300"), c("2024-12-31T0300")], [c("2026-12-05T0300")])


@scenario
def ffprobe_media():
    def c(n):
        return (f"ffprobe -v quiet -print_format json -show_format -show_streams /srv/media/cache/{n}.mp4",
                h("/usr/bin/ffprobe", "-v", "quiet"))
    return habit("benign-habit-gunicorn-ffprobe",
                 "Elastic persistence_webserver_suspicious_command_execution exclusions (ffmpeg*, ffprobe) outside PHP",
                 "a Python media service probes each video with ffprobe through sh -c",
                 "gunicorn", [c("a1b2c3d4e5f6"), c("0a9b8c7d6e5f")], [c("ffeeddccbbaa")])


@scenario
def vips_activestorage():
    def c(pid, date, r):
        return (f"vips thumbnail /tmp/ActiveStorage-{pid}-{date}-{r}.jpg /tmp/ActiveStorage-{pid}-{date}-{r}-out.webp 400",
                h("/usr/bin/vips", "thumbnail"))
    return habit("benign-habit-puma-vips-activestorage",
                 "Falco Run shell untrusted tuning for Rails (ActiveStorage variants through image_processing)",
                 "a Rails app under puma makes image variants with vips through sh -c on ActiveStorage temp files",
                 "puma", [c(4711, "20240501", "1x2y3z"), c(88, "20240612", "9q8w7e")], [c(31337, "20261205", "k2j3h4")])


@scenario
def pandoc_markdown():
    def c(n):
        return (f"pandoc -f markdown -t html5 /var/cache/app/md-{n}.md -o /var/cache/app/md-{n}.html",
                h("/usr/bin/pandoc", "-f", "markdown"))
    return habit("benign-habit-starman-pandoc",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (document converters) for Perl apps",
                 "a Perl app under starman renders Markdown with pandoc through sh -c",
                 "starman", [c(8832), c(12)], [c(70001)])


@scenario
def sevenzip_extract():
    def c(n):
        return (f"7z x -y -o/tmp/ext_{n} /srv/app/uploads/archive_{n}.7z",
                h("/usr/bin/7z", "x", "-y"))
    return habit("benign-habit-uwsgi-7z-extract",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (archive tools)",
                 "a Python app under uWSGI extracts uploaded archives with 7z through sh -c",
                 "uwsgi", [c(9921), c(3)], [c(440)])


@scenario
def git_version_probe_node():
    def c(n):
        return (f"git -C /srv/app describe --tags --always --dirty=-{n}",
                h("/usr/bin/git", "describe"))
    return habit("benign-habit-node-git-describe",
                 "Falco possibly_node_in_container / Elastic npx and build-tool notes (version probes at start-up)",
                 "a Next.js server asks git for its version at each start through sh -c",
                 "node", [c(1), c(2)], [c(3)])


@scenario
def df_disk_probe():
    def c(n):
        return (f"df -P -k /var/www/html/uploads/{n}",
                h("/bin/df", "-P", "-k"))
    return habit("benign-habit-php-df-probe",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (system probes by control panels)",
                 "a hosting panel under php-fpm checks disk space for a user's upload directory with df through sh -c",
                 "php-fpm", [c("site_17"), c("site_4242")], [c("site_9")])


@scenario
def nproc_probe_with_pid():
    def c(pid):
        return (f"nproc; grep VmRSS /proc/{pid}/status",
                h("/usr/bin/nproc"))
    return habit("benign-habit-gunicorn-resource-probe",
                 "Falco Run shell untrusted tuning (resource probes by app servers and their agents)",
                 "a Python app under gunicorn reports CPUs and its worker's memory through sh -c 'nproc; grep VmRSS /proc/PID/status'",
                 "gunicorn", [c(1201), c(34567)], [c(8)])


@scenario
def python_wrapper_runtime():
    def c(n):
        return (f"/usr/bin/python3 /var/www/app/scripts/resize.py --id {n} --quality 85",
                ("/usr/bin/python3.11", ["/usr/bin/python3", "/var/www/app/scripts/resize.py", "--id", str(n)]))
    return habit("benign-habit-php-python-wrapper",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (wrappers that start another runtime)",
                 "php-fpm hands image jobs to a Python script through sh -c '/usr/bin/python3 scripts/resize.py --id N'",
                 "php-fpm", [c(1), c(20931)], [c(555)])


@scenario
def java_node_ssr():
    def c(port):
        return (f"/usr/bin/node /opt/app/render/ssr.js --port {port}",
                ("/usr/bin/node", ["node", "/opt/app/render/ssr.js", "--port", str(port)]))
    return habit("benign-habit-jetty-node-ssr",
                 "Splunk linux_java_spawning_shell known false positives (Java apps starting helper runtimes)",
                 "a Jetty app starts its Node renderer on a random port through /bin/sh -c",
                 "jetty", [c(38211), c(40001)], [c(51234)])


@scenario
def npm_build_at_startup():
    def c(n):
        return (f"npm run build -- --output-path=/tmp/build-{n}",
                ("/usr/bin/node", ["node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "run", "build"]))
    return habit("benign-habit-node-build-at-start",
                 "Elastic npx/postinstall exclusions; Falco notes on node as a build tool (build steps at start-up)",
                 "a Next.js server rebuilds its assets into a temporary directory at start-up through sh -c",
                 "node", [c(1701), c(1702)], [c(99)])


@scenario
def postgres_copy_program_import():
    def c(n):
        return (f"gzip -dc /var/lib/postgresql/import/batch_{n}.csv.gz",
                h("/bin/gzip", "-dc"))
    return habit("benign-habit-postgres-copy-gzip",
                 "Elastic execution_from_postgresql notes (COPY FROM PROGRAM used by ETL jobs)",
                 "a nightly ETL job loads compressed CSV batches with COPY ... FROM PROGRAM 'gzip -dc ...'",
                 "postgres", [c("0042"), c("0043"), c("1000")], [c("2048")])


@scenario
def tomcat_keytool_rotation():
    def c(u):
        return (f"keytool -importcert -noprompt -alias partner-{u} -file /tmp/cert-{u}.pem -keystore /var/lib/tomcat9/conf/truststore.jks -storepass:env STOREPASS",
                h("/usr/lib/jvm/java-17-openjdk-amd64/bin/keytool", "-importcert"))
    return habit("benign-habit-tomcat-keytool-import",
                 "Splunk linux_java_spawning_shell known false positives (keystore maintenance by the application)",
                 "a Tomcat app imports partner certificates into its truststore with keytool through /bin/sh -c",
                 "tomcat", [c("7f3a9c2e"), c("00ab11cd")], [c("e4d3c2b1")])


@scenario
def sendmail_glibc_dashdash_with_id():
    def c(n):
        return (f"/usr/bin/msmtp -t -i -f bounce+{n}@example.org",
                h("/usr/bin/msmtp", "-t", "-i"))
    # glibc 2.38 and later run popen() as sh -c -- CMD; the template treats it as sh -c CMD.
    pair = []
    for part, ns in (("learn", [1201, 77]), ("test", [40404])):
        s = Sc("benign-habit-php-msmtp-verp", "php-src ext/standard/mail.c; glibc 2.38 posix_spawn sh -c -- (issue 17 item 5)",
               "a mailing list app under php-fpm (sendmail_path = msmtp, which the shipped sendmail exclusion does not cover) sends with per-recipient VERP bounce addresses through sh -c -- (glibc 2.38 popen)")
        m, w = php_fpm(s)
        for n in ns:
            s.wait(3600)
            cmd, helper = c(n)
            sh = s.spawn(w, "/bin/sh", ["sh", "-c", "--", cmd])
            s.spawn(sh, helper[0], helper[1])
        pair.append(s)
    return pair


@scenario
def pdftotext_indexer_python():
    def c(n):
        return (f"pdftotext -layout /srv/app/uploads/{n}.pdf -",
                h("/usr/bin/pdftotext", "-layout"))
    return habit("benign-habit-uwsgi-pdftotext-index",
                 "Elastic persistence_webserver_suspicious_command_execution exclusions (pdftotext) outside PHP",
                 "a search indexer under uWSGI extracts text from uploaded PDFs with pdftotext through sh -c",
                 "uwsgi", [c("3f2a1b0c-aaaa-4bbb-8ccc-000000000001"), c("3f2a1b0c-aaaa-4bbb-8ccc-000000000002")],
                 [c("77777777-1234-4abc-9def-0123456789ab")])


@scenario
def optipng_apache():
    def c(n):
        return (f"optipng -o2 -quiet /var/www/html/media/cache/thumb_{n}.png",
                h("/usr/bin/optipng", "-o2"))
    return habit("benign-habit-apache-optipng-cache",
                 "Elastic persistence_webserver_suspicious_command_execution false positives (image optimisers)",
                 "mod_php optimises generated thumbnails in the media cache with optipng through sh -c",
                 "apache", [c(1), c(22), c(333)], [c(4444)])


# ---------------------------------------------------------------- after learning: what still alerts
@scenario
def new_template_after_learning():
    learn = [("convert '/tmp/phpA1b2C3' -thumbnail 150x150 '/var/www/html/uploads/img_1.jpg'", h("/usr/bin/convert"))]
    return habit("alert-habit-php-new-template",
                 "issue 17 item 3 (a new template after learning alerts with lineage.baseline.new); Sigma proc_creation_lnx_webshell_detection",
                 "php-fpm learned its convert helper; a web shell then runs sh -c 'cat /var/www/html/wp-config.php': new template",
                 "php-fpm", learn,
                 [("convert '/tmp/phpQ9w8E7' -thumbnail 150x150 '/var/www/html/uploads/img_2.jpg'", h("/usr/bin/convert")),
                  ("cat /var/www/html/wp-config.php", h("/bin/cat", "/var/www/html/wp-config.php"))],
                 alerts=[None, "new"])


@scenario
def learned_helper_with_chained_payload():
    def c(n, tail=""):
        return (f"convert /tmp/phpX{n} -resize 64x64 /tmp/out{n}.png{tail}", h("/usr/bin/convert"))
    return habit("alert-habit-php-chained-payload",
                 "issue 17 item 3 (shell metacharacters are never normalised away); Elastic persistence_webserver_suspicious_command_execution",
                 "php-fpm learned convert; an injected '; echo ... > shell.php' after the same helper is a new template",
                 "php-fpm", [c(11), c(22)],
                 [c(33), c(44, "; echo PD9waHAgc3lzdGVtKCRfR0VUWzBdKTs= > /var/www/html/s.php")],
                 alerts=[None, "new"])


@scenario
def learned_server_recon_still_alerts():
    return habit("alert-habit-recon-always",
                 "issue 17 item 4 (recon and download tools always alert, learned or not); Elastic linux_webshell_recon",
                 "tomcat ran sh -c 'curl -fsS http://127.0.0.1:8080/health' while learning; the same command afterwards still raises the recon alert, and its shell is known",
                 "tomcat", [("curl -fsS http://127.0.0.1:8080/health", h("/usr/bin/curl", "-fsS", "http://127.0.0.1:8080/health"))],
                 [("curl -fsS http://127.0.0.1:8080/health", h("/usr/bin/curl", "-fsS", "http://127.0.0.1:8080/health"))],
                 alerts=["recon"])


@scenario
def other_application_same_executable():
    pair = []
    for part in ("learn", "test"):
        s = Sc("alert-habit-other-jar", "issue 17 item 3 (the baseline is per application: jar, script or working directory)",
               "jetty's start.jar learned 'sh -c \"soffice ...\"'; a second Java application (another -jar) on the same JDK runs the same command: not learned for it")
        j = s.spawn(1, JAVA, [JAVA, "-Djetty.home=/usr/share/jetty9", "-jar", "/usr/share/jetty9/start.jar"], uid=998)
        cmd = "soffice --headless --convert-to pdf /tmp/in_1.docx"
        s.wait(10)
        if part == "learn":
            shell_out(s, "jetty", j, cmd, None)
        else:
            k = s.spawn(1, JAVA, [JAVA, "-Djetty.home=/opt/jetty-b", "-jar", "/opt/jetty-b/other-start.jar"], uid=998)
            shell_out(s, "jetty", j, cmd, None)
            sh = shell_out(s, "jetty", k, cmd, None)
            s.alert(SHELL, k, sh)
            s.expect[-1]["baseline_new"] = True
        pair.append(s)
    return pair


@scenario
def interactive_shell_after_learning():
    return habit("alert-habit-interactive-shell",
                 "issue 17 item 4 (an interactive shell always alerts); Sigma proc_creation_lnx_susp_interactive_bash",
                 "gunicorn learned 'sh -c \"bash -i\"' (a shell that spawns an interactive bash); afterwards both still alert: the outer sh because its payload starts an interactive shell (an indicator the baseline never judges), and bash -i",
                 "gunicorn", [("bash -i", ("/bin/bash", ["bash", "-i"]))], [("bash -i", ("/bin/bash", ["bash", "-i"]))],
                 alerts=["both"])


def main():
    names = set()
    benign = 0
    for fn in scenarios:
        pair = fn()
        name = pair[1].name
        if name in names:
            sys.exit(f"duplicate scenario {name}")
        names.add(name)
        benign += name.startswith("benign-")
        write(pair)
    print(f"{len(names)} habit scenarios: {benign} benign, {len(names) - benign} alert")


if __name__ == "__main__":
    main()
