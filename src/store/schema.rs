//! Opening the database file: pragmas, schema migrations, the start-up
//! integrity check, and moving a corrupt file aside.
//!
//! Invariants:
//! - the writer connection runs `journal_mode=WAL`, `synchronous=FULL`,
//!   `foreign_keys=ON` and a busy timeout; readers open the same file read-only;
//! - a new database gets [`PAGE_SIZE`] pages, an existing one keeps its
//!   page size;
//! - `PRAGMA user_version` is the number of [`MIGRATIONS`] applied; each step
//!   runs in its own transaction together with the version bump, so a crash
//!   mid-migration leaves the previous version intact;
//! - a file that SQLite reports as corrupt or "not a database" is always
//!   reported as [`StoreError::Corrupt`], never as a generic error, so the app
//!   can decide to [`quarantine`] it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, ffi::ErrorCode};

use super::{StartupCheck, StoreError};

/// The schema, one step per version. Append only: never edit a shipped step.
pub(crate) const MIGRATIONS: &[&str] = &[
    // v1: the whole first schema.
    r#"
    CREATE TABLE devices (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT, room TEXT, role TEXT, ieee TEXT, nwk INTEGER,
        manufacturer TEXT, model TEXT, last_seen INTEGER, battery REAL, lqi INTEGER
    );
    CREATE TABLE history (
        device TEXT NOT NULL,
        kind INTEGER NOT NULL,
        value REAL NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX history_at ON history(at);
    CREATE INDEX history_device_at ON history(device, at);
    CREATE TABLE outbox (
        class INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        at INTEGER NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (class, seq)
    ) WITHOUT ROWID;
    CREATE TABLE seq (
        class INTEGER PRIMARY KEY NOT NULL,
        next INTEGER NOT NULL
    );
    CREATE TABLE kv (
        key TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL
    );
    CREATE TABLE counters (
        name TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    );
    "#,
    // v2: which uplink path delivered each alert (see `delivery`).
    super::delivery::MIGRATION_V2,
    // v3: no per-device history index. Readings of many devices arrive
    // interleaved, so `(device, at)` put almost every insert on a different
    // index page: one more 4 KiB page written to the WAL (and again at the
    // checkpoint) per reading, the largest part of the writer's cost. No
    // product query needs it (history is read by time; `history_of` filters
    // the time range by device). Rows are untouched.
    "DROP INDEX IF EXISTS history_device_at;",
    // v4: the alarm receiving centre's own queue, filled by a trigger in
    // the transaction that adds the alert row (see `uplink::arc::queue`).
    crate::uplink::arc::queue::MIGRATION,
    // v5: the rule engine's journal of deltas in a table of its own, keyed
    // by an integer. In `kv` each delta had a new TEXT key, kept twice (the
    // table and its automatic index): two pages written per commit at a
    // home's rate where this writes one, appended at the end. (A `kv`
    // without a rowid was tried and measured: its large values — the full
    // snapshot of 50,000 devices — made every save read its old value back,
    // and a burst's CPU per alert went from 36 to 98–160 µs.)
    r#"
    CREATE TABLE rules_journal (
        seq INTEGER PRIMARY KEY NOT NULL,
        delta BLOB NOT NULL
    );
    INSERT INTO rules_journal (seq, delta)
        SELECT CAST(substr(key, 15) AS INTEGER), value FROM kv
        WHERE key >= 'rules.journal/' AND key < 'rules.journal0';
    DELETE FROM kv WHERE key >= 'rules.journal/' AND key < 'rules.journal0';
    "#,
    // v6: history keyed by time, no index. The rowid is `t` =
    // at × HISTORY_SLOTS + k (k counts rows with the same `at`, see
    // `history_key`), so the table itself is in time order: a reading writes
    // one b-tree instead of two (the table and `history_at`), one page less
    // per commit at a home's rate and one index insert less per reading in a
    // burst. Queries by time read a rowid range.
    r#"
    CREATE TABLE history_v6 (
        t INTEGER PRIMARY KEY NOT NULL,
        device TEXT NOT NULL,
        kind INTEGER NOT NULL,
        value REAL NOT NULL,
        at INTEGER NOT NULL
    );
    INSERT INTO history_v6 (t, device, kind, value, at)
        SELECT CASE WHEN at BETWEEN -140737488355328 AND 140737488355327
                    THEN at * 65536 + (row_number() OVER (PARTITION BY at ORDER BY rowid) - 1)
               END,
               device, kind, value, at
        FROM history ORDER BY at, rowid;
    DROP TABLE history;
    ALTER TABLE history_v6 RENAME TO history;
    "#,
    // v7: alert delivery records in a ring (see `delivery`).
    super::delivery::MIGRATION_V7,
    // v8: telemetry rows store their document without "id" and "seq"
    // (`payload::telemetry_body`); no table changes. The version bump keeps
    // releases that would publish such rows as stored from opening the
    // file (they report it as too new; an OTA rollback makes the rows whole
    // first: `ota::rollback_db`).
    "-- v8: telemetry rows store the document's body",
    // v9: the ARC's copy of each alert is written by the store's writer
    // (`uplink::arc::queue::capture`) instead of a trigger on `outbox`: a
    // table with a trigger makes every INSERT into it open SQLite's
    // statement journal (a copy of the outbox page at every row, alerts
    // and telemetry alike) and run the trigger's `kv` lookup; ~8 % of the
    // writer's CPU in a 50 k alert burst. Same transaction, same rows.
    crate::uplink::arc::queue::MIGRATION_V9,
    // v10: the registry keyed by its id alone. With a rowid, a device's row
    // lived in two b-trees (the table and the automatic index on `id`), so
    // each device seen for the first time wrote both, at random places in
    // the index; without, one b-tree keyed by `id`. In a 50 k burst of
    // panic presses from pendants never seen before, the registry rows
    // were the largest single cost of the alert path (see `touches`).
    // Same columns: `ota::rollback_db` merges by column, so a rollback to
    // a v9 backup still keeps the devices paired during the trial.
    r#"
    CREATE TABLE devices_v10 (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT, room TEXT, role TEXT, ieee TEXT, nwk INTEGER,
        manufacturer TEXT, model TEXT, last_seen INTEGER, battery REAL, lqi INTEGER
    ) WITHOUT ROWID;
    INSERT INTO devices_v10 (id, name, room, role, ieee, nwk, manufacturer, model, last_seen, battery, lqi)
        SELECT id, name, room, role, ieee, nwk, manufacturer, model, last_seen, battery, lqi
        FROM devices;
    DROP TABLE devices;
    ALTER TABLE devices_v10 RENAME TO devices;
    "#,
    // v11: alert rows store a compact binary body (`alert_body`), made
    // into the published document when read; no table changes. As with
    // v8, the version bump keeps releases that would publish the rows as
    // stored from opening the file (an OTA rollback makes them whole
    // first: `ota::rollback_db`).
    "-- v11: alert rows store a compact body",
    // v12: the uplinks' delivery records, one row per acknowledged run
    // instead of a ring row updated per alert; a view of one record per
    // alert (see `delivery`). The ARC keeps its ring rows.
    super::delivery::MIGRATION_V12,
    // v13: the view `deliveries` skips damaged run records instead of
    // failing on them (see `delivery`).
    super::delivery::MIGRATION_V13,
];

/// A database file as release `version` of the schema left it (tests of
/// migrations and of rollbacks): WAL, the first `version` steps, the
/// version recorded. Creates the parent directory.
#[cfg(test)]
pub(crate) fn create_at(path: &Path, version: usize) -> Connection {
    #![allow(clippy::unwrap_used)]
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    for step in &MIGRATIONS[..version] {
        c.execute_batch(step).unwrap();
    }
    c.pragma_update(None, "user_version", i64::try_from(version).unwrap())
        .unwrap();
    c
}

/// Rows of `history` a single millisecond can key in order (see
/// [`history_key`]); must match the factor in schema step v6.
pub(crate) const HISTORY_SLOTS: i64 = 1 << 16;

/// The first `history.t` of readings taken at `ms`: rows of one
/// millisecond take `t` from here up (the insert in `apply` picks the next
/// free one), so `t` ranges are time ranges. Saturates (times far beyond
/// year 4000 share the last key range; rows are never lost: see `apply`).
pub(crate) fn history_key(ms: i64) -> i64 {
    ms.saturating_mul(HISTORY_SLOTS)
}

/// Page size of a new database. Every commit appends a copy of each page
/// it touched to the WAL, so at a home's rate the bytes written per reading
/// scale with the page size. Measured (`benches/versus.rs`, same binary):
/// 1 KiB pages wrote 35 % less per reading at home rates with
/// `commit_delay = "15s"` (696 vs 1,072 B at 10 readings/s), but cost
/// 12–18 µs more CPU per alert in a 50 k burst (38–44 vs 27 µs) and twice
/// the bytes there; `commit_delay` is the larger lever, so SQLite's 4 KiB
/// stays. Existing databases keep theirs (changing it needs a `VACUUM`).
pub(crate) const PAGE_SIZE: i64 = 4096;

/// Maps SQLite's "this file is damaged" codes to [`StoreError::Corrupt`].
pub(crate) fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            detail: format!("{}: {e}", path.display()),
        },
        _ => StoreError::Sqlite(e),
    }
}

/// Opens (creating file and directories if needed) the writer connection,
/// checks it, and migrates it to the latest schema.
pub(crate) fn open_writer(
    path: &Path,
    busy: Duration,
    startup: StartupCheck,
) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let new_file = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let conn = Connection::open(path).map_err(|e| classify(path, e))?;
    conn.busy_timeout(busy).map_err(|e| classify(path, e))?;
    if new_file {
        // Only before the first table (and before WAL) can it be set.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(|e| classify(path, e))?;
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| classify(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Setup(format!(
            "{}: journal_mode is {mode}, WAL was refused",
            path.display()
        )));
    }
    let pragmas = "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;";
    conn.execute_batch(pragmas).map_err(|e| classify(path, e))?;
    match startup {
        StartupCheck::Quick => check(&conn, path, "quick_check")?,
        StartupCheck::Full => check(&conn, path, "integrity_check")?,
        StartupCheck::Off => {}
    }
    // Incremental auto-vacuum lets the disk-full path give freed pages back
    // to the file system. It only takes effect on a database without tables.
    let fresh: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| classify(path, e))?;
    if fresh == 0 {
        conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL")
            .map_err(|e| classify(path, e))?;
    }
    migrate(&conn, path)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens a read-only connection on a database the writer already set up.
pub(crate) fn open_reader(path: &Path, busy: Duration) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
    conn.busy_timeout(busy).map_err(|e| classify(path, e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Runs `PRAGMA integrity_check` or `quick_check`; anything but `ok` is
/// [`StoreError::Corrupt`] with SQLite's first lines of complaint.
pub(crate) fn check(conn: &Connection, path: &Path, pragma: &str) -> Result<(), StoreError> {
    let sql = format!("PRAGMA {pragma}(20)");
    let run = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    let lines = run().map_err(|e| classify(path, e))?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            detail: format!("{}: {pragma}: {}", path.display(), lines.join("; ")),
        })
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| classify(path, e))?;
    let supported = MIGRATIONS.len();
    let current = usize::try_from(version).unwrap_or(usize::MAX);
    if current > supported {
        return Err(StoreError::TooNew {
            found: version,
            supported,
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
        let apply = || -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(step)?;
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(i + 1).unwrap_or(i64::MAX),
            )?;
            tx.commit()
        };
        apply().map_err(|e| classify(path, e))?;
        tracing::info!(db = %path.display(), version = i + 1, "store schema migrated");
    }
    Ok(())
}

/// Renames a (corrupt) database and its `-wal`/`-shm` companions to
/// `<name>.corrupt-<millis>` (`…-wal`, `…-shm`) so a fresh database can be
/// created at `path`. Returns the new name of the main file. Missing
/// companions are fine; a missing main file is an error.
pub fn quarantine(path: &Path, now_millis: i64) -> Result<PathBuf, StoreError> {
    let name = path
        .file_name()
        .ok_or_else(|| StoreError::Setup(format!("{} has no file name", path.display())))?;
    let mut new_name = name.to_os_string();
    new_name.push(format!(".corrupt-{now_millis}"));
    let target = path.with_file_name(&new_name);
    std::fs::rename(path, &target).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for suffix in ["-wal", "-shm"] {
        let mut from = name.to_os_string();
        from.push(suffix);
        let mut to = new_name.clone();
        to.push(suffix);
        let from = path.with_file_name(from);
        if from.exists() {
            std::fs::rename(&from, path.with_file_name(to))
                .map_err(|source| StoreError::Io { path: from, source })?;
        }
    }
    tracing::warn!(from = %path.display(), to = %target.display(), "database moved aside");
    Ok(target)
}
