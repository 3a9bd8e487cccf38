//! NDJSON on standard output, for container log collectors.

use std::io::Write;

use super::delivery::{Delivered, Transport};

pub struct Stdout;

impl Transport for Stdout {
    fn send(&mut self, batch: &[Vec<u8>]) -> Result<Delivered, String> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for record in batch {
            out.write_all(record)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| format!("writing to stdout: {e}"))?;
        }
        // A reader sees each batch as soon as it is detected.
        out.flush().map_err(|e| format!("writing to stdout: {e}"))?;
        Ok(Delivered::default())
    }
}
