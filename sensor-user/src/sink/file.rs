//! NDJSON appended to a file; reopened on SIGHUP so that logrotate can move it away.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::PathBuf,
};

use super::delivery::{Delivered, Transport};

pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
}

impl FileSink {
    pub fn new(path: PathBuf) -> FileSink {
        FileSink { path, file: None }
    }

    fn open(&self) -> Result<File, String> {
        OpenOptions::new()
            .create(true)
            .append(true)
            // Alerts name users and command lines: not for every local user to read.
            .mode(0o640)
            .open(&self.path)
            .map_err(|e| format!("opening {}: {e}", self.path.display()))
    }
}

impl Transport for FileSink {
    fn send(&mut self, batch: &[Vec<u8>]) -> Result<Delivered, String> {
        let file = match self.file.take() {
            Some(file) => file,
            None => self.open()?,
        };
        let file = self.file.insert(file);
        let mut buf = Vec::with_capacity(batch.iter().map(|r| r.len() + 1).sum());
        for record in batch {
            buf.extend_from_slice(record);
            buf.push(b'\n');
        }
        // One write per batch: O_APPEND keeps a batch together even if another writer shares
        // the file.
        if let Err(e) = file.write_all(&buf) {
            self.file = None;
            return Err(format!("writing {}: {e}", self.path.display()));
        }
        Ok(Delivered::default())
    }

    fn reopen(&mut self) {
        // Opened again at the next write, at the path as it is now.
        self.file = None;
        log::info!("file sink: reopening {}", self.path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_lines_and_reopens_after_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alerts.ndjson");
        let mut sink = FileSink::new(path.clone());
        sink.send(&[b"{\"a\":1}".to_vec()]).expect("send");
        let rotated = dir.path().join("alerts.ndjson.1");
        std::fs::rename(&path, &rotated).expect("rotate");
        // Before reopen, writes follow the moved file (as with any open descriptor).
        sink.send(&[b"{\"b\":2}".to_vec()]).expect("send");
        sink.reopen();
        sink.send(&[b"{\"c\":3}".to_vec()]).expect("send");
        assert_eq!(
            std::fs::read_to_string(&rotated).expect("rotated"),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "{\"c\":3}\n");
    }
}
