//! Exit codes: a documented contract (README "Exit codes"), sysexits where
//! one fits. Only the binary's command layer decides which one to use.

/// Clean stop, or the command did what was asked.
pub const OK: u8 = 0;
/// `status`: degraded; `check`/`doctor`: a problem was found; other commands: failed.
pub const FAILURE: u8 = 1;
/// `status`, `reload`: no agent is running.
pub const NOT_RUNNING: u8 = 3;
/// EX_USAGE: the command line was wrong.
pub const USAGE: u8 = 64;
/// EX_UNAVAILABLE: preflight was required and failed.
pub const UNAVAILABLE: u8 = 69;
/// EX_SOFTWARE: an internal error (a bug).
pub const SOFTWARE: u8 = 70;
/// EX_OSERR: the OS refused something we need (a folder, a socket).
pub const OSERR: u8 = 71;
/// EX_TEMPFAIL: another instance holds the lock.
pub const LOCKED: u8 = 75;
/// EX_TEMPFAIL: `reload`: the agent gave no answer in time (try again).
pub const TEMPFAIL: u8 = 75;
/// EX_CONFIG: the configuration is invalid (`reload`: it was rejected).
pub const CONFIG: u8 = 78;
