//! The data directory is private: the database (and its `-wal`/`-shm`),
//! the web accounts and sessions it holds, device credentials, keys and
//! certificates are readable by the gateway's user only.
//!
//! [`secure_data_dir`] runs at start (after the store is opened, so the
//! database's own files exist): the directory and every directory below it
//! become 0700 at most, every file 0600 (0700 if executable): owner bits
//! kept, group and other bits removed, and each fix is logged. SQLite creates a new
//! `-wal`/`-shm` with the database's mode, so they stay private afterwards.
//!
//! Only what the gateway's user owns is touched, symlinks are not
//! followed, and a shared directory (sticky bit, like `/tmp`) is left
//! alone, so a mistaken `data_dir` cannot lock other users out.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// How deep below the data directory files are checked.
const MAX_DEPTH: usize = 4;

/// One mode that was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    pub path: PathBuf,
    pub was: u32,
    pub now: u32,
}

/// Makes `dir` 0700 and what is below it private (see the module header);
/// returns what was changed. Errors reading a part are skipped (logged).
pub fn secure_data_dir(dir: &Path) -> Vec<Fixed> {
    let mut fixed = Vec::new();
    // Our effective uid (`/proc/self` belongs to it), else the directory's owner.
    let Some(me) = std::fs::metadata("/proc/self")
        .or_else(|_| std::fs::metadata(dir))
        .ok()
        .map(|m| m.uid())
    else {
        return fixed;
    };
    visit(dir, me, 0, &mut fixed);
    for f in &fixed {
        tracing::warn!(path = %f.path.display(), was = format!("{:o}", f.was), now = format!("{:o}", f.now),
            "data file was readable by other users; made it private");
    }
    fixed
}

fn visit(path: &Path, me: u32, depth: usize, fixed: &mut Vec<Fixed>) {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return;
    };
    if m.file_type().is_symlink() || m.uid() != me {
        return;
    }
    let mode = m.permissions().mode() & 0o7777;
    if m.is_dir() && mode & 0o1000 != 0 {
        return; // shared (sticky) directory: not ours to close
    }
    // Owner bits stay (an executable stays executable for its owner).
    let want = mode & 0o700;
    if (m.is_dir() || m.is_file()) && want != mode {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(want)) {
            Ok(()) => fixed.push(Fixed {
                path: path.to_path_buf(),
                was: mode,
                now: want,
            }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot make a data file private")
            }
        }
    }
    if m.is_dir()
        && depth < MAX_DEPTH
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for e in entries.flatten() {
            visit(&e.path(), me, depth + 1, fixed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_and_directories_readable_by_others_become_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir_all(dir.join("web")).unwrap();
        for (f, m) in [
            ("carebridge.db", 0o644),
            ("carebridge.db-wal", 0o664),
            ("web/key.pem", 0o640),
            ("setup-code", 0o600),
            ("run.sh", 0o755),
        ] {
            std::fs::write(dir.join(f), b"x").unwrap();
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(m)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fixed = secure_data_dir(&dir);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("web")), 0o700);
        assert_eq!(mode(&dir.join("carebridge.db")), 0o600);
        assert_eq!(mode(&dir.join("carebridge.db-wal")), 0o600);
        assert_eq!(mode(&dir.join("web/key.pem")), 0o600);
        assert_eq!(mode(&dir.join("run.sh")), 0o700);
        assert!(!fixed.iter().any(|f| f.path.ends_with("setup-code")));
        assert!(
            secure_data_dir(&dir).is_empty(),
            "a second pass has nothing to do"
        );
    }

    #[test]
    fn a_shared_sticky_directory_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(root.path().join("f"), b"x").unwrap();
        std::fs::set_permissions(
            root.path().join("f"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(secure_data_dir(root.path()).is_empty());
        assert_eq!(mode(root.path()), 0o1777);
    }
}
