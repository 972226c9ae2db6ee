//! The bundle payload: a minimal archive of named files, read and written as
//! a stream (never held in memory).
//!
//! ```text
//! payload := entry*                       (ends exactly at manifest.payload_size)
//! entry   := name_len:u16be  name[name_len]  mode:u8  size:u64be  data[size]
//! mode    := 0 (regular file, installed 0644) | 1 (executable, installed 0755)
//! ```
//! Names are relative paths of 1–255 bytes: `/`-separated components of
//! `[A-Za-z0-9._-]`, none empty, `.` or `..`, so an entry can never escape the
//! release directory. At most [`MAX_ENTRIES`] entries, no duplicates, no
//! entry that is also a directory of another (`bin/carebridge` beside
//! `bin/carebridge/x`, in either order), nothing at or under the installer's
//! own `release.json`, and `bin/carebridge` (mode 1) is required: it is what
//! the service runs. So every archive that passes unpacks into a directory.
//! Other conventional names: `migrations/…`, `assets/…`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The executable every release must contain.
pub const BINARY_NAME: &str = "bin/carebridge";
/// Entries per archive.
pub const MAX_ENTRIES: usize = 1024;
const MAX_NAME: usize = 255;
const FIXED: usize = 2 + 1 + 8;

/// One entry's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    pub name: String,
    pub executable: bool,
    pub size: u64,
}

/// Why a payload archive is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    #[error("need {needed} more bytes")]
    Incomplete { needed: usize },
    #[error("entry name {0:?} is not a safe relative path")]
    BadName(String),
    #[error("entry {name:?}: mode byte {mode} is not 0 (file) or 1 (executable)")]
    BadMode { name: String, mode: u8 },
    #[error("entry {0:?} appears twice")]
    Duplicate(String),
    #[error(
        "entry {name:?} clashes with entry {other:?}: one path cannot be both a file and a directory"
    )]
    Clash { name: String, other: String },
    #[error("entry {0:?} is reserved: the installer writes release.json itself")]
    Reserved(String),
    #[error("more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("the payload ends inside entry {0:?}")]
    TruncatedEntry(String),
    #[error("the payload has no executable {BINARY_NAME}")]
    MissingBinary,
}

/// Whether `name` is a safe relative path for an entry.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// The name the installer writes the manifest to, beside the payload.
pub const MANIFEST_NAME: &str = "release.json";

/// The names seen so far in one archive, to refuse entries that could not
/// all be unpacked into one directory (see the module header).
#[derive(Debug, Default)]
pub struct NameSet {
    files: BTreeSet<String>,
    /// Every proper prefix (`a`, `a/b` of `a/b/c`) of a file seen, with the
    /// first file that made it a directory.
    dirs: std::collections::BTreeMap<String, String>,
}

impl NameSet {
    /// Adds `name` (already a [`valid_name`]) or says why it cannot be added.
    pub fn add(&mut self, name: &str) -> Result<(), ArchiveError> {
        if name == MANIFEST_NAME || name.starts_with("release.json/") {
            return Err(ArchiveError::Reserved(name.to_string()));
        }
        if self.files.contains(name) {
            return Err(ArchiveError::Duplicate(name.to_string()));
        }
        if let Some(other) = self.dirs.get(name) {
            return Err(ArchiveError::Clash {
                name: name.to_string(),
                other: other.clone(),
            });
        }
        let prefixes: Vec<&str> = name.match_indices('/').map(|(i, _)| &name[..i]).collect();
        if let Some(p) = prefixes.iter().find(|p| self.files.contains(**p)) {
            return Err(ArchiveError::Clash {
                name: name.to_string(),
                other: (*p).to_string(),
            });
        }
        for p in prefixes {
            self.dirs
                .entry(p.to_string())
                .or_insert_with(|| name.to_string());
        }
        self.files.insert(name.to_string());
        Ok(())
    }
}

/// Checks a whole list of names the way [`unpack`] does.
pub fn check_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), ArchiveError> {
    let mut set = NameSet::default();
    for n in names {
        if !valid_name(n) {
            return Err(ArchiveError::BadName(n.to_string()));
        }
        set.add(n)?;
    }
    Ok(())
}

/// Decodes one entry header from the front of `buf`.
pub fn decode_entry_header(buf: &[u8]) -> Result<(EntryHeader, usize), ArchiveError> {
    if buf.len() < 2 {
        return Err(ArchiveError::Incomplete {
            needed: 2 - buf.len(),
        });
    }
    let name_len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
    let total = FIXED + name_len;
    if name_len == 0 || name_len > MAX_NAME {
        return Err(ArchiveError::BadName(format!("<{name_len} bytes>")));
    }
    if buf.len() < total {
        return Err(ArchiveError::Incomplete {
            needed: total - buf.len(),
        });
    }
    let name = std::str::from_utf8(&buf[2..2 + name_len]).map_err(|_| {
        ArchiveError::BadName(String::from_utf8_lossy(&buf[2..2 + name_len]).into())
    })?;
    if !valid_name(name) {
        return Err(ArchiveError::BadName(name.to_string()));
    }
    let mode = buf[2 + name_len];
    if mode > 1 {
        return Err(ArchiveError::BadMode {
            name: name.to_string(),
            mode,
        });
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&buf[3 + name_len..total]);
    Ok((
        EntryHeader {
            name: name.to_string(),
            executable: mode == 1,
            size: u64::from_be_bytes(size),
        },
        total,
    ))
}

/// Encodes one entry header (the caller writes `size` data bytes after it).
pub fn encode_entry_header(h: &EntryHeader, out: &mut Vec<u8>) {
    let name = h.name.as_bytes();
    out.extend_from_slice(&(name.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(name);
    out.push(u8::from(h.executable));
    out.extend_from_slice(&h.size.to_be_bytes());
}

/// Where unpacked entries go.
pub trait EntrySink {
    fn begin(&mut self, h: &EntryHeader) -> io::Result<()>;
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    fn end(&mut self) -> io::Result<()>;
}

/// Discards the data (verification and inspection).
#[derive(Debug, Default)]
pub struct NullSink;

impl EntrySink for NullSink {
    fn begin(&mut self, _: &EntryHeader) -> io::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn end(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes entries under a directory, each file fsynced when complete.
#[derive(Debug)]
pub struct DirSink {
    root: PathBuf,
    file: Option<fs::File>,
}

impl DirSink {
    pub fn new(root: &Path) -> Self {
        DirSink {
            root: root.to_path_buf(),
            file: None,
        }
    }
}

impl EntrySink for DirSink {
    fn begin(&mut self, h: &EntryHeader) -> io::Result<()> {
        // `h.name` passed `valid_name`, so the join stays under `root`.
        let path = self.root.join(&h.name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if h.executable { 0o755 } else { 0o644 })
            .open(&path)?;
        self.file = Some(f);
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.write_all(data),
            None => Err(io::Error::other("write outside an entry")),
        }
    }
    fn end(&mut self) -> io::Result<()> {
        match self.file.take() {
            Some(f) => f.sync_all(),
            None => Ok(()),
        }
    }
}

/// Why unpacking stopped.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("payload archive: {0}")]
    Archive(ArchiveError),
    #[error("reading the payload: {0}")]
    Read(io::Error),
    #[error("writing entry {name:?}: {source}")]
    Sink { name: String, source: io::Error },
}

fn read_some<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, UnpackError> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UnpackError::Read(e)),
        }
    }
}

/// Streams every entry of the archive from `r` (which must end where the
/// payload ends) into `sink`, with a fixed 64 KiB buffer.
pub fn unpack<R: Read>(
    r: &mut R,
    sink: &mut dyn EntrySink,
) -> Result<Vec<EntryHeader>, UnpackError> {
    let mut entries = Vec::new();
    let mut names = NameSet::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut head: Vec<u8> = Vec::with_capacity(FIXED + MAX_NAME);
    loop {
        // Read the next header one piece at a time: exactly the bytes it needs.
        let (h, _) = loop {
            match decode_entry_header(&head) {
                Ok(done) => break done,
                Err(ArchiveError::Incomplete { needed }) => {
                    let mut piece = vec![0u8; needed];
                    let n = read_some(r, &mut piece)?;
                    if n == 0 {
                        if head.is_empty() {
                            let has_bin = entries
                                .iter()
                                .any(|e: &EntryHeader| e.name == BINARY_NAME && e.executable);
                            return if has_bin {
                                Ok(entries)
                            } else {
                                Err(UnpackError::Archive(ArchiveError::MissingBinary))
                            };
                        }
                        return Err(UnpackError::Archive(ArchiveError::TruncatedEntry(
                            String::from("<header>"),
                        )));
                    }
                    head.extend_from_slice(&piece[..n]);
                }
                Err(e) => return Err(UnpackError::Archive(e)),
            }
        };
        head.clear();
        if entries.len() >= MAX_ENTRIES {
            return Err(UnpackError::Archive(ArchiveError::TooManyEntries));
        }
        names.add(&h.name).map_err(UnpackError::Archive)?;
        let sink_err = |name: &str| {
            let name = name.to_string();
            move |source| UnpackError::Sink { name, source }
        };
        sink.begin(&h).map_err(sink_err(&h.name))?;
        let mut left = h.size;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = read_some(r, &mut buf[..want])?;
            if n == 0 {
                return Err(UnpackError::Archive(ArchiveError::TruncatedEntry(h.name)));
            }
            sink.write(&buf[..n]).map_err(sink_err(&h.name))?;
            left -= n as u64;
        }
        sink.end().map_err(sink_err(&h.name))?;
        entries.push(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn archive(entries: &[(&str, bool, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, x, data) in entries {
            encode_entry_header(
                &EntryHeader {
                    name: name.to_string(),
                    executable: *x,
                    size: data.len() as u64,
                },
                &mut out,
            );
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn header_bytes_are_as_documented() {
        let mut out = Vec::new();
        encode_entry_header(
            &EntryHeader {
                name: "bin/carebridge".into(),
                executable: true,
                size: 3,
            },
            &mut out,
        );
        let mut want = vec![0, 14];
        want.extend_from_slice(b"bin/carebridge");
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(out, want);
        assert_eq!(
            decode_entry_header(&out[..5]),
            Err(ArchiveError::Incomplete { needed: 20 })
        );
    }

    #[test]
    fn unpacks_into_a_directory_with_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bytes = archive(&[
            ("bin/carebridge", true, b"#!/bin/sh\n"),
            ("migrations/0002.sql", false, b"select 1;"),
        ]);
        let got = unpack(&mut &bytes[..], &mut DirSink::new(dir.path())).unwrap();
        assert_eq!(got.len(), 2);
        let m = fs::metadata(dir.path().join("bin/carebridge")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        assert_eq!(
            fs::read(dir.path().join("migrations/0002.sql")).unwrap(),
            b"select 1;"
        );
    }

    #[test]
    fn refuses_traversal_duplicates_missing_binary_and_short_data() {
        let bad = archive(&[("../etc/passwd", false, b"x")]);
        assert!(matches!(
            unpack(&mut &bad[..], &mut NullSink),
            Err(UnpackError::Archive(ArchiveError::BadName(_)))
        ));
        let dup = archive(&[
            ("bin/carebridge", true, b"a"),
            ("bin/carebridge", true, b"b"),
        ]);
        assert!(matches!(
            unpack(&mut &dup[..], &mut NullSink),
            Err(UnpackError::Archive(ArchiveError::Duplicate(_)))
        ));
        let nobin = archive(&[("assets/a.css", false, b"a")]);
        assert!(matches!(
            unpack(&mut &nobin[..], &mut NullSink),
            Err(UnpackError::Archive(ArchiveError::MissingBinary))
        ));
        let good = archive(&[("bin/carebridge", true, b"abcdef")]);
        assert!(matches!(
            unpack(&mut &good[..good.len() - 2], &mut NullSink),
            Err(UnpackError::Archive(ArchiveError::TruncatedEntry(_)))
        ));
    }

    #[test]
    fn a_path_that_is_both_file_and_directory_is_refused_in_either_order() {
        let file_first = archive(&[
            ("bin/carebridge", true, b"a"),
            ("bin/carebridge/x", false, b"b"),
        ]);
        let dir_first = archive(&[
            ("bin/carebridge/x", false, b"b"),
            ("bin/carebridge", true, b"a"),
        ]);
        for (bytes, name, other) in [
            (&file_first, "bin/carebridge/x", "bin/carebridge"),
            (&dir_first, "bin/carebridge", "bin/carebridge/x"),
        ] {
            match unpack(&mut &bytes[..], &mut NullSink) {
                Err(UnpackError::Archive(ArchiveError::Clash { name: n, other: o })) => {
                    assert_eq!((n.as_str(), o.as_str()), (name, other));
                }
                r => panic!("expected a clash, got {r:?}"),
            }
        }
        assert_eq!(
            check_names(["bin/carebridge", "release.json/x"]),
            Err(ArchiveError::Reserved("release.json/x".into()))
        );
        assert_eq!(
            check_names(["bin/carebridge", "release.json"]),
            Err(ArchiveError::Reserved("release.json".into()))
        );
        assert_eq!(
            check_names(["bin/carebridge", "bin/carebridge"]),
            Err(ArchiveError::Duplicate("bin/carebridge".into()))
        );
        assert_eq!(
            check_names([
                "bin/carebridge",
                "a/b/c",
                "a/b/d",
                "a/e",
                "assets/release.json"
            ]),
            Ok(())
        );
        assert!(matches!(
            check_names(["a/b/c", "a/b"]),
            Err(ArchiveError::Clash { .. })
        ));
        assert!(matches!(
            check_names(["a/b", "a/b/c/d"]),
            Err(ArchiveError::Clash { .. })
        ));
    }

    proptest! {
        #[test]
        fn entry_header_round_trips(name in "[a-z0-9_.-]{1,20}(/[a-z0-9_-]{1,20}){0,3}", x: bool, size: u64) {
            prop_assume!(valid_name(&name));
            let h = EntryHeader { name, executable: x, size };
            let mut out = Vec::new();
            encode_entry_header(&h, &mut out);
            prop_assert_eq!(decode_entry_header(&out), Ok((h, out.len())));
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_entry_header(&bytes);
            let _ = unpack(&mut &bytes[..], &mut NullSink);
        }
    }
}
