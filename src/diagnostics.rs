//! `cmd/diagnostics`: what a support desk needs to triage a home without a
//! visit, in one bounded JSON document.
//!
//! Contents: the heartbeat document (versions, uptime, backlog per class,
//! oldest age, uplinks, links, counters, active config versions), the
//! device list (id, kind of link facts: last seen, battery, link quality —
//! no names or rooms: ids are enough to triage, and the cloud has the
//! rest), the recent warnings and errors ([`crate::logging::RecentErrors`]),
//! free space of the data directory and the process's resident memory.
//!
//! Invariant: the serialised report is at most [`REPORT_MAX`] bytes. Lists
//! are cut first (devices to [`DEVICES_MAX`], errors to [`ERRORS_MAX`]),
//! then halved until the report fits; every cut list says how many entries
//! it had (`devices_total`, `recent_errors_total`).

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::logging::RecentErrors;
use crate::store::Store;
use crate::uplink::mqtt::StatusFn;

/// Largest report, in bytes.
pub const REPORT_MAX: usize = 64 * 1024;
/// Devices listed at most.
pub const DEVICES_MAX: usize = 300;
/// Recent errors listed at most (newest kept).
pub const ERRORS_MAX: usize = 30;

/// The parts a report is built from.
#[derive(Clone)]
pub struct Diagnostics {
    pub store: Store,
    pub status: StatusFn,
    pub recent: Option<RecentErrors>,
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Diagnostics")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Diagnostics {
    /// The report (never fails: a part that cannot be read says why).
    pub async fn report(&self) -> Value {
        let devices = match self.store.devices().await {
            Ok(d) => d
                .iter()
                .map(|d| {
                    json!({
                        "id": d.id.as_ref().map(|i| i.as_str().to_string()),
                        "last_seen": d.last_seen.map(|t| t.to_rfc3339()),
                        "battery": d.battery,
                        "lqi": d.lqi,
                        "model": d.model,
                    })
                })
                .collect(),
            Err(e) => vec![json!({"error": e.to_string()})],
        };
        let errors = self
            .recent
            .as_ref()
            .map(|r| {
                r.snapshot()
                    .into_iter()
                    .map(|e| serde_json::to_value(e).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let parts = Parts {
            status: Value::Object(crate::uplink::mqtt::status_document(&(self.status)())),
            devices,
            errors,
            disk: disk(&self.data_dir),
            rss_bytes: rss_bytes(),
        };
        build(parts)
    }
}

/// The raw material of a report (pure; see [`build`]).
#[derive(Debug, Clone)]
pub struct Parts {
    pub status: Value,
    pub devices: Vec<Value>,
    pub errors: Vec<Value>,
    pub disk: Value,
    pub rss_bytes: Option<u64>,
}

/// Assembles the report within [`REPORT_MAX`].
pub fn build(p: Parts) -> Value {
    let (devices_total, errors_total) = (p.devices.len(), p.errors.len());
    let mut keep_devices = devices_total.min(DEVICES_MAX);
    let mut keep_errors = errors_total.min(ERRORS_MAX);
    loop {
        let doc = json!({
            "ok": true,
            "status": p.status,
            "devices": &p.devices[..keep_devices],
            "devices_total": devices_total,
            "recent_errors": &p.errors[errors_total - keep_errors..],
            "recent_errors_total": errors_total,
            "disk": p.disk,
            "memory": {"rss_bytes": p.rss_bytes},
        });
        let size = doc.to_string().len();
        if size <= REPORT_MAX {
            return doc;
        }
        if keep_devices == 0 && keep_errors == 0 {
            // Only the heartbeat is left and it is still too big: say so.
            return json!({"ok": true, "truncated": true, "devices_total": devices_total,
                "recent_errors_total": errors_total, "memory": {"rss_bytes": p.rss_bytes}});
        }
        keep_devices /= 2;
        keep_errors /= 2;
    }
}

/// Free and total bytes of the file system holding `dir`.
// The casts matter on 32-bit ARM, where the block counts are u32.
#[allow(clippy::unnecessary_cast)]
pub fn disk(dir: &std::path::Path) -> Value {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            let frag = s.fragment_size() as u64;
            json!({
                "free_bytes": (s.blocks_available() as u64).saturating_mul(frag),
                "total_bytes": (s.blocks() as u64).saturating_mul(frag),
            })
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// Resident memory of this process (`VmRSS` in `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vmrss(&text)
}

/// `VmRSS:     1234 kB` → bytes.
pub fn parse_vmrss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(devices: usize, errors: usize, pad: usize) -> Parts {
        Parts {
            status: json!({"version": "0.1.0", "uptime_s": 5}),
            devices: (0..devices)
                .map(|i| json!({"id": format!("dev-{i}"), "model": "x".repeat(pad)}))
                .collect(),
            errors: (0..errors)
                .map(|i| json!({"text": format!("error {i}")}))
                .collect(),
            disk: json!({"free_bytes": 1}),
            rss_bytes: Some(1),
        }
    }

    #[test]
    fn a_small_home_is_reported_whole() {
        let r = build(parts(12, 3, 10));
        assert_eq!(r["devices"].as_array().unwrap().len(), 12);
        assert_eq!(r["recent_errors"].as_array().unwrap().len(), 3);
        assert_eq!(r["devices_total"], 12);
    }

    #[test]
    fn a_huge_site_is_cut_below_the_cap_and_says_how_many_there_were() {
        let r = build(parts(5_000, 500, 200));
        assert!(r.to_string().len() <= REPORT_MAX);
        assert_eq!(r["devices_total"], 5_000);
        assert_eq!(r["recent_errors_total"], 500);
        let kept = r["recent_errors"].as_array().unwrap();
        assert!(kept.len() <= ERRORS_MAX);
        // The newest errors are the ones kept.
        assert_eq!(kept.last().unwrap()["text"], "error 499");
    }

    #[test]
    fn a_status_too_big_on_its_own_still_gives_a_bounded_answer() {
        let mut p = parts(1, 1, 1);
        p.status = json!({"junk": "x".repeat(REPORT_MAX * 2)});
        let r = build(p);
        assert!(r.to_string().len() <= REPORT_MAX);
        assert_eq!(r["truncated"], true);
    }

    #[test]
    fn vmrss_is_read_in_bytes() {
        let t = "Name:\tcarebridge\nVmRSS:\t   10240 kB\nThreads: 3\n";
        assert_eq!(parse_vmrss(t), Some(10_485_760));
        assert_eq!(parse_vmrss("nothing"), None);
        assert!(rss_bytes().is_some_and(|b| b > 0));
    }

    #[test]
    fn disk_space_of_a_real_directory_is_reported() {
        let d = disk(std::path::Path::new("/"));
        assert!(d["total_bytes"].as_u64().is_some(), "{d}");
        assert!(disk(std::path::Path::new("/no/such/dir"))["error"].is_string());
    }
}
