//! What `doctor` reads from the host, behind [`Host`] so the audit is
//! tested without root and without the machine's own files: the
//! credentials files' owner, group and mode, whether this process is root,
//! host files (`/etc/group`, the systemd unit, DMI and cloud-init data,
//! container markers) and the running agent's status.json.
//! [`SystemHost`] reads the real thing, with host files under a root folder
//! (`/` in production; the tests' own folder otherwise).
//!
//! The pure readings of those facts live here too: which platform this is
//! ([`platform`]) and who is in a group ([`group_members`]).

use super::report::{AgentReport, PlatformReport};
use crate::status::show::{Observed, observe};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the unit is looked for (relative to the host's root).
pub const UNIT_PATHS: [&str; 3] = [
    "etc/systemd/system/brokerguard.service",
    "lib/systemd/system/brokerguard.service",
    "usr/lib/systemd/system/brokerguard.service",
];

/// A credentials file as the host shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileFacts {
    /// Where a symlink points.
    pub symlink_target: Option<PathBuf>,
    /// Owner, group and mode; `None` when the file (or its target) is
    /// missing or cannot be inspected.
    pub stat: Option<FileStat>,
}

/// A file's owner, group and permission bits, names looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub owner: String,
    pub group: String,
    pub gid: u32,
    /// The permission bits (`& 0o7777`).
    pub mode: u32,
}

/// The host facts the audit reads.
pub trait Host {
    /// The path of host file `rel` (relative to `/`), when it exists.
    fn find(&self, rel: &str) -> Option<PathBuf>;
    /// The text of host file `rel` (relative to `/`); `None` when it is
    /// missing or unreadable.
    fn read(&self, rel: &str) -> Option<String>;
    /// A credentials file (an absolute or configured path, as is).
    fn file(&self, path: &Path) -> FileFacts;
    /// Whether this process runs as root.
    fn is_root(&self) -> bool;
    /// What the agent running from `runtime_dir` reports, if one runs.
    fn running_agent(&self, runtime_dir: &Path) -> Option<AgentReport>;
}

/// This machine, with host files under `root`.
pub struct SystemHost {
    root: PathBuf,
}

impl SystemHost {
    /// The host as it is (`/`).
    pub fn new() -> SystemHost {
        SystemHost::at(Path::new("/"))
    }

    /// Host files read under `root` (a fake host's folder in tests);
    /// credentials files and the agent are the real ones.
    pub fn at(root: &Path) -> SystemHost {
        SystemHost {
            root: root.to_path_buf(),
        }
    }
}

impl Default for SystemHost {
    fn default() -> Self {
        SystemHost::new()
    }
}

impl Host for SystemHost {
    fn find(&self, rel: &str) -> Option<PathBuf> {
        let p = self.root.join(rel);
        p.exists().then_some(p)
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }

    fn file(&self, path: &Path) -> FileFacts {
        let symlink_target = std::fs::read_link(path).ok();
        let stat = std::fs::metadata(path).ok().map(|meta| FileStat {
            owner: crate::os::user::user_name_or_id(meta.uid()),
            group: crate::os::user::group_name_or_id(meta.gid()),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        });
        FileFacts {
            symlink_target,
            stat,
        }
    }

    fn is_root(&self) -> bool {
        crate::os::user::is_root()
    }

    fn running_agent(&self, runtime_dir: &Path) -> Option<AgentReport> {
        match observe(runtime_dir) {
            Observed::Running(doc) => Some(AgentReport {
                pid: doc.agent.pid,
                clock: doc.agent.clock.clone(),
                feeds: doc
                    .feeds
                    .iter()
                    .filter(|f| !f.info.is_empty())
                    .map(|f| (f.name.clone(), f.info.clone()))
                    .collect(),
            }),
            _ => None,
        }
    }
}

/// The listed members of `group` in the host's `/etc/group` (none if it is
/// missing or unreadable).
pub fn group_members(host: &dyn Host, group: &str) -> Vec<String> {
    let Some(text) = host.read("etc/group") else {
        return Vec::new();
    };
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == group)
        .map(|f| {
            f[3].split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// What the host is: the unit, systemd, a droplet, a container. `env`
/// is the process environment (the credential sources').
pub fn platform(host: &dyn Host, env: &dyn Fn(&str) -> Option<String>) -> PlatformReport {
    let systemd_unit = UNIT_PATHS.iter().find_map(|p| host.find(p));
    let under_systemd = ["INVOCATION_ID", "NOTIFY_SOCKET"]
        .iter()
        .any(|v| env(v).is_some_and(|s| !s.is_empty()));
    let digitalocean = digitalocean(host);
    let droplet_id = digitalocean
        .as_ref()
        .and_then(|_| host.read("var/lib/cloud/data/instance-id"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    PlatformReport {
        systemd_unit,
        under_systemd,
        digitalocean,
        droplet_id,
        container: container(host),
    }
}

/// How a DigitalOcean droplet is recognised offline (DMI, cloud-init).
fn digitalocean(host: &dyn Host) -> Option<String> {
    let read = |rel: &str| host.read(rel);
    let how = if read("sys/class/dmi/id/sys_vendor").is_some_and(|v| v.trim() == "DigitalOcean") {
        "DMI sys_vendor is DigitalOcean"
    } else if read("var/lib/cloud/instance/datasource").is_some_and(|v| v.contains("DigitalOcean"))
    {
        "cloud-init datasource is DigitalOcean"
    } else if read("var/lib/cloud/data/status.json")
        .is_some_and(|v| v.contains("DataSourceDigitalOcean"))
    {
        "cloud-init status names DataSourceDigitalOcean"
    } else {
        return None;
    };
    Some(how.to_string())
}

/// The container this runs in, if any.
fn container(host: &dyn Host) -> Option<String> {
    if host.find(".dockerenv").is_some() {
        Some("docker".to_string())
    } else if host.find("run/.containerenv").is_some() {
        Some("podman".to_string())
    } else {
        host.read("run/systemd/container")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}
