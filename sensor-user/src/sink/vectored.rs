//! Whole writes of many buffers at once (a frame header, then the alert it frames, ...), so that
//! a batch reaches the file or socket without each alert being copied into one buffer first.

use std::{
    fs::File,
    io::{self, IoSlice, Write},
    os::fd::AsRawFd,
};

/// Buffers per system call: Linux refuses more than `IOV_MAX` (1024) with EINVAL.
const IOV_MAX: usize = 1024;

/// Writes every byte of `slices`, in order, however the writer splits it.
pub fn write_all(out: &mut impl Write, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let upto = slices.len().min(IOV_MAX);
        match out.write_vectored(&slices[..upto]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes every byte of `slices` at `offset` of `file` (pwritev), in order.
pub fn write_all_at(file: &File, mut slices: &mut [IoSlice<'_>], offset: u64) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    let mut at = offset;
    while !slices.is_empty() {
        let upto = slices.len().min(IOV_MAX);
        let offset = libc::off_t::try_from(at).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: IoSlice is ABI-compatible with iovec on Unix (std guarantees it); `upto`
        // slices are valid and borrowed for the call; the descriptor is open.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast::<libc::iovec>(),
                upto as libc::c_int,
                offset,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let n = n as usize;
        IoSlice::advance_slices(&mut slices, n);
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    /// More buffers than one call takes, and a writer that takes a few bytes at a time: every
    /// byte arrives once, in order.
    #[test]
    fn every_byte_arrives_in_order() {
        let parts: Vec<Vec<u8>> = (0..3000).map(|i| format!("{i},").into_bytes()).collect();
        let expected: Vec<u8> = parts.concat();

        /// Takes at most 7 bytes per call, as a congested socket may.
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(7);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut out = Trickle(Vec::new());
        write_all(&mut out, &mut slices).expect("write");
        assert_eq!(out.0, expected);

        let mut into_vec = Vec::new();
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all(&mut into_vec, &mut slices).expect("write");
        assert_eq!(into_vec, expected);

        let file = tempfile::tempfile().expect("file");
        file.write_all_at(b"head", 0).expect("head");
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all_at(&file, &mut slices, 4).expect("pwritev");
        let mut back = vec![0u8; 4 + expected.len()];
        file.read_exact_at(&mut back, 0).expect("read");
        assert_eq!(&back[..4], b"head");
        assert_eq!(&back[4..], &expected[..]);
    }
}
