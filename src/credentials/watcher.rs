//! The credentials watcher: an inotify thread that says "credentials changed".
//!
//! It watches the *folders* of the credential files, not the files, so every
//! way of changing a file is seen: write-temp-and-rename (editors, `sed -i`,
//! `set-credential`), `cp`, truncate-and-write, delete-and-recreate. For a
//! file that is a symlink it also watches the folder of the link's target
//! (following chains), so both a symlink swap and a write to the target are
//! seen; targets are recomputed after every event (a swap is an event in a
//! watched folder), so after a swap the new target's folder is watched too.
//! Events are filtered to the watched file names.
//!
//! A finished write runs the callback at once: a file renamed into place
//! (`IN_MOVED_TO`) or closed after writing (`IN_CLOSE_WRITE`) is complete,
//! and waiting would only delay the rotation. Every other event (a write
//! with the file still open, a truncation, a create, a delete, a rename
//! away, a mode change) is a step of a change still under way: those are
//! debounced, the callback runs once, `debounce` after the last of them,
//! unless a finished write comes first (a step after a finished write is a
//! new change, debounced again). So an editor that deletes and
//! recreates, or `cp` that truncates and writes, is read once it has closed
//! the file, and a writer that keeps the file open is read when it pauses.
//!
//! A folder that does not exist yet is retried on every tick (100 ms); when
//! it appears the callback runs (debounced), as the file may have come with
//! it. A folder that is deleted is dropped and retried the same way. While
//! every folder is watched and no change is being debounced there is
//! nothing to retry: the thread sleeps until an event (with a backstop
//! refresh every [`IDLE_TICK`]) instead of waking ten times a second.
//!
//! The thread sleeps in `poll(2)` on the inotify descriptor and an eventfd
//! (`crate::stopfd`) that [`Watcher::stop`] (or drop) wakes, so a stop
//! wakes it at once; stop then joins it.

use crate::stopfd::{StopFd, Woken};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the thread retries missing folders.
const TICK: Duration = Duration::from_millis(100);
/// How often it refreshes anyway when nothing is missing (a backstop: the
/// agent's periodic credential check re-reads the files on its own).
const IDLE_TICK: Duration = Duration::from_secs(60);
/// Longest symlink chain followed.
const MAX_LINKS: usize = 8;

/// A running watcher thread.
pub struct Watcher {
    /// Written once to stop the thread; it polls this beside inotify.
    stop: Arc<StopFd>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching. `on_change` runs on the watcher thread, once per
    /// debounced burst of changes to any of `files`.
    pub fn start(
        files: &[PathBuf],
        debounce: Duration,
        on_change: Box<dyn FnMut() + Send>,
    ) -> io::Result<Watcher> {
        let files = absolute(files)?;
        let mut first = Some(WatchState::new(files.clone())?);
        let stop = Arc::new(StopFd::new()?);
        let (stop2, stopping) = (stop.clone(), stop.clone());
        let mut on_change = on_change;
        // A panic (a bug) restarts the thread with a new inotify instance;
        // what changed meanwhile went unseen, so the restart counts as a
        // change.
        let thread = crate::threads::spawn_isolated(
            "cred-watcher",
            crate::threads::SMALL_STACK,
            crate::threads::Restart::WithBackoff {
                stopping: Box::new(move || stopping.is_woken()),
            },
            move || {
                let state = match first.take() {
                    Some(s) => s,
                    None => match WatchState::new(files.clone()) {
                        Ok(s) => {
                            on_change();
                            s
                        }
                        Err(e) => {
                            log::warn!(
                                "cannot watch credential files again after the watcher's crash ({e}); changes are seen on the periodic check or a reload"
                            );
                            return;
                        }
                    },
                };
                run(state, debounce, &mut *on_change, &stop2)
            },
        )?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (it wakes at once).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn absolute(files: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let cwd = std::env::current_dir()?;
    Ok(files
        .iter()
        .map(|f| {
            if f.is_absolute() {
                f.clone()
            } else {
                cwd.join(f)
            }
        })
        .collect())
}

struct WatchState {
    inotify: Inotify,
    files: Vec<PathBuf>,
    /// Folder → the file names in it that matter.
    targets: BTreeMap<PathBuf, BTreeSet<OsString>>,
    watched: Vec<(WatchDescriptor, PathBuf)>,
}

impl WatchState {
    fn new(files: Vec<PathBuf>) -> io::Result<WatchState> {
        let mut state = WatchState {
            inotify: Inotify::init()?,
            files,
            targets: BTreeMap::new(),
            watched: Vec::new(),
        };
        state.refresh();
        Ok(state)
    }

    /// Recomputes the targets (symlinks may have moved) and watches every
    /// folder not watched yet. True when a folder that had been missing is
    /// now watched (its file may have appeared with it).
    fn refresh(&mut self) -> bool {
        let mut targets: BTreeMap<PathBuf, BTreeSet<OsString>> = BTreeMap::new();
        for f in &self.files {
            let mut cur = f.clone();
            for _ in 0..=MAX_LINKS {
                let (Some(dir), Some(name)) = (cur.parent(), cur.file_name()) else {
                    break;
                };
                targets
                    .entry(dir.to_path_buf())
                    .or_default()
                    .insert(name.to_os_string());
                match std::fs::read_link(&cur) {
                    Ok(t) => cur = if t.is_absolute() { t } else { dir.join(t) },
                    Err(_) => break,
                }
            }
        }
        let mut appeared = false;
        let had_missing = targets.keys().any(|d| !self.is_watched(d));
        for dir in targets.keys() {
            if self.is_watched(dir) {
                continue;
            }
            let mask = WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM
                | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::MODIFY
                | WatchMask::ATTRIB
                | WatchMask::DELETE_SELF
                | WatchMask::MOVE_SELF
                | WatchMask::ONLYDIR;
            if let Ok(wd) = self.inotify.watches().add(dir, mask) {
                self.watched.push((wd, dir.clone()));
                appeared = true;
            }
        }
        self.targets = targets;
        appeared && had_missing
    }

    /// Every folder that matters has a watch: nothing to retry.
    fn all_watched(&self) -> bool {
        self.targets.keys().all(|d| self.is_watched(d))
    }

    fn is_watched(&self, dir: &Path) -> bool {
        self.watched.iter().any(|(_, d)| d == dir)
    }

    /// Reads every queued event and says what the ones that concern a
    /// watched file amount to.
    fn drain(&mut self, buf: &mut [u8]) -> Seen {
        let mut seen = Seen::Nothing;
        loop {
            let events = match self.inotify.read_events(buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return seen,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("credentials watcher: reading inotify events failed: {e}");
                    return seen;
                }
            };
            let mut gone: Vec<WatchDescriptor> = Vec::new();
            for ev in events {
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    // Events were lost: whatever happened, read now.
                    seen = seen.then(Seen::Finished);
                    continue;
                }
                if !self.watched.iter().any(|(wd, _)| *wd == ev.wd) {
                    continue;
                }
                if ev
                    .mask
                    .intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF)
                {
                    // The folder itself went away: watch it again once it is back.
                    seen = seen.then(Seen::Step);
                    gone.push(ev.wd.clone());
                    continue;
                }
                // One folder reached by two spellings (a symlinked folder)
                // shares a descriptor: any of its names counts.
                let Some(name) = ev.name else { continue };
                if self
                    .watched
                    .iter()
                    .filter(|(wd, _)| *wd == ev.wd)
                    .any(|(_, dir)| self.targets.get(dir).is_some_and(|n| n.contains(name)))
                {
                    let finished = ev
                        .mask
                        .intersects(EventMask::MOVED_TO | EventMask::CLOSE_WRITE);
                    seen = seen.then(if finished { Seen::Finished } else { Seen::Step });
                }
            }
            for wd in gone {
                self.watched.retain(|(w, _)| *w != wd);
                let _ = self.inotify.watches().remove(wd);
            }
        }
    }
}

/// What a batch of events amounts to, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Nothing,
    /// A change under way (write without close, create, delete, ...): debounce.
    Step,
    /// A write that is complete (renamed into place, closed): act now.
    Finished,
    /// A finished write, then the first step of another change: act now,
    /// and again once that one settles.
    FinishedThenStep,
}

impl Seen {
    /// This batch followed by one more event (or batch) of kind `next`.
    fn then(self, next: Seen) -> Seen {
        match (self, next) {
            (s, Seen::Nothing) => s,
            // A finished write supersedes the steps before it.
            (_, Seen::Finished) => Seen::Finished,
            (Seen::Finished | Seen::FinishedThenStep, Seen::Step | Seen::FinishedThenStep) => {
                Seen::FinishedThenStep
            }
            (Seen::Nothing | Seen::Step, n) => n,
        }
    }
}

fn run(
    mut state: WatchState,
    debounce: Duration,
    on_change: &mut (dyn FnMut() + Send),
    stop: &StopFd,
) {
    let mut buf = [0u8; 8192];
    // When the last step of an unfinished change was seen.
    let mut pending: Option<Instant> = None;
    loop {
        let tick = if state.all_watched() { IDLE_TICK } else { TICK };
        let timeout = match pending {
            Some(t) => debounce.saturating_sub(t.elapsed()).min(tick),
            None => tick,
        };
        let seen = match stop.wait(&state.inotify, timeout) {
            Ok(Woken::Stop) => return,
            Ok(Woken::Ready) => state.drain(&mut buf),
            Ok(Woken::Timeout) | Err(_) => Seen::Nothing,
        };
        let seen = if state.refresh() {
            seen.then(Seen::Step)
        } else {
            seen
        };
        match seen {
            Seen::Finished => {
                pending = None;
                on_change();
            }
            Seen::FinishedThenStep => {
                pending = Some(Instant::now());
                on_change();
            }
            Seen::Step => pending = Some(Instant::now()),
            Seen::Nothing => {}
        }
        if pending.is_some_and(|t| t.elapsed() >= debounce) {
            pending = None;
            on_change();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::store::tests::temp_dir;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_finished_write_wins_over_the_steps_before_it_not_after() {
        use Seen::*;
        let fold = |events: &[Seen]| events.iter().fold(Nothing, |s, e| s.then(*e));
        assert_eq!(fold(&[]), Nothing);
        assert_eq!(fold(&[Step, Step]), Step);
        // Delete, create, write, close: one read, now.
        assert_eq!(fold(&[Step, Step, Step, Finished]), Finished);
        // Closed, then written again with the file open: read now and later.
        assert_eq!(fold(&[Finished, Step]), FinishedThenStep);
        assert_eq!(fold(&[Finished, Step, Finished]), Finished);
    }

    #[test]
    fn symlink_targets_are_followed() {
        let d = temp_dir("wlink");
        std::fs::create_dir(d.join("real")).unwrap();
        std::os::unix::fs::symlink("real/token.env", d.join("token.env")).unwrap();
        let mut st = WatchState {
            inotify: Inotify::init().unwrap(),
            files: vec![d.join("token.env")],
            targets: BTreeMap::new(),
            watched: Vec::new(),
        };
        st.refresh();
        assert!(st.targets[&d].contains(&OsString::from("token.env")));
        assert!(st.targets[&d.join("real")].contains(&OsString::from("token.env")));
        assert_eq!(st.watched.len(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stop_joins_promptly() {
        let d = temp_dir("wstop");
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let w = Watcher::start(
            &[d.join("missing/sub/creds.env")],
            Duration::from_millis(50),
            Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
        let t = Instant::now();
        w.stop();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(count.load(Ordering::SeqCst), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
