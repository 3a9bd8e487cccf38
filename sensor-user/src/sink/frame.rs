//! How one spooled alert sits on disk: whole or not at all.
//!
//! A record is `length (u32 LE) | CRC-32 of the payload (u32 LE) | payload`. A write cut short
//! (a full disk, a crash) leaves a tail whose length or checksum does not hold; it is recognised
//! as such and cut off, never sent as part of another alert.

/// Bytes before the payload.
pub const HEADER: usize = 8;
/// Longest payload accepted back: far above any alert (argv is capped at 128 KiB), and a garbled
/// length cannot make the reader allocate gigabytes.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// Appends one framed record to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&header(payload));
    out.extend_from_slice(payload);
}

/// The bytes that go before `payload`: written beside it (a vectored write), the payload
/// itself is not copied.
pub fn header(payload: &[u8]) -> [u8; HEADER] {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    header
}

/// Writes `records` framed, back to back, at `offset` of `file` in one vectored write (headers
/// beside the payloads, which are not copied); returns the bytes written.
pub fn write_at(
    file: &std::fs::File,
    records: &[bytes::Bytes],
    offset: u64,
) -> std::io::Result<u64> {
    let headers: Vec<[u8; HEADER]> = records.iter().map(|r| header(r)).collect();
    let mut slices = Vec::with_capacity(2 * records.len());
    for (header, record) in headers.iter().zip(records) {
        slices.push(std::io::IoSlice::new(header));
        slices.push(std::io::IoSlice::new(record));
    }
    super::vectored::write_all_at(file, &mut slices, offset)?;
    Ok(records.iter().map(|r| framed_len(r.len())).sum())
}

/// The framed size of a payload of `len` bytes.
pub fn framed_len(len: usize) -> u64 {
    (HEADER + len) as u64
}

/// One record read at `data[offset..]`.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole record and the offset after it.
    Record(&'a [u8], usize),
    /// Nothing more: `offset` is the end of the data.
    End,
    /// A torn or garbled record starts at `offset`: a short header or payload, a length over
    /// [`MAX_PAYLOAD`], or a checksum that does not match.
    Bad,
}

pub fn decode(data: &[u8], offset: usize) -> Decoded<'_> {
    let Some(rest) = data.get(offset..) else {
        return Decoded::Bad;
    };
    if rest.is_empty() {
        return Decoded::End;
    }
    let (Some(len), Some(crc)) = (word(rest, 0), word(rest, 4)) else {
        return Decoded::Bad;
    };
    let len = len as usize;
    if len > MAX_PAYLOAD {
        return Decoded::Bad;
    }
    let Some(payload) = rest.get(HEADER..HEADER + len) else {
        return Decoded::Bad;
    };
    if crc32fast::hash(payload) != crc {
        return Decoded::Bad;
    }
    Decoded::Record(payload, offset + HEADER + len)
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let four: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(four))
}

/// What a whole segment holds: the offset of each whole record and the length of the good
/// prefix (everything from the first bad record on is not trusted).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub starts: Vec<usize>,
    pub good_len: usize,
}

pub fn scan(data: &[u8]) -> Scan {
    let mut scan = Scan::default();
    loop {
        match decode(data, scan.good_len) {
            Decoded::Record(_, next) => {
                scan.starts.push(scan.good_len);
                scan.good_len = next;
            }
            Decoded::End | Decoded::Bad => return scan,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_recognised() {
        let mut data = Vec::new();
        encode(b"{\"a\":1}", &mut data);
        encode(b"", &mut data);
        encode(b"{\"b\":2}", &mut data);
        let whole = data.len();
        let scan = scan(&data);
        assert_eq!(scan.starts.len(), 3);
        assert_eq!(scan.good_len, whole);
        assert!(matches!(decode(&data, 0), Decoded::Record(b"{\"a\":1}", _)));
        // Every cut inside the last record leaves the first two.
        let second_end = scan.starts[2];
        for cut in second_end + 1..whole {
            let s = super::scan(&data[..cut]);
            assert_eq!(
                (s.starts.len(), s.good_len),
                (2, second_end),
                "cut at {cut}"
            );
        }
        // A flipped payload byte fails the checksum.
        let mut garbled = data.clone();
        garbled[whole - 2] ^= 0x20;
        assert_eq!(super::scan(&garbled).starts.len(), 2);
        // A huge length is refused without reading it.
        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(decode(&huge, 0), Decoded::Bad);
    }
}
