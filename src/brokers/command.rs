//! A subcommand a broker adds to the command line (`brokerguard NAME
//! --flag VALUE …`), listed by [`super::registry::Broker::commands`]: the
//! command line shows it in `--help`, parses its flags, loads the
//! configuration, and hands the broker a [`CommandContext`]; the broker's
//! `run` returns what to print or why it failed, and the command line
//! alone picks the exit code (0 done, 1 failed, 78 a bad configuration,
//! 64 bad arguments).

use crate::config::Config;
use crate::credentials::Sources;
use crate::secret::Secret;
use std::time::SystemTime;

/// One broker subcommand. Every broker command reads the configuration
/// (`--config`, added by the command line) and may read secrets, so the
/// process forbids core dumps before it runs.
pub struct BrokerCommand {
    /// `brokerguard NAME`; unique across brokers and the built-in commands.
    pub name: &'static str,
    /// The line `--help` shows for it.
    pub about: &'static str,
    /// Its flags besides `--config`, each taking one value.
    pub flags: &'static [CommandFlag],
    /// Runs it: the text to print on standard output, or the error the
    /// command line prints as `brokerguard NAME: ERROR`.
    pub run: fn(&CommandContext<'_>) -> Result<String, Box<dyn std::error::Error>>,
}

/// A `--LONG VALUE` flag of a broker command.
pub struct CommandFlag {
    /// The flag without its dashes (`request-token`).
    pub long: &'static str,
    /// How `--help` names its value (`REQUEST_TOKEN`).
    pub value_name: &'static str,
    pub help: &'static str,
    pub required: bool,
}

/// What a broker command is run with.
pub struct CommandContext<'a> {
    /// The configuration named by `--config` (or the default), loaded.
    pub config: &'a Config,
    /// Where the credentials are read from.
    pub sources: &'a Sources,
    pub now: SystemTime,
    /// The flags given, by their `long` name.
    pub args: &'a [(&'static str, String)],
    /// Reads one secret from standard input (no echo on a terminal), for a
    /// flag whose value is `-`.
    pub read_secret: &'a dyn Fn() -> std::io::Result<Secret>,
}

impl CommandContext<'_> {
    /// The value of `--LONG`, if given.
    pub fn arg(&self, long: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(l, _)| *l == long)
            .map(|(_, v)| v.as_str())
    }
}

/// Every broker command in this build.
pub fn all() -> impl Iterator<Item = &'static BrokerCommand> {
    super::registry::BROKERS.iter().flat_map(|b| b.commands())
}

/// The broker command called `name`, if any.
pub fn find(name: &str) -> Option<&'static BrokerCommand> {
    all().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_command_names_are_unique_and_found() {
        let mut names: Vec<&str> = all().map(|c| c.name).collect();
        assert!(!names.is_empty(), "some broker adds a command");
        let len = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), len, "{names:?}");
        for c in all() {
            assert_eq!(find(c.name).map(|f| f.name), Some(c.name));
            assert!(c.flags.iter().all(|f| f.long != "config"), "{}", c.name);
        }
        assert!(find("nosuch").is_none());
    }
}
