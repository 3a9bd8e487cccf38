//! A parser for event lines in exactly the shape `record` writes them: every field in the
//! order of the event's struct, no whitespace, no escapes in strings, integers in range.
//! serde_json's generic path spent most of replay's time on such lines (matching keys, parsing
//! integers, checking every string for escapes again). Anything else (another key order, an
//! unknown or missing field, an escape) is declined (`None`), never guessed at: the caller then
//! parses the line with serde_json, which gives the same event or the error it always gave. So a
//! declined line costs one extra partial scan, and no line reads differently.

use std::net::IpAddr;

use crate::event::{
    Connect, ConnectCall, Event, Exec, Exit, Family, File, FileOp, Fork, Listen, PreventAction,
    Proto,
};

/// The event on the line at the start of `buf` and the line's length with its newline, when the
/// whole line is there. Lets the reader parse where the line lies in its buffer: no copy, and no
/// separate scans for the newline and for UTF-8, since the parse itself sees every byte (outside
/// strings only ASCII is accepted, and strings are checked).
pub(super) fn line(buf: &[u8]) -> Option<(Event, usize)> {
    let (event, end) = parse(buf)?;
    (buf.get(end) == Some(&b'\n')).then_some((event, end + 1))
}

/// The event on one line (without its line ending).
pub(super) fn event(line: &[u8]) -> Option<Event> {
    let (event, end) = parse(line)?;
    (end == line.len()).then_some(event)
}

/// An event object at the start of `bytes`, and where it ends.
fn parse(bytes: &[u8]) -> Option<(Event, usize)> {
    let mut c = Cursor { bytes, pos: 0 };
    let event = if c.literal(b"{\"type\":\"exec\"") {
        Event::Exec(exec(&mut c)?)
    } else if c.literal(b"{\"type\":\"fork\"") {
        Event::Fork(fork(&mut c)?)
    } else if c.literal(b"{\"type\":\"exit\"") {
        Event::Exit(exit(&mut c)?)
    } else if c.literal(b"{\"type\":\"connect\"") {
        Event::Connect(connect(&mut c)?)
    } else if c.literal(b"{\"type\":\"file\"") {
        Event::File(file(&mut c)?)
    } else if c.literal(b"{\"type\":\"listen\"") {
        Event::Listen(listen(&mut c)?)
    } else {
        return None;
    };
    c.eat(b'}')?;
    Some((event, c.pos))
}

// Struct expressions evaluate their fields in the order written, which is the order of the keys.

fn exec(c: &mut Cursor<'_>) -> Option<Exec> {
    Some(Exec {
        ts_ns: c.key("ts_ns")?.u64()?,
        pid: c.key("pid")?.u32()?,
        tid: c.key("tid")?.u32()?,
        ppid: c.key("ppid")?.u32()?,
        start_ns: c.key("start_ns")?.u64()?,
        uid: c.key("uid")?.u32()?,
        gid: c.key("gid")?.u32()?,
        euid: c.key("euid")?.u32()?,
        comm: c.key("comm")?.string()?,
        exe: c.key("exe")?.string()?,
        argv: c.key("argv")?.strings()?,
        argv_truncated: c.key("argv_truncated")?.bool()?,
        argv_bytes: c.key("argv_bytes")?.u64()?,
        cgroup_id: c.key("cgroup_id")?.u64()?,
        // Left out by records made before they existed, and when the kernel gave none.
        exe_dev: c.optional("exe_dev", Cursor::u64)?,
        exe_ino: c.optional("exe_ino", Cursor::u64)?,
        exe_nlink: c.optional("exe_nlink", Cursor::u32)?,
        // Never recorded (`record` takes no prevention); a line with it takes the slow path.
        hold: None,
    })
}

fn fork(c: &mut Cursor<'_>) -> Option<Fork> {
    Some(Fork {
        ts_ns: c.key("ts_ns")?.u64()?,
        pid: c.key("pid")?.u32()?,
        tid: c.key("tid")?.u32()?,
        ppid: c.key("ppid")?.u32()?,
        start_ns: c.key("start_ns")?.u64()?,
        uid: c.key("uid")?.u32()?,
        gid: c.key("gid")?.u32()?,
        comm: c.key("comm")?.string()?,
        cgroup_id: c.key("cgroup_id")?.u64()?,
    })
}

fn exit(c: &mut Cursor<'_>) -> Option<Exit> {
    Some(Exit {
        ts_ns: c.key("ts_ns")?.u64()?,
        pid: c.key("pid")?.u32()?,
        start_ns: c.key("start_ns")?.u64()?,
        exit_code: c.key("exit_code")?.i32()?,
        signal: c.key("signal")?.i32()?,
    })
}

fn connect(c: &mut Cursor<'_>) -> Option<Connect> {
    Some(Connect {
        ts_ns: c.key("ts_ns")?.u64()?,
        pid: c.key("pid")?.u32()?,
        tid: c.key("tid")?.u32()?,
        uid: c.key("uid")?.u32()?,
        family: match c.key("family")?.str()? {
            "inet" => Family::Inet,
            "inet6" => Family::Inet6,
            _ => return None,
        },
        // What serde's IpAddr does with a JSON string: `str::parse`.
        daddr: c.key("daddr")?.str()?.parse::<IpAddr>().ok()?,
        dport: u16::try_from(c.key("dport")?.u64()?).ok()?,
        proto: match c.key("proto")?.str()? {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "unknown" => Proto::Unknown,
            _ => return None,
        },
        ret: c.key("ret")?.i32()?,
        // Left out for connect().
        call: match c.key("call") {
            Some(c) => match c.str()? {
                "sendmsg" => ConnectCall::Sendmsg,
                _ => return None,
            },
            None => ConnectCall::Connect,
        },
        // Left out when prevention took no decision.
        prevention: match c.key("prevention") {
            Some(c) => match c.str()? {
                "would-block" => Some(PreventAction::WouldBlock),
                "blocked" => Some(PreventAction::Blocked),
                _ => return None,
            },
            None => None,
        },
    })
}

fn family(c: &mut Cursor<'_>) -> Option<Family> {
    match c.str()? {
        "inet" => Some(Family::Inet),
        "inet6" => Some(Family::Inet6),
        _ => None,
    }
}

fn listen(c: &mut Cursor<'_>) -> Option<Listen> {
    Some(Listen {
        ts_ns: c.key("ts_ns")?.u64()?,
        pid: c.key("pid")?.u32()?,
        tid: c.key("tid")?.u32()?,
        uid: c.key("uid")?.u32()?,
        family: family(c.key("family")?)?,
        addr: c.key("addr")?.str()?.parse::<IpAddr>().ok()?,
        port: u16::try_from(c.key("port")?.u64()?).ok()?,
        proto: match c.key("proto")?.str()? {
            "tcp" => Proto::Tcp,
            _ => return None,
        },
    })
}

fn file(c: &mut Cursor<'_>) -> Option<File> {
    Some(File {
        ts_ns: c.key("ts_ns")?.u64()?,
        pid: c.key("pid")?.u32()?,
        tid: c.key("tid")?.u32()?,
        uid: c.key("uid")?.u32()?,
        op: match c.key("op")?.str()? {
            "open" => FileOp::Open,
            "rename" => FileOp::Rename,
            "link" => FileOp::Link,
            "symlink" => FileOp::Symlink,
            _ => return None,
        },
        path: c.key("path")?.string()?,
        path_truncated: c.key("path_truncated")?.bool()?,
        // Left out when there is none; `null` would read as none too, but `record` never writes
        // it.
        source: match c.key("source") {
            Some(c) => Some(c.string()?),
            None => None,
        },
        flags: c.key("flags")?.u32()?,
        ret: c.key("ret")?.i32()?,
        dev: c.optional("dev", Cursor::u64)?,
        ino: c.optional("ino", Cursor::u64)?,
    })
}

/// Position in a line; every method returns `None` for anything it does not accept as `record`
/// writes it.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Consumes `word` if it comes next.
    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self
            .bytes
            .get(self.pos..)
            .is_some_and(|at| at.starts_with(word));
        if found {
            self.pos += word.len();
        }
        found
    }

    /// Consumes `,"name":`, which must come next. Inlined, so that comparing with a constant
    /// name compiles to a few word comparisons.
    #[inline(always)]
    fn key(&mut self, name: &str) -> Option<&mut Self> {
        let name = name.as_bytes();
        let at = self.bytes.get(self.pos..)?;
        let end = name.len() + 2;
        if at.get(..2)? == b",\"" && at.get(2..end)? == name && at.get(end..end + 2)? == b"\":" {
            self.pos += end + 2;
            Some(self)
        } else {
            None
        }
    }

    /// `Some(None)` when the key does not come next, `Some(Some(value))` when it does and its
    /// value reads, `None` (decline) when it does but the value does not.
    fn optional<T>(&mut self, name: &str, value: fn(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.key(name) {
            Some(c) => value(c).map(Some),
            None => Some(None),
        }
    }

    /// A string without escapes or control characters, borrowed from the line. Bounded by
    /// ASCII quotes, which are never part of a multi-byte character, so the line is valid
    /// UTF-8 if every string in it is.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let end = start + string_end(&self.bytes[start..])?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.pos = end + 1;
        std::str::from_utf8(&self.bytes[start..end]).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.eat(b']').is_some() {
            return Some(out);
        }
        loop {
            out.push(self.string()?);
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }

    fn bool(&mut self) -> Option<bool> {
        if self.literal(b"true") {
            Some(true)
        } else if self.literal(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// A JSON integer without sign: no leading zeros, no fraction or exponent (a `.` or `e` left
    /// behind is declined by whatever reads next), no overflow.
    fn u64(&mut self) -> Option<u64> {
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(&b) = self.bytes.get(self.pos) {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            // Cannot overflow before the 20th digit; checked below.
            value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
            self.pos += 1;
        }
        let digits = &self.bytes[start..self.pos];
        match digits {
            [] => None,
            [b'0', _, ..] => None,
            _ if digits.len() < 20 => Some(value),
            // u64::MAX has 20 digits: redo the rare long number with overflow checks.
            _ => digits.iter().try_fold(0u64, |v, &b| {
                v.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            }),
        }
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.u64()?).ok()
    }

    /// serde_json reads `-0` as a float, which an integer field refuses: declined too.
    fn i32(&mut self) -> Option<i32> {
        if self.eat(b'-').is_some() {
            let magnitude = self.u64()?;
            if magnitude == 0 {
                return None;
            }
            i32::try_from(-i64::try_from(magnitude).ok()?).ok()
        } else {
            i32::try_from(self.u64()?).ok()
        }
    }
}

/// Where the string starting at `bytes` ends: the offset of its closing quote, or of the first
/// backslash or control character, which the caller declines. Eight bytes at a time, as
/// serde_json does: argv and paths are the bulk of a record.
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTE: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASH: u64 = u64::from_ne_bytes([b'\\'; 8]);
    const SPACE: u64 = u64::from_ne_bytes([0x20; 8]);
    let (words, _) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let w = u64::from_le_bytes(*word);
        // A byte's high bit is set here when the byte is below 0x20, equals a quote or equals
        // a backslash; bytes above the lowest such byte may be flagged wrongly, never below it.
        let zero_if = |x: u64| x.wrapping_sub(ONES) & !x;
        let found =
            (zero_if(w ^ QUOTE) | zero_if(w ^ BACKSLASH) | (w.wrapping_sub(SPACE) & !w)) & HIGH;
        if found != 0 {
            return Some(i * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let tail = words.len() * 8;
    bytes[tail..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| tail + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the fast path makes of a whole line, or `None` when it declines; the same read
    /// in place from a buffer holding the line and the next one.
    fn fast(line: &str) -> Option<Event> {
        let whole = event(line.as_bytes());
        let buffered = format!("{line}\n{line}\n");
        let in_place = super::line(buffered.as_bytes());
        assert_eq!(
            in_place,
            whole.clone().map(|e| (e, line.len() + 1)),
            "{line}"
        );
        whole
    }

    const LINES: &[&str] = &[
        r#"{"type":"exec","ts_ns":606981815110,"pid":8140,"tid":8140,"ppid":8135,"start_ns":606981287430,"uid":33,"gid":33,"euid":33,"comm":"sh","exe":"/usr/bin/sh","argv":["sh","-c","id"],"argv_truncated":false,"argv_bytes":9,"cgroup_id":1}"#,
        r#"{"type":"exec","ts_ns":1,"pid":2,"ppid":1,"start_ns":1,"uid":0,"gid":0,"comm":"","exe":"","argv":[],"argv_truncated":true,"cgroup_id":18446744073709551615}"#,
        r#"{"type":"exec","ts_ns":1,"pid":2,"ppid":1,"start_ns":1,"uid":0,"gid":0,"comm":"é","exe":"/tmp/ünï","argv":["a\\xff","b\n","\u001b[31m"],"argv_truncated":false,"cgroup_id":0}"#,
        r#"{"type":"fork","ts_ns":606982576808,"pid":8141,"tid":8140,"ppid":8140,"start_ns":606982573973,"uid":33,"gid":33,"comm":"sh","cgroup_id":1}"#,
        r#"{"type":"fork","ts_ns":1,"pid":2,"ppid":1,"start_ns":1}"#,
        r#"{"type":"exit","ts_ns":606990000000,"pid":8141,"start_ns":606982573973,"exit_code":0,"signal":0}"#,
        r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":-2147483648,"signal":2147483647}"#,
        r#"{"type":"connect","ts_ns":607085275121,"pid":8143,"tid":8143,"uid":33,"family":"inet","daddr":"203.0.113.9","dport":4444,"proto":"tcp","ret":-115}"#,
        r#"{"type":"connect","ts_ns":1,"pid":2,"tid":3,"family":"inet6","daddr":"::ffff:10.0.0.1","dport":65535,"proto":"unknown","ret":0}"#,
        r#"{"type":"connect","ts_ns":1,"pid":2,"tid":3,"uid":0,"family":"inet","daddr":"192.0.2.1","dport":53,"proto":"udp","ret":0,"call":"sendmsg"}"#,
        r#"{"type":"listen","ts_ns":1,"pid":2,"tid":3,"uid":33,"family":"inet6","addr":"::","port":8080,"proto":"tcp"}"#,
        r#"{"type":"file","ts_ns":3169633191962,"pid":21144,"tid":21144,"uid":33,"op":"rename","path":"/var/www/html/x.php","path_truncated":false,"source":"/tmp/x.php","flags":1,"ret":0}"#,
        r#"{"type":"file","ts_ns":1,"pid":2,"tid":2,"uid":0,"op":"open","path":"/var/www/a","source":null,"flags":577,"ret":-13}"#,
        r#"{"type":"file","ts_ns":1,"pid":2,"tid":2,"uid":0,"op":"link","path":"/var/www/a","flags":0,"ret":3}"#,
        r#"{"type":"exec","ts_ns":1,"pid":2,"tid":2,"ppid":1,"start_ns":1,"uid":0,"gid":0,"euid":0,"comm":"x","exe":"/tmp/x","argv":["x"],"argv_truncated":false,"argv_bytes":2,"cgroup_id":1,"exe_dev":2049,"exe_ino":18446744073709551615,"exe_nlink":0}"#,
        r#"{"type":"file","ts_ns":1,"pid":2,"tid":2,"uid":33,"op":"open","path":"/var/www/a","path_truncated":false,"flags":577,"ret":3,"dev":2049,"ino":77}"#,
        r#"{"type":"connect","ts_ns":1,"pid":2,"tid":3,"uid":0,"family":"inet","daddr":"192.0.2.1","dport":53,"proto":"udp","ret":-1,"call":"sendmsg","prevention":"blocked"}"#,
        r#"{"type":"connect","ts_ns":1,"pid":2,"tid":3,"uid":0,"family":"inet","daddr":"192.0.2.1","dport":443,"proto":"tcp","ret":0,"prevention":"would-block"}"#,
    ];

    /// Whatever the fast path accepts, serde_json reads the same way.
    fn agrees(line: &str) {
        if let Some(event) = fast(line) {
            let slow: Result<Event, _> = serde_json::from_str(line);
            assert_eq!(slow.as_ref().ok(), Some(&event), "{line}");
        }
    }

    #[test]
    fn record_lines_read_as_serde_reads_them() {
        for line in LINES {
            let slow: Event = serde_json::from_str(line).expect(line);
            assert!(fast(line).is_none_or(|e| e == slow), "{line}");
        }
        // In `record`'s own shape, not declined.
        for i in [0, 3, 5, 7, 9, 11, 14, 15, 16, 17] {
            assert!(fast(LINES[i]).is_some(), "{}", LINES[i]);
        }
    }

    #[test]
    fn written_events_take_the_fast_path() {
        for line in LINES {
            let event: Event = serde_json::from_str(line).expect(line);
            let written = serde_json::to_string(&event).expect("serialise");
            if !written.contains('\\') {
                assert_eq!(fast(&written), Some(event), "{written}");
            }
        }
    }

    #[test]
    fn anything_unusual_is_declined_not_misread() {
        let declined = [
            r#"{"type":"exit","pid":7,"ts_ns":1,"exit_code":0,"signal":0}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"start_ns":1,"exit_code":0}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"start_ns":1,"exit_code":0,"signal":0,"x":1}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"start_ns":1,"exit_code":0,"signal":0"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"start_ns":1,"exit_code":0,"signal":0}x"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"start_ns":1,"exit_code":0,"signal":0},"#,
            r#"{"type":"file","ts_ns":1,"pid":2,"tid":2,"uid":0,"op":"open","path":"/a","path_truncated":false,"source":null,"flags":0,"ret":0}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":0,"pid":8}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":0,"type":"exit"}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":0,"future":1}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":-0}"#,
            r#"{"type":"exit","ts_ns":01,"pid":7,"exit_code":0}"#,
            r#"{"type":"exit","ts_ns":1.0,"pid":7,"exit_code":0}"#,
            r#"{"type":"exit","ts_ns":1e3,"pid":7,"exit_code":0}"#,
            r#"{"type":"exit","ts_ns":1,"pid":4294967296,"exit_code":0}"#,
            r#"{"type":"exit","ts_ns":18446744073709551616,"pid":7,"exit_code":0}"#,
            r#"{"type":"exit","ts_ns":1,"pid":-7,"exit_code":0}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":2147483648}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":-2147483649}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7}"#,
            r#"{"type":"exit", "ts_ns":1,"pid":7,"exit_code":0}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":0}}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":0,}"#,
            r#"{"type":"exit","ts_ns":1,"pid":7,"exit_code":null}"#,
            r#"{"type":"exit","ts_\u006es":1,"pid":7,"exit_code":0}"#,
            r#"{"type":"fork","ts_ns":1,"pid":2,"ppid":1,"start_ns":1,"comm":"a\"b"}"#,
            r#"{"type":"fork","ts_ns":1,"pid":2,"ppid":1,"start_ns":1,"comm":null}"#,
            "{\"type\":\"fork\",\"ts_ns\":1,\"pid\":2,\"ppid\":1,\"start_ns\":1,\"comm\":\"a\tb\"}",
            r#"{"type":"exec","ts_ns":1,"pid":2,"ppid":1,"start_ns":1,"uid":0,"gid":0,"comm":"","exe":"","argv":["a",],"argv_truncated":true,"cgroup_id":0}"#,
            r#"{"type":"exec","ts_ns":1,"pid":2,"ppid":1,"start_ns":1,"uid":0,"gid":0,"comm":"","exe":"","argv":["a" ],"argv_truncated":true,"cgroup_id":0}"#,
            r#"{"type":"exec","ts_ns":1,"pid":2,"ppid":1,"start_ns":1,"uid":0,"gid":0,"comm":"","exe":"","argv":[1],"argv_truncated":true,"cgroup_id":0}"#,
            r#"{"type":"exec","ts_ns":1,"pid":2,"ppid":1,"start_ns":1,"uid":0,"gid":0,"comm":"","exe":"","argv":[],"argv_truncated":tru,"cgroup_id":0}"#,
            r#"{"type":"connect","ts_ns":1,"pid":2,"tid":3,"family":"INET","daddr":"10.0.0.1","dport":1,"proto":"tcp","ret":0}"#,
            r#"{"type":"connect","ts_ns":1,"pid":2,"tid":3,"family":"inet","daddr":"10.0.0.256","dport":1,"proto":"tcp","ret":0}"#,
            r#"{"type":"connect","ts_ns":1,"pid":2,"tid":3,"family":"inet","daddr":"10.0.0.1","dport":65536,"proto":"tcp","ret":0}"#,
            r#"{"type":"file","ts_ns":1,"pid":2,"tid":2,"uid":0,"op":"unlink","path":"/a","flags":0,"ret":0}"#,
            r#"{"type":"bogus","ts_ns":1}"#,
        ];
        for line in declined {
            assert_eq!(fast(line), None, "{line}");
        }
    }

    #[test]
    fn string_end_finds_the_first_stop_byte() {
        let naive = |b: &[u8]| b.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        let mut cases: Vec<Vec<u8>> =
            vec![Vec::new(), b"abc".to_vec(), "héllo wörld, ünïcode".into()];
        for len in 0..20 {
            for at in 0..len {
                for stop in [b'"', b'\\', 0, 0x1f, b'\n'] {
                    let mut v: Vec<u8> = (0..len)
                        .map(|i| [b'a', 0x20, 0x7f, 0x80, 0xff, b'!', b'#'][i % 7])
                        .collect();
                    v[at] = stop;
                    cases.push(v.clone());
                    if at + 1 < len {
                        v[at + 1] = b'"';
                        cases.push(v);
                    }
                }
            }
        }
        for case in &cases {
            assert_eq!(string_end(case), naive(case), "{case:?}");
        }
    }

    #[test]
    fn a_line_cut_by_the_buffer_or_not_utf8_is_declined() {
        for line in LINES {
            let full = format!("{line}\n");
            for cut in 0..full.len() {
                assert_eq!(
                    super::line(&full.as_bytes()[..cut]),
                    None,
                    "{line} cut at {cut}"
                );
            }
        }
        let mut bytes = LINES[3].as_bytes().to_vec();
        let at = LINES[3].find("\"sh\"").expect("comm") + 1;
        bytes[at] = 0xff;
        assert_eq!(event(&bytes), None);
        assert!(serde_json::from_slice::<Event>(&bytes).is_err());
    }

    /// Every line of the replay corpus and of the fuzz inputs for the record reader reads the
    /// same through the fast path as through serde_json, and so does each of their events as
    /// `record` would write it (the corpus is written with spaces, which the fast path declines).
    #[test]
    fn corpus_lines_read_as_serde_reads_them() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests");
        let dirs = [
            root.join("scenarios"),
            root.join("fuzz/seeds/record"),
            root.join("fuzz/regressions/record"),
        ];
        let mut rewritten = 0;
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(bytes) = std::fs::read(entry.path()) else {
                    continue;
                };
                for raw in bytes.split(|&b| b == b'\n') {
                    let raw = raw.trim_ascii();
                    let slow = serde_json::from_slice::<Event>(raw).ok();
                    if let Some(fast) = event(raw) {
                        assert_eq!(slow, Some(fast), "{}", String::from_utf8_lossy(raw));
                    }
                    let Some(slow) = slow else { continue };
                    let line = serde_json::to_string(&slow).expect("serialise");
                    let fast = event(line.as_bytes());
                    if !line.contains('\\') {
                        assert_eq!(fast.as_ref(), Some(&slow), "{line}");
                        rewritten += 1;
                    }
                }
            }
        }
        assert!(rewritten > 400, "only {rewritten} lines");
    }

    /// Every line with one byte removed, doubled or replaced by a JSON-significant one: the fast
    /// path either declines or agrees with serde_json.
    #[test]
    fn mutated_lines_never_disagree_with_serde() {
        let bytes: &[u8] = b"\",:{}[]0-1.e\\ nt";
        for line in LINES {
            for i in 0..line.len() {
                if !line.is_char_boundary(i) || !line.is_char_boundary(i + 1) {
                    continue;
                }
                agrees(&format!("{}{}", &line[..i], &line[i + 1..]));
                agrees(&format!("{}{}", &line[..=i], &line[i..]));
                for &b in bytes {
                    agrees(&format!("{}{}{}", &line[..i], b as char, &line[i + 1..]));
                }
            }
        }
    }
}
