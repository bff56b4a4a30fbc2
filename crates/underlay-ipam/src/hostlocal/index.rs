//! Who holds what, and the sidecar index file that caches it.
//!
//! Index file layout (text, one record a line):
//!
//! ```text
//! underlay-hostlocal-index 2
//! <ip> <container id>[ <ifname>]          the snapshot: one line per reservation file
//! stamp <dev> <ino> <mtime s> <mtime ns> <entries> <checksum of the lines above, hex>
//! +<ip> <container id>[ <ifname>]         appended by a later operation: reserved
//! -<ip>                                   appended: released
//! stamp ...                               that operation's stamp; its checksum covers the
//!                                         lines since the previous stamp, seeded with that
//!                                         stamp's checksum, so the stamps form a chain
//! ```
//!
//! An operation appends its changes and its stamp (O(1) bytes) instead of rewriting the
//! snapshot; once the appended lines pass [`compaction_due`]'s bound the file is rewritten
//! as a snapshot again, so reading stays O(reservations) and writing O(1) amortized.
//!
//! Fields are percent-escaped (any byte that is not printable ASCII, and `%`), so a space never
//! occurs inside one. A line without ifname is a legacy (container-ID-only) reservation. Only
//! the last stamp counts: the index describes the directory as it was then. An index whose
//! last line is not a well-formed stamp (a torn append), or whose checksum or entry count
//! disagrees, is not used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The attachment a reservation file names: `<containerID>\r\n<ifname>`, or only
/// `<containerID>` for files written by versions of the reference before CNI 0.7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub id: String,
    pub ifname: Option<String>,
}

/// The separator the reference writes between the container ID and the interface name.
pub(crate) const LINE_BREAK: &str = "\r\n";

impl Owner {
    /// Parses a reservation file's content the way the reference compares it: surrounding
    /// white space is trimmed, then the content is split at the first `\r\n`.
    pub fn parse(content: &[u8]) -> Owner {
        let text = String::from_utf8_lossy(content);
        let text = text.trim();
        match text.split_once(LINE_BREAK) {
            Some((id, ifname)) => Owner {
                id: id.to_string(),
                ifname: Some(ifname.to_string()),
            },
            None => Owner {
                id: text.to_string(),
                ifname: None,
            },
        }
    }

    /// The file content (what the reference's `Reserve` writes for this attachment).
    pub fn content(&self) -> String {
        match &self.ifname {
            Some(ifname) => format!("{}{LINE_BREAK}{ifname}", self.id),
            None => self.id.clone(),
        }
    }

    /// Whether this is exactly the attachment (`id`, `ifname`).
    pub fn is(&self, id: &str, ifname: &str) -> bool {
        self.id == id && self.ifname.as_deref() == Some(ifname)
    }

    /// Whether this is a legacy (ID-only) reservation of container `id`.
    pub fn is_legacy_of(&self, id: &str) -> bool {
        self.ifname.is_none() && self.id == id
    }
}

/// The directory's stamp an index was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirStamp {
    pub dev: u64,
    pub ino: u64,
    pub mtime: (i64, i64),
}

/// Every reservation of the network directory, by address.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    pub entries: BTreeMap<IpAddr, Owner>,
}

const HEADER: &str = "underlay-hostlocal-index 2\n";

/// One change an operation made to the reservations, as appended to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Reserved(IpAddr, Owner),
    Released(IpAddr),
}

/// An index file as read: the reservations, the stamp of its last operation, and what a writer
/// needs to append to it.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub index: Index,
    pub stamp: DirStamp,
    /// The last stamp's checksum, which the next append's checksum is seeded with.
    pub hash: u64,
    /// Changes appended since the snapshot.
    pub appended: usize,
}

/// Whether an index with `appended` changes after its snapshot, now holding `entries`
/// reservations, should be rewritten as a snapshot: when the appended lines outnumber twice the
/// entries (with a floor, so a small network is not rewritten all the time). A read then
/// parses at most about three lines per reservation, and a rewrite of N lines comes at most
/// once per N changes.
pub(crate) fn compaction_due(appended: usize, entries: usize) -> bool {
    appended > 2 * entries.max(32)
}

impl Index {
    /// The header and snapshot lines (everything but the stamp).
    pub fn encode_body(&self) -> String {
        let mut out = String::with_capacity(HEADER.len() + self.entries.len() * 96);
        out.push_str(HEADER);
        for (ip, owner) in &self.entries {
            entry_line(*ip, owner, &mut out);
        }
        out
    }

    /// The lines that append `changes`.
    pub fn encode_changes(changes: &[Change]) -> String {
        let mut out = String::with_capacity(changes.len() * 96);
        for change in changes {
            match change {
                Change::Reserved(ip, owner) => {
                    out.push('+');
                    entry_line(*ip, owner, &mut out);
                }
                Change::Released(ip) => {
                    let _ = writeln!(out, "-{ip}");
                }
            }
        }
        out
    }

    /// The stamp line for a chunk whose checksum is `hash` (see [`chunk_hash`]).
    pub fn stamp_line(&self, hash: u64, dir: DirStamp) -> String {
        format!(
            "stamp {} {} {} {} {} {:016x}\n",
            dir.dev,
            dir.ino,
            dir.mtime.0,
            dir.mtime.1,
            self.entries.len(),
            hash
        )
    }

    /// Parses a whole index file; `None` when it is malformed, torn or incomplete: the file
    /// must end with a stamp whose checksum (the chain over every chunk) and entry count hold.
    /// Earlier stamps only delimit chunks: the last one vouches for everything before it.
    pub fn decode(text: &str) -> Option<Decoded> {
        let rest = text.strip_prefix(HEADER)?;
        let mut entries = BTreeMap::new();
        let mut appended = 0;
        let (mut hash, mut chunk_start, mut offset) = (HASH_SEED, 0, HEADER.len());
        let mut last_stamp = None;
        for line in rest.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let line = line.strip_suffix('\n')?;
            if let Some(fields) = line.strip_prefix("stamp ") {
                hash = chunk_hash(hash, &text.as_bytes()[chunk_start..start]);
                chunk_start = offset;
                last_stamp = Some(fields);
                continue;
            }
            last_stamp = None;
            if let Some(entry) = line.strip_prefix('+') {
                let (ip, owner) = parse_entry(entry)?;
                entries.insert(ip, owner);
                appended += 1;
            } else if let Some(ip) = line.strip_prefix('-') {
                entries.remove(&ip.parse::<IpAddr>().ok()?);
                appended += 1;
            } else {
                let (ip, owner) = parse_entry(line)?;
                entries.insert(ip, owner);
            }
        }
        let (count, want, stamp) = parse_stamp(last_stamp?)?;
        if want != hash || count != entries.len() {
            return None;
        }
        Some(Decoded {
            index: Index { entries },
            stamp,
            hash,
            appended,
        })
    }
}

fn entry_line(ip: IpAddr, owner: &Owner, out: &mut String) {
    let _ = write!(out, "{ip} ");
    escape(&owner.id, out);
    if let Some(ifname) = &owner.ifname {
        out.push(' ');
        escape(ifname, out);
    }
    out.push('\n');
}

fn parse_entry(line: &str) -> Option<(IpAddr, Owner)> {
    let mut fields = line.split(' ');
    let ip: IpAddr = fields.next()?.parse().ok()?;
    let id = unescape(fields.next()?)?;
    let ifname = fields
        .next()
        .map(unescape)
        .map_or(Some(None), |f| f.map(Some))?;
    if fields.next().is_some() {
        return None;
    }
    Some((ip, Owner { id, ifname }))
}

/// (entry count, checksum, directory stamp) of a stamp line's fields.
fn parse_stamp(fields: &str) -> Option<(usize, u64, DirStamp)> {
    let mut fields = fields.split(' ');
    let mut next = || fields.next();
    let (dev, ino, sec, nsec, count, hash) = (next()?, next()?, next()?, next()?, next()?, next()?);
    if next().is_some() {
        return None;
    }
    let dir = DirStamp {
        dev: dev.parse().ok()?,
        ino: ino.parse().ok()?,
        mtime: (sec.parse().ok()?, nsec.parse().ok()?),
    };
    Some((
        count.parse().ok()?,
        u64::from_str_radix(hash, 16).ok()?,
        dir,
    ))
}

fn escape(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02x}");
        }
    }
}

fn unescape(text: &str) -> Option<String> {
    // Container IDs and interface names are nearly always plain: copy them as they are.
    if !text.bytes().any(|b| b == b'%') {
        return Some(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What the first chunk's checksum is seeded with.
pub(crate) const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// The checksum of one chunk of the index, seeded with the previous chunk's: a multiply-rotate
/// hash over 8-byte words (damage and torn writes are what it is for, not adversaries). It
/// reads a word per step, where a byte-wise hash made checking the index the largest cost of
/// an ADD in a big network.
pub(crate) fn chunk_hash(seed: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, word: u64| (h ^ word).wrapping_mul(K).rotate_left(29);
    let mut h = mix(seed, bytes.len() as u64);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(word);
        h = mix(h, u64::from_le_bytes(buf));
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = mix(h, u64::from_le_bytes(tail));
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_content_forms() {
        assert_eq!(
            Owner::parse(b"abc\r\neth0"),
            Owner {
                id: "abc".into(),
                ifname: Some("eth0".into())
            }
        );
        assert_eq!(
            Owner::parse(b" legacy\n"),
            Owner {
                id: "legacy".into(),
                ifname: None
            }
        );
        // "id\r\n" with an empty ifname trims to a legacy-looking "id", as in the reference.
        assert_eq!(Owner::parse(b"abc\r\n").ifname, None);
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let mut index = Index::default();
        index.entries.insert(
            "10.0.0.2".parse().unwrap(),
            Owner {
                id: "a b%c".into(),
                ifname: Some("eth0".into()),
            },
        );
        index.entries.insert(
            "2001:db8::2".parse().unwrap(),
            Owner {
                id: "legacy".into(),
                ifname: None,
            },
        );
        let dir = DirStamp {
            dev: 1,
            ino: 2,
            mtime: (3, 4),
        };
        let body = index.encode_body();
        let text = format!(
            "{body}{}",
            index.stamp_line(chunk_hash(HASH_SEED, body.as_bytes()), dir)
        );
        let back = Index::decode(&text).unwrap();
        assert_eq!(back.index.entries, index.entries);
        assert_eq!(back.stamp, dir);
        assert_eq!(back.appended, 0);
        assert_eq!(back.hash, chunk_hash(HASH_SEED, body.as_bytes()));
        assert!(Index::decode(&body).is_none(), "no stamp");
        assert!(
            Index::decode(&text[..text.len() - 3]).is_none(),
            "torn stamp"
        );
        let tampered = text.replacen("eth0", "eth1", 1);
        assert!(Index::decode(&tampered).is_none(), "checksum");
    }

    fn owner(id: &str) -> Owner {
        Owner {
            id: id.into(),
            ifname: Some("eth0".into()),
        }
    }

    #[test]
    fn appended_changes_apply_in_order_and_extend_the_checksum() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let mut index = Index::default();
        index.entries.insert(a, owner("a"));
        let dir = |n| DirStamp {
            dev: 1,
            ino: 2,
            mtime: (n, 0),
        };
        let body = index.encode_body();
        let mut text = format!(
            "{body}{}",
            index.stamp_line(chunk_hash(HASH_SEED, body.as_bytes()), dir(1))
        );
        let changes = [Change::Reserved(b, owner("b")), Change::Released(a)];
        index.entries.insert(b, owner("b"));
        index.entries.remove(&a);
        let first = Index::decode(&text).unwrap();
        let lines = Index::encode_changes(&changes);
        let hash = chunk_hash(first.hash, lines.as_bytes());
        text = format!("{text}{lines}{}", index.stamp_line(hash, dir(2)));
        let back = Index::decode(&text).unwrap();
        assert_eq!(back.index.entries, index.entries);
        assert_eq!(back.stamp, dir(2), "the last stamp counts");
        assert_eq!(back.appended, 2);
        // A torn append (its stamp missing) leaves the whole index unusable.
        assert!(Index::decode(&format!("{text}+10.0.0.9 c eth0\n")).is_none());
        // So does an append whose checksum does not chain onto what is before it.
        let wrong = chunk_hash(HASH_SEED, lines.as_bytes());
        let forged = format!("{text}{lines}{}", index.stamp_line(wrong, dir(3)));
        assert!(Index::decode(&forged).is_none());
    }

    #[test]
    fn compaction_waits_for_the_appended_lines_to_outnumber_twice_the_entries() {
        assert!(!compaction_due(64, 0));
        assert!(compaction_due(65, 10));
        assert!(!compaction_due(1000, 500));
        assert!(compaction_due(1001, 500));
    }
}
