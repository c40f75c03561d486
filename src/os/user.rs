//! Who this process is, and user and group look-ups, read from
//! `/etc/passwd` and `/etc/group` themselves, not through NSS.
//!
//! The shipped binary is static. A static glibc binary that calls
//! `getpwnam_r` and friends loads the NSS modules `nsswitch.conf` names
//! (Debian's and Ubuntu's `passwd: files systemd`) with `dlopen`, and
//! `libnss_systemd`, built against the shared libc, crashes it: every look-up
//! of a name or id that `files` does not answer (a missing group, a file
//! owned by a uid with no entry) was a segfault. brokerguard's accounts are
//! local system accounts made by `install.sh` (`useradd --system`), which
//! live in these files, so reading them is both enough and safe.

use std::io::Read;
use std::path::Path;

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective group id.
pub fn egid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    euid() == 0
}

/// The account files, as a static binary must read them.
const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// More than any sane account file holds; a larger one is read this far
/// (an entry beyond it is not found, as a look-up that fails).
const MAX_ACCOUNT_FILE: u64 = 4 << 20;

/// A user's name and primary group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// One `/etc/passwd` line: `name:password:uid:gid:gecos:home:shell`.
fn passwd_entry(line: &str) -> Option<User> {
    let mut f = line.split(':');
    let name = f
        .next()
        .filter(|n| !n.is_empty() && !n.starts_with(['#', '+', '-']))?;
    let _password = f.next()?;
    let uid = f.next()?.parse().ok()?;
    let gid = f.next()?.parse().ok()?;
    Some(User {
        name: name.to_string(),
        uid,
        gid,
    })
}

/// One `/etc/group` line: `name:password:gid:members` → name and gid.
fn group_entry(line: &str) -> Option<(&str, u32)> {
    let mut f = line.split(':');
    let name = f
        .next()
        .filter(|n| !n.is_empty() && !n.starts_with(['#', '+', '-']))?;
    let _password = f.next()?;
    let gid = f.next()?.parse().ok()?;
    Some((name, gid))
}

/// The first line of the account file `path` that `pick` answers, like
/// NSS's `files` module (the first entry wins). A file that cannot be read
/// answers nothing.
fn first_in<T>(path: &Path, mut pick: impl FnMut(&str) -> Option<T>) -> Option<T> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_ACCOUNT_FILE)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().find_map(&mut pick)
}

/// The user with this id, if the host knows one.
pub fn user_by_id(uid: u32) -> Option<User> {
    first_in(Path::new(PASSWD), |l| {
        passwd_entry(l).filter(|u| u.uid == uid)
    })
}

/// The user with this name, if the host knows one.
pub fn user_by_name(name: &str) -> Option<User> {
    first_in(Path::new(PASSWD), |l| {
        passwd_entry(l).filter(|u| u.name == name)
    })
}

/// The name of the group with this id, if the host knows one.
pub fn group_name(gid: u32) -> Option<String> {
    first_in(Path::new(GROUP), |l| {
        group_entry(l)
            .filter(|(_, g)| *g == gid)
            .map(|(n, _)| n.to_string())
    })
}

/// The id of the group with this name, if the host knows one.
pub fn group_id(name: &str) -> Option<u32> {
    first_in(Path::new(GROUP), |l| {
        group_entry(l).filter(|(n, _)| *n == name).map(|(_, g)| g)
    })
}

/// The user's name, or the number when the host knows none.
pub fn user_name_or_id(uid: u32) -> String {
    user_by_id(uid).map_or_else(|| uid.to_string(), |u| u.name)
}

/// The group's name, or the number when the host knows none.
pub fn group_name_or_id(gid: u32) -> String {
    group_name(gid).unwrap_or_else(|| gid.to_string())
}

/// For tests that act as another user: sets this thread's file-system
/// user and group (`setfsuid`/`setfsgid` are per thread), so root's file
/// rights are dropped for that thread only. Returns whether it applied.
#[cfg(test)]
pub fn act_on_files_as(uid: u32, gid: u32) -> bool {
    // SAFETY: plain system calls changing this thread's credentials only.
    unsafe {
        libc::setfsgid(gid);
        libc::setfsuid(uid);
        // setfsuid returns the previous id; asking with an invalid id
        // changes nothing and reports the current one.
        libc::setfsuid(u32::MAX) as u32 == uid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_lines_are_read_as_the_files_module_reads_them() {
        let user = |name: &str, uid, gid| {
            Some(User {
                name: name.into(),
                uid,
                gid,
            })
        };
        let cases: &[(&str, Option<User>)] = &[
            ("root:x:0:0:root:/root:/bin/bash", user("root", 0, 0)),
            (
                "brokerguard:x:998:997::/nonexistent:/usr/sbin/nologin",
                user("brokerguard", 998, 997),
            ),
            ("short:x:5", None),
            ("nouid:x::0::/:/bin/sh", None),
            ("neg:x:-1:0::/:/bin/sh", None),
            ("", None),
            ("# a comment:x:1:1::/:/bin/sh", None),
            ("+nisplus:::::", None),
        ];
        for (line, want) in cases {
            assert_eq!(passwd_entry(line), *want, "{line:?}");
        }
        let groups: &[(&str, Option<(&str, u32)>)] = &[
            ("root:x:0:", Some(("root", 0))),
            (
                "brokerguard-clients:x:996:bot,ops",
                Some(("brokerguard-clients", 996)),
            ),
            ("nogid:x:", None),
            ("bad:x:abc:", None),
            ("-netgroup:x:1:", None),
        ];
        for (line, want) in groups {
            assert_eq!(group_entry(line), *want, "{line:?}");
        }
    }

    #[test]
    fn the_first_entry_wins_and_an_unreadable_file_answers_nothing() {
        let dir = std::env::temp_dir().join(format!("bg-passwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("passwd");
        std::fs::write(
            &f,
            "a:x:1:1::/:/bin/sh\nb:x:2:2::/:/bin/sh\na:x:3:3::/:/bin/sh\n",
        )
        .unwrap();
        let by_name = |n: &str| first_in(&f, |l| passwd_entry(l).filter(|u| u.name == n));
        assert_eq!(by_name("a").map(|u| u.uid), Some(1));
        assert_eq!(by_name("c"), None);
        assert_eq!(first_in(&dir.join("missing"), passwd_entry), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_and_its_group_are_known_by_name_and_id() {
        let root = user_by_id(0).expect("uid 0 has an entry");
        assert_eq!(root.name, "root");
        assert_eq!(user_by_name("root"), Some(root));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(user_by_name("no-such-user-bg"), None);
        assert_eq!(user_name_or_id(4_000_000_000), "4000000000");
        assert_eq!(is_root(), euid() == 0);
    }
}
