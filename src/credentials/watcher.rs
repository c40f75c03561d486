//! The credentials watcher: an inotify thread that says "credentials changed".
//!
//! It watches the *folders* of the credential files, not the files, so every
//! way of changing a file is seen: write-temp-and-rename (editors, `sed -i`,
//! `set-credential`), `cp`, truncate-and-write, delete-and-recreate. For a
//! file that is a symlink it also watches the folder of the link's target
//! (following chains), so both a symlink swap and a write to the target are
//! seen; targets are recomputed on every tick, so after a swap the new
//! target's folder is watched too. Events are filtered to the watched file
//! names, and a burst is debounced: the callback runs once, `debounce` after
//! the last event.
//!
//! A folder that does not exist yet is retried on every tick (100 ms); when
//! it appears the callback runs, as the file may have come with it. A folder
//! that is deleted is dropped and retried the same way.
//!
//! The thread sleeps in `poll(2)` with a 100 ms timeout so it sees the stop
//! flag promptly; [`Watcher::stop`] (or drop) joins it.

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the thread checks the stop flag and retries missing folders.
const TICK: Duration = Duration::from_millis(100);
/// Longest symlink chain followed.
const MAX_LINKS: usize = 8;

/// A running watcher thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
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
        let inotify = Inotify::init()?;
        let mut state = WatchState {
            inotify,
            files: absolute(files)?,
            targets: BTreeMap::new(),
            watched: Vec::new(),
        };
        state.refresh();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cred-watcher".into())
            .spawn(move || run(state, debounce, on_change, &stop2))?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (at most about one tick).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
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

    fn is_watched(&self, dir: &Path) -> bool {
        self.watched.iter().any(|(_, d)| d == dir)
    }

    /// Reads every queued event; true when one concerns a watched file.
    fn drain(&mut self, buf: &mut [u8]) -> bool {
        let mut relevant = false;
        loop {
            let events = match self.inotify.read_events(buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return relevant,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("credentials watcher: reading inotify events failed: {e}");
                    return relevant;
                }
            };
            let mut gone: Vec<WatchDescriptor> = Vec::new();
            for ev in events {
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    relevant = true;
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
                    relevant = true;
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
                    relevant = true;
                }
            }
            for wd in gone {
                self.watched.retain(|(w, _)| *w != wd);
                let _ = self.inotify.watches().remove(wd);
            }
        }
    }
}

fn run(
    mut state: WatchState,
    debounce: Duration,
    mut on_change: Box<dyn FnMut() + Send>,
    stop: &AtomicBool,
) {
    let mut buf = [0u8; 8192];
    let mut last_event: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let timeout = match last_event {
            Some(t) => debounce.saturating_sub(t.elapsed()).min(TICK),
            None => TICK,
        };
        let mut pfd = libc::pollfd {
            fd: state.inotify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().max(1) as libc::c_int) };
        if n > 0 && state.drain(&mut buf) {
            last_event = Some(Instant::now());
        }
        if state.refresh() {
            last_event = Some(Instant::now());
        }
        if let Some(t) = last_event {
            if t.elapsed() >= debounce {
                last_event = None;
                on_change();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::store::tests::temp_dir;
    use std::sync::atomic::AtomicUsize;

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
