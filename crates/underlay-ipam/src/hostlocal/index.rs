//! Who holds what, and the sidecar index file that caches it.
//!
//! Index file layout (text, one record a line):
//!
//! ```text
//! underlay-hostlocal-index 1
//! <ip> <container id>[ <ifname>]          one line per reservation file
//! stamp <dev> <ino> <mtime s> <mtime ns> <entries> <fnv1a-64 of everything above, hex>
//! ```
//!
//! Fields are percent-escaped (any byte that is not printable ASCII, and `%`), so a space never
//! occurs inside one. A line without ifname is a legacy (container-ID-only) reservation. The
//! stamp line is appended after the file was renamed into place (see `disk.rs`); an index
//! without a well-formed stamp, or whose checksum or entry count disagrees, is not used.

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

const HEADER: &str = "underlay-hostlocal-index 1\n";

impl Index {
    /// The header and entry lines (everything but the stamp).
    pub fn encode_body(&self) -> String {
        let mut out = String::with_capacity(HEADER.len() + self.entries.len() * 96);
        out.push_str(HEADER);
        for (ip, owner) in &self.entries {
            let _ = write!(out, "{ip} ");
            escape(&owner.id, &mut out);
            if let Some(ifname) = &owner.ifname {
                out.push(' ');
                escape(ifname, &mut out);
            }
            out.push('\n');
        }
        out
    }

    pub fn stamp_line(&self, body: &str, dir: DirStamp) -> String {
        format!(
            "stamp {} {} {} {} {} {:016x}\n",
            dir.dev,
            dir.ino,
            dir.mtime.0,
            dir.mtime.1,
            self.entries.len(),
            fnv1a(body.as_bytes())
        )
    }

    /// Parses a whole index file; `None` when it is malformed, torn or incomplete.
    pub fn decode(text: &str) -> Option<(Index, DirStamp)> {
        let body_end = text.strip_suffix('\n')?.rfind('\n')? + 1;
        let (body, stamp) = text.split_at(body_end);
        let rest = body.strip_prefix(HEADER)?;
        let fields: Vec<&str> = stamp.strip_suffix('\n')?.split(' ').collect();
        let [tag, dev, ino, sec, nsec, count, hash] = fields[..] else {
            return None;
        };
        if tag != "stamp" || u64::from_str_radix(hash, 16).ok()? != fnv1a(body.as_bytes()) {
            return None;
        }
        let dir = DirStamp {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
            mtime: (sec.parse().ok()?, nsec.parse().ok()?),
        };
        let mut entries = BTreeMap::new();
        for line in rest.lines() {
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
            entries.insert(ip, Owner { id, ifname });
        }
        if entries.len() != count.parse::<usize>().ok()? {
            return None;
        }
        Some((Index { entries }, dir))
    }
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

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
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
        let text = format!("{body}{}", index.stamp_line(&body, dir));
        let (back, stamp) = Index::decode(&text).unwrap();
        assert_eq!(back.entries, index.entries);
        assert_eq!(stamp, dir);
        assert!(Index::decode(&body).is_none(), "no stamp");
        assert!(
            Index::decode(&text[..text.len() - 3]).is_none(),
            "torn stamp"
        );
        let tampered = text.replacen("eth0", "eth1", 1);
        assert!(Index::decode(&tampered).is_none(), "checksum");
    }
}
