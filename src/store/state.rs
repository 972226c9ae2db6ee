//! The rule engine's state as the store writes it: a full snapshot that
//! ends the journal, or a delta appended to it (see `rules::Saved`).

use super::writer::Op;

/// One save of the rule engine's state (see `rules::Saved`, `journal.rs`):
/// a full snapshot is put under `key` and ends the journal (every kv row
/// under the `journal` prefix is deleted in the same transaction); a delta
/// is appended to the journal as `<journal><seq, 20 digits>`, so a prefix
/// scan reads the deltas in order.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub key: &'static str,
    pub journal: &'static str,
    pub saved: crate::rules::Saved,
    /// May wait for `commit_delay` (progress only, no alert depends on it).
    pub lazy: bool,
}

impl StateWrite {
    /// The kv key of a delta.
    pub fn delta_key(journal: &str, seq: u64) -> String {
        format!("{journal}{seq:020}")
    }
}

/// A full rule state makes the state writes before it in the same
/// transaction pointless (it replaces the snapshot and ends the journal
/// they belong to): they are dropped. A delta is never dropped (each one
/// carries its own changes).
pub(super) fn push_state(ops: &mut Vec<Op>, st: StateWrite) {
    if matches!(st.saved, crate::rules::Saved::Full(_)) {
        ops.retain(|o| !matches!(o, Op::State(old) if old.journal == st.journal));
    }
    ops.push(Op::State(st));
}
