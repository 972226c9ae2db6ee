//! A command's envelope: `id` (executed once) and `expires` (not executed
//! when stale). Both are optional fields of a JSON command body, taken out
//! before the command itself reads the body.
//!
//! - `id`: 1–128 printable characters. The ids of executed commands are
//!   remembered durably in `<data_dir>/command_ids` (one line per id,
//!   appended and synced before the result is published; rewritten with the
//!   newest [`KEEP`] when it holds twice that). A command whose id is
//!   remembered is not run again: its result says `"duplicate": true` and
//!   repeats the first run's `ok`. A persistent MQTT session redelivers a
//!   command whose acknowledgement was lost, and the cloud may repeat one
//!   that got no answer: both are harmless.
//! - `expires`: RFC 3339. When the gateway's time is past it the command is
//!   refused (`{"ok":false,"error":"expired …"}`) and not executed. When the
//!   gateway's clock is not trusted (no NTP, no RTC: see
//!   [`crate::clock::ClockState`]) the expiry cannot be judged: the command
//!   runs and its result says so (`expires_unchecked`), because refusing
//!   every command after a power cut would leave the home unmanageable.

use std::collections::{HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::clock::ClockState;
use crate::model::Time;

/// How many ids are kept (the newest).
pub const KEEP: usize = 4096;
/// The file in the data directory.
pub const FILE: &str = "command_ids";

/// The envelope fields of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub id: Option<String>,
    pub expires: Option<Time>,
}

/// Takes `id` and `expires` out of a JSON object body; any other body
/// (empty, TOML, not an object) has no envelope and passes unchanged.
/// Errors name the field.
pub fn split(payload: &[u8]) -> Result<(Envelope, Vec<u8>), String> {
    let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice(payload) else {
        return Ok((Envelope::default(), payload.to_vec()));
    };
    if !body.contains_key("id") && !body.contains_key("expires") {
        return Ok((Envelope::default(), payload.to_vec()));
    }
    let id = match body.remove("id") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(check_id(s)?),
        Some(_) => return Err("field id: must be a string (1 to 128 printable characters)".into()),
    };
    let expires = match body.remove("expires") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(Time::parse_rfc3339(&s).map_err(|_| {
            format!("field expires: {s:?} is not an RFC 3339 time (2026-12-04T18:00:00Z)")
        })?),
        Some(_) => return Err("field expires: must be an RFC 3339 time string".into()),
    };
    let rest = serde_json::to_vec(&serde_json::Value::Object(body)).unwrap_or_default();
    Ok((Envelope { id, expires }, rest))
}

fn check_id(s: String) -> Result<String, String> {
    let n = s.chars().count();
    if n == 0 || n > 128 || s.chars().any(char::is_control) {
        return Err(format!("field id: {s:?}: 1 to 128 printable characters"));
    }
    Ok(s)
}

/// What the gateway makes of an `expires` time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// Not past: run it.
    Fresh,
    /// Past: refuse it.
    Expired { expires: Time, now: Time },
    /// The clock is not trusted: run it, and say why it was not checked.
    Unchecked(String),
}

/// Judges `expires` at `now` on a clock in `clock` state.
pub fn expiry(expires: Time, now: Time, clock: &ClockState) -> Expiry {
    if !clock.trusted {
        return Expiry::Unchecked(format!(
            "the gateway's clock is not trusted (source {}): expires {} not checked",
            clock.source, expires
        ));
    }
    if now > expires {
        Expiry::Expired { expires, now }
    } else {
        Expiry::Fresh
    }
}

/// The ids of executed commands, remembered durably (bounded).
#[derive(Debug, Clone)]
pub struct SeenIds {
    inner: Arc<Mutex<Seen>>,
}

#[derive(Debug)]
struct Seen {
    path: PathBuf,
    /// Newest last: `(id, ok)`.
    order: VecDeque<(String, bool)>,
    ids: HashSet<String>,
    /// Lines in the file now (compacted past 2 × keep).
    lines: usize,
    keep: usize,
}

impl SeenIds {
    /// Opens (or creates) `dir/command_ids`, keeping the newest `keep` ids.
    /// A torn last line (a crash mid-append) is skipped.
    pub fn open(dir: &Path, keep: usize) -> std::io::Result<SeenIds> {
        let path = dir.join(FILE);
        let text = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut seen = Seen {
            path,
            order: VecDeque::new(),
            ids: HashSet::new(),
            lines: 0,
            keep: keep.max(1),
        };
        for line in text.split_inclusive('\n') {
            seen.lines += 1;
            let Some(line) = line.strip_suffix('\n') else {
                continue; // torn
            };
            let (ok, id) = match line.split_once(' ') {
                Some(("1", id)) => (true, id),
                Some(("0", id)) => (false, id),
                _ => continue,
            };
            seen.insert(id.to_string(), ok);
        }
        if !text.is_empty() && !text.ends_with('\n') {
            // Appending after a torn line would glue the next id to it.
            seen.rewrite()?;
        }
        Ok(SeenIds {
            inner: Arc::new(Mutex::new(seen)),
        })
    }

    /// The first run's `ok` if `id` was executed.
    pub fn seen(&self, id: &str) -> Option<bool> {
        let s = self.inner.lock().ok()?;
        if !s.ids.contains(id) {
            return None;
        }
        s.order
            .iter()
            .rev()
            .find(|(i, _)| i == id)
            .map(|(_, ok)| *ok)
    }

    /// Records `id` as executed (appended and synced; blocking I/O).
    pub fn remember(&self, id: &str, ok: bool) -> std::io::Result<()> {
        let mut s = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::other("command id memory poisoned"))?;
        s.insert(id.to_string(), ok);
        if s.lines + 1 > 2 * s.keep {
            s.rewrite()
        } else {
            let mut f = open_append(&s.path)?;
            f.write_all(format!("{} {id}\n", u8::from(ok)).as_bytes())?;
            f.sync_data()?;
            s.lines += 1;
            Ok(())
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |s| s.order.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Seen {
    fn insert(&mut self, id: String, ok: bool) {
        if self.ids.insert(id.clone()) {
            self.order.push_back((id, ok));
        }
        while self.order.len() > self.keep {
            if let Some((old, _)) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    /// Writes the newest ids to a new file and renames it over the old one.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut text = String::new();
        for (id, ok) in &self.order {
            text.push_str(&format!("{} {id}\n", u8::from(*ok)));
        }
        {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode_private()
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        self.lines = self.order.len();
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode_private()
        .open(path)
}

/// Data files are readable by the gateway's user only.
trait Private {
    fn mode_private(&mut self) -> &mut Self;
}

impl Private for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn trusted() -> ClockState {
        ClockState {
            trusted: true,
            source: "ntp",
            ..ClockState::default()
        }
    }

    #[test]
    fn the_envelope_is_taken_out_and_the_rest_passes_unchanged() {
        let (env, rest) =
            split(br#"{"id":"c-1","expires":"2026-12-04T18:00:00Z","url":"u","sha256":"s"}"#)
                .unwrap();
        assert_eq!(env.id.as_deref(), Some("c-1"));
        assert_eq!(env.expires.unwrap().to_rfc3339(), "2026-12-04T18:00:00Z");
        let rest: serde_json::Value = serde_json::from_slice(&rest).unwrap();
        assert_eq!(rest, serde_json::json!({"url":"u","sha256":"s"}));
        for plain in [&b""[..], b"rules = \"x\"", b"[1,2]", br#"{"instance":"i"}"#] {
            let (env, rest) = split(plain).unwrap();
            assert_eq!(env, Envelope::default());
            assert_eq!(rest, plain);
        }
    }

    #[test]
    fn a_bad_id_or_expiry_is_refused_naming_the_field() {
        for (body, field) in [
            (&br#"{"id":5}"#[..], "field id"),
            (br#"{"id":""}"#, "field id"),
            (br#"{"id":"a\nb"}"#, "field id"),
            (br#"{"expires":"tomorrow"}"#, "field expires"),
            (br#"{"expires":1}"#, "field expires"),
        ] {
            let e = split(body).unwrap_err();
            assert!(e.starts_with(field), "{e}");
        }
    }

    #[test]
    fn a_stale_command_expires_only_on_a_trusted_clock() {
        let exp = Time::parse_rfc3339("2026-12-04T18:00:00Z").unwrap();
        let after = Time(exp.0 + 1);
        let before = Time(exp.0 - 1);
        assert_eq!(expiry(exp, before, &trusted()), Expiry::Fresh);
        assert_eq!(
            expiry(exp, after, &trusted()),
            Expiry::Expired {
                expires: exp,
                now: after
            }
        );
        let untrusted = ClockState {
            trusted: false,
            source: "none",
            ..ClockState::default()
        };
        match expiry(exp, after, &untrusted) {
            Expiry::Unchecked(why) => assert!(why.contains("not trusted"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ids_are_remembered_across_a_reopen_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let s = SeenIds::open(dir.path(), 8).unwrap();
        s.remember("a", true).unwrap();
        s.remember("b", false).unwrap();
        // A crash in the middle of an append.
        let mut f = open_append(&dir.path().join(FILE)).unwrap();
        f.write_all(b"1 tor").unwrap();
        let s = SeenIds::open(dir.path(), 8).unwrap();
        assert_eq!(s.seen("a"), Some(true));
        assert_eq!(s.seen("b"), Some(false));
        assert_eq!(s.seen("tor"), None);
        assert_eq!(s.seen("c"), None);
        s.remember("c", true).unwrap();
        let s = SeenIds::open(dir.path(), 8).unwrap();
        assert_eq!(s.seen("c"), Some(true), "an append after a torn line");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_memory_stays_bounded_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let s = SeenIds::open(dir.path(), 10).unwrap();
        for i in 0..55 {
            s.remember(&format!("id-{i}"), true).unwrap();
        }
        assert_eq!(s.len(), 10);
        assert_eq!(s.seen("id-44"), None);
        assert_eq!(s.seen("id-45"), Some(true));
        let lines = std::fs::read_to_string(dir.path().join(FILE))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 20, "{lines} lines");
        let again = SeenIds::open(dir.path(), 10).unwrap();
        assert_eq!(again.seen("id-54"), Some(true));
        assert_eq!(again.seen("id-44"), None);
    }
}
