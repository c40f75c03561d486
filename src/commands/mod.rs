//! The commands that audit or change the installation from outside the
//! running agent, above every domain module: `doctor` (the audit),
//! `set-credential`, and `config check`'s credential warnings. `cli`
//! parses the command line and calls them; nothing else imports
//! `commands` (the layers block in docs/ARCHITECTURE.md: `commands only<-
//! cli`), so a domain module never depends on a command.

pub mod config_check;
pub mod doctor;
pub mod set_credential;
