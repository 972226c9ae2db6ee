//! The rule engine's shell: the engine itself is pure and lives in the core
//! crate ([`carebridge_core::rules`], re-exported here); this module adds what
//! needs I/O — reading a rules file ([`load`]), the active rule set kept in
//! the store and switched through the hub ([`active`]), and
//! `carebridge rules check|replay` ([`cli`]).

use std::path::Path;

pub use carebridge_core::rules::*;

pub mod active;
pub mod cli;

/// Reads and parses a rules file.
pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| crate::config::ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
    RuleSet::parse(&text, &shown)
}
