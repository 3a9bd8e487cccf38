//! The parts of a path that alerts name and rules match on.

/// The last path component.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Everything before the last `/` (`/` for a file at the root).
pub fn directory(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// What follows the file name's last dot; none for dotfiles such as `.htaccess`.
pub fn extension(path: &str) -> Option<&str> {
    let (stem, ext) = file_name(path).rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then_some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts() {
        assert_eq!(file_name("/var/www/html/x.php"), "x.php");
        assert_eq!(directory("/var/www/html/x.php"), "/var/www/html");
        assert_eq!(directory("/x.php"), "/");
        assert_eq!(extension("/a/b.tar.gz"), Some("gz"));
        assert_eq!(extension("/a/.htaccess"), None);
        assert_eq!(extension("/a.b/c"), None);
    }
}
