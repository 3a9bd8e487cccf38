//! The records read from a fanotify group in FAN_REPORT_DFID_NAME mode, split into events and
//! their directory-and-name information without trusting any length the buffer gives.

/// A file handle as the kernel reports it: opened again with open_by_handle_at(2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle {
    /// The filesystem it lives on (`f_fsid` of statfs(2)).
    pub fsid: [i32; 2],
    pub handle_type: i32,
    pub bytes: Vec<u8>,
}

/// A directory and a name in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirName {
    pub dir: Handle,
    pub name: Vec<u8>,
}

/// One event: the mask (several bits when the kernel merged events) and who caused it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawEvent {
    pub mask: u64,
    /// The thread group that caused it (0 when the kernel could not say).
    pub pid: u32,
    /// The entry the event is about (its parent directory and name).
    pub entry: Option<DirName>,
    /// For FAN_RENAME: where it was and where it went.
    pub old: Option<DirName>,
    pub new: Option<DirName>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("fanotify record version {0}, expected {expected}", expected = libc::FANOTIFY_METADATA_VERSION)]
    Version(u8),
    #[error("fanotify record claims {claimed} bytes with {left} left")]
    Length { claimed: usize, left: usize },
}

const METADATA: usize = std::mem::size_of::<libc::fanotify_event_metadata>();
/// info header (4) + fsid (8) + handle_bytes (4) + handle_type (4).
const FID_FIXED: usize = 20;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Splits what one read(2) returned into events. A record that does not fit ends the buffer
/// with an error (the kernel never writes a partial one, so this is a format drift).
pub fn parse(buf: &[u8], out: &mut Vec<RawEvent>) -> Result<(), ParseError> {
    let mut at = 0;
    while at < buf.len() {
        let left = buf.len() - at;
        let record = &buf[at..];
        let event_len = u32_at(record, 0).unwrap_or(0) as usize;
        if left < METADATA || event_len < METADATA || event_len > left {
            return Err(ParseError::Length {
                claimed: event_len,
                left,
            });
        }
        let vers = record[4];
        if vers != libc::FANOTIFY_METADATA_VERSION {
            return Err(ParseError::Version(vers));
        }
        let metadata_len = usize::from(u16_at(record, 6).unwrap_or(0)).max(METADATA);
        let mut event = RawEvent {
            mask: u64_at(record, 8).unwrap_or(0),
            pid: u32_at(record, 20).unwrap_or(0),
            ..RawEvent::default()
        };
        let mut info_at = metadata_len;
        while info_at + 4 <= event_len {
            let info_type = record[info_at];
            let len = usize::from(u16_at(record, info_at + 2).unwrap_or(0));
            if len < 4 || info_at + len > event_len {
                return Err(ParseError::Length {
                    claimed: len,
                    left: event_len - info_at,
                });
            }
            let info = &record[info_at..info_at + len];
            let slot = match info_type {
                libc::FAN_EVENT_INFO_TYPE_DFID_NAME => Some(&mut event.entry),
                libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME => Some(&mut event.old),
                libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME => Some(&mut event.new),
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = dir_name(info);
            }
            info_at += len;
        }
        out.push(event);
        at += event_len;
    }
    Ok(())
}

/// `struct fanotify_event_info_fid` followed by its NUL-terminated name.
fn dir_name(info: &[u8]) -> Option<DirName> {
    if info.len() < FID_FIXED {
        return None;
    }
    let fsid = [
        i32::from_ne_bytes(info.get(4..8)?.try_into().ok()?),
        i32::from_ne_bytes(info.get(8..12)?.try_into().ok()?),
    ];
    let handle_bytes = u32_at(info, 12)? as usize;
    let handle_type = i32::from_ne_bytes(info.get(16..20)?.try_into().ok()?);
    let bytes = info.get(FID_FIXED..FID_FIXED + handle_bytes)?.to_vec();
    let rest = info.get(FID_FIXED + handle_bytes..)?;
    let name_len = rest.iter().position(|&b| b == 0)?;
    Some(DirName {
        dir: Handle {
            fsid,
            handle_type,
            bytes,
        },
        name: rest[..name_len].to_vec(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One DFID_NAME-style info record as the kernel lays it out (padded to 4 bytes).
    pub(crate) fn info(kind: u8, handle: &[u8], name: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 0, 0, 0];
        v.extend_from_slice(&7i32.to_ne_bytes());
        v.extend_from_slice(&9i32.to_ne_bytes());
        v.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
        v.extend_from_slice(&1i32.to_ne_bytes());
        v.extend_from_slice(handle);
        v.extend_from_slice(name);
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        let len = v.len() as u16;
        v[2..4].copy_from_slice(&len.to_ne_bytes());
        v
    }

    pub(crate) fn record(mask: u64, pid: u32, infos: &[Vec<u8>]) -> Vec<u8> {
        let body: usize = infos.iter().map(Vec::len).sum();
        let mut v = Vec::new();
        v.extend_from_slice(&((METADATA + body) as u32).to_ne_bytes());
        v.push(libc::FANOTIFY_METADATA_VERSION);
        v.push(0);
        v.extend_from_slice(&(METADATA as u16).to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&(-1i32).to_ne_bytes());
        v.extend_from_slice(&pid.to_ne_bytes());
        for i in infos {
            v.extend_from_slice(i);
        }
        v
    }

    #[test]
    fn a_rename_carries_both_ends_and_a_create_its_entry() {
        let mut buf = record(
            libc::FAN_RENAME,
            42,
            &[
                info(
                    libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
                    &[1, 2, 3, 4],
                    b"a.php",
                ),
                info(
                    libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
                    &[5, 6, 7, 8, 9],
                    b"b.php",
                ),
            ],
        );
        buf.extend(record(
            libc::FAN_CREATE,
            43,
            &[info(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, &[1], b"c")],
        ));
        let mut out = Vec::new();
        parse(&buf, &mut out).expect("parse");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].pid, 42);
        let old = out[0].old.as_ref().expect("old");
        assert_eq!((old.name.as_slice(), old.dir.fsid), (&b"a.php"[..], [7, 9]));
        let new = out[0].new.as_ref().expect("new");
        assert_eq!(new.dir.bytes, [5, 6, 7, 8, 9]);
        assert_eq!(new.name, b"b.php");
        assert_eq!(out[1].mask, libc::FAN_CREATE);
        assert_eq!(out[1].entry.as_ref().expect("entry").name, b"c");
    }

    #[test]
    fn lengths_that_overrun_the_buffer_are_refused() {
        let mut buf = record(
            libc::FAN_CREATE,
            1,
            &[info(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, &[1, 2], b"x")],
        );
        let mut out = Vec::new();
        let short = buf.len() - 3;
        assert!(parse(&buf[..short], &mut out).is_err());
        // An info record claiming more than its event holds.
        buf[METADATA + 2..METADATA + 4].copy_from_slice(&500u16.to_ne_bytes());
        assert!(parse(&buf, &mut out).is_err());
        assert!(out.is_empty());
    }
}
