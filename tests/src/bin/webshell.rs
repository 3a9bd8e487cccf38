//! A minimal web shell server for the evidence tests, copied under a server's name (`apache2`,
//! `php-fpm`, `nginx`) so that the sensor takes it for one:
//!
//! - `webshell serve PORT_FILE`: listens on 127.0.0.1 (a free port, written to PORT_FILE) and,
//!   for each connection, reads one line and runs it with `sh -c` while it holds the connection,
//!   sending back what it printed and keeping the connection until the client closes it: the
//!   shape of mod_php or a Java server running a web shell, with HTTP keep-alive.
//! - `webshell proxy PORT_FILE BACKEND_PORT`: listens the same way and hands each connection's
//!   line to a backend on 127.0.0.1:BACKEND_PORT, relaying the answer: nginx in front of php-fpm.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, TcpListener, TcpStream},
    process::{Command, ExitCode, Stdio},
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", port_file] => serve(port_file, None),
        ["proxy", port_file, backend] => match backend.parse() {
            Ok(port) => serve(port_file, Some(port)),
            Err(_) => Err(format!("not a port: {backend}")),
        },
        _ => Err("usage: webshell serve PORT_FILE | proxy PORT_FILE BACKEND_PORT".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("webshell: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve(port_file: &str, backend: Option<u16>) -> Result<(), String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    // Written whole, then renamed: the test never reads half a number.
    let tmp = format!("{port_file}.tmp");
    std::fs::write(&tmp, port.to_string()).map_err(|e| format!("{tmp}: {e}"))?;
    std::fs::rename(&tmp, port_file).map_err(|e| format!("{port_file}: {e}"))?;
    for conn in listener.incoming() {
        let conn = conn.map_err(|e| format!("accept: {e}"))?;
        let answer = match backend {
            None => run_line(&conn),
            Some(port) => relay(&conn, port),
        };
        let mut out = &conn;
        let _ = out.write_all(&answer.unwrap_or_else(|e| e.into_bytes()));
        keep_alive(&conn);
    }
    Ok(())
}

/// Answered: the connection stays open until the client closes it, as HTTP keep-alive keeps it
/// (and so does nginx's upstream connection while its client's is open).
fn keep_alive(conn: &TcpStream) {
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let _ = std::io::copy(&mut &*conn, &mut std::io::sink());
}

fn read_line(conn: &TcpStream) -> Result<String, String> {
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    Ok(line.trim_end().to_owned())
}

fn run_line(conn: &TcpStream) -> Result<Vec<u8>, String> {
    let line = read_line(conn)?;
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&line)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("sh: {e}"))?;
    Ok(out.stdout)
}

fn relay(conn: &TcpStream, backend: u16) -> Result<Vec<u8>, String> {
    let line = read_line(conn)?;
    let mut upstream =
        TcpStream::connect((Ipv4Addr::LOCALHOST, backend)).map_err(|e| format!("backend: {e}"))?;
    upstream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("backend: {e}"))?;
    let mut answer = Vec::new();
    upstream
        .read_to_end(&mut answer)
        .map_err(|e| format!("backend: {e}"))?;
    // The upstream connection lives as long as the client's: closed with it, by the caller's
    // keep-alive wait, when this function's caller returns... so keep it here until then.
    let conn = conn.try_clone().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut &conn, &mut std::io::sink());
        drop(upstream);
    });
    Ok(answer)
}
