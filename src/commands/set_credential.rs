//! `brokerguard set-credential NAME`: the value read from stdin, stored in
//! its stored form (`HTTP_PASSWORD` as its Argon2id hash, never as typed;
//! any other credential as is) into a credentials file, by the writer the
//! running agent's watcher is built around
//! ([`crate::credentials::setcred::set_credential`]: atomic replace, the
//! file's owner and mode kept, the folder locked). `kite-login` and the
//! HTTP login callback write through the same writer.

use crate::config::Config;
use crate::credentials::setcred::{SetCredError, set_credential};
use crate::http::auth::{AuthError, stored_form};
use crate::secret::Secret;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why nothing was written.
#[derive(Debug)]
pub enum SetCredentialError {
    /// No `--file` and the configuration lists no credentials file.
    NoCredentialFiles,
    /// The value could not be read.
    Stdin(io::Error),
    /// The value could not be put in its stored form (hashing failed).
    Value(AuthError),
    /// The file could not be written, or the name or value is refused.
    Write(SetCredError),
}

impl fmt::Display for SetCredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetCredentialError::NoCredentialFiles => {
                f.write_str("agent.credential_files is empty; pass --file")
            }
            SetCredentialError::Stdin(e) => write!(f, "cannot read the value from stdin: {e}"),
            SetCredentialError::Value(e) => write!(f, "{e}"),
            SetCredentialError::Write(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SetCredentialError {}

/// What was written, said on success (the fingerprint, never the value).
#[derive(Debug)]
pub struct Written {
    pub name: String,
    pub file: PathBuf,
    pub fingerprint: String,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} set in {} (fingerprint {}); a running agent picks it up at once",
            self.name,
            self.file.display(),
            self.fingerprint
        )
    }
}

/// The file written when no `--file` is given: the configuration's first
/// credentials file.
pub fn default_file(cfg: &Config) -> Result<PathBuf, SetCredentialError> {
    cfg.agent
        .credential_files
        .first()
        .cloned()
        .ok_or(SetCredentialError::NoCredentialFiles)
}

/// Reads the value with `read_value` (stdin in the command) and writes
/// `name`'s stored form into `file`.
pub fn set(
    file: &Path,
    name: &str,
    read_value: impl FnOnce() -> io::Result<Secret>,
) -> Result<Written, SetCredentialError> {
    let typed = read_value().map_err(SetCredentialError::Stdin)?;
    let value = stored_form(name, typed).map_err(SetCredentialError::Value)?;
    set_credential(file, name, &value).map_err(SetCredentialError::Write)?;
    Ok(Written {
        name: name.to_string(),
        file: file.to_path_buf(),
        fingerprint: value.fingerprint(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::store::tests::temp_dir;
    use std::fs;

    #[test]
    fn a_password_is_stored_hashed_and_other_values_as_typed() {
        let d = temp_dir("setcmd");
        let f = d.join("c.env");
        let typed = "CANARY-typed-pass";
        let w = set(&f, "HTTP_PASSWORD", || Ok(Secret::new(typed))).unwrap();
        let token = set(&f, "SIGNALS_TOKEN", || Ok(Secret::new("CANARY-tok"))).unwrap();
        let text = fs::read_to_string(&f).unwrap();
        assert!(text.contains("HTTP_PASSWORD='$argon2id$"), "{text}");
        assert!(!text.contains(typed), "{text}");
        assert!(text.contains("SIGNALS_TOKEN=CANARY-tok\n"), "{text}");
        assert_eq!(token.fingerprint, Secret::new("CANARY-tok").fingerprint());
        for said in [w.to_string(), token.to_string()] {
            assert!(said.contains(" set in ") && said.contains("(fingerprint "));
            assert!(!said.contains("CANARY"), "{said}");
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn nothing_is_written_when_the_value_cannot_be_read_or_is_refused() {
        let d = temp_dir("setcmderr");
        let f = d.join("c.env");
        let e = set(&f, "A", || Err(io::Error::other("closed"))).unwrap_err();
        assert_eq!(e.to_string(), "cannot read the value from stdin: closed");
        let e = set(&f, "a-b", || Ok(Secret::new("v"))).unwrap_err();
        assert!(matches!(
            e,
            SetCredentialError::Write(SetCredError::InvalidName { .. })
        ));
        assert!(!f.exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
