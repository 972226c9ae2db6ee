//! The disk reserve: a ballast file (`<db>.reserve`) holding back some disk
//! space for the day the disk fills up. On a full disk even a DELETE needs
//! room in the WAL and a checkpoint needs room in the main file; releasing
//! the reserve gives the writer that room, so it can evict telemetry and keep
//! committing alerts.
//!
//! Invariant: the file is written with real blocks (never sparse) and synced,
//! so its space is truly taken; a partial file is removed.

use std::path::{Path, PathBuf};

/// The ballast file: space held back for the day the disk fills, when even a
/// DELETE needs room in the WAL and a checkpoint needs room in the main file.
pub(crate) struct Reserve {
    path: PathBuf,
    bytes: u64,
    present: bool,
}

impl Reserve {
    pub fn new(db: &Path, bytes: u64) -> Reserve {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".reserve");
        let path = db.with_file_name(name);
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
