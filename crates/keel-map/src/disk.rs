//! The map's cache file: what a new process needs to start warm, in a compact binary
//! form it can read back in a few tens of milliseconds. A big tree's map is a million
//! tags; kept as JSON that was 58 MB and most of a second to parse on every `keel run`.
//! Here each name is written once (a table, referred to by number), a file's uses are
//! counted rather than listed, and numbers are LEB128 varints:
//!
//! ```text
//! "keel-map" version:u32le
//! names: n, then n × (len, utf-8)
//! files: n, then n × (path len, path, size, mtime secs, mtime nanos,
//!                     defs: n × (name, line, text len, text), refs: n × (name, count))
//! ```
//!
//! Anything that does not read back whole (truncated, a name out of range, bad UTF-8)
//! is no cache at all: the map is rebuilt.

use std::collections::BTreeMap;

use crate::graph::{Def, FileNames, Graph};

const MAGIC: &[u8; 8] = b"keel-map";
/// Bumped when the stored data changes meaning.
const VERSION: u32 = 2;

/// A file's size and modification time (seconds, nanoseconds) when it was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub size: u64,
    pub modified: (u64, u32),
}

/// The cache file's bytes for these files and their graph.
pub(crate) fn encode(files: &BTreeMap<String, Stamp>, graph: &Graph) -> Vec<u8> {
    // Only the names live files still use, numbered in order of first use.
    let mut number = vec![u32::MAX; graph.name_text.len()];
    let mut names: Vec<&str> = Vec::new();
    let mut id = |name: u32| {
        let slot = &mut number[name as usize];
        if *slot == u32::MAX {
            *slot = names.len() as u32;
            names.push(&graph.name_text[name as usize]);
        }
        *slot
    };
    let mut body = Vec::new();
    let mut count = 0u64;
    for (path, stamp) in files {
        let Some(part) = graph.file(path) else {
            continue;
        };
        count += 1;
        put_bytes(&mut body, path.as_bytes());
        put(&mut body, stamp.size);
        put(&mut body, stamp.modified.0);
        put(&mut body, u64::from(stamp.modified.1));
        put(&mut body, part.defs.len() as u64);
        for def in &part.defs {
            put(&mut body, u64::from(id(def.name)));
            put(&mut body, u64::from(def.line));
            put_bytes(&mut body, def.text.as_bytes());
        }
        put(&mut body, part.refs.len() as u64);
        for &(name, uses) in &part.refs {
            put(&mut body, u64::from(id(name)));
            put(&mut body, u64::from(uses));
        }
    }
    let mut out = Vec::with_capacity(body.len() + names.len() * 16 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    put(&mut out, names.len() as u64);
    for name in &names {
        put_bytes(&mut out, name.as_bytes());
    }
    put(&mut out, count);
    out.extend_from_slice(&body);
    out
}

/// The files and graph a cache file holds; `None` when it is not a whole cache of this
/// version.
pub(crate) fn decode(bytes: &[u8]) -> Option<(BTreeMap<String, Stamp>, Graph)> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let version = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
    if version != VERSION {
        return None;
    }
    let mut graph = Graph::default();
    let name_count = r.count()?;
    let mut ids = Vec::with_capacity(name_count);
    for _ in 0..name_count {
        ids.push(graph.intern(r.text()?));
    }
    let name = |r: &mut Reader<'_>| ids.get(usize::try_from(r.number()?).ok()?).copied();
    let mut files = BTreeMap::new();
    for _ in 0..r.count()? {
        let path = r.text()?.to_string();
        let size = r.number()?;
        let modified = (r.number()?, u32::try_from(r.number()?).ok()?);
        let mut part = FileNames::default();
        for _ in 0..r.count()? {
            part.defs.push(Def {
                name: name(&mut r)?,
                line: u32::try_from(r.number()?).ok()?,
                text: r.text()?.into(),
            });
        }
        for _ in 0..r.count()? {
            part.refs
                .push((name(&mut r)?, u32::try_from(r.number()?).ok()?));
        }
        graph.set_names(&path, part);
        files.insert(path, Stamp { size, modified });
    }
    (r.at == bytes.len()).then_some((files, graph))
}

fn put(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn number(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            n |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    /// A count of items still to read: no more than bytes are left (each item takes
    /// one at least), so a damaged count cannot ask for a huge allocation.
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.number()?).ok()?;
        (n <= self.bytes.len() - self.at).then_some(n)
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = self.count()?;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::{Kind, Tag, def};

    fn uses(name: &str) -> Tag {
        Tag {
            name: name.into(),
            kind: Kind::Ref,
            line: 3,
            text: String::new(),
        }
    }

    #[test]
    fn a_cache_reads_back_as_it_was_written_and_a_damaged_one_not_at_all() {
        let mut graph = Graph::default();
        let mut files = BTreeMap::new();
        let stamp = |size| Stamp {
            size,
            modified: (1_700_000_000, 123_456_789),
        };
        graph.set("gone.py", &[def("only_here", 0)]);
        graph.set(
            "app.py",
            &[uses("compute_total"), uses("compute_total"), def("main", 1)],
        );
        graph.set("pkg/billing.py", &[def("compute_total", 0), uses("ü_name")]);
        graph.remove("gone.py");
        files.insert("app.py".to_string(), stamp(70));
        files.insert("pkg/billing.py".to_string(), stamp(300));
        let bytes = encode(&files, &graph);
        let (back, read) = decode(&bytes).expect("reads back");
        assert_eq!(back, files);
        for path in files.keys() {
            let (a, b) = (graph.file(path).unwrap(), read.file(path).unwrap());
            let named = |g: &Graph, part: &FileNames| {
                let defs: Vec<(String, u32, String)> = part
                    .defs
                    .iter()
                    .map(|d| {
                        (
                            g.name_text[d.name as usize].clone(),
                            d.line,
                            d.text.to_string(),
                        )
                    })
                    .collect();
                let refs: Vec<(String, u32)> = part
                    .refs
                    .iter()
                    .map(|(n, c)| (g.name_text[*n as usize].clone(), *c))
                    .collect();
                (defs, refs)
            };
            assert_eq!(named(&graph, a), named(&read, b), "{path}");
        }
        // Names no live file uses are not written.
        assert_eq!(read.name("only_here"), None);
        assert_eq!(
            named_users(&read, "compute_total"),
            vec![("app.py".to_string(), 2)]
        );
        // Every cut and a flipped version are no cache.
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut other = bytes.clone();
        other[8] ^= 1;
        assert!(decode(&other).is_none());
        let mut longer = bytes;
        longer.push(0);
        assert!(decode(&longer).is_none());
    }

    fn named_users(graph: &Graph, name: &str) -> Vec<(String, u32)> {
        let id = graph.name(name).unwrap();
        graph.users[id as usize]
            .iter()
            .map(|(slot, n)| (graph.path(*slot).to_string(), *n))
            .collect()
    }
}
