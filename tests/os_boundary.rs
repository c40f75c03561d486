//! The OS boundary end to end, against the real binary: a status file that
//! cannot be written is said once (an alert, then a notice when it can be
//! again), not once per rewrite.

mod common;

use common::*;
use std::time::Duration;

const SLOW: Duration = Duration::from_secs(15);

#[test]
fn an_unwritable_status_file_is_one_alert_and_a_notice_when_writable_again() {
    let dir = TempDir::new("status-unwritable");
    let cfg = write_config(
        dir.path(),
        &agent_toml(
            dir.path(),
            "status_every = \"100ms\"\nalert_repeat = \"1h\"",
        ),
    );
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    let status = dir.path().join("run/status.json");
    assert!(
        wait_for(SLOW, || status.is_file()),
        "{}",
        stderr_of(dir.path())
    );
    // A folder with something in it where the file goes: every rename
    // over it fails, as on a full tmpfs.
    std::fs::remove_file(&status).unwrap();
    std::fs::create_dir(&status).unwrap();
    std::fs::write(status.join("blocker"), "").unwrap();
    assert!(
        wait_log(dir.path(), "alert=status_unwritable", SLOW),
        "{}",
        stderr_of(dir.path())
    );
    let alerts = || {
        stderr_of(dir.path())
            .matches("alert=status_unwritable")
            .count()
    };
    // Ten rewrite periods and more: still said once.
    assert!(
        holds_for(Duration::from_millis(1500), || alerts() == 1),
        "{}",
        stderr_of(dir.path())
    );
    let log = stderr_of(dir.path());
    let line = log
        .lines()
        .find(|l| l.contains("alert=status_unwritable"))
        .unwrap();
    assert!(
        line.contains(&format!("path={}", status.display())) && line.contains("error="),
        "{line}"
    );
    assert_eq!(
        line.matches("status.json").count(),
        1,
        "the path said once: {line}"
    );
    assert!(
        !log.contains("cannot write"),
        "a warning per rewrite: {log}"
    );
    // Writable again: a notice, and the file is back.
    std::fs::remove_dir_all(&status).unwrap();
    assert!(
        wait_log(dir.path(), "is writable again", SLOW),
        "{}",
        stderr_of(dir.path())
    );
    assert!(wait_for(SLOW, || status.is_file()));
    assert_eq!(alerts(), 1);
    assert_eq!(stop_agent(&mut agent), Some(0));
}
