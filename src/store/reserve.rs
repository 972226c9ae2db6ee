//! The disk reserve: a ballast file (`<db>.reserve`) holding back some disk
//! space for the day the disk fills up. On a full disk even a DELETE needs
//! room in the WAL and a checkpoint needs room in the main file; releasing
//! the reserve gives the writer that room, so it can evict telemetry and keep
//! committing alerts.
//!
//! Invariants: the file is written with real blocks (never sparse) and
//! synced, so its space is truly taken; a partial file is removed. Its size
//! is `disk_reserve_kb` but at most an eighth of the file system (an 8 MiB
//! reserve on an 8 MiB disk could never exist, and the WAL limit is derived
//! from it); it is (re-)created only while at least as much again stays
//! free, so re-creating it never fills the disk it is meant to relieve.

use std::path::{Path, PathBuf};

/// The ballast file: space held back for the day the disk fills, when even a
/// DELETE needs room in the WAL and a checkpoint needs room in the main file.
pub(crate) struct Reserve {
    path: PathBuf,
    bytes: u64,
    present: bool,
}

impl Reserve {
    pub fn new(db: &Path, configured: u64) -> Reserve {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".reserve");
        let path = db.with_file_name(name);
        let bytes =
            fs_space(db).map_or(configured, |(total, _)| configured.min(total / 8)) / 4096 * 4096;
        let present = std::fs::metadata(&path).is_ok_and(|m| m.len() >= bytes);
        Reserve {
            path,
            bytes,
            present,
        }
    }

    /// Creates the ballast with real blocks (not a sparse file); on failure
    /// removes the partial file and tries again later.
    pub fn ensure(&mut self) -> bool {
        if self.present {
            return true;
        }
        if self.bytes == 0 {
            return false;
        }
        if fs_space(&self.path).is_some_and(|(_, free)| free < self.bytes.saturating_mul(2)) {
            return false;
        }
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&self.path)?;
            let chunk = vec![0u8; 64 * 1024];
            let mut left = self.bytes;
            while left > 0 {
                let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        };
        match write() {
            Ok(()) => self.present = true,
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                tracing::warn!(file = %self.path.display(), error = %e, "cannot create the disk reserve yet");
            }
        }
        self.present
    }

    /// The reserve's size (after fitting it to the file system).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn present(&self) -> bool {
        self.present
    }

    pub fn release(&mut self) -> bool {
        if !self.present {
            return false;
        }
        self.present = false;
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::warn!(file = %self.path.display(), "disk full: released the disk reserve");
                true
            }
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot release the disk reserve");
                false
            }
        }
    }
}

/// `(total, available)` bytes of the file system holding `path` (or its
/// directory when the file does not exist yet).
// `From`: the statvfs fields are 32-bit on some targets.
#[allow(clippy::useless_conversion)]
pub(crate) fn fs_space(path: &Path) -> Option<(u64, u64)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = u64::from(st.fragment_size());
    Some((
        u64::from(st.blocks()).saturating_mul(frag),
        u64::from(st.blocks_available()).saturating_mul(frag),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_an_eighth_of_the_disk_is_shrunk_to_fit() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let (total, _) = fs_space(&db).unwrap();
        let r = Reserve::new(&db, u64::MAX / 2);
        assert!(r.bytes() <= total / 8, "{} > {}", r.bytes(), total / 8);
        let small = Reserve::new(&db, 64 * 1024);
        assert_eq!(small.bytes(), 64 * 1024);
    }
}
