//! A running agent in a test folder of its own (config, credentials file,
//! runtime and state directories), read through what an operator sees:
//! status.json, the journal (stderr), and the `check` report.

use super::*;
use serde_json::Value;

/// Generous: most waits end in well under a second, but the machine is
/// shared and builds run beside the tests.
pub const SLOW: Duration = Duration::from_secs(20);

/// The credentials file, private to its owner as the service keeps it.
pub fn write_private_creds(dir: &Path, creds: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("credentials.env");
    std::fs::write(&path, creds).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A running agent in its own folder; stopped when dropped.
pub struct TestAgent {
    pub dir: TempDir,
    child: super::Agent,
}

impl TestAgent {
    pub fn start(tag: &str, feeds: &str, creds: &str, log_level: &str) -> TestAgent {
        Self::start_with_env(tag, feeds, creds, log_level, &[])
    }

    pub fn start_with_env(
        tag: &str,
        feeds: &str,
        creds: &str,
        log_level: &str,
        env: &[(&str, &str)],
    ) -> TestAgent {
        let dir = TempDir::new(tag);
        write_private_creds(dir.path(), creds);
        let body = agent_toml(dir.path(), "alert_after = \"30s\"\n").replace(
            "log_level = \"info\"",
            &format!("log_level = \"{log_level}\""),
        ) + feeds;
        let cfg = write_config(dir.path(), &body);
        let child = spawn_agent(dir.path(), &cfg, env);
        TestAgent { dir, child }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        stderr_of(self.path())
    }

    pub fn state(&self, feed: &str) -> Option<String> {
        feed_state(self.path(), feed)
    }

    pub fn field(&self, feed: &str, field: &str) -> Value {
        feed_field(self.path(), feed, field).unwrap_or(Value::Null)
    }

    /// A session note of the feed (status.json `feeds[].info`).
    pub fn info(&self, feed: &str, key: &str) -> Option<String> {
        self.field(feed, "info")[key].as_str().map(String::from)
    }

    pub fn wait_state(&self, feed: &str, want: &str) {
        assert!(
            wait_for(SLOW, || self.state(feed).as_deref() == Some(want)),
            "feed {feed} never became {want} (now {:?}, last error {}); stderr:\n{}",
            self.state(feed),
            self.field(feed, "last_error"),
            self.log()
        );
    }

    pub fn wait_log(&self, needle: &str) {
        assert!(
            wait_log(self.path(), needle, SLOW),
            "never logged {needle:?}; stderr:\n{}",
            self.log()
        );
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/feeds.sock")
    }

    pub fn config(&self) -> String {
        self.dir.join("brokerguard.toml").display().to_string()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = stop_agent(&mut self.child);
    }
}

/// `brokerguard check --json --config cfg`: the run and its reports.
pub fn check_json(cfg: &str) -> (CliRun, Vec<Value>) {
    let out = run_cli(&["check", "--json", "--config", cfg], &[], None);
    let reports =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()));
    (out, reports)
}

/// The report of `feed`'s layer `layer`.
pub fn layer_of<'a>(reports: &'a [Value], feed: &str, layer: &str) -> &'a Value {
    let r = reports.iter().find(|r| r["feed"] == feed).unwrap();
    r["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == layer)
        .unwrap()
}

/// The first failed layer of `feed` and its detail (empty: none failed).
pub fn failed_layer(reports: &[Value], feed: &str) -> (String, String) {
    let r = reports.iter().find(|r| r["feed"] == feed).unwrap();
    r["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["outcome"] == "fail")
        .map(|l| {
            (
                l["layer"].as_str().unwrap().to_string(),
                l["detail"].as_str().unwrap().to_string(),
            )
        })
        .unwrap_or_default()
}
