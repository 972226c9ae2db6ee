//! The vocabulary every configuration section speaks, with no section of
//! its own: [`Problem`] (a key and what is wrong with it), [`ConfigError`]
//! (why a file was refused, naming file, line and key), [`Dur`] (durations
//! such as `"30s"`) and where in a TOML text a key or an error is
//! (`locate`). Sections (`rules`, `zigbee`, `uplink::lorawan`, `line`, and
//! those under `config`) depend on this module; [`crate::config`] composes
//! the sections into the whole file. Keeping the vocabulary here keeps the
//! module graph one-way: no section imports the file that imports it.

mod dur;
pub(crate) mod locate;

pub use dur::Dur;
pub(crate) use locate::locate_key;
pub use locate::{error_at, format_invalid, line_of, parse_error};

/// One thing wrong with a configuration, naming the dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key relative to the file root, e.g. `uplink.mqtt.url`.
    pub key: String,
    pub reason: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            reason: reason.into(),
        }
    }
    /// Prefixes the key with a section name (`channel` → `zigbee.channel`).
    pub fn within(mut self, section: &str) -> Self {
        self.key = if self.key.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{}", self.key)
        };
        self
    }
}

/// Why a configuration file (the main file, or a rules file inside
/// [`crate::rules::RulesError`]) was refused. `Display` is the message
/// users see.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {key}{message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        /// `"key: "` when the key could be located, else empty.
        key: String,
        message: String,
    },
    #[error("{}", format_invalid(path, problems))]
    Invalid {
        path: String,
        /// (line if found, problem)
        problems: Vec<(Option<usize>, Problem)>,
    },
}
