//! The history table's keys: `t` = the reading's millisecond ×
//! `HISTORY_SLOTS` + its place among that millisecond's rows (schema v6,
//! see `schema::history_key`), so the table is in time order.
//!
//! The live stream's readings are newer than every row, and the writer,
//! the only one that inserts into `history`, knows the newest key (read
//! at open, kept by each commit): such a reading takes the next key
//! without a b-tree seek. An older reading, a full millisecond, or a key
//! found taken after all (a row written behind the writer's back) asks the
//! table instead, so a reading is always stored.

use rusqlite::{Connection, params};

use super::schema::{HISTORY_SLOTS, history_key};
use super::stmts::Stmts;
use crate::model::Reading;

/// The newest key in `history` (`i64::MIN` for an empty table: below
/// every key), or None when it cannot be read (then every key comes from
/// the table).
pub(super) fn newest_key(conn: &Connection) -> Option<i64> {
    conn.query_row("SELECT max(t) FROM history", [], |r| {
        r.get::<_, Option<i64>>(0)
    })
    .ok()
    .map(|t| t.unwrap_or(i64::MIN))
}

/// Inserts one reading. `newest`: a key at least as large as any in the
/// table (None: not known, and not learnt here); the caller keeps what
/// this sets only if the batch commits.
pub(super) fn insert(
    st: &mut Stmts<'_>,
    r: &Reading,
    newest: &mut Option<i64>,
) -> rusqlite::Result<()> {
    let lo = history_key(r.at.as_millis());
    let hi = lo.saturating_add(HISTORY_SLOTS - 1);
    let (device, kind, at) = (
        r.device.as_str(),
        i64::from(r.kind.code()),
        r.at.as_millis(),
    );
    let stored = match next_key(*newest, lo, hi) {
        Some(t) => match st
            .get(AT_KEY_SQL)?
            .execute(params![device, kind, r.value, at, t])
        {
            Ok(n) => n > 0,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                tracing::warn!("history key taken; keys come from the table from now on");
                *newest = None;
                false
            }
            Err(e) => return Err(e),
        },
        None => false,
    };
    if !stored {
        st.get(NEXT_KEY_SQL)?
            .execute(params![device, kind, r.value, at, lo, hi])?;
    }
    if let Some(n) = newest {
        *n = (*n).max(st.conn().last_insert_rowid());
    }
    Ok(())
}

/// The key of a reading of `[lo, hi]` (its millisecond's keys) when
/// `newest` is at least every key in the table: `lo` if the millisecond has
/// no row yet, the next one if it has; `None` (ask the table) when that is
/// not known, the reading is older than the newest row, or its millisecond
/// is full.
fn next_key(newest: Option<i64>, lo: i64, hi: i64) -> Option<i64> {
    match newest {
        None => None,
        Some(n) if n < lo => Some(lo),
        Some(n) if n < hi => Some(n + 1),
        Some(_) => None,
    }
}

/// One reading at a key [`next_key`] gave.
const AT_KEY_SQL: &str =
    "INSERT INTO history (t, device, kind, value, at) VALUES (?5, ?1, ?2, ?3, ?4)";

/// One reading at the next free key of its millisecond (one b-tree seek);
/// NULL when all HISTORY_SLOTS are taken, which makes SQLite append the row
/// after the newest (kept, never lost).
const NEXT_KEY_SQL: &str = "INSERT INTO history (t, device, kind, value, at) VALUES ( \
     (SELECT CASE WHEN max(t) IS NULL THEN ?5 WHEN max(t) < ?6 THEN max(t) + 1 END \
      FROM history WHERE t >= ?5 AND t <= ?6), ?1, ?2, ?3, ?4)";

#[cfg(test)]
mod tests {
    use super::next_key;

    #[test]
    fn a_key_comes_from_the_newest_only_when_the_reading_is_not_older() {
        // Unknown newest: ask the table.
        assert_eq!(next_key(None, 100, 199), None);
        // Empty table or a newer millisecond: its first key.
        assert_eq!(next_key(Some(i64::MIN), 100, 199), Some(100));
        assert_eq!(next_key(Some(99), 100, 199), Some(100));
        // The same millisecond: the next key, until it is full.
        assert_eq!(next_key(Some(100), 100, 199), Some(101));
        assert_eq!(next_key(Some(198), 100, 199), Some(199));
        assert_eq!(next_key(Some(199), 100, 199), None);
        // An older reading: ask the table.
        assert_eq!(next_key(Some(250), 100, 199), None);
        // The extremes do not overflow.
        assert_eq!(
            next_key(Some(i64::MAX - 1), i64::MAX - 5, i64::MAX),
            Some(i64::MAX)
        );
        assert_eq!(
            next_key(Some(i64::MIN), i64::MIN, i64::MIN + 9),
            Some(i64::MIN + 1)
        );
    }
}
