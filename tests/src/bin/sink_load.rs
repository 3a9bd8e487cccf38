//! The delivery path under load, for `cargo xtask bench`: `sink_load N` hands N encoded alerts
//! to three sinks at once (a file, an HTTP receiver and a syslog TCP receiver, both on
//! 127.0.0.1 in this process, each sink with its default spool) and prints
//! `alerts=N wall_secs=W cpu_secs=C` once every sink has delivered all of them.
//!
//! The alerts are encoded before the clock starts: what is timed is the sinks' machinery
//! (queue, spool, batching, framing, the socket or file write), not the detection.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use lineage_sensor::{
    config::{HttpFormat, OutputConfig, SinkConfig, SinkKind, SyslogProtocol},
    enrich::Line,
    metrics::Metrics,
    sink::Sinks,
};

/// Alerts let ahead of the slowest sink: well below the default queue bound (10,000), so that
/// no alert is dropped and every one is delivered.
const AHEAD: u64 = 4000;

fn main() -> ExitCode {
    let count = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(100_000);
    match run(count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sink_load: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(count: u64) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let http = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let syslog = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let http_addr = http.local_addr().map_err(|e| e.to_string())?;
    let syslog_addr = syslog.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || accept_each(&http, serve_http));
    std::thread::spawn(move || accept_each(&syslog, drain));

    let mut file = SinkConfig::stdout();
    file.kind = SinkKind::File;
    file.path = Some(dir.path().join("alerts.ndjson"));
    let mut web = SinkConfig::stdout();
    web.kind = SinkKind::Http;
    web.url = Some(format!("http://{http_addr}/alerts"));
    web.format = Some(HttpFormat::Ndjson);
    let mut sys = SinkConfig::stdout();
    sys.kind = SinkKind::Syslog;
    sys.address = Some(syslog_addr.to_string());
    sys.protocol = Some(SyslogProtocol::Tcp);
    let config = OutputConfig {
        spool_dir: dir.path().join("spool"),
        sinks: vec![file, web, sys],
    };
    let names: Vec<String> = config.sinks.iter().map(|s| s.name().to_owned()).collect();
    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let sinks = Sinks::start(&config, metrics.clone()).map_err(|e| e.to_string())?;
    let lines: Vec<Line> = (0..count).map(|i| Line::from(alert(i))).collect();
    let slowest = || {
        names
            .iter()
            .map(|n| metrics.sink_sent_count(n))
            .min()
            .unwrap_or(0)
    };

    let cpu_before = cpu_secs();
    let started = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        while i as u64 >= slowest() + AHEAD {
            std::thread::sleep(Duration::from_micros(200));
        }
        sinks.send_line(line.clone());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while slowest() < count {
        if Instant::now() > deadline {
            return Err(format!("only {} of {count} delivered", slowest()));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu_before;
    sinks.stop();
    for name in &names {
        for reason in ["queue_full", "backlog_full", "rejected"] {
            let dropped = metrics.sink_dropped_count(name, reason);
            if dropped > 0 {
                return Err(format!("sink {name}: {dropped} dropped ({reason})"));
            }
        }
    }
    println!("alerts={count} wall_secs={wall:.6} cpu_secs={cpu:.6}");
    Ok(())
}

/// An alert of the sensor's shape and usual size (about 1.3 KB): what the syslog header and the
/// receivers read from it is there.
fn alert(i: u64) -> Vec<u8> {
    let ns = i % 1_000_000_000;
    format!(
        concat!(
            r#"{{"@timestamp":"2026-12-05T08:00:00.{:09}Z","event":{{"id":"bench-{:016x}","#,
            r#""kind":"alert","category":["process"],"type":["start"],"severity":73,"#,
            r#""dataset":"lineage_sensor.alert"}},"rule":{{"id":"server-spawned-shell","#,
            r#""name":"A network server started a shell","description":"nginx (pid 801) "#,
            r#"started /bin/sh -c id; servers do not usually run shells"}},"host":{{"#,
            r#""hostname":"bench","id":"0123456789abcdef0123456789abcdef"}},"process":{{"#,
            r#""pid":{},"executable":"/bin/sh","command_line":"/bin/sh -c id","#,
            r#""args":["/bin/sh","-c","id"],"user":{{"id":"33","name":"www-data"}},"#,
            r#""parent":{{"pid":801,"executable":"/usr/sbin/nginx","command_line":"#,
            r#""nginx: worker process","args":["nginx: worker process"]}},"#,
            r#""group_leader":{{"pid":800}},"working_directory":"/var/www/html"}},"#,
            r#""lineage":[{{"pid":801,"comm":"nginx","exe":"/usr/sbin/nginx"}},"#,
            r#"{{"pid":800,"comm":"nginx","exe":"/usr/sbin/nginx"}},"#,
            r#"{{"pid":1,"comm":"systemd","exe":"/usr/lib/systemd/systemd"}}],"#,
            r#""container":{{"id":null}},"labels":{{"tree":"www","listening":"tcp/80,tcp/443"}},"#,
            r#""message":"nginx (pid 801, user www-data) spawned /bin/sh -c id in /var/www/html"}}"#
        ),
        ns,
        i,
        10_000 + i % 20_000
    )
    .into_bytes()
}

fn accept_each(listener: &TcpListener, serve: fn(TcpStream)) {
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
}

/// The syslog receiver: takes everything, answers nothing (as syslog over TCP does).
fn drain(mut stream: TcpStream) {
    let mut buf = vec![0u8; 1 << 16];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// A keep-alive HTTP/1.1 receiver that takes each request's body and answers 200.
fn serve_http(stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut body = Vec::new();
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                // A length it cannot read is not a delivery: close, and the sink retries.
                let Ok(n) = value.trim().parse() else {
                    return;
                };
                length = n;
            }
        }
        body.resize(length, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let reply =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if out.write_all(reply).is_err() {
            return;
        }
    }
}

fn cpu_secs() -> f64 {
    // SAFETY: an all-zero rusage is valid and getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
