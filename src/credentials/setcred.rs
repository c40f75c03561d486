//! Writing one secret into a credentials file: the writer behind
//! `brokerguard set-credential` (the command is `commands::set_credential`),
//! `kite-login` and the HTTP login callback.
//!
//! The file is replaced atomically (temp file in the same folder, fsync,
//! rename, fsync of the folder), so the running agent's watcher never sees a
//! half-written file. The existing file's owner and mode are kept (a new file
//! gets 0640, and when root creates it, the service's group `brokerguard`,
//! so the service can read it); if the file is a symlink, its target is
//! written and the link stays. The first `NAME=` / `export NAME=` line is replaced in place and
//! any later lines for the same name are dropped (they would override it);
//! every other line is kept byte for byte. Otherwise the line is appended.
//! Writers take an exclusive `flock` on the folder for the read-modify-write,
//! so two at once (set-credential and kite-login) cannot lose a line.
//!
//! Values are one line. The exception is a PEM key (it starts with
//! `-----BEGIN `): it is written double-quoted with `\n` escapes, which the
//! dotenv parser turns back into newlines. A CR is always refused.

use super::dotenv;
use crate::os;
use crate::secret::Secret;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a credentials file created by `set-credential`.
pub const NEW_FILE_MODE: u32 = 0o640;

#[derive(Debug)]
pub enum SetCredError {
    /// Names are `[A-Z][A-Z0-9_]*`.
    InvalidName { name: String },
    /// The value holds a newline (and is not a PEM key) or a carriage return.
    ValueHasLineBreak,
    /// The value is empty.
    EmptyValue,
    /// A file operation failed.
    Io {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },
}

impl fmt::Display for SetCredError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetCredError::InvalidName { name } => write!(
                f,
                "invalid credential name {name:?}: use upper-case letters, digits and '_', starting with a letter (e.g. KRAKEN_MASTER_API_KEY)"
            ),
            SetCredError::ValueHasLineBreak => f.write_str(
                "the value contains a line break; a credential is one line (only a PEM key may span lines)",
            ),
            SetCredError::EmptyValue => f.write_str("the value is empty; nothing was written"),
            SetCredError::Io { path, action, error } => {
                write!(f, "cannot {action} {}: {error}", path.display())?;
                if error.kind() == io::ErrorKind::PermissionDenied {
                    f.write_str(" (run it with sudo)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SetCredError {}

/// `[A-Z][A-Z0-9_]*`
pub fn valid_credential_name(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some('A'..='Z'))
        && c.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_pem(v: &str) -> bool {
    v.starts_with("-----BEGIN ")
}

/// The value as it must appear after `NAME=` so [`dotenv::parse`] reads it back exactly.
pub fn encode_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,:/+=@%^~".contains(c));
    if plain {
        v.to_string()
    } else if !v.contains('\'') && !v.contains('\n') {
        format!("'{v}'")
    } else {
        let mut out = String::from("\"");
        for c in v.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}

/// Writes `name=value` into `file` atomically (see the module doc).
pub fn set_credential(file: &Path, name: &str, value: &Secret) -> Result<(), SetCredError> {
    let group = os::user::is_root()
        .then(|| os::user::group_id(os::fs::SERVICE_GROUP))
        .flatten();
    set_credential_for(file, name, value, group)
}

/// [`set_credential`], giving a new file the group `new_file_group`.
fn set_credential_for(
    file: &Path,
    name: &str,
    value: &Secret,
    new_file_group: Option<u32>,
) -> Result<(), SetCredError> {
    if !valid_credential_name(name) {
        return Err(SetCredError::InvalidName {
            name: name.to_string(),
        });
    }
    let v = value.expose();
    if v.is_empty() {
        return Err(SetCredError::EmptyValue);
    }
    if v.contains('\r') || (v.contains('\n') && !is_pem(v)) {
        return Err(SetCredError::ValueHasLineBreak);
    }
    // Write through a symlink to its target, so the link survives.
    let target = match fs::canonicalize(file) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => file.to_path_buf(),
        Err(error) => {
            return Err(SetCredError::Io {
                path: file.to_path_buf(),
                action: "resolve",
                error,
            });
        }
    };
    let io_err = |action, error| SetCredError::Io {
        path: target.clone(),
        action,
        error,
    };
    // Two writers at once (set-credential, kite-login) must not lose each other's line.
    let _lock = lock_folder(&target).map_err(|e| io_err("lock the folder of", e))?;
    let (old, meta) = match fs::read(&target) {
        Ok(bytes) => (
            Wiped::new(bytes),
            Some(fs::metadata(&target).map_err(|e| io_err("inspect", e))?),
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Wiped::new(Vec::new()), None),
        Err(e) => return Err(io_err("read", e)),
    };
    let line = Secret::new(format!("{name}={}", encode_value(v)));
    let new = replace_or_append(&old, name, line.expose());
    write_atomically(&target, &new, meta.as_ref(), new_file_group)
}

/// The new file content. Works on bytes so lines that are not UTF-8 survive.
fn replace_or_append(old: &[u8], name: &str, line: &str) -> Wiped {
    let mut out: Vec<u8> = Vec::with_capacity(old.len() + line.len() + 1);
    let mut replaced = false;
    for piece in old.split_inclusive(|b| *b == b'\n') {
        let text = std::str::from_utf8(piece).unwrap_or("");
        let body = text.trim_end_matches(['\n', '\r']);
        if dotenv::defined_name(body) == Some(name) {
            if !replaced {
                out.extend_from_slice(line.as_bytes());
                // Keep this line's own ending (LF or CRLF; LF when it was the last line).
                let ending = &piece[body.len()..];
                out.extend_from_slice(if ending.is_empty() { b"\n" } else { ending });
                replaced = true;
            }
            continue;
        }
        out.extend_from_slice(piece);
    }
    if !replaced {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    Wiped::new(out)
}

/// File content holding secrets: wiped when dropped, never printed.
type Wiped = zeroize::Zeroizing<Vec<u8>>;

/// An exclusive lock on the file's folder, released when the handle drops.
fn lock_folder(target: &Path) -> io::Result<File> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let f = File::open(dir)?;
    os::lock::lock(&f, os::lock::Kind::Exclusive)?;
    Ok(f)
}

fn write_atomically(
    target: &Path,
    content: &[u8],
    meta: Option<&fs::Metadata>,
    new_file_group: Option<u32>,
) -> Result<(), SetCredError> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{base}.tmp-{}", std::process::id()));
    let io_err = |path: &Path, action, error| SetCredError::Io {
        path: path.to_path_buf(),
        action,
        error,
    };
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, "create", e))?;
    let result = (|| {
        f.write_all(content).map_err(|e| io_err(&tmp, "write", e))?;
        match meta {
            Some(m) => {
                let (uid, gid) = (m.uid(), m.gid());
                let (euid, egid) = (os::user::euid(), os::user::egid());
                if uid != euid || gid != egid {
                    std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                        .map_err(|e| io_err(&tmp, "keep the owner of", e))?;
                }
                f.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))
                    .map_err(|e| io_err(&tmp, "keep the mode of", e))?;
            }
            None => {
                if let Some(gid) = new_file_group {
                    std::os::unix::fs::fchown(&f, None, Some(gid))
                        .map_err(|e| io_err(&tmp, "give the service's group", e))?;
                }
                f.set_permissions(fs::Permissions::from_mode(NEW_FILE_MODE))
                    .map_err(|e| io_err(&tmp, "set the mode of", e))?
            }
        }
        f.sync_all().map_err(|e| io_err(&tmp, "sync", e))?;
        fs::rename(&tmp, target).map_err(|e| io_err(target, "replace", e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(&dir, "sync folder", e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a secret from stdin. On a terminal: one line, without echo (the
/// caller prints any prompt on stderr). Otherwise: everything up to EOF
/// (so a PEM key can be piped in). One trailing newline (`\n` or `\r\n`) is
/// removed.
pub fn read_secret_from_stdin() -> io::Result<Secret> {
    let stdin = io::stdin();
    let echo = os::term::EchoOff::new(stdin.as_fd())?;
    // Wiped if reading fails half way; moved into the Secret otherwise.
    let mut buf = zeroize::Zeroizing::new(String::new());
    if echo.is_some() {
        io::stdin().read_line(&mut buf)?;
        // The Enter key was not echoed; end the prompt's line.
        let _ = writeln!(io::stderr());
    } else {
        io::stdin().read_to_string(&mut buf)?;
    }
    drop(echo);
    Ok(Secret::new(trim_one_newline(std::mem::take(&mut *buf))))
}

fn trim_one_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::store::tests::temp_dir;

    fn parse_file(p: &Path) -> Vec<(String, String)> {
        dotenv::parse(&fs::read_to_string(p).unwrap(), p)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value.expose().to_string()))
            .collect()
    }

    #[test]
    fn replaces_in_place_and_keeps_every_other_line() {
        let d = temp_dir("setrep");
        let f = d.join("credentials.env");
        let original = b"# keys\r\nA=1\r\nexport KITE_MAIN_ACCESS_TOKEN=old # daily\n\n  B = 'two'\nKITE_MAIN_ACCESS_TOKEN=dup\nweird \xff line kept\nC=3";
        fs::write(&f, original).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let ino_before = fs::metadata(&f).unwrap().ino();
        set_credential(&f, "KITE_MAIN_ACCESS_TOKEN", &Secret::new("n3w tok#en")).unwrap();
        let after = fs::read(&f).unwrap();
        assert_eq!(
            after,
            b"# keys\r\nA=1\r\nKITE_MAIN_ACCESS_TOKEN='n3w tok#en'\n\n  B = 'two'\nweird \xff line kept\nC=3"
        );
        let m = fs::metadata(&f).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600, "mode kept");
        assert_ne!(
            m.ino(),
            ino_before,
            "replaced by rename, not rewritten in place"
        );
        // Appending, to a file whose last line has no newline.
        set_credential(&f, "NEW_ONE", &Secret::new("x\"y'z\\")).unwrap();
        let after2 = fs::read(&f).unwrap();
        assert!(after2.starts_with(&after), "earlier bytes untouched");
        assert_eq!(&after2[after.len()..], b"\nNEW_ONE=\"x\\\"y'z\\\\\"\n");
        // No temp files left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn values_round_trip_through_the_parser() {
        let d = temp_dir("setrt");
        let f = d.join("c.env");
        let pem = "-----BEGIN EC PRIVATE KEY-----\nMHc+/=\n-----END EC PRIVATE KEY-----\n";
        let values = [
            "plain+/==",
            " spaced ",
            "a#b",
            "it's \"q\" \\",
            "$HOME",
            pem,
        ];
        for (i, v) in values.iter().enumerate() {
            set_credential(&f, &format!("V{i}"), &Secret::new(*v)).unwrap();
        }
        let got = parse_file(&f);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(got[i], (format!("V{i}"), v.to_string()));
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn new_file_gets_0640_and_symlink_is_kept() {
        let d = temp_dir("setnew");
        let f = d.join("c.env");
        set_credential(&f, "A", &Secret::new("1")).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
        let link = d.join("link.env");
        std::os::unix::fs::symlink("c.env", &link).unwrap();
        set_credential(&link, "B", &Secret::new("2")).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&f).unwrap(), "A=1\nB=2\n");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_bad_names_and_line_breaks_without_echoing() {
        let f = Path::new("/nonexistent/c.env");
        for n in ["", "a", "1A", "A-B", "A B"] {
            assert!(matches!(
                set_credential(f, n, &Secret::new("v")),
                Err(SetCredError::InvalidName { .. })
            ));
        }
        for v in ["CANARY-a\nb", "CANARY-a\rb", "CANARY\r\n"] {
            let e = set_credential(f, "A", &Secret::new(v)).unwrap_err();
            assert!(matches!(e, SetCredError::ValueHasLineBreak));
            assert!(!e.to_string().contains("CANARY") && !format!("{e:?}").contains("CANARY"));
        }
        assert!(matches!(
            set_credential(f, "A", &Secret::new("")),
            Err(SetCredError::EmptyValue)
        ));
    }

    #[test]
    fn trims_exactly_one_newline() {
        assert_eq!(trim_one_newline("abc\n".into()), "abc");
        assert_eq!(trim_one_newline("abc\r\n".into()), "abc");
        assert_eq!(trim_one_newline("abc\n\n".into()), "abc\n");
        assert_eq!(trim_one_newline("abc".into()), "abc");
    }

    #[test]
    fn a_new_file_made_by_root_gets_the_service_group() {
        if !os::user::is_root() {
            eprintln!("skipped: only root can give a file another group");
            return;
        }
        let d = temp_dir("setgrp");
        let f = d.join("c.env");
        set_credential_for(&f, "A", &Secret::new("1"), Some(65534)).unwrap();
        let m = fs::metadata(&f).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 65534, 0o640));
        // An existing file keeps its group.
        fs::write(&f, "A=1\n").unwrap();
        std::os::unix::fs::chown(&f, None, Some(0)).unwrap();
        set_credential_for(&f, "B", &Secret::new("2"), Some(65534)).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().gid(), 0);
        fs::remove_dir_all(&d).unwrap();
    }
}
