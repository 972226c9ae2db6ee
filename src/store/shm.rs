//! Where SQLite keeps the WAL index, and the lock that keeps other SQLite
//! builds off the live database.
//!
//! carebridge's SQLite is compiled with `SQLITE_SHM_DIRECTORY="/dev/shm"`
//! (`.cargo/config.toml`, `[env] LIBSQLITE3_FLAGS`): the WAL index that
//! every commit rewrites (SQLite's `-shm` file, a shared memory map) lives
//! on tmpfs, named after the database's inode and device, instead of
//! beside the database on the SD card. Nothing durable is in it: SQLite
//! rebuilds it from the WAL when the first connection opens the database
//! (after a reboot, after `kill -9`). Beside the database it was written
//! back to the card every ~30 s while the gateway ran (kernel write-back of
//! the map's dirty pages, plus the ext4 journal for each `page_mkwrite`):
//! measured 0.4–1.1 KB per reading at a home's rate (`benches/versus.rs`,
//! `minute` flow), a third of all the bytes written.
//!
//! The catch: a SQLite built the usual way (the `sqlite3` shell, Python)
//! keeps its index beside the file, so it would not see carebridge's
//! commits or locks, and a write from it would corrupt the WAL. So while
//! the store is open, [`Guard`] holds the write lock on the byte of
//! `<db>-shm` where every SQLite takes its shared "the index is in use"
//! lock (the DMS byte, offset 128): such a program then gets "database is
//! locked" (or "locking protocol") instead of reading the file, and if one already has it open,
//! carebridge refuses to start ([`StoreError::InUse`]) rather than risk the
//! database. carebridge's own connections (the readers, the OTA backup and
//! rollback) are built the same way and share the index in `/dev/shm`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Offset of SQLite's "dead man switch" lock byte in the `-shm` file
/// (`UNIX_SHM_DMS` in `os_unix.c`: (22 + 8) × 4 + 8).
const DMS: i64 = 128;

/// Whether this build's SQLite keeps the WAL index in `/dev/shm`.
pub(crate) fn index_in_memory() -> bool {
    option_env!("LIBSQLITE3_FLAGS").is_some_and(|f| f.contains("SQLITE_SHM_DIRECTORY"))
}

/// The index file a standard SQLite would use for `db`.
fn beside(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-shm");
    db.with_file_name(name)
}

/// The held lock (released when dropped: closing the file drops it).
#[derive(Debug)]
pub(crate) struct Guard {
    _file: File,
}

impl Guard {
    /// Takes the lock before the database is opened; `None` when this build
    /// keeps the index beside the database (nothing to guard).
    pub(crate) fn take(db: &Path) -> Result<Option<Guard>, StoreError> {
        if !index_in_memory() {
            return Ok(None);
        }
        let path = beside(db);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: DMS as libc::off_t,
            l_len: 1,
            l_pid: 0,
        };
        match nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_SETLK(&lock)) {
            Ok(_) => Ok(Some(Guard { _file: file })),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Err(StoreError::InUse {
                path: db.to_path_buf(),
            }),
            Err(e) => Err(io(std::io::Error::from(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::model::Kind;
    use crate::store::tests::{db, reading};
    use crate::store::{Store, StoreConfig, Write};

    /// A standard SQLite, as the `sqlite3` shell: `python3` with its own
    /// libsqlite3. Returns what it printed (or its error).
    fn python_sqlite(db: &Path, sql: &str) -> Option<String> {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import sqlite3, sys\n\
                 try:\n    c = sqlite3.connect(sys.argv[1], timeout=0.2)\n    print(c.execute(sys.argv[2]).fetchall())\n\
                 except Exception as e:\n    print('ERROR', e)\n",
            )
            .arg(db)
            .arg(sql)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    #[test]
    fn this_build_keeps_the_wal_index_in_dev_shm() {
        // The packaged build must: `.cargo/config.toml` sets the flag.
        assert!(
            index_in_memory(),
            "LIBSQLITE3_FLAGS lost SQLITE_SHM_DIRECTORY"
        );
    }

    #[tokio::test]
    async fn the_index_is_not_beside_the_database_and_another_sqlite_is_kept_off_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        let s = Store::open(&path, &StoreConfig::default()).unwrap();
        // Now: retention keeps it.
        let now = crate::wall::now().as_millis();
        s.submit(Write::Reading(reading("d1", Kind::Temperature, 20.0, now)))
            .await
            .unwrap();
        s.flush().await.unwrap();
        // Only the guard's empty file is beside the database.
        assert_eq!(std::fs::metadata(beside(&path)).unwrap().len(), 0);
        // Our own connections share the index: they see the commit.
        let c = rusqlite::Connection::open(&path).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        drop(c);
        // A standard SQLite is refused while the store is open...
        if let Some(out) = python_sqlite(&path, "SELECT count(*) FROM history") {
            // "database is locked", or "locking protocol" after its retries.
            assert!(
                out.starts_with("ERROR") && out.contains("lock"),
                "a foreign SQLite opened the live database: {out}"
            );
        }
        s.close().await.unwrap();
        // ...and works once it is closed.
        if let Some(out) = python_sqlite(&path, "SELECT count(*) FROM history") {
            assert_eq!(out, "[(1,)]");
        }
    }

    #[test]
    fn the_store_does_not_open_a_database_another_sqlite_has_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Another program holds SQLite's shared lock on the index beside
        // the file, as a standard SQLite with the database open does.
        let other = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import fcntl, sys, time\n\
                 f = open(sys.argv[1], 'a+')\n\
                 fcntl.lockf(f, fcntl.LOCK_SH, 1, 128)\n\
                 print('held', flush=True)\n\
                 time.sleep(30)\n",
            )
            .arg(beside(&path))
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut other) = other else {
            return; // no python3: nothing to hold the lock
        };
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(other.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
        let got = Guard::take(&path);
        let _ = other.kill();
        let _ = other.wait();
        match got {
            Err(StoreError::InUse { path: p }) => assert_eq!(p, path),
            other => panic!("expected InUse, got {other:?}"),
        }
        // Released: now it opens.
        assert!(Guard::take(&path).unwrap().is_some());
    }
}
