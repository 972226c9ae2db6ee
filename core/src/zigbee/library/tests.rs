use super::*;
use crate::model::Kind;

#[test]
fn builtin_table_parses_and_every_definition_is_complete() {
    let defs = table::parse(BUILTIN, "devices.toml").unwrap();
    assert!(defs.len() >= 25, "{} definitions", defs.len());
    assert_eq!(Library::builtin().definitions().len(), defs.len());
    for d in &defs {
        assert!(d.checkin.is_some(), "{} has a check-in interval", d.id);
        // Every mapped kind is one the definition says it senses.
        for m in &d.maps {
            assert!(d.senses.contains(&m.kind), "{}: {} in senses", d.id, m.kind);
        }
    }
}

#[test]
fn definitions_are_found_by_model_and_manufacturer() {
    let lib = Library::builtin();
    let d = lib
        .find(Some("LUMI"), Some("lumi.sensor_magnet.aq2"))
        .unwrap();
    assert_eq!(
        (d.vendor.as_str(), d.model.as_str()),
        ("Aqara", "MCCGQ11LM")
    );
    // Trailing NULs (some firmwares pad the string) do not matter.
    assert!(lib.find(None, Some("lumi.sensor_magnet.aq2\0\0")).is_some());
    // Tuya: one model id, the manufacturer name decides.
    let r = lib.find(Some("_TZE200_ztc6ggyl"), Some("TS0601")).unwrap();
    assert_eq!(r.id, "tuya_radar_ztc6ggyl");
    assert!(lib.find(Some("_TZE200_unknown"), Some("TS0601")).is_none());
    assert!(lib.find(Some("frient A/S"), None).is_none());
    assert!(lib.find(Some("carebridge-sim"), Some("SIM-DOOR")).is_none());
    assert_eq!(
        lib.checkin(Some("LUMI"), Some("lumi.sensor_magnet.aq2")),
        Some(std::time::Duration::from_secs(3600))
    );
    assert_eq!(lib.checkin(None, Some("SIM-DOOR")), None);
}

#[test]
fn a_local_file_extends_and_overrides_the_builtin_table() {
    let local = r#"
[[device]]
id = "acme_mat"
vendor = "Acme"
model = "BM-1"
description = "Bed mat"
match = [{ manufacturer = "Acme", model = "BM-1" }]
senses = ["bed"]
commissioning = "Sit on the bed"
checkin = "30m"
[[device.map]]
cluster = 0x0006
attr = 0
kind = "bed"

[[device]]
id = "my_door"
vendor = "Aqara"
model = "MCCGQ11LM"
description = "Our door contact"
match = [{ model = "lumi.sensor_magnet.aq2" }]
senses = ["contact"]
commissioning = "Open the door"
"#;
    let lib = Library::with_local(local, "/etc/carebridge/devices.toml").unwrap();
    assert_eq!(
        lib.find(Some("Acme"), Some("BM-1")).unwrap().senses,
        vec![Kind::Bed]
    );
    assert_eq!(
        lib.find(None, Some("lumi.sensor_magnet.aq2")).unwrap().id,
        "my_door"
    );
    assert!(lib.find(None, Some("lumi.sensor_wleak.aq1")).is_some());
}

#[test]
fn a_bad_local_file_names_the_file_the_entry_and_the_key() {
    let bad = r#"
[[device]]
id = "acme_mat"
vendor = "Acme"
model = "BM-1"
description = "Bed mat"
match = [{ model = "BM-1" }]
senses = ["bed"]
commissioning = "Sit on the bed"
quirks = ["make_tea"]
[[device.map]]
dp = 3
cluster = 6
kind = "bed"
[[device.map]]
dp = 4
kind = "temperature"
invert = true
"#;
    let e = Library::with_local(bad, "/etc/cb/devices.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/etc/cb/devices.toml"), "{e}");
    assert!(e.contains("device[0] (acme_mat).quirks[0]"), "{e}");
    assert!(e.contains("make_tea"), "{e}");
    assert!(e.contains("device[0] (acme_mat).map[0].cluster"), "{e}");
    assert!(e.contains("device[0] (acme_mat).map[1].kind"), "{e}");
    let e = Library::with_local("[[device]]\nid = \"x\"\nkind = 1\n", "f.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("f.toml:"), "{e}");
    let e = Library::with_local(
        "[[device]]\nid='a'\nvendor='v'\nmodel='m'\ndescription='d'\nmatch=[{model='m'}]\nsenses=['smell']\ncommissioning='c'\n",
        "f.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("smell"), "{e}");
}
