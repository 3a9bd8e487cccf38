//! NDJSON appended to a file; reopened on SIGHUP so that logrotate can move it away.

use std::{
    fs::{File, OpenOptions},
    io::IoSlice,
    os::unix::fs::OpenOptionsExt,
    path::PathBuf,
};

use bytes::Bytes;

use super::{
    delivery::{Delivered, Transport},
    vectored,
};

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
    fn send(&mut self, batch: &[Bytes]) -> Result<Delivered, String> {
        let file = match self.file.take() {
            Some(file) => file,
            None => self.open()?,
        };
        let file = self.file.insert(file);
        let mut slices = Vec::with_capacity(2 * batch.len());
        for record in batch {
            slices.push(IoSlice::new(record));
            slices.push(IoSlice::new(b"\n"));
        }
        // One write per batch of up to 512 alerts (IOV_MAX buffers; longer batches take one
        // per 512): O_APPEND keeps each together, every line whole, even if another writer
        // shares the file.
        if let Err(e) = vectored::write_all(file, &mut slices) {
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
        sink.send(&[Bytes::from_static(b"{\"a\":1}")])
            .expect("send");
        let rotated = dir.path().join("alerts.ndjson.1");
        std::fs::rename(&path, &rotated).expect("rotate");
        // Before reopen, writes follow the moved file (as with any open descriptor).
        sink.send(&[Bytes::from_static(b"{\"b\":2}")])
            .expect("send");
        sink.reopen();
        sink.send(&[Bytes::from_static(b"{\"c\":3}")])
            .expect("send");
        assert_eq!(
            std::fs::read_to_string(&rotated).expect("rotated"),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "{\"c\":3}\n");
    }
}
