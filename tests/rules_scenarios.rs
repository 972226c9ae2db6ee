//! Care scenarios replayed through the rule engine.
//!
//! Each `tests/rules/NAME.rules.toml` has events `NAME.jsonl` and the alerts
//! expected from `carebridge rules replay` in `NAME.expected.jsonl`. After a
//! deliberate behaviour change, regenerate with
//! `CAREBRIDGE_BLESS=1 cargo test --test rules_scenarios` and review the diff.

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
