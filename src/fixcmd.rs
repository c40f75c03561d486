//! The brokerguard commands printed as fixes (`set-credential`, a
//! broker's own command, `check`, `config check`, `doctor`), formatted in one place
//! so each carries the operator's `--config` when it is not the default: a
//! pasted fix must read the same configuration as the agent or command that
//! suggested it, and `sudo` drops `$BROKERGUARD_CONFIG`.
//!
//! Where the configuration is at hand (doctor, a broker's command) the path is
//! passed ([`with_config`]); messages built deep inside the agent (a
//! credential's problem, a feed waiting for a credential, a broker's
//! remedy) have no configuration to hand and use the process's
//! ([`command`]), which the command line and `daemon::run` record once with
//! [`set_config_path`]. A process is started with one configuration and a
//! reload never changes which file it is.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Where the configuration is looked for when no `--config` is given (a
/// fix for it needs no `--config`). Defined here, the leaf every module
/// may print a fix from; `config::DEFAULT_PATH` is this.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/brokerguard/brokerguard.toml";

/// The configuration this process was started with (`None`: not recorded,
/// taken as the default).
static CONFIG_PATH: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Records the configuration file this process uses, for [`command`].
pub fn set_config_path(path: &Path) {
    let mut slot = CONFIG_PATH.write().unwrap_or_else(|e| e.into_inner());
    *slot = Some(path.to_path_buf());
}

/// `sudo brokerguard ARGS`, with ` --config PATH` when this process's
/// configuration is not the default.
pub fn command(args: &str) -> String {
    let slot = CONFIG_PATH.read().unwrap_or_else(|e| e.into_inner());
    match slot.as_deref() {
        Some(path) => with_config(path, args),
        None => format!("sudo brokerguard {args}"),
    }
}

/// `sudo brokerguard ARGS`, with ` --config PATH` when `config` is not the
/// default path. A relative path is made absolute (the fix may be pasted
/// in another folder) and quoted for the shell when it needs it.
pub fn with_config(config: &Path, args: &str) -> String {
    if config == Path::new(DEFAULT_CONFIG_PATH) {
        return format!("sudo brokerguard {args}");
    }
    let shown = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    format!(
        "sudo brokerguard {args} --config {}",
        sh_quote(&shown.display().to_string())
    )
}

/// `s` as one shell word: as is when it has only safe characters, else in
/// single quotes.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_needs_no_flag_and_another_gets_one() {
        assert_eq!(
            with_config(Path::new(DEFAULT_CONFIG_PATH), "set-credential SIG_TOKEN"),
            "sudo brokerguard set-credential SIG_TOKEN"
        );
        assert_eq!(
            with_config(Path::new("/srv/bg/bg.toml"), "doctor --online"),
            "sudo brokerguard doctor --online --config /srv/bg/bg.toml"
        );
        assert_eq!(
            with_config(Path::new("/srv/my bg/bg.toml"), "check sig"),
            "sudo brokerguard check sig --config '/srv/my bg/bg.toml'"
        );
        // Relative: made absolute, so the fix works from any folder.
        let shown = with_config(Path::new("run/bg.toml"), "doctor");
        let cwd = std::env::current_dir().unwrap();
        assert!(
            shown.starts_with("sudo brokerguard doctor --config /"),
            "{shown}"
        );
        assert!(
            shown.ends_with(&format!("{}/run/bg.toml", cwd.display()))
                || shown.ends_with("/run/bg.toml'"),
            "{shown}"
        );
    }

    #[test]
    fn quoting_keeps_a_path_one_word() {
        assert_eq!(sh_quote("/etc/a.toml"), "/etc/a.toml");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
