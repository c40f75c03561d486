//! Why a configuration could not be loaded: the file was unreadable, or it
//! had problems, each pinned to `file:line:col` and the dotted key, with a
//! message saying what to change.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// One thing wrong with the configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// 1-based column (in characters) of the offending key or value.
    pub col: usize,
    /// Dotted path of the key, e.g. `agent.log_level`, `feed[2].stall_after`
    /// (feeds are counted from 0 in file order), `feed[0].backoff.max`;
    /// `toml` for a syntax error.
    pub key: String,
    /// What is wrong and what to do about it. Never contains a secret.
    pub message: String,
}

#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read at all.
    Read { path: PathBuf, source: io::Error },
    /// The file was read but has problems; every one is listed, sorted by position.
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found (empty for [`ConfigError::Read`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                write!(
                    f,
                    "{}: permission denied: the configuration is readable by root and the service \
                     only; run the command with sudo",
                    path.display()
                )
            }
            ConfigError::Read { path, source } => write!(
                f,
                "{}: cannot read the configuration: {source}; check the path, \
                 or pass --config PATH or set ${} to the right file",
                path.display(),
                super::PATH_ENV
            ),
            ConfigError::Invalid { path, problems } => {
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(
                        f,
                        "{}:{}:{}: {}: {}",
                        path.display(),
                        p.line,
                        p.col,
                        p.key,
                        p.message
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            ConfigError::Invalid { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_error_says_where_to_look() {
        let e = ConfigError::Read {
            path: PathBuf::from("/nope/brokerguard.toml"),
            source: io::Error::new(io::ErrorKind::NotFound, "No such file or directory"),
        };
        let s = e.to_string();
        assert!(s.starts_with("/nope/brokerguard.toml: cannot read"), "{s}");
        assert!(
            s.contains("--config") && s.contains("$BROKERGUARD_CONFIG"),
            "{s}"
        );
    }

    #[test]
    fn invalid_prints_one_line_per_problem() {
        let p = |line, key: &str| Problem {
            line,
            col: 3,
            key: key.into(),
            message: "fix it".into(),
        };
        let e = ConfigError::Invalid {
            path: PathBuf::from("b.toml"),
            problems: vec![p(1, "agent.log_level"), p(7, "feed[0].url")],
        };
        assert_eq!(
            e.to_string(),
            "b.toml:1:3: agent.log_level: fix it\nb.toml:7:3: feed[0].url: fix it"
        );
        assert_eq!(e.problems().len(), 2);
    }
}
