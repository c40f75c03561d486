//! Failover harness shared by tests/ha.rs and bench/ha.rs: a real etcd
//! member on loopback (Debian's `etcd-server`) and an agent with an `[ha]`
//! table, its own runtime and state folders, a private feed and a public
//! `standby = true` one; both stopped on drop.

use super::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The private feed's token (a canary: it must reach no log).
pub const TOKEN: &str = "canary-ha-token-51c9e2";
/// The shortest lease etcd grants.
pub const LEASE: Duration = Duration::from_secs(2);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn etcd_binary() -> Option<PathBuf> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// An etcd member on loopback, killed on drop.
pub struct Etcd {
    child: Option<Child>,
    client: u16,
    peer: u16,
    dir: TempDir,
    bin: PathBuf,
}

impl Etcd {
    pub fn start(bin: &Path) -> Etcd {
        let mut e = Etcd {
            child: None,
            client: free_port(),
            peer: free_port(),
            dir: TempDir::new("etcd"),
            bin: bin.to_path_buf(),
        };
        e.run();
        e
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    pub fn run(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::File::create(self.dir.join("etcd.log")).unwrap();
        let child = Command::new(&self.bin)
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("t={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = format!("127.0.0.1:{}", self.client);
        assert!(
            wait_for(Duration::from_secs(20), || {
                std::net::TcpStream::connect(&url).is_ok()
            }),
            "etcd did not start: {}",
            std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One agent: its folder, its process (stopped on drop).
pub struct HaAgent {
    pub dir: TempDir,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub node: &'static str,
}

impl HaAgent {
    pub fn new(node: &'static str, etcd: &str, private_url: &str, public_url: &str) -> HaAgent {
        let dir = TempDir::new(&format!("ha-{node}"));
        std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
        let body = agent_toml(
            dir.path(),
            "alert_after = \"2s\"\npreflight = \"off\"\nstatus_every = \"100ms\"",
        ) + &format!(
            "\n[ha]\netcd = [\"{etcd}\"]\ncluster = \"t\"\nnode = \"{node}\"\nlease = \"{}s\"\n",
            LEASE.as_secs()
        ) + &ws_feed_toml("sig", private_url, "SIG_TOKEN", "")
            + &format!(
                "\n[[feed]]\nname = \"pub\"\nbroker = \"websocket\"\nurl = \"{public_url}\"\n\
                 subscribe = ['{{\"type\":\"subscribe\",\"channel\":\"signals\"}}']\nstandby = true\n"
            );
        let config = write_config(dir.path(), &body);
        let mut a = HaAgent {
            dir,
            config,
            child: None,
            node,
        };
        a.start();
        a
    }

    pub fn start(&mut self) {
        self.child = Some(spawn_agent(self.dir.path(), &self.config, &[]).into_child());
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn role(&self) -> Option<String> {
        status_json(self.dir.path())?["agent"]["ha"]["role"]
            .as_str()
            .map(str::to_string)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Its status.json would read as a live leader: gone with it.
        let _ = std::fs::remove_file(self.dir.join("run/status.json"));
    }

    pub fn log(&self) -> String {
        stderr_of(self.dir.path())
    }
}

impl Drop for HaAgent {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            // A stopped agent cannot handle SIGTERM.
            send_signal(c, libc::SIGCONT);
            stop_agent(c);
        }
    }
}
