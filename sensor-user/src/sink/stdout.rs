//! NDJSON on standard output, for container log collectors.

use std::io::{IoSlice, Write};

use bytes::Bytes;

use super::{
    delivery::{Delivered, Transport},
    vectored,
};

pub struct Stdout;

impl Transport for Stdout {
    fn send(&mut self, batch: &[Bytes]) -> Result<Delivered, String> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut slices = Vec::with_capacity(2 * batch.len());
        for record in batch {
            slices.push(IoSlice::new(record));
            slices.push(IoSlice::new(b"\n"));
        }
        vectored::write_all(&mut out, &mut slices)
            .map_err(|e| format!("writing to stdout: {e}"))?;
        // A reader sees each batch as soon as it is detected.
        out.flush().map_err(|e| format!("writing to stdout: {e}"))?;
        Ok(Delivered::default())
    }
}
