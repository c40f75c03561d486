//! The credential store: every value with where it came from.
//!
//! Precedence: systemd credentials (`$CREDENTIALS_DIRECTORY/<NAME>`), then
//! the `agent.credential_files` in order (an earlier file wins), then the
//! process environment. A value found only in the environment is flagged
//! `env_only`: it will be gone after the next restart or redeploy.
//!
//! Reloading keeps the last good values of a file that failed to parse or
//! could not be read (a half-written file must not take credentials away);
//! a file that parsed fine and no longer names a credential really lost it,
//! and so does a file that was deleted.

use super::dotenv::{self, DotenvProblem};
use super::format::{self, FormatProblem, Severity};
use super::required::{Required, distinct_names};
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use zeroize::Zeroizing;

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The systemd credentials folder the value was read from.
    Systemd(PathBuf),
    File {
        path: PathBuf,
        line: usize,
    },
    Env,
}

impl fmt::Display for Source {
    /// `systemd:<dir>`, `file:<path>`, `env` (the status.json contract).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Systemd(dir) => write!(f, "systemd:{}", dir.display()),
            Source::File { path, .. } => write!(f, "file:{}", path.display()),
            Source::Env => f.write_str("env"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Credential {
    pub value: Secret,
    pub source: Source,
    /// Modification time of the file it came from (not for `Env`).
    pub file_mtime: Option<SystemTime>,
}

impl Credential {
    pub fn fingerprint(&self) -> String {
        self.value.fingerprint()
    }
    /// Only in the process environment: lost on the next restart or redeploy.
    pub fn env_only(&self) -> bool {
        self.source == Source::Env
    }
}

/// Looks a variable up in the process environment (injectable for tests).
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where credentials are read from. Injectable so tests need neither the
/// real environment nor `$CREDENTIALS_DIRECTORY`.
pub struct Sources {
    pub systemd_dir: Option<PathBuf>,
    pub files: Vec<PathBuf>,
    /// Looks a variable up in the process environment.
    pub env: EnvLookup,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("systemd_dir", &self.systemd_dir)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Sources {
    /// This process: `$CREDENTIALS_DIRECTORY`, the configured files
    /// (`agent.credential_files`), the real environment.
    pub fn from_process(files: &[PathBuf]) -> Sources {
        Sources {
            systemd_dir: std::env::var_os("CREDENTIALS_DIRECTORY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            files: files.to_vec(),
            env: Box::new(|name| std::env::var(name).ok()),
        }
    }

    /// Fixed sources (tests, demo): `env` is the whole environment.
    pub fn fixed(
        systemd_dir: Option<PathBuf>,
        files: Vec<PathBuf>,
        env: &[(&str, &str)],
    ) -> Sources {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Sources {
            systemd_dir,
            files,
            env: Box::new(move |name| env.get(name).cloned()),
        }
    }
}

/// Something wrong with the sources or the values. Display never shows a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredProblem {
    /// A malformed line (`alert=credentials_invalid`). The file's last good values stay in force.
    FileInvalid {
        file: PathBuf,
        line: usize,
        problem: DotenvProblem,
    },
    /// A configured credentials file does not exist.
    FileMissing { file: PathBuf },
    /// A credentials file exists but cannot be read. Its last good values stay in force.
    FileUnreadable { file: PathBuf, error: String },
    /// A file in `$CREDENTIALS_DIRECTORY` cannot be read or is not text.
    SystemdUnreadable { path: PathBuf, error: String },
    /// A required credential is in no source.
    Missing { name: String, feeds: Vec<String> },
    /// A value's format is wrong.
    Format {
        name: String,
        problem: FormatProblem,
    },
    /// Found only in the process environment.
    EnvOnly { name: String },
}

impl CredProblem {
    pub fn severity(&self) -> Severity {
        match self {
            CredProblem::Format { problem, .. } => problem.severity,
            CredProblem::EnvOnly { .. } => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The file a source problem is about.
    pub fn file(&self) -> Option<&Path> {
        match self {
            CredProblem::FileInvalid { file, .. }
            | CredProblem::FileMissing { file }
            | CredProblem::FileUnreadable { file, .. } => Some(file),
            CredProblem::SystemdUnreadable { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The short reason (no file, no line), as in `reason="..."` of an alert.
    pub fn reason(&self) -> String {
        match self {
            CredProblem::FileInvalid { problem, .. } => {
                format!("{problem}; the last good values stay in force")
            }
            CredProblem::FileMissing { file } => format!(
                "file does not exist; create it: sudo install -m 0640 -o root -g brokerguard /dev/null {}",
                file.display()
            ),
            CredProblem::FileUnreadable { error, .. } => {
                format!("cannot read ({error}); the last good values stay in force")
            }
            CredProblem::SystemdUnreadable { error, .. } => format!("cannot read ({error})"),
            CredProblem::Missing { name, .. } => {
                format!(
                    "not set; run: {}",
                    crate::fixcmd::command(&format!("set-credential {name}"))
                )
            }
            CredProblem::Format { problem, .. } => problem.message.clone(),
            CredProblem::EnvOnly { name } => format!(
                "only in the process environment, so it is lost on the next restart or redeploy; move it into the credentials file: {}",
                crate::fixcmd::command(&format!("set-credential {name}"))
            ),
        }
    }
}

impl fmt::Display for CredProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredProblem::FileInvalid { file, line, .. } => {
                write!(f, "{}:{}: {}", file.display(), line, self.reason())
            }
            CredProblem::FileMissing { file } | CredProblem::FileUnreadable { file, .. } => {
                write!(f, "credentials file {}: {}", file.display(), self.reason())
            }
            CredProblem::SystemdUnreadable { path, .. } => {
                write!(
                    f,
                    "systemd credential {}: {}",
                    path.display(),
                    self.reason()
                )
            }
            CredProblem::Missing { name, feeds } => {
                write!(
                    f,
                    "credential {name} (feed {}) is {}",
                    feeds.join(", "),
                    self.reason()
                )
            }
            CredProblem::Format { name, .. } => write!(f, "credential {name} {}", self.reason()),
            CredProblem::EnvOnly { name } => write!(f, "credential {name} is {}", self.reason()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileState {
    Parsed,
    Missing,
    /// Malformed or unreadable: its entries are empty, or the last good ones after a merge.
    Failed,
}

#[derive(Clone, Debug, PartialEq)]
struct FileLayer {
    path: PathBuf,
    state: FileState,
    /// The entries are the last good ones, carried over from an earlier load.
    kept_last_good: bool,
    entries: BTreeMap<String, Credential>,
}

/// Every credential, resolved by precedence. Cheap to clone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CredentialStore {
    systemd: BTreeMap<String, Credential>,
    files: Vec<FileLayer>,
    env: BTreeMap<String, Credential>,
    resolved: BTreeMap<String, Credential>,
}

/// A load: the store and every problem found (sources first, then values).
#[derive(Clone, Debug)]
pub struct LoadOutcome {
    pub store: CredentialStore,
    pub problems: Vec<CredProblem>,
}

impl CredentialStore {
    /// Reads every source. The environment is asked for the required names only.
    pub fn load(sources: &Sources, required: &[Required]) -> LoadOutcome {
        let (store, mut problems) = Self::read_sources(sources, required);
        problems.extend(store.value_problems(required));
        LoadOutcome { store, problems }
    }

    /// [`load`](Self::load), then [`merge_keep_last_good`](Self::merge_keep_last_good)
    /// with `prev`, with the value problems computed on the merged store.
    /// This is what a reload (watcher event, SIGHUP, periodic check) calls.
    pub fn reload(prev: &CredentialStore, sources: &Sources, required: &[Required]) -> LoadOutcome {
        let (fresh, mut problems) = Self::read_sources(sources, required);
        let store = Self::merge_keep_last_good(
            prev,
            &LoadOutcome {
                store: fresh,
                problems: vec![],
            },
        );
        problems.extend(store.value_problems(required));
        LoadOutcome { store, problems }
    }

    /// The store of `outcome`, except that a file that failed to parse or to be
    /// read keeps the values it had in `prev`. A deleted file, or a file that
    /// parsed fine without a name, does not.
    pub fn merge_keep_last_good(prev: &CredentialStore, outcome: &LoadOutcome) -> CredentialStore {
        let mut store = outcome.store.clone();
        for layer in store
            .files
            .iter_mut()
            .filter(|l| l.state == FileState::Failed)
        {
            if let Some(old) = prev.files.iter().find(|o| o.path == layer.path) {
                layer.entries = old.entries.clone();
                layer.kept_last_good = !old.entries.is_empty();
            }
        }
        store.resolve();
        store
    }

    fn read_sources(
        sources: &Sources,
        required: &[Required],
    ) -> (CredentialStore, Vec<CredProblem>) {
        let names = distinct_names(required);
        let mut problems = Vec::new();
        let mut store = CredentialStore::default();
        if let Some(dir) = &sources.systemd_dir {
            for name in &names {
                let path = dir.join(name);
                match read_systemd(&path) {
                    Ok(Some((value, mtime))) => {
                        store.systemd.insert(
                            name.to_string(),
                            Credential {
                                value,
                                source: Source::Systemd(dir.clone()),
                                file_mtime: mtime,
                            },
                        );
                    }
                    Ok(None) => {}
                    Err(error) => problems.push(CredProblem::SystemdUnreadable { path, error }),
                }
            }
        }
        for path in &sources.files {
            let (layer, problem) = read_file(path);
            store.files.push(layer);
            problems.extend(problem);
        }
        for name in &names {
            if let Some(v) = (sources.env)(name) {
                store.env.insert(
                    name.to_string(),
                    Credential {
                        value: Secret::new(v),
                        source: Source::Env,
                        file_mtime: None,
                    },
                );
            }
        }
        store.resolve();
        (store, problems)
    }

    fn resolve(&mut self) {
        let mut resolved = BTreeMap::new();
        let layers = std::iter::once(&self.systemd)
            .chain(self.files.iter().map(|l| &l.entries))
            .chain(std::iter::once(&self.env));
        for layer in layers {
            for (name, cred) in layer {
                resolved.entry(name.clone()).or_insert_with(|| cred.clone());
            }
        }
        self.resolved = resolved;
    }

    /// Missing, malformed and environment-only required credentials.
    pub fn value_problems(&self, required: &[Required]) -> Vec<CredProblem> {
        let mut out = Vec::new();
        for name in distinct_names(required) {
            match self.get(name) {
                // A fallback the feed runs without: shown, not a problem.
                None if all_optional(required, name) => {}
                None => out.push(CredProblem::Missing {
                    name: name.to_string(),
                    feeds: feeds_of(required, name),
                }),
                Some(c) => {
                    for problem in self.format_problems_of(required, name, c) {
                        out.push(CredProblem::Format {
                            name: name.to_string(),
                            problem,
                        });
                    }
                    if c.env_only() {
                        out.push(CredProblem::EnvOnly {
                            name: name.to_string(),
                        });
                    }
                }
            }
        }
        out
    }

    fn format_problems_of(
        &self,
        required: &[Required],
        name: &str,
        c: &Credential,
    ) -> Vec<FormatProblem> {
        let mut out: Vec<FormatProblem> = Vec::new();
        for r in required.iter().filter(|r| r.name == name) {
            for p in format::check(&r.broker, &r.field, &c.value) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<&Credential> {
        self.resolved.get(name)
    }

    pub fn fingerprint(&self, name: &str) -> Option<String> {
        self.get(name).map(Credential::fingerprint)
    }

    /// Every name that has a value, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.resolved.keys().map(String::as_str)
    }

    /// The configured files whose last good values are in force because the
    /// current content is malformed or unreadable.
    pub fn files_kept_last_good(&self) -> Vec<&Path> {
        self.files
            .iter()
            .filter(|l| l.kept_last_good)
            .map(|l| l.path.as_path())
            .collect()
    }

    /// The feeds whose credentials differ (value, appearance or disappearance)
    /// between `old` and `new`, in `required` order: the feeds to reconnect.
    pub fn changed_feeds(
        old: &CredentialStore,
        new: &CredentialStore,
        required: &[Required],
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in required {
            if out.contains(&r.feed) {
                continue;
            }
            let before = old.get(&r.name).map(|c| c.value.expose());
            let after = new.get(&r.name).map(|c| c.value.expose());
            if before != after {
                out.push(r.feed.clone());
            }
        }
        out
    }

    /// What status.json's `credentials` array shows: one entry per required
    /// name (`status` converts each into its schema type).
    pub fn states(&self, required: &[Required]) -> Vec<CredentialState> {
        distinct_names(required)
            .into_iter()
            .map(|name| match self.get(name) {
                None => CredentialState {
                    name: name.to_string(),
                    present: false,
                    source: None,
                    fingerprint: None,
                    problems: vec![if all_optional(required, name) {
                        "not set (optional)".to_string()
                    } else {
                        "missing".to_string()
                    }],
                    optional: all_optional(required, name),
                },
                Some(c) => {
                    let mut problems: Vec<String> = self
                        .format_problems_of(required, name, c)
                        .into_iter()
                        .map(|p| p.message)
                        .collect();
                    if c.env_only() {
                        problems.push(
                            "only in the process environment: lost on the next restart".to_string(),
                        );
                    }
                    CredentialState {
                        name: name.to_string(),
                        present: true,
                        source: Some(c.source.to_string()),
                        fingerprint: Some(c.fingerprint()),
                        problems,
                        optional: all_optional(required, name),
                    }
                }
            })
            .collect()
    }
}

/// One required credential as status.json shows it: never its value.
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialState {
    pub name: String,
    pub present: bool,
    /// `systemd:<dir>`, `file:<path>`, `env` ([`Source`]'s `Display`); none when missing.
    pub source: Option<String>,
    /// The keyed fingerprint; none when missing.
    pub fingerprint: Option<String>,
    /// Problems with the value's format (never the value itself).
    pub problems: Vec<String>,
    /// No feed needs it (a fallback key set): its absence is not a problem.
    pub optional: bool,
}

/// Whether every feed that lists `name` can run without it (a fallback
/// key set): its absence is shown, never alerted.
pub fn all_optional(required: &[Required], name: &str) -> bool {
    let mut entries = required.iter().filter(|r| r.name == name).peekable();
    entries.peek().is_some() && entries.all(|r| r.optional)
}

fn feeds_of(required: &[Required], name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in required.iter().filter(|r| r.name == name) {
        if !out.contains(&r.feed) {
            out.push(r.feed.clone());
        }
    }
    out
}

/// `Ok(None)` when the file does not exist.
fn read_systemd(path: &Path) -> Result<Option<(Secret, Option<SystemTime>)>, String> {
    // Wiped when dropped, whatever happens: the raw text is the secret.
    let bytes = match std::fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::str::from_utf8(&bytes).map_err(|_| "not valid UTF-8 text".to_string())?;
    Ok(Some((
        Secret::new(text.strip_suffix('\n').unwrap_or(text)),
        mtime,
    )))
}

fn read_file(path: &Path) -> (FileLayer, Option<CredProblem>) {
    let mut layer = FileLayer {
        path: path.to_path_buf(),
        state: FileState::Failed,
        kept_last_good: false,
        entries: BTreeMap::new(),
    };
    // The file's raw bytes hold every secret in it: wiped once parsed.
    let bytes = match std::fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            layer.state = FileState::Missing;
            return (
                layer,
                Some(CredProblem::FileMissing {
                    file: path.to_path_buf(),
                }),
            );
        }
        Err(e) => {
            let problem = CredProblem::FileUnreadable {
                file: path.to_path_buf(),
                error: e.to_string(),
            };
            return (layer, Some(problem));
        }
    };
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    match dotenv::parse_bytes(&bytes, path) {
        Ok(entries) => {
            layer.state = FileState::Parsed;
            // A later line for the same name wins within a file.
            for e in entries {
                let source = Source::File {
                    path: path.to_path_buf(),
                    line: e.line,
                };
                layer.entries.insert(
                    e.name,
                    Credential {
                        value: e.value,
                        source,
                        file_mtime: mtime,
                    },
                );
            }
            (layer, None)
        }
        Err(e) => {
            let problem = CredProblem::FileInvalid {
                file: e.file,
                line: e.line,
                problem: e.problem,
            };
            (layer, Some(problem))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::credentials::required::TEMPLATE_FIELD;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh empty folder under the system temp dir.
    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "bg-cred-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub(crate) fn req(names: &[&str]) -> Vec<Required> {
        names
            .iter()
            .map(|n| Required {
                name: n.to_string(),
                feed: format!("feed_{}", n.to_lowercase()),
                broker: crate::credentials::format::Rules::generic(),
                field: TEMPLATE_FIELD.to_string(),
                optional: false,
            })
            .collect()
    }

    #[test]
    fn precedence_systemd_then_files_then_env() {
        let d = temp_dir("prec");
        let sd = d.join("creds");
        std::fs::create_dir(&sd).unwrap();
        std::fs::write(sd.join("A"), "from-systemd\n").unwrap();
        let f1 = d.join("one.env");
        let f2 = d.join("two.env");
        std::fs::write(&f1, "A=f1\nB=f1\n").unwrap();
        std::fs::write(&f2, "B=f2\nC=f2\n").unwrap();
        let env = [("A", "env"), ("B", "env"), ("C", "env"), ("D", "env")];
        let s = Sources::fixed(Some(sd.clone()), vec![f1.clone(), f2.clone()], &env);
        let out = CredentialStore::load(&s, &req(&["A", "B", "C", "D", "E"]));
        let st = &out.store;
        assert_eq!(st.get("A").unwrap().value.expose(), "from-systemd");
        assert_eq!(
            st.get("A").unwrap().source.to_string(),
            format!("systemd:{}", sd.display())
        );
        assert_eq!(st.get("B").unwrap().value.expose(), "f1");
        assert_eq!(
            st.get("B").unwrap().source,
            Source::File {
                path: f1.clone(),
                line: 2
            }
        );
        assert_eq!(st.get("C").unwrap().value.expose(), "f2");
        assert_eq!(
            st.get("C").unwrap().source.to_string(),
            format!("file:{}", f2.display())
        );
        assert!(st.get("C").unwrap().file_mtime.is_some());
        let d_cred = st.get("D").unwrap();
        assert!(d_cred.env_only());
        assert_eq!(d_cred.source.to_string(), "env");
        assert!(!st.get("C").unwrap().env_only());
        assert!(st.get("E").is_none());
        assert!(
            out.problems
                .contains(&CredProblem::EnvOnly { name: "D".into() })
        );
        assert!(
            out.problems
                .iter()
                .any(|p| matches!(p, CredProblem::Missing { name, .. } if name == "E"))
        );
        assert_eq!(out.problems.len(), 2, "{:?}", out.problems);
        let status = st.states(&req(&["D", "E"]));
        assert_eq!(status[0].source.as_deref(), Some("env"));
        assert!(status[0].problems[0].contains("lost on the next restart"));
        assert!(!status[1].present && status[1].fingerprint.is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn malformed_file_keeps_last_good_values() {
        let d = temp_dir("klg");
        let f1 = d.join("a.env");
        let f2 = d.join("b.env");
        std::fs::write(&f1, "TOKEN=old\nOTHER=x\n").unwrap();
        std::fs::write(&f2, "SECOND=s\n").unwrap();
        let s = Sources::fixed(
            None,
            vec![f1.clone(), f2.clone()],
            &[("TOKEN", "env-value")],
        );
        let r = req(&["TOKEN", "OTHER", "SECOND"]);
        let first = CredentialStore::load(&s, &r);
        assert!(first.problems.is_empty(), "{:?}", first.problems);

        // Half-written: the new line is cut before '='.
        std::fs::write(&f1, "TOKEN=new\nOTH").unwrap();
        let second = CredentialStore::reload(&first.store, &s, &r);
        assert!(second.problems.contains(&CredProblem::FileInvalid {
            file: f1.clone(),
            line: 2,
            problem: DotenvProblem::MissingEquals
        }));
        // Nothing lost: the old values (not the env fallback, not a partial read) stay.
        assert_eq!(second.store.get("TOKEN").unwrap().value.expose(), "old");
        assert_eq!(second.store.get("OTHER").unwrap().value.expose(), "x");
        assert_eq!(second.store.files_kept_last_good(), vec![f1.as_path()]);
        assert!(
            second
                .problems
                .iter()
                .all(|p| !matches!(p, CredProblem::Missing { .. }))
        );
        // Plain load without merge would lose them (shows the merge matters).
        let plain = CredentialStore::load(&s, &r);
        assert_eq!(
            plain.store.get("TOKEN").unwrap().value.expose(),
            "env-value"
        );

        // Still malformed on the next reload: still kept (carried over twice).
        let third = CredentialStore::reload(&second.store, &s, &r);
        assert_eq!(third.store.get("OTHER").unwrap().value.expose(), "x");

        // Fixed, and OTHER really removed: now it is lost.
        std::fs::write(&f1, "TOKEN=new\n").unwrap();
        let fourth = CredentialStore::reload(&third.store, &s, &r);
        assert_eq!(fourth.store.get("TOKEN").unwrap().value.expose(), "new");
        assert!(fourth.store.get("OTHER").is_none());
        assert!(fourth.store.files_kept_last_good().is_empty());
        assert_eq!(
            CredentialStore::changed_feeds(&third.store, &fourth.store, &r),
            vec!["feed_token".to_string(), "feed_other".to_string()]
        );

        // Deleted file: its values are gone, and the problem says how to create it.
        std::fs::remove_file(&f1).unwrap();
        let fifth = CredentialStore::reload(&fourth.store, &s, &r);
        assert_eq!(fifth.store.get("TOKEN").unwrap().source, Source::Env);
        let missing = fifth
            .problems
            .iter()
            .find(|p| matches!(p, CredProblem::FileMissing { .. }));
        assert!(
            missing
                .unwrap()
                .to_string()
                .contains("sudo install -m 0640")
        );
        assert_eq!(fifth.store.get("SECOND").unwrap().value.expose(), "s");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn changed_feeds_only_names_feeds_with_different_values() {
        let a = Sources::fixed(None, vec![], &[("X", "1"), ("Y", "1")]);
        let b = Sources::fixed(None, vec![], &[("X", "1"), ("Y", "2")]);
        let r = req(&["X", "Y"]);
        let sa = CredentialStore::load(&a, &r).store;
        let sb = CredentialStore::load(&b, &r).store;
        assert_eq!(
            CredentialStore::changed_feeds(&sa, &sb, &r),
            vec!["feed_y".to_string()]
        );
        assert!(CredentialStore::changed_feeds(&sa, &sa, &r).is_empty());
    }

    #[test]
    fn an_optional_credential_missing_is_shown_not_a_problem() {
        let s = Sources::fixed(None, vec![], &[("KEY", "v")]);
        let mut r = req(&["KEY", "KEY_2"]);
        r[1].optional = true;
        let out = CredentialStore::load(&s, &r);
        assert!(
            !out.problems
                .iter()
                .any(|p| matches!(p, CredProblem::Missing { .. })),
            "{:?}",
            out.problems
        );
        let st = out.store.states(&r);
        assert_eq!(st[1].problems, vec!["not set (optional)".to_string()]);
        assert!(!st[1].present && st[1].optional && !st[0].optional);
        // The same name required by another feed is missing after all.
        let mut both = r.clone();
        both.push(Required {
            feed: "other".into(),
            optional: false,
            ..r[1].clone()
        });
        assert!(!all_optional(&both, "KEY_2") && all_optional(&r, "KEY_2"));
        let out = CredentialStore::load(&s, &both);
        assert!(
            out.problems
                .iter()
                .any(|p| matches!(p, CredProblem::Missing { name, .. } if name == "KEY_2"))
        );
    }

    #[test]
    fn format_problems_reported_per_name() {
        let s = Sources::fixed(None, vec![], &[("T", " padded")]);
        let out = CredentialStore::load(&s, &req(&["T"]));
        assert!(
            out.problems
                .iter()
                .any(|p| matches!(p, CredProblem::Format { name, .. } if name == "T"))
        );
        let st = out.store.states(&req(&["T"]));
        assert!(st[0].problems.iter().any(|p| p.contains("whitespace")));
    }
}
