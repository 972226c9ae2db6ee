//! Tests for the trial state machine: exhaustive over small state spaces and
//! property-based over random event sequences.

use super::*;
use proptest::prelude::*;

const P: TrialPolicy = TrialPolicy {
    trial_period: Duration::from_secs(60),
    commit_timeout: Duration::from_secs(300),
    max_attempts: 3,
};

fn t(s: i64) -> Time {
    Time::from_secs(s)
}

fn on_trial() -> StateFile {
    let mut s = StateFile::default();
    s.begin_trial(
        "2.0.0",
        Some("1.0.0".into()),
        Some("/b/1.0.0.db".into()),
        t(0),
    );
    s
}

#[test]
fn idle_state_runs_and_ignores_health_and_checks() {
    let mut s = StateFile::default();
    assert_eq!(s.on_start(&P, Some("1.0.0"), t(0)), StartDecision::Run);
    assert_eq!(s.on_health(&P, Ok(()), t(1000)), HealthDecision::NotOnTrial);
    assert_eq!(s.on_check(&P, t(99_999)), CheckDecision::Fine);
    assert_eq!(s, StateFile::default());
}

#[test]
fn healthy_release_commits_after_a_continuous_trial_period() {
    let mut s = on_trial();
    assert_eq!(
        s.on_start(&P, Some("2.0.0"), t(0)),
        StartDecision::RunTrial {
            version: "2.0.0".into(),
            attempt: 1
        }
    );
    assert_eq!(
        s.on_health(&P, Ok(()), t(10)),
        HealthDecision::Wait { until: Some(t(70)) }
    );
    assert!(matches!(
        s.on_health(&P, Ok(()), t(69)),
        HealthDecision::Wait { .. }
    ));
    assert_eq!(
        s.on_health(&P, Ok(()), t(70)),
        HealthDecision::Commit {
            version: "2.0.0".into()
        }
    );
    assert!(s.trial.is_none());
    assert_eq!(s.reports[0].outcome, Outcome::Committed);
    assert_eq!(s.reports[0].attempts, 1);
}

#[test]
fn an_unhealthy_report_restarts_the_trial_clock() {
    let mut s = on_trial();
    s.on_start(&P, Some("2.0.0"), t(0));
    s.on_health(&P, Ok(()), t(0));
    s.on_health(&P, Err("store: disk full".into()), t(59));
    assert!(matches!(
        s.on_health(&P, Ok(()), t(60)),
        HealthDecision::Wait { .. }
    ));
    assert!(matches!(
        s.on_health(&P, Ok(()), t(119)),
        HealthDecision::Wait { .. }
    ));
    assert!(matches!(
        s.on_health(&P, Ok(()), t(120)),
        HealthDecision::Commit { .. }
    ));
}

#[test]
fn unhealthy_past_commit_timeout_gives_up_naming_the_problem() {
    let mut s = on_trial();
    s.on_start(&P, Some("2.0.0"), t(0));
    assert!(matches!(
        s.on_health(&P, Err("rules not loaded".into()), t(299)),
        HealthDecision::Wait { until: None }
    ));
    match s.on_health(&P, Err("rules not loaded".into()), t(300)) {
        HealthDecision::GiveUp { reason, .. } => assert!(reason.contains("rules not loaded")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn crashing_release_is_rolled_back_on_the_start_after_max_attempts() {
    let mut s = on_trial();
    for attempt in 1..=3 {
        assert_eq!(
            s.on_start(&P, Some("2.0.0"), t(attempt.into())),
            StartDecision::RunTrial {
                version: "2.0.0".into(),
                attempt
            }
        );
    }
    let d = s.on_start(&P, Some("2.0.0"), t(10));
    let StartDecision::RollBack {
        to,
        db_backup,
        reason,
        ..
    } = d.clone()
    else {
        panic!("{d:?}")
    };
    assert_eq!(to.as_deref(), Some("1.0.0"));
    assert_eq!(db_backup, Some(PathBuf::from("/b/1.0.0.db")));
    // A power cut before finish_rollback repeats the same decision.
    assert_eq!(s.on_start(&P, Some("1.0.0"), t(11)), d);
    s.finish_rollback(&reason, t(12));
    assert!(s.trial.is_none());
    assert_eq!(s.reports[0].outcome, Outcome::RolledBack);
    assert_eq!(s.on_start(&P, Some("1.0.0"), t(13)), StartDecision::Run);
}

#[test]
fn install_killed_before_the_switch_is_reported_as_interrupted() {
    let mut s = on_trial();
    assert_eq!(
        s.on_start(&P, Some("1.0.0"), t(0)),
        StartDecision::Interrupted {
            version: "2.0.0".into()
        }
    );
    assert!(s.trial.is_none());
    assert_eq!(s.reports[0].outcome, Outcome::Interrupted);
}

#[test]
fn guard_restarts_a_service_that_never_started_the_installed_release() {
    let mut s = on_trial();
    assert_eq!(s.on_check(&P, t(299)), CheckDecision::Fine);
    assert!(matches!(
        s.on_check(&P, t(300)),
        CheckDecision::Overdue { .. }
    ));
}

#[test]
fn guard_reports_an_attempt_that_never_commits() {
    let mut s = on_trial();
    assert_eq!(s.on_check(&P, t(0)), CheckDecision::Fine, "not started yet");
    s.on_start(&P, Some("2.0.0"), t(0));
    assert_eq!(s.on_check(&P, t(359)), CheckDecision::Fine);
    assert!(matches!(
        s.on_check(&P, t(360)),
        CheckDecision::Overdue { .. }
    ));
    assert!(s.trial.as_ref().unwrap().last_problem.is_some());
}

#[test]
fn health_before_the_first_trial_start_changes_nothing() {
    let mut s = on_trial();
    let before = s.clone();
    assert_eq!(
        s.on_health(&P, Ok(()), t(1000)),
        HealthDecision::Wait { until: None }
    );
    assert_eq!(s, before);
}

#[test]
fn reports_are_bounded_and_acknowledged_oldest_first() {
    let mut s = StateFile::default();
    for i in 0..12 {
        s.begin_trial(&format!("1.0.{i}"), None, None, t(i));
        s.on_start(&P, Some("x"), t(i));
    }
    assert_eq!(s.reports.len(), 8);
    assert_eq!(s.reports[0].version, "1.0.4");
    s.ack_reports(3);
    assert_eq!(s.reports[0].version, "1.0.7");
    s.ack_reports(100);
    assert!(s.reports.is_empty());
}

#[test]
fn every_start_state_is_decided_as_specified() {
    // Exhaustive over attempts × what `current` points at.
    for attempts in 0..=4u32 {
        for current in [None, Some("1.0.0"), Some("2.0.0"), Some("9.9.9")] {
            let mut s = on_trial();
            s.trial.as_mut().unwrap().attempts = attempts;
            let d = s.on_start(&P, current, t(5));
            match d {
                StartDecision::RollBack { .. } => assert!(attempts >= 3),
                StartDecision::Interrupted { .. } => {
                    assert!(attempts < 3 && current != Some("2.0.0"))
                }
                StartDecision::RunTrial { attempt, .. } => {
                    assert!(current == Some("2.0.0") && attempt == attempts + 1 && attempt <= 3)
                }
                StartDecision::Run => panic!("a trial never just runs"),
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Ev {
    Start,
    Health(bool),
    Check,
    Wait(u16),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        Just(Ev::Start),
        any::<bool>().prop_map(Ev::Health),
        Just(Ev::Check),
        (1u16..400).prop_map(Ev::Wait),
    ]
}

proptest! {
    #[test]
    fn no_sequence_runs_a_trial_more_than_max_attempts_or_commits_early(evs in proptest::collection::vec(ev(), 0..80)) {
        let mut s = on_trial();
        let mut now = 0i64;
        let mut current = "2.0.0";
        let mut trial_starts = 0;
        let mut healthy_from: Option<i64> = None;
        let mut finished = false;
        for e in evs {
            match e {
                Ev::Wait(d) => now += i64::from(d),
                Ev::Start => {
                    healthy_from = None;
                    match s.on_start(&P, Some(current), t(now)) {
                        StartDecision::RunTrial { attempt, .. } => {
                            trial_starts += 1;
                            prop_assert!(attempt <= P.max_attempts);
                            prop_assert_eq!(attempt, trial_starts);
                        }
                        StartDecision::RollBack { to, reason, .. } => {
                            prop_assert_eq!(trial_starts, P.max_attempts);
                            current = "1.0.0";
                            prop_assert_eq!(to.as_deref(), Some("1.0.0"));
                            s.finish_rollback(&reason, t(now));
                            finished = true;
                        }
                        StartDecision::Run => prop_assert!(finished),
                        StartDecision::Interrupted { .. } => prop_assert!(false, "current was switched"),
                    }
                }
                Ev::Health(ok) => {
                    let r = if ok { Ok(()) } else { Err("x".to_string()) };
                    let was_started = s.trial.as_ref().is_some_and(|t| t.attempts > 0);
                    if ok && was_started { healthy_from.get_or_insert(now); } else { healthy_from = None; }
                    if let HealthDecision::Commit { .. } = s.on_health(&P, r, t(now)) {
                        let from = healthy_from.unwrap_or(now);
                        prop_assert!(now - from >= 60, "committed after {}s", now - from);
                        finished = true;
                    }
                }
                Ev::Check => { let _ = s.on_check(&P, t(now)); }
            }
            if let Some(tr) = &s.trial {
                prop_assert!(tr.attempts <= P.max_attempts);
            }
        }
    }
}
