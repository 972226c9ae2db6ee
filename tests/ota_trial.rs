//! End-to-end trial and rollback with real processes: the test plays
//! systemd (restart on exit, watchdog kill, the guard timer) around
//! `ota::recover`, and the "releases" are shell scripts that serve, crash,
//! hang or stay unhealthy. Time for the trial logic is virtual (30 s per
//! supervision tick); only the watchdog uses a short real timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ota_support;

use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use carebridge::model::Time;
use carebridge::ota::install;
use carebridge::ota::recover::{self, Recovery};
use carebridge::ota::trial::{CheckDecision, HealthDecision, HealthReport, Outcome};
use carebridge::ota::{OtaConfig, OtaPaths};
use ota_support::*;

/// How one start of the service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Exited,
    WatchdogKilled,
    GaveUp,
    GuardRestarted,
    Committed,
}

struct Supervisor<'a> {
    paths: &'a OtaPaths,
    cfg: OtaConfig,
    now: Time,
    out: std::path::PathBuf,
    health: std::path::PathBuf,
    recoveries: Vec<Recovery>,
    ends: Vec<Ended>,
}

impl<'a> Supervisor<'a> {
    fn new(paths: &'a OtaPaths, root: &Path) -> Self {
        let p = policy();
        let cfg = OtaConfig {
            trial_period: carebridge::config::Dur(p.trial_period),
            commit_timeout: carebridge::config::Dur(p.commit_timeout),
            max_attempts: p.max_attempts,
            ..OtaConfig::default()
        };
        Supervisor {
            paths,
            cfg,
            now: Time::from_secs(1_000),
            out: root.join("out.log"),
            health: root.join("health"),
            recoveries: Vec::new(),
            ends: Vec::new(),
        }
    }

    fn spawn(&self) -> Child {
        let _ = fs::remove_file(&self.health);
        Command::new(self.paths.current.join("bin/carebridge"))
            .env("CB_OUT", &self.out)
            .env("CB_HEALTH", &self.health)
            .spawn()
            .unwrap()
    }

    /// One service start: ExecStartPre recovery, then run until the process
    /// exits, the watchdog fires, the trial commits or gives up.
    fn start_once(&mut self) -> Ended {
        let r = recover::recover(self.paths, &policy(), None, self.now).unwrap();
        let on_trial = matches!(r, Recovery::Trial { .. });
        self.recoveries.push(r);
        let mut child = self.spawn();
        let mut last_ping = Instant::now();
        let ended = loop {
            std::thread::sleep(Duration::from_millis(40));
            if child.try_wait().unwrap().is_some() {
                break Ended::Exited;
            }
            // The health file doubles as the watchdog ping.
            let status = fs::read_to_string(&self.health).unwrap_or_default();
            let _ = fs::remove_file(&self.health);
            if status.is_empty() {
                if last_ping.elapsed() > Duration::from_millis(800) {
                    break Ended::WatchdogKilled;
                }
                continue;
            }
            last_ping = Instant::now();
            self.now = self.now.saturating_add(Duration::from_secs(30));
            let report = HealthReport {
                store_ok: status.trim() == "healthy",
                rules_loaded: true,
                uplink_up: None,
                coordinator_up: None,
            };
            match recover::report_health(self.paths, &self.cfg, &report, self.now).unwrap() {
                HealthDecision::Commit { .. } => break Ended::Committed,
                HealthDecision::GiveUp { .. } => break Ended::GaveUp,
                HealthDecision::NotOnTrial if !on_trial => break Ended::Committed,
                _ => {}
            }
            if let CheckDecision::Overdue { .. } =
                recover::check(self.paths, &policy(), self.now).unwrap()
            {
                break Ended::GuardRestarted;
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        // Time passes between starts (RestartSec, or a hang until the watchdog).
        self.now = self.now.saturating_add(Duration::from_secs(30));
        self.ends.push(ended);
        ended
    }

    /// Starts the service until a start is not on trial and ran healthily.
    fn run_until_settled(&mut self, max_starts: usize) {
        for _ in 0..max_starts {
            let ended = self.start_once();
            let settled = matches!(self.recoveries.last(), Some(Recovery::Normal { .. }))
                && ended == Ended::Committed;
            if settled {
                return;
            }
        }
        panic!("did not settle: {:?} / {:?}", self.recoveries, self.ends);
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

fn migrate_as_v2(paths: &OtaPaths) {
    let db = rusqlite::Connection::open(&paths.db).unwrap();
    db.execute("insert into t values('v2-migrated')", [])
        .unwrap();
}

fn update_to(script: &str) -> (tempfile::TempDir, Keyring, OtaPaths) {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    install_bytes(&paths, &kr.store(), &bundle(kr.signer(), "2.0.0", script));
    migrate_as_v2(&paths);
    (d, kr, paths)
}

fn assert_rolled_back(paths: &OtaPaths, sup: &Supervisor<'_>) {
    assert_eq!(install::current_version(paths).as_deref(), Some("1.0.0"));
    assert_eq!(
        db_rows(paths),
        ["v1-data"],
        "database restored from the backup"
    );
    assert!(
        sup.recoveries
            .iter()
            .any(|r| matches!(r, Recovery::RolledBack { from, to: Some(to), .. } if from == "2.0.0" && to == "1.0.0")),
        "{:?}",
        sup.recoveries
    );
    let trial_starts = sup
        .recoveries
        .iter()
        .filter(|r| matches!(r, Recovery::Trial { .. }))
        .count();
    assert_eq!(trial_starts, 3, "exactly max_attempts starts on trial");
    let status = recover::status(paths).unwrap();
    assert!(status.trial.is_none());
    let report = status.reports.last().unwrap();
    assert_eq!(
        (report.version.as_str(), report.outcome),
        ("2.0.0", Outcome::RolledBack)
    );
    assert!(
        sup.output().trim_end().ends_with("serving 1.0.0"),
        "{}",
        sup.output()
    );
}

#[test]
fn healthy_update_commits_and_keeps_its_migrated_database() {
    let (d, _kr, paths) = update_to(&healthy_script("2.0.0"));
    let mut sup = Supervisor::new(&paths, d.path());
    assert_eq!(sup.start_once(), Ended::Committed);
    assert!(matches!(
        sup.recoveries[0],
        Recovery::Trial { attempt: 1, .. }
    ));
    assert_eq!(install::current_version(&paths).as_deref(), Some("2.0.0"));
    assert_eq!(db_rows(&paths), ["v1-data", "v2-migrated"]);
    let st = recover::status(&paths).unwrap();
    assert_eq!(st.reports.last().unwrap().outcome, Outcome::Committed);
    sup.run_until_settled(2);
    assert!(sup.output().contains("serving 2.0.0"));
    assert!(paths.release("1.0.0").is_dir(), "previous release kept");
}

#[test]
fn update_whose_binary_exits_at_once_is_rolled_back() {
    let (d, _kr, paths) = update_to(CRASH_SCRIPT);
    let mut sup = Supervisor::new(&paths, d.path());
    sup.run_until_settled(6);
    assert_eq!(
        &sup.ends[..3],
        [Ended::Exited, Ended::Exited, Ended::Exited]
    );
    assert_rolled_back(&paths, &sup);
}

#[test]
fn update_that_hangs_is_killed_by_the_watchdog_and_rolled_back() {
    let (d, _kr, paths) = update_to(HANG_SCRIPT);
    let mut sup = Supervisor::new(&paths, d.path());
    sup.run_until_settled(6);
    assert_eq!(&sup.ends[..3], [Ended::WatchdogKilled; 3]);
    assert_rolled_back(&paths, &sup);
}

#[test]
fn update_that_never_becomes_healthy_is_rolled_back_naming_the_problem() {
    let (d, _kr, paths) = update_to(UNHEALTHY_SCRIPT);
    let mut sup = Supervisor::new(&paths, d.path());
    sup.run_until_settled(6);
    assert_eq!(&sup.ends[..3], [Ended::GaveUp; 3]);
    assert_rolled_back(&paths, &sup);
    let st = recover::status(&paths).unwrap();
    let reason = st.reports.last().unwrap().reason.clone().unwrap();
    assert!(reason.contains("store not ok"), "{reason}");
}

#[test]
fn guard_flags_an_attempt_that_does_not_commit_within_the_timeout() {
    // The guard runs from the stable binary and decides on the clock alone,
    // whatever the release on trial does or reports.
    let (d, _kr, paths) = update_to(&healthy_script("2.0.0"));
    recover::recover(&paths, &policy(), None, Time::from_secs(0)).unwrap();
    assert_eq!(
        recover::check(&paths, &policy(), Time::from_secs(100)).unwrap(),
        CheckDecision::Fine
    );
    assert!(matches!(
        recover::check(&paths, &policy(), Time::from_secs(360)).unwrap(),
        CheckDecision::Overdue { .. }
    ));
    drop(d);
}

#[test]
fn recovery_repairs_a_missing_current_link_and_seeds_a_factory_release() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    fs::remove_file(&paths.current).unwrap();
    let r = recover::recover(&paths, &policy(), None, Time::from_secs(5)).unwrap();
    assert_eq!(
        r,
        Recovery::Normal {
            current: "1.0.0".into()
        }
    );
    // A brand-new device: no release at all, the factory binary becomes one.
    let fresh = OtaPaths::under(&d.path().join("fresh"));
    let exe = d.path().join("factory-bin");
    fs::write(&exe, healthy_script("factory")).unwrap();
    let r = recover::recover(&fresh, &policy(), Some(&exe), Time::from_secs(5)).unwrap();
    let Recovery::Normal { current } = r else {
        panic!("{r:?}")
    };
    assert_eq!(current, env!("CARGO_PKG_VERSION"));
    assert!(fresh.current.join("bin/carebridge").is_file());
}
