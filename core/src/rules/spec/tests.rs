use super::*;

const GOOD: &str = r#"
[[rule]]
id = "cold-home"
type = "threshold"
kind = "temperature"
room = "living_room"
below = 16.0
for = "30m"

[[rule]]
id = "night-fall"
type = "sequence"
within = "30m"
window = "22:00-07:00"
[rule.start]
kind = "bed"
state = "idle"
[[rule.cancel]]
kind = "bed"
state = "active"
"#;

#[test]
fn parses_a_file_with_nested_sequence_steps() {
    let set = RuleSet::parse(GOOD, "r.toml").unwrap();
    assert_eq!(set.rules.len(), 2);
    assert_eq!(set.rules[0].kinds.0, vec![Kind::Temperature]);
    assert_eq!(set.rules[0].rooms.0, vec!["living_room".to_string()]);
    let seq = &set.rules[1];
    assert_eq!(seq.start.as_ref().unwrap().state, Some(Want::Idle));
    assert_eq!(seq.cancel.len(), 1);
}

#[test]
fn unknown_key_names_file_line_and_rule_key() {
    let text = "[[rule]]\nid = \"a\"\ntype = \"immediate\"\nkinds = [\"panic\"]\nbelwo = 3\n";
    let e = RuleSet::parse(text, "r.toml").unwrap_err().to_string();
    assert!(e.starts_with("r.toml:5:"), "{e}");
    assert!(e.contains("rule[0].belwo"), "{e}");
}

#[test]
fn unknown_kind_is_reported_on_its_line() {
    let text = "[[rule]]\nid = \"a\"\ntype = \"immediate\"\nkinds = [\"teleport\"]\n";
    let e = RuleSet::parse(text, "r.toml").unwrap_err().to_string();
    assert!(e.starts_with("r.toml:4:"), "{e}");
    assert!(e.contains("teleport"), "{e}");
}

#[test]
fn key_not_used_by_the_type_is_refused_with_its_line() {
    let text = "[[rule]]\nid = \"a\"\ntype = \"immediate\"\nkinds = [\"panic\"]\n\n[[rule]]\nid = \"b\"\ntype = \"silent\"\nbelow = 3.0\n";
    let e = RuleSet::parse(text, "r.toml").unwrap_err().to_string();
    assert!(e.contains("r.toml:9: rule[1].below"), "{e}");
    assert!(e.contains("not used by rules of type \"silent\""), "{e}");
}

#[test]
fn missing_required_keys_and_duplicates_are_all_listed() {
    let text = "[[rule]]\nid = \"a\"\ntype = \"threshold\"\nkinds = \"temperature\"\n\n[[rule]]\nid = \"a\"\ntype = \"window\"\nkind = \"contact\"\n";
    let e = RuleSet::parse(text, "r.toml").unwrap_err().to_string();
    assert!(e.contains("rule[0].below"), "{e}");
    assert!(e.contains("r.toml:7: rule[1].id: (a) duplicate"), "{e}");
    assert!(e.contains("rule[1].window"), "{e}");
}

#[test]
fn bad_window_names_the_key() {
    let text = "[[rule]]\nid = \"a\"\ntype = \"absence\"\nwindow = \"7-11\"\n";
    let e = RuleSet::parse(text, "r.toml").unwrap_err().to_string();
    assert!(e.starts_with("r.toml:4:"), "{e}");
    assert!(e.contains("rule[0].window"), "{e}");
}

#[test]
fn an_empty_file_is_an_empty_rule_set() {
    assert!(RuleSet::parse("", "r.toml").unwrap().rules.is_empty());
}
