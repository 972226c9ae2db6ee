//! The writer's statements, held for one batch.
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

use rusqlite::{CachedStatement, Connection};

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
