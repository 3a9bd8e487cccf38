//! Lossless text for bytes the kernel hands us (argv, paths, comm).
//!
//! Command lines are attacker-controlled and need not be UTF-8. Every byte string becomes a Rust
//! `String` once, in the decoder, by this rule: valid UTF-8 is kept as it is, except the backslash,
//! which is doubled (`\\`); each byte that is not part of valid UTF-8 becomes `\xNN` (lowercase
//! hex). The rule is reversible ([`unescape`]), so `record` files and alerts keep every byte, and
//! everything downstream works on ordinary strings. JSON serialisation then escapes control
//! characters (newlines, ANSI escapes), so a crafted argument can neither break a line nor forge a
//! field.

use std::fmt::Write as _;

/// Turns raw bytes into the lossless text form described in the module docs.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The text is not in the form [`escape_bytes`] produces.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid escape at byte {offset} of {text:?}")]
pub struct UnescapeError {
    pub offset: usize,
    pub text: String,
}

/// Recovers the original bytes from [`escape_bytes`] output.
pub fn unescape(text: &str) -> Result<Vec<u8>, UnescapeError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let error = |offset| UnescapeError {
        offset,
        text: text.to_owned(),
    };
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = text.get(i + 2..i + 4).ok_or_else(|| error(i))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| error(i))?);
                i += 4;
            }
            _ => return Err(error(i)),
        }
    }
    Ok(out)
}

/// Splits a NUL-separated argument block into escaped arguments.
///
/// The kernel lays argv out as `arg0\0arg1\0...argN\0`; a block cut short by truncation has no
/// final NUL, and its last argument is kept as far as it goes.
pub fn split_argv(block: &[u8]) -> Vec<String> {
    if block.is_empty() {
        return Vec::new();
    }
    let block = block.strip_suffix(&[0]).unwrap_or(block);
    block.split(|&b| b == 0).map(escape_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_text_is_kept_and_backslash_doubled() {
        assert_eq!(escape_bytes("héllo wörld".as_bytes()), "héllo wörld");
        assert_eq!(escape_bytes(br"a\x41"), r"a\\x41");
    }

    #[test]
    fn invalid_bytes_round_trip() {
        let raw: &[u8] = b"\xff\xfe ok \\ \xc3\x28 \x1b[31m\n";
        let text = escape_bytes(raw);
        assert_eq!(text, "\\xff\\xfe ok \\\\ \\xc3( \u{1b}[31m\n");
        assert_eq!(unescape(&text).as_deref(), Ok(raw));
    }

    #[test]
    fn every_byte_round_trips() {
        let raw: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        assert_eq!(unescape(&escape_bytes(&raw)), Ok(raw));
    }

    #[test]
    fn malformed_escapes_are_errors() {
        assert!(unescape("\\").is_err());
        assert!(unescape("\\q").is_err());
        assert!(unescape("\\x4").is_err());
        assert!(unescape("\\xzz").is_err());
    }

    #[test]
    fn argv_block_splits_on_nul() {
        assert_eq!(split_argv(b"sh\0-c\0id\0"), ["sh", "-c", "id"]);
        assert_eq!(split_argv(b"a\0\0b\0"), ["a", "", "b"]);
        assert_eq!(split_argv(b"echo\0trunc"), ["echo", "trunc"]);
        assert!(split_argv(b"").is_empty());
    }
}
