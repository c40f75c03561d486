//! Credentials: owned sources, the `Secret` type, monitoring, hot reload.
//!
//! `secret` (unprintable values), `fingerprint` (keyed fingerprints), `dotenv` (file syntax), `store` (sources,
//! precedence, keep-last-good), `required` (what the config needs),
//! `format` (value checks), `monitor` (events and alert lines), `watcher`
//! (inotify on the files' folders), `permissions` (who may read a
//! credentials file), `setcred` (the atomic writer behind `set-credential`,
//! `kite-login` and the login callback). The commands that audit or set
//! credentials are in `crate::commands`.

pub mod dotenv;
pub mod format;
pub mod monitor;
pub mod permissions;
pub mod required;
pub mod setcred;
pub mod store;
pub mod watcher;

pub use monitor::{CredEvent, Monitor};
pub use required::Required;
pub use store::{
    CredProblem, Credential, CredentialState, CredentialStore, LoadOutcome, Source, Sources,
};
