//! The hash of a file an alert names.

/// The file's SHA-256 in hex, if it is still a regular file of at most `max_bytes`.
pub fn sha256_file(escaped_path: &str, max_bytes: u64) -> Option<String> {
    use sha2::{Digest as _, Sha256};
    use std::{io::Read as _, os::unix::ffi::OsStrExt as _};
    let raw = crate::escape::unescape(escaped_path).ok()?;
    let file = std::fs::File::open(std::ffi::OsStr::from_bytes(&raw)).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > max_bytes {
        return None;
    }
    // The file may grow between metadata and read: never hash more than the limit.
    let mut content = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut content)
        .ok()?;
    if content.len() as u64 > max_bytes {
        return None;
    }
    let digest = Sha256::digest(&content);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::sha256_file;

    #[test]
    fn hashes_small_regular_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.php");
        std::fs::write(&path, b"abc").expect("write");
        let text = path.to_str().expect("utf-8 temp path");
        assert_eq!(
            sha256_file(text, 3).as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(sha256_file(text, 2), None, "over the limit");
        assert_eq!(sha256_file(dir.path().to_str().expect("utf-8"), 10), None);
        assert_eq!(sha256_file(&format!("{text}.gone"), 10), None);
    }
}
