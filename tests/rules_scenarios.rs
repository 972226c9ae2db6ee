//! Care scenarios replayed through the rule engine.
//!
//! Each `tests/rules/NAME.rules.toml` has events `NAME.jsonl` and the alerts
//! expected from `carebridge rules replay` in `NAME.expected.jsonl`. After a
//! deliberate behaviour change, regenerate with
//! `CAREBRIDGE_BLESS=1 cargo test --test rules_scenarios` and review the diff.
//!
//! Besides the exact output, a story states what a carer expects, in its
//! own lines: `{"expect":"raised"|"cleared","rule":…,"at":…,"device":…?}`
//! (each must be met by exactly one alert within a minute of `at`) or
//! `{"expect":"quiet"}` (no alert at all). A story with any `expect` line
//! may give no alert it does not expect. In every story every clear must
//! close an open alert of its rule by instance id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use carebridge::rules::cli::{OutOfOrder, RulesCliError, RulesCmd, replay, run};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules")
}

fn scenarios() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".rules.toml").map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

fn run_scenario(name: &str) -> Vec<serde_json::Value> {
    let d = dir();
    let rules = carebridge::rules::load(&d.join(format!("{name}.rules.toml")))
        .unwrap_or_else(|e| panic!("{e}"));
    let events = std::fs::read_to_string(d.join(format!("{name}.jsonl"))).unwrap();
    let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
    replay(&rules, tz, &events, name)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect()
}

#[test]
fn every_care_scenario_gives_exactly_the_expected_alerts() {
    let names = scenarios();
    assert!(names.len() >= 8, "scenarios: {names:?}");
    let bless = std::env::var_os("CAREBRIDGE_BLESS").is_some();
    let mut failures = Vec::new();
    for name in &names {
        let got = run_scenario(name);
        let path = dir().join(format!("{name}.expected.jsonl"));
        if bless {
            let text: String = got.iter().map(|v| format!("{v}\n")).collect();
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let want: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if got != want {
            let show =
                |v: &[serde_json::Value]| v.iter().map(|x| format!("  {x}\n")).collect::<String>();
            failures.push(format!(
                "{name}:\n got:\n{} want:\n{}",
                show(&got),
                show(&want)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A story's own `expect` lines.
fn expectations(name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir().join(format!("{name}.jsonl")))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"expect\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {l}: {e}")))
        .collect()
}

fn ms(v: &serde_json::Value) -> i64 {
    carebridge::model::Time::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .as_millis()
}

/// Everything wrong with one story's alerts against its expectations.
fn check_story(name: &str, got: &[serde_json::Value]) -> Vec<String> {
    let mut bad = Vec::new();
    // Every clear closes an open alert of its rule, by instance.
    let mut open: Vec<(String, String)> = Vec::new();
    for a in got {
        let rule = a["rule"].as_str().unwrap().to_string();
        let Some(inst) = a["instance"].as_str() else {
            bad.push(format!("{name}: alert without an instance: {a}"));
            continue;
        };
        assert!(
            inst.starts_with(&format!("{rule}/")),
            "{name}: instance {inst} of rule {rule}"
        );
        match a["state"].as_str() {
            Some("raised") => {
                if !open.iter().any(|(_, i)| i == inst) {
                    open.push((rule, inst.to_string()));
                }
            }
            _ => match open.iter().position(|(r, i)| *r == rule && i == inst) {
                Some(p) => {
                    open.remove(p);
                }
                None => bad.push(format!("{name}: clear closes no open alert: {a}")),
            },
        }
    }
    let exp = expectations(name);
    if exp.is_empty() {
        return bad;
    }
    let mut used = vec![false; got.len()];
    for e in exp.iter().filter(|e| e["expect"] != "quiet") {
        let hit = got.iter().enumerate().position(|(i, a)| {
            !used[i]
                && a["rule"] == e["rule"]
                && a["state"] == e["expect"]
                && (e.get("device").is_none() || a["device"] == e["device"])
                && (ms(&a["at"]) - ms(&e["at"])).abs() <= 60_000
        });
        match hit {
            Some(i) => used[i] = true,
            None => bad.push(format!("{name}: expected {e}, not met")),
        }
    }
    for (a, u) in got.iter().zip(&used) {
        if !u {
            bad.push(format!("{name}: unexpected alert {a}"));
        }
    }
    bad
}

#[test]
fn every_story_meets_its_expectations_and_every_clear_closes_its_alert() {
    let mut bad = Vec::new();
    let mut with_expectations = 0;
    for name in scenarios() {
        if !expectations(&name).is_empty() {
            with_expectations += 1;
        }
        bad.extend(check_story(&name, &run_scenario(&name)));
    }
    assert!(
        with_expectations >= 10,
        "{with_expectations} stories state expectations"
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn replaying_a_scenario_twice_is_identical() {
    for name in scenarios() {
        assert_eq!(run_scenario(&name), run_scenario(&name), "{name}");
    }
}

#[test]
fn check_of_a_broken_file_exits_2_naming_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.toml");
    std::fs::write(
        &p,
        "[[rule]]\nid = \"x\"\ntype = \"window\"\nkind = \"contact\"\nwindow = \"23:00\"\n",
    )
    .unwrap();
    let e = run(RulesCmd::Check { path: p.clone() }).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(
        msg.contains("bad.toml:5:") && msg.contains("rule[0].window"),
        "{msg}"
    );
    let ok = run(RulesCmd::Check {
        path: dir().join("safety.rules.toml"),
    });
    assert!(ok.is_ok());
}

#[test]
fn replay_with_an_unknown_zone_or_missing_events_is_bad_input() {
    let rules = dir().join("safety.rules.toml");
    let e = run(RulesCmd::Replay {
        rules: rules.clone(),
        events: dir().join("safety.jsonl"),
        tz: "Mars/Olympus".into(),
        out_of_order: OutOfOrder::Sort,
    })
    .unwrap_err();
    assert!(matches!(e, RulesCliError::BadInput(_)), "{e}");
    let e = run(RulesCmd::Replay {
        rules,
        events: dir().join("missing.jsonl"),
        tz: "Europe/London".into(),
        out_of_order: OutOfOrder::Sort,
    })
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn lines_out_of_time_order_are_sorted_and_counted_or_refused() {
    use carebridge::rules::Order;
    use carebridge::rules::cli::replay_story;
    let d = dir();
    let rules = carebridge::rules::load(&d.join("concatenated_logs.rules.toml")).unwrap();
    let events = std::fs::read_to_string(d.join("concatenated_logs.jsonl")).unwrap();
    let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
    let done = replay_story(&rules, tz.clone(), &events, "logs.jsonl", Order::Sort).unwrap();
    // Both back-door lines come before the front door's 05:00 line.
    assert_eq!(done.order.out_of_order, 2, "{:?}", done.order);
    assert_eq!(done.order.first, Some((9, 7)));
    let raised: Vec<&str> = done
        .alerts
        .iter()
        .filter(|a| a.state == carebridge::model::AlertState::Raised)
        .map(|a| a.device.as_str())
        .collect();
    assert_eq!(
        raised,
        ["front", "back", "front"],
        "the 02:30 alert is not lost"
    );
    let e = replay_story(&rules, tz, &events, "logs.jsonl", Order::Refuse).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string()
            .starts_with("logs.jsonl:9: 2026-11-24T02:30:00Z is earlier than line 7"),
        "{e}"
    );
}

#[test]
fn a_local_time_without_an_offset_needs_a_zone_and_is_read_in_it() {
    let rules = carebridge::rules::RuleSet::parse(carebridge::rules::MINIMAL_RULES, "m").unwrap();
    let ev = "{\"device\":\"b1\",\"kind\":\"panic\",\"value\":1,\"at\":\"2026-07-10T23:10:00\"}\n";
    let london = jiff::tz::TimeZone::get("Europe/London").unwrap();
    let a = replay(&rules, london, ev, "e").unwrap();
    assert_eq!(a[0].at.to_rfc3339(), "2026-07-10T22:10:00Z");
    let e = carebridge::rules::parse_events(ev, "e").unwrap_err();
    assert!(e.message.contains("no UTC offset"), "{e}");
}
