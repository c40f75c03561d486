//! Who this process is, and user and group look-ups (`getpwnam_r` and
//! friends, through NSS like every other tool on the host).

use std::ffi::{CStr, CString};

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

/// Buffer for the `_r` look-ups: enough for any sane passwd or group entry
/// (a group with thousands of members needs more; such a look-up just fails).
const LOOKUP_BUF: usize = 64 * 1024;

/// A user's name and primary group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

fn user_from(pwd: &libc::passwd) -> User {
    User {
        // SAFETY: pw_name points into the look-up's buffer, which outlives `pwd`'s use here.
        name: unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    }
}

/// The user with this id, if the host knows one.
pub fn user_by_id(uid: u32) -> Option<User> {
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUF];
    // SAFETY: an all-zero passwd is a valid value to be overwritten.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid pointers to a passwd, a buffer of the length given and a
    // result pointer; the entry is read only when one was returned.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut res) };
    (rc == 0 && !res.is_null()).then(|| user_from(&pwd))
}

/// The user with this name, if the host knows one.
pub fn user_by_name(name: &str) -> Option<User> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUF];
    // SAFETY: as in `user_by_id`.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as in `user_by_id`, with a NUL-terminated name.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut res,
        )
    };
    (rc == 0 && !res.is_null()).then(|| user_from(&pwd))
}

/// The name of the group with this id, if the host knows one.
pub fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUF];
    // SAFETY: an all-zero group is a valid value to be overwritten.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_by_id`, for getgrgid_r; gr_name is read only when
    // an entry was returned, while the buffer lives.
    unsafe {
        if libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut res) == 0
            && !res.is_null()
        {
            return Some(CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned());
        }
    }
    None
}

/// The id of the group with this name, if the host knows one.
pub fn group_id(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUF];
    // SAFETY: as in `group_name`.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `group_name`, with a NUL-terminated name.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut res,
        )
    };
    (rc == 0 && !res.is_null()).then_some(grp.gr_gid)
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
