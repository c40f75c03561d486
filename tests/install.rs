//! install.sh as a newcomer meets it: a wrong command line exits 64 (as
//! brokerguard does), a dynamically linked `--binary` is refused with the
//! reason, and a staged tree (`--root`) says which owners it only recorded.

mod common;
use common::*;
use std::process::Command;

fn install_sh(args: &[&str]) -> CliRun {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh"))
        .args(args)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    CliRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[test]
fn usage_errors_exit_64() {
    let dir = TempDir::new("inst-usage");
    let root = dir.path().to_str().unwrap();
    for args in [
        vec!["--bogus"],
        vec!["--root"],
        vec!["--binary"],
        vec!["--purge", "--root", root],
        vec!["--allow-dynamic", "--root", root],
    ] {
        let r = install_sh(&args);
        assert_eq!(r.code, Some(64), "{args:?}: {}", r.all());
        assert!(
            r.stderr.starts_with("install.sh: error: ") && r.stderr.contains("--help"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_dynamic_binary_is_refused_with_the_reason_and_a_staged_tree_says_what_it_only_recorded() {
    // The test build of brokerguard is dynamically linked (libc).
    let elf = Command::new("readelf").args(["-lW", BIN]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&elf.stdout).contains("Requesting program interpreter"),
        "{BIN} is expected to be a dynamic build"
    );
    let dir = TempDir::new("inst-dyn");
    let root = dir.join("stage");
    let root_s = root.to_str().unwrap();
    let r = install_sh(&["--root", root_s, "--binary", BIN]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.stderr.contains("is dynamically linked")
            && r.stderr.contains("libssl")
            && r.stderr.contains("./install.sh --build-only"),
        "{}",
        r.stderr
    );
    assert!(!root.exists(), "refused, but the staging tree was made");

    // Anyway, on request: installed, with a loud warning.
    let r = install_sh(&["--root", root_s, "--binary", BIN, "--allow-dynamic"]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(
        r.stderr.contains("install.sh: WARNING: ") && r.stderr.contains("is dynamically linked"),
        "{}",
        r.stderr
    );
    assert!(root.join("usr/local/bin/brokerguard").exists());
    // A line never claims an owner it did not apply.
    let host_has = |name: &str| {
        Command::new("getent")
            .args(["group", name])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let etc_line = r
        .stdout
        .lines()
        .find(|l| l.contains("/etc/brokerguard/ ("))
        .unwrap_or_else(|| panic!("no line for /etc/brokerguard/: {}", r.stdout));
    if host_has("brokerguard") {
        assert!(etc_line.ends_with("(0750 root:brokerguard)"), "{etc_line}");
    } else {
        assert!(
            etc_line
                .ends_with("(0750 root:brokerguard recorded in .brokerguard-owners, not applied)"),
            "{etc_line}"
        );
    }
    assert!(
        r.stdout.contains(&format!(
            "install.sh: owners: recorded in {root_s}/.brokerguard-owners"
        )),
        "{}",
        r.stdout
    );
    let owners = std::fs::read_to_string(root.join(".brokerguard-owners")).unwrap();
    assert!(
        owners.contains("0750 root:brokerguard /etc/brokerguard\n"),
        "{owners}"
    );
}
