//! The store's hot statements: held for one batch ([`Stmts`]), written
//! once per outbox class ([`per_class`]), and rows written without an
//! upsert ([`update_or_insert`]).
//!
//! `prepare_cached` hashes the whole SQL text to find the statement (and
//! again to put it back when it is dropped): with three or four statements
//! per alert that was ~4 % of a 50 k burst's CPU. A batch takes each
//! statement from rusqlite's cache once, the first time it needs it, and
//! gives them all back when it ends.
//!
//! Statements are found by the identity of their `&'static str` (the same
//! constant); SQL that is not one falls back to `prepare_cached`, so a miss
//! costs only speed.

use rusqlite::{CachedStatement, Connection, Params};

use crate::model::Class;

pub(crate) struct Stmts<'c> {
    conn: &'c Connection,
    held: Vec<(&'static str, CachedStatement<'c>)>,
}

impl<'c> Stmts<'c> {
    pub fn new(conn: &'c Connection) -> Stmts<'c> {
        Stmts {
            conn,
            held: Vec::new(),
        }
    }

    pub fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The statement for `sql`, prepared (or taken from the cache) the
    /// first time this batch asks for it.
    pub fn get(&mut self, sql: &'static str) -> rusqlite::Result<&mut CachedStatement<'c>> {
        let same =
            |s: &&'static str| std::ptr::eq(s.as_ptr(), sql.as_ptr()) && s.len() == sql.len();
        let i = match self.held.iter().position(|(s, _)| same(s)) {
            Some(i) => i,
            None => {
                self.held.push((sql, self.conn.prepare_cached(sql)?));
                self.held.len() - 1
            }
        };
        Ok(&mut self.held[i].1)
    }
}

/// The rows an acknowledgement removes (seq, size, id, time), and their
/// removal, one statement per class.
pub(super) const ACKED_SQL: [&str; 3] = [
    "SELECT seq, length(payload), id, at FROM outbox WHERE class = 0 AND seq BETWEEN ?1 AND ?2",
    "SELECT seq, length(payload), id, at FROM outbox WHERE class = 1 AND seq BETWEEN ?1 AND ?2",
    "SELECT seq, length(payload), id, at FROM outbox WHERE class = 2 AND seq BETWEEN ?1 AND ?2",
];
/// What an acknowledgement of status or telemetry rows removes, summed
/// (rows, payload bytes, newest seq): no row comes back to Rust — only an
/// alert's removal needs each row (its delivery record). Status (1) and
/// telemetry (2); the alert entry is never used.
pub(super) const ACKED_SUM_SQL: [&str; 3] = [
    "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(max(seq), 0) FROM outbox WHERE class = 0 AND seq BETWEEN ?1 AND ?2",
    "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(max(seq), 0) FROM outbox WHERE class = 1 AND seq BETWEEN ?1 AND ?2",
    "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(max(seq), 0) FROM outbox WHERE class = 2 AND seq BETWEEN ?1 AND ?2",
];
pub(super) const DELETE_SQL: [&str; 3] = [
    "DELETE FROM outbox WHERE class = 0 AND seq BETWEEN ?1 AND ?2",
    "DELETE FROM outbox WHERE class = 1 AND seq BETWEEN ?1 AND ?2",
    "DELETE FROM outbox WHERE class = 2 AND seq BETWEEN ?1 AND ?2",
];

/// The oldest row's seq and time, one statement per class.
pub(super) const OLDEST_SQL: [&str; 3] = [
    "SELECT seq, at FROM outbox WHERE class = 0 ORDER BY seq LIMIT 1",
    "SELECT seq, at FROM outbox WHERE class = 1 ORDER BY seq LIMIT 1",
    "SELECT seq, at FROM outbox WHERE class = 2 ORDER BY seq LIMIT 1",
];

/// `sql[class]`: a hot statement written once per class with the class
/// code as a literal. Bound as `class = ?`, a query that orders by `seq`
/// (or takes `max(seq)`, or has `LIMIT ?`) is compiled again by SQLite at
/// every execution (its planner looked at the bound value, so a new value
/// expires the plan: `SQLITE_STMTSTATUS_REPREPARE` counted one per run).
/// That was 5 % of the store writer's CPU in an alert burst, spent in
/// SQLite's parser. Tested: `hot_statements_are_compiled_once`.
pub(crate) fn per_class(class: Class, sql: [&'static str; 3]) -> &'static str {
    const _: () = assert!(Class::Alert as usize == 0 && Class::Status as usize == 1);
    const _: () = assert!(Class::Telemetry as usize == 2);
    sql[class as usize]
}

/// One row by its key: an UPDATE, and the INSERT only when no row was
/// there. Returns whether it updated. An upsert (`ON CONFLICT … DO
/// UPDATE`) of a table with an index opens SQLite's statement journal at
/// every run (a copy of each page it writes); a table with a trigger makes
/// every INSERT do so (schema v9 dropped the one on `outbox`).
pub(crate) fn update_or_insert(
    conn: &Connection,
    update: &str,
    insert: &str,
    values: impl Params + Copy,
) -> rusqlite::Result<()> {
    if conn.prepare_cached(update)?.execute(values)? == 0 {
        conn.prepare_cached(insert)?.execute(values)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNT: &str = "SELECT count(*) FROM t WHERE v = ?1";

    #[test]
    fn a_statement_is_prepared_once_per_batch_and_runs_with_new_values() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1), (2), (2);")
            .unwrap();
        let mut st = Stmts::new(&c);
        let n1: i64 = st.get(COUNT).unwrap().query_row([1], |r| r.get(0)).unwrap();
        let n2: i64 = st.get(COUNT).unwrap().query_row([2], |r| r.get(0)).unwrap();
        assert_eq!((n1, n2), (1, 2));
        assert_eq!(st.held.len(), 1);
        drop(st);
        // Back in rusqlite's cache: the next batch finds it there.
        let n: i64 = c
            .prepare_cached(COUNT)
            .unwrap()
            .query_row([2], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
}
