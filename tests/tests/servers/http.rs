//! Requests as an attacker or a visitor sends them: curl, with the query string URL-encoded.

use std::process::Command;

/// GETs `url` with `query` pairs; returns the status and the body.
pub fn get(url: &str, query: &[(&str, &str)]) -> Result<(u16, String), String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-G", "--max-time", "30", "-w", "\n%{http_code}"]);
    for (k, v) in query {
        cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
    }
    cmd.arg(url);
    let out = cmd.output().map_err(|e| format!("curl: {e}"))?;
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

/// Like [`get`], but anything but 200 is an error.
pub fn get_ok(url: &str, query: &[(&str, &str)]) -> Result<String, String> {
    match get(url, query)? {
        (200, body) => Ok(body),
        (code, body) => Err(format!("GET {url} {query:?}: HTTP {code}: {body}")),
    }
}
