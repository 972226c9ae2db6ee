//! The rule engine's state as the store writes it: a full snapshot that
//! ends the journal, or a delta appended to it (see `rules::Saved`).

use super::writer::Op;

/// One save of the rule engine's state (see `rules::Saved`, `journal.rs`):
/// a full snapshot is put in kv under `key` and ends the journal (every
/// row of the `rules_journal` table is deleted in the same transaction); a
/// delta is appended to that table under its `seq`, so
/// [`super::Store::rule_journal`] reads the deltas in order.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub key: &'static str,
    pub saved: crate::rules::Saved,
    /// May wait for `commit_delay` (progress only, no alert depends on it).
    pub lazy: bool,
}

/// A full rule state makes the state writes before it in the same
/// transaction pointless (it replaces the snapshot and ends the journal
/// they belong to): they are dropped. A delta is never dropped (each one
/// carries its own changes).
pub(super) fn push_state(ops: &mut Vec<Op>, st: StateWrite) {
    if matches!(st.saved, crate::rules::Saved::Full(_)) {
        ops.retain(|o| !matches!(o, Op::State(old) if old.key == st.key));
    }
    ops.push(Op::State(st));
}
