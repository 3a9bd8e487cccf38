//! Requests as an attacker or a visitor sends them: curl, with the query string URL-encoded.

use std::{path::Path, process::Command};

/// Every request leaves from this loopback address of the test's own, so that an alert's
/// `client.ip` can be told from the servers' 127.0.0.1.
pub const CLIENT: &str = "127.0.0.77";

/// GETs `url` with `query` pairs; returns the status and the body.
pub fn get(url: &str, query: &[(&str, &str)]) -> Result<(u16, String), String> {
    let mut cmd = Command::new("curl");
    cmd.arg("-G");
    for (k, v) in query {
        cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
    }
    send(cmd.arg(url), url)
}

/// Like [`get`], but anything but 200 is an error.
pub fn get_ok(url: &str, query: &[(&str, &str)]) -> Result<String, String> {
    match get(url, query)? {
        (200, body) => Ok(body),
        (code, body) => Err(format!("GET {url} {query:?}: HTTP {code}: {body}")),
    }
}

/// POSTs `file` as the multipart/form-data field `field` under the file name `filename`, as a
/// browser's upload form does; anything but 200 is an error.
pub fn upload_ok(url: &str, field: &str, file: &Path, filename: &str) -> Result<String, String> {
    let mut cmd = Command::new("curl");
    cmd.arg("-F")
        .arg(format!("{field}=@{};filename={filename}", file.display()));
    match send(cmd.arg(url), url)? {
        (200, body) => Ok(body),
        (code, body) => Err(format!("POST {url} ({filename}): HTTP {code}: {body}")),
    }
}

/// Runs the prepared curl; the status comes from `-w` after the body.
fn send(cmd: &mut Command, url: &str) -> Result<(u16, String), String> {
    let out = cmd
        .args(["-sS", "--max-time", "30", "--interface", CLIENT])
        .args(["-w", "\n%{http_code}"])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "curl {url}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = code
        .trim()
        .parse()
        .map_err(|_| format!("curl {url}: no status in {text:?}"))?;
    Ok((code, body.to_owned()))
}
