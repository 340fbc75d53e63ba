//! The command line as a new user meets it: commands other than `serve` and `migrate` refuse a
//! database that does not exist (and create none), `org list` and `key list` print a header,
//! and a bad flag is named.

use std::process::Command;

fn dunning(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dunning"))
        .args(args)
        .current_dir(dir)
        .env_remove("DUNNING_DATABASE_URL")
        .env_remove("DUNNING_CONFIG")
        .output()
        .expect("the binary runs")
}

#[test]
fn commands_refuse_a_missing_database_and_name_bad_flags() {
    let dir = std::env::temp_dir().join(format!("dunning-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let refused = dunning(&dir, &["key", "list", "--org", "default"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no database at dunning.db"), "{stderr}");
    assert!(
        !dir.join("dunning.db").exists(),
        "no empty database is left behind"
    );

    let migrated = dunning(&dir, &["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    let created = dunning(&dir, &["org", "create", "acme"]);
    assert!(created.status.success(), "{created:?}");
    let orgs = String::from_utf8_lossy(&dunning(&dir, &["org", "list"]).stdout).to_string();
    let mut lines = orgs.lines();
    assert_eq!(lines.next(), Some("NAME\tID\tCREATED"));
    assert!(lines.next().unwrap().starts_with("acme\t"), "{orgs}");
    let keys = String::from_utf8_lossy(&dunning(&dir, &["key", "list", "--org", "acme"]).stdout)
        .to_string();
    assert!(
        keys.starts_with("ID\tPREFIX\tSCOPES\tCREATED\tREVOKED\tEXPIRES\n"),
        "{keys}"
    );
    assert_eq!(keys.lines().count(), 2, "{keys}");
    let zero = dunning(
        &dir,
        &["key", "create", "--org", "acme", "--expires-in-days", "0"],
    );
    assert!(!zero.status.success());
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--expires-in-days"));
    std::fs::remove_dir_all(&dir).unwrap();
}
