//! Rolling the database back to its install-time backup without losing what
//! the failed trial stored.
//!
//! The backup ([`super::install::backup_database`]) is the database as the
//! previous release left it, before the new release could migrate it. A
//! release on trial may run for minutes (several attempts) and store
//! readings and alerts meanwhile; restoring the backup alone would drop
//! them, alerts waiting in the outbox included. So the restored database is
//! the backup **merged with the trial's rows**:
//!
//! - `history`: every trial row not already in the backup (same values in
//!   every shared column) is added;
//! - `outbox`: every trial row whose `id` is not in the backup is added,
//!   keeping its `(class, seq)` unless the backup uses it, else taking the
//!   next free seq of its class; backup rows that the trial recorded as
//!   delivered (`alert_delivery`, and from schema v12 `delivery_run`) are
//!   dropped, other backup rows stay (sent again at worst: receivers
//!   de-duplicate by `id`);
//! - `seq` (and the `next.<class>` counters that replace it) never goes
//!   back; `alert_delivery` rows (and the trial's `delivery_run` records,
//!   one row per alert for a backup without that table) and the monotonic
//!   `counters` (evictions, deliveries…) are carried over; the `rows.*` /
//!   `bytes.*` counters are removed so the store recounts them at open;
//! - `devices` paired during the trial are added.
//!
//! Only columns both schemas share are copied, so a trial release that added
//! columns still merges. Everything else (`kv`, schema version) is the
//! backup's: the previous release runs on the schema it knows.
//!
//! Crash safety: the trial database is checkpointed first (its main file
//! then holds every committed row), the merge is built in a separate file
//! and renamed over the database last. Repeating the whole operation after a
//! power cut gives the same result (every step adds only what is missing).
//! If the trial database cannot be read, it is moved aside (never deleted)
//! and the plain backup is restored.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::fsutil::{self, PathError, at};

/// Rows of the trial kept in the restored database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Kept {
    pub history: u64,
    pub outbox: u64,
    pub devices: u64,
}

/// Why the trial's rows could not be kept (the backup was restored anyway).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Fs(#[from] PathError),
    #[error(
        "rows written during the trial could not be kept ({reason}); the trial database is kept at {aside}"
    )]
    TrialUnreadable { reason: String, aside: PathBuf },
    #[error("merging {db}: {reason}")]
    Merge { db: PathBuf, reason: String },
}

fn companion(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn remove_if_there(p: &Path) -> Result<(), PathError> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(at(p)(e)),
    }
}

/// Puts `backup` in place of `db`, keeping the rows the trial stored in `db`
/// (see the module header).
pub fn restore_keeping_trial_rows(backup: &Path, db: &Path) -> Result<Kept, RestoreError> {
    if !db.exists() {
        plain_restore(backup, db)?;
        return Ok(Kept::default());
    }
    if let Err(reason) = checkpoint(db) {
        let aside = move_aside(db)?;
        plain_restore(backup, db)?;
        return Err(RestoreError::TrialUnreadable { reason, aside });
    }
    let merged = companion(db, ".rollback");
    for p in [&merged, &companion(&merged, "-journal")] {
        remove_if_there(p)?;
    }
    fs::copy(backup, &merged).map_err(at(&merged))?;
    let kept = match merge(&merged, db) {
        Ok(k) => k,
        Err(e) => {
            let _ = fs::remove_file(&merged);
            let reason = e.to_string();
            let aside = move_aside(db)?;
            plain_restore(backup, db)?;
            return Err(RestoreError::TrialUnreadable { reason, aside });
        }
    };
    fs::File::open(&merged)
        .and_then(|f| f.sync_all())
        .map_err(at(&merged))?;
    // The checkpointed main file holds everything: its WAL is empty.
    for suffix in ["-wal", "-shm", "-journal"] {
        remove_if_there(&companion(db, suffix))?;
    }
    fs::rename(&merged, db).map_err(at(db))?;
    if let Some(dir) = db.parent() {
        fsutil::fsync_dir(dir)?;
    }
    Ok(kept)
}

/// The backup alone (the trial database is gone or was moved aside).
fn plain_restore(backup: &Path, db: &Path) -> Result<(), PathError> {
    for suffix in ["-wal", "-shm", "-journal"] {
        remove_if_there(&companion(db, suffix))?;
    }
    fsutil::atomic_copy(backup, db)
}

/// Moves the trial database and its companions to `<db>.trial-<millis>`.
fn move_aside(db: &Path) -> Result<PathBuf, PathError> {
    let aside = companion(db, &format!(".trial-{}", crate::wall::now().as_millis()));
    fs::rename(db, &aside).map_err(at(db))?;
    for suffix in ["-wal", "-shm"] {
        let from = companion(db, suffix);
        if from.exists() {
            fs::rename(&from, companion(&aside, suffix)).map_err(at(&from))?;
        }
    }
    Ok(aside)
}

/// Folds the trial database's WAL into its main file.
fn checkpoint(db: &Path) -> Result<(), String> {
    let conn = Connection::open(db).map_err(|e| e.to_string())?;
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if busy != 0 {
        return Err("the database is still in use".into());
    }
    let ok: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if ok != "ok" {
        return Err(format!("quick_check: {ok}"));
    }
    Ok(())
}

fn has_table(c: &Connection, schema: &str, table: &str) -> rusqlite::Result<bool> {
    c.query_row(
        &format!("SELECT count(*) FROM {schema}.sqlite_schema WHERE type = 'table' AND name = ?1"),
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn columns(c: &Connection, schema: &str, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = c.prepare(&format!("PRAGMA {schema}.table_info({table})"))?;
    let cols = st.query_map([], |r| r.get::<_, String>(1))?;
    cols.collect()
}

/// Columns of `table` in both databases (`None`: a side lacks the table).
fn shared(c: &Connection, table: &str) -> rusqlite::Result<Option<Vec<String>>> {
    if !has_table(c, "main", table)? || !has_table(c, "trial", table)? {
        return Ok(None);
    }
    let theirs = columns(c, "trial", table)?;
    Ok(Some(
        columns(c, "main", table)?
            .into_iter()
            .filter(|col| theirs.contains(col))
            .collect(),
    ))
}

fn quoted(cols: &[String], prefix: &str) -> String {
    cols.iter()
        .map(|c| format!("{prefix}\"{}\"", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The trial's uplink delivery records (schema v12 keeps one row per
/// acknowledged run, `store::delivery`), one row per alert, in the columns
/// of `alert_delivery` (`slot` for a v7+ ring of 10,000), newest first;
/// what is not a record is skipped (as the store's view `deliveries` does).
const RUN_RECORDS: &str = "SELECT (j.value ->> 0) % 10000 AS slot, j.value ->> 0 AS seq, \
     j.value ->> 1 AS id, r.via AS via, j.value ->> 2 AS queued_at, r.delivered_at AS delivered_at \
     FROM trial.delivery_run r, json_each(CASE WHEN json_valid(r.alerts) THEN r.alerts ELSE '[]' END) j \
     WHERE j.type = 'array' AND typeof(j.value ->> 0) = 'integer' AND typeof(j.value ->> 1) = 'text' \
     AND typeof(j.value ->> 2) = 'integer' ORDER BY 2 DESC";

/// The trial's runs of delivery records: kept as runs by a backup that has
/// them, else made into `alert_delivery` rows (a slot already taken keeps
/// its record, as for the trial's own `alert_delivery` rows).
fn merge_runs(c: &Connection) -> rusqlite::Result<()> {
    if !has_table(c, "trial", "delivery_run")? {
        return Ok(());
    }
    if let Some(cols) = shared(c, "delivery_run")? {
        c.execute(
            &format!(
                "INSERT OR IGNORE INTO main.delivery_run ({}) SELECT {} FROM trial.delivery_run t",
                quoted(&cols, ""),
                quoted(&cols, "t.")
            ),
            [],
        )?;
        return Ok(());
    }
    if !has_table(c, "main", "alert_delivery")? {
        return Ok(());
    }
    let known = ["slot", "seq", "id", "via", "queued_at", "delivered_at"];
    let cols: Vec<String> = columns(c, "main", "alert_delivery")?
        .into_iter()
        .filter(|col| known.contains(&col.as_str()))
        .collect();
    if cols.is_empty() {
        return Ok(());
    }
    c.execute(
        &format!(
            "INSERT OR IGNORE INTO main.alert_delivery ({list}) SELECT {list} FROM ({RUN_RECORDS})",
            list = quoted(&cols, "")
        ),
        [],
    )?;
    Ok(())
}

fn merge(merged: &Path, trial: &Path) -> rusqlite::Result<Kept> {
    let c = Connection::open(merged)?;
    let trial_str = trial.to_string_lossy().into_owned();
    c.execute("ATTACH DATABASE ?1 AS trial", [trial_str])?;
    let tx = c.unchecked_transaction()?;
    let mut kept = Kept::default();

    if let Some(cols) = shared(&c, "history")?
        && !cols.is_empty()
    {
        let same = cols
            .iter()
            .map(|col| format!("m.\"{col}\" IS t.\"{col}\""))
            .collect::<Vec<_>>()
            .join(" AND ");
        kept.history = c.execute(
            &format!(
                "INSERT INTO main.history ({list}) SELECT {tlist} FROM trial.history t \
                 WHERE NOT EXISTS (SELECT 1 FROM main.history m WHERE {same})",
                list = quoted(&cols, ""),
                tlist = quoted(&cols, "t."),
            ),
            [],
        )? as u64;
    }

    if let Some(cols) = shared(&c, "outbox")?
        && ["class", "seq", "id"]
            .iter()
            .all(|k| cols.iter().any(|c| c == k))
    {
        if has_table(&c, "trial", "alert_delivery")? {
            c.execute(
                "DELETE FROM main.outbox WHERE class = 0 AND id IN (SELECT id FROM trial.alert_delivery)",
                [],
            )?;
        }
        if has_table(&c, "trial", "delivery_run")? {
            c.execute(
                &format!("DELETE FROM main.outbox WHERE class = 0 AND id IN (SELECT id FROM ({RUN_RECORDS}))"),
                [],
            )?;
        }
        let list = quoted(&cols, "");
        let tlist = quoted(&cols, "t.");
        let missing = "NOT EXISTS (SELECT 1 FROM main.outbox m WHERE m.id = t.id)";
        // The trial's alerts this merge adds, for the ARC's queue below.
        c.execute_batch(&format!(
            "CREATE TEMP TABLE merged_alerts AS SELECT t.id FROM trial.outbox t \
             WHERE t.class = 0 AND {missing}"
        ))?;
        kept.outbox = c.execute(
            &format!(
                "INSERT INTO main.outbox ({list}) SELECT {tlist} FROM trial.outbox t WHERE {missing} \
                 AND NOT EXISTS (SELECT 1 FROM main.outbox m WHERE m.class = t.class AND m.seq = t.seq)"
            ),
            [],
        )? as u64;
        // Rows whose seq the backup already uses: the next free seq.
        let others: Vec<(i64, String)> = {
            let mut st = c.prepare(&format!(
                "SELECT t.class, t.id FROM trial.outbox t WHERE {missing} ORDER BY t.class, t.seq"
            ))?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let rest: Vec<String> = cols.iter().filter(|c| *c != "seq").cloned().collect();
        for (class, id) in others {
            let next: i64 = c.query_row(
                "SELECT coalesce(max(seq), 0) + 1 FROM main.outbox WHERE class = ?1",
                [class],
                |r| r.get(0),
            )?;
            kept.outbox += c.execute(
                &format!(
                    "INSERT INTO main.outbox (\"seq\", {list}) SELECT ?1, {tlist} FROM trial.outbox t \
                     WHERE t.id = ?2 LIMIT 1",
                    list = quoted(&rest, ""),
                    tlist = quoted(&rest, "t."),
                ),
                params![next, id],
            )? as u64;
        }
        if cols.iter().any(|c| c == "payload") {
            whole_telemetry(&c)?;
            whole_alerts(&c)?;
        }
        merge_seq(&c)?;
        capture_for_arc(&c)?;
    }

    if let Some(cols) = shared(&c, "alert_delivery")?
        && !cols.is_empty()
    {
        c.execute(
            &format!(
                "INSERT OR IGNORE INTO main.alert_delivery ({}) SELECT {} FROM trial.alert_delivery t",
                quoted(&cols, ""),
                quoted(&cols, "t.")
            ),
            [],
        )?;
    }
    merge_runs(&c)?;
    if shared(&c, "counters")?.is_some() {
        c.execute_batch(
            "INSERT INTO main.counters (name, value) SELECT name, value FROM trial.counters WHERE true \
               ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value);
             DELETE FROM main.counters WHERE name LIKE 'rows.%' OR name LIKE 'bytes.%';",
        )?;
    }
    if let Some(cols) = shared(&c, "devices")?
        && cols.iter().any(|c| c == "id")
    {
        kept.devices = c.execute(
            &format!(
                "INSERT OR IGNORE INTO main.devices ({}) SELECT {} FROM trial.devices t",
                quoted(&cols, ""),
                quoted(&cols, "t.")
            ),
            [],
        )? as u64;
    }
    tx.commit()?;
    c.execute("DETACH DATABASE trial", [])?;
    Ok(kept)
}

/// A backup from schema v9 on has no `arc_capture` trigger (the store's
/// writer copies alerts into `arc_queue` itself): the alerts this merge
/// added to its outbox are copied here, as the trigger of an older backup
/// does while they are inserted, when its ARC capture is on.
fn capture_for_arc(c: &Connection) -> rusqlite::Result<()> {
    let trigger: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_schema WHERE type = 'trigger' AND name = 'arc_capture')",
        [],
        |r| r.get(0),
    )?;
    if trigger || !has_table(c, "main", "arc_queue")? || !has_table(c, "main", "kv")? {
        return Ok(());
    }
    c.execute(
        "INSERT OR IGNORE INTO main.arc_queue (seq, id, at, payload) \
         SELECT m.seq, m.id, m.at, m.payload FROM main.outbox m \
         WHERE m.class = 0 AND m.id IN (SELECT id FROM temp.merged_alerts) \
         AND EXISTS (SELECT 1 FROM main.kv WHERE key = ?1)",
        [crate::uplink::arc::queue::CAPTURE_KEY],
    )?;
    Ok(())
}

/// Since schema v8 a telemetry row stores its document without `id` and
/// `seq` (its own columns); the release this database goes back to may
/// publish payloads as stored, so every such row is made whole here, with
/// the seq it has now (see `store::outbox::telemetry_doc`; whole rows are
/// left as they are).
fn whole_telemetry(c: &Connection) -> rusqlite::Result<()> {
    let class = i64::from(crate::model::Class::Telemetry as u8);
    let rows: Vec<(i64, String, Vec<u8>)> = {
        let mut st = c.prepare("SELECT seq, id, payload FROM main.outbox WHERE class = ?1")?;
        // Text or blob: older releases' rows may hold either.
        let rows = st.query_map([class], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get_ref(2)?.as_bytes()?.to_vec()))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut update =
        c.prepare("UPDATE main.outbox SET payload = ?3 WHERE class = ?1 AND seq = ?2")?;
    for (seq, id, stored) in rows {
        let doc = crate::store::outbox::telemetry_doc(
            &id,
            u64::try_from(seq).unwrap_or(0),
            stored.clone(),
        );
        if doc != stored {
            update.execute(params![class, seq, doc])?;
        }
    }
    Ok(())
}

/// Since schema v11 an alert row stores a compact body; the release this
/// database goes back to publishes payloads as stored, so every such row
/// is made into its document here, with the seq it has now (see
/// `store::outbox::alert_doc`). The same for the ARC's queue: an older
/// backup's capture trigger copied the merged rows as they were inserted.
fn whole_alerts(c: &Connection) -> rusqlite::Result<()> {
    let alert = crate::model::Class::Alert as u8;
    // Not a document: its first byte is not `{` (text or blob alike).
    let body = "substr(CAST(payload AS BLOB), 1, 1) <> x'7b'";
    whole_alert_rows(
        c,
        &format!("SELECT seq, id, at, payload FROM main.outbox WHERE class = {alert} AND {body}"),
        &format!("UPDATE main.outbox SET payload = ?1 WHERE class = {alert} AND seq = ?2"),
    )?;
    if has_table(c, "main", "arc_queue")? {
        whole_alert_rows(
            c,
            &format!("SELECT seq, id, at, payload FROM main.arc_queue WHERE {body}"),
            "UPDATE main.arc_queue SET payload = ?1 WHERE seq = ?2",
        )?;
    }
    Ok(())
}

/// Replaces the payload of each `(seq, id, at, payload)` row `select`
/// finds by its document, through `update` (`?1` the document, `?2` seq).
fn whole_alert_rows(c: &Connection, select: &str, update: &str) -> rusqlite::Result<()> {
    let rows: Vec<(i64, String, i64, Vec<u8>)> = {
        let mut st = c.prepare(select)?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get_ref(3)?.as_bytes()?.to_vec(),
            ))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut update = c.prepare(update)?;
    for (seq, id, at, stored) in rows {
        let doc = crate::store::outbox::alert_doc(
            &id,
            u64::try_from(seq).unwrap_or(0),
            crate::model::Time::from_millis(at),
            stored,
        );
        update.execute(params![doc, seq])?;
    }
    Ok(())
}

/// `seq.next` per class: never below either side's, nor below a row's seq.
fn merge_seq(c: &Connection) -> rusqlite::Result<()> {
    if shared(c, "seq")?.is_none() {
        return Ok(());
    }
    let counters = shared(c, "counters")?.is_some();
    let classes: Vec<i64> = {
        let mut st = c.prepare(
            "SELECT class FROM main.seq UNION SELECT class FROM trial.seq \
             UNION SELECT DISTINCT class FROM main.outbox UNION VALUES (0), (1), (2)",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for class in classes {
        let get = |sql: &str| -> rusqlite::Result<i64> {
            Ok(c.query_row(sql, [class], |r| r.get::<_, Option<i64>>(0))
                .optional()?
                .flatten()
                .unwrap_or(1))
        };
        // Releases from 2026-12 keep it as the counter `next.<class>`.
        let counter = |db: &str| {
            get(&format!(
                "SELECT value FROM {db}.counters WHERE name = 'next.' || \
                 CASE ?1 WHEN 0 THEN 'alert' WHEN 1 THEN 'status' ELSE 'telemetry' END"
            ))
        };
        let mut next = get("SELECT next FROM main.seq WHERE class = ?1")?
            .max(get("SELECT next FROM trial.seq WHERE class = ?1")?);
        if counters {
            next = next.max(counter("main")?).max(counter("trial")?);
        }
        let mut next = next.max(get(
            "SELECT max(seq) + 1 FROM main.outbox WHERE class = ?1",
        )?);
        // A release from 2026-12 writes `next.<class>` only once the class's
        // newest row is gone; while it is there, it is the next seq's proof.
        if has_table(c, "trial", "outbox")? {
            next = next.max(get(
                "SELECT max(seq) + 1 FROM trial.outbox WHERE class = ?1",
            )?);
        }
        c.execute(
            "INSERT INTO main.seq (class, next) VALUES (?1, ?2) \
             ON CONFLICT(class) DO UPDATE SET next = excluded.next",
            params![class, next],
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "rollback_db_tests.rs"]
mod tests;
