//! Signals → events for the main loop, on a dedicated signal-hook thread.
//!
//! SIGTERM and SIGINT mean "stop gracefully", SIGHUP means "reload",
//! SIGUSR1 "write every feed's flight recorder" (`brokerguard blackbox`),
//! SIGUSR2 "step down" (failover: hand the lease to the standby). The
//! thread only translates and forwards; main decides what to do.
//!
//! A second SIGINT or SIGTERM while a stop is already under way exits the
//! process at once, with the shell's code for death by that signal (130 for
//! SIGINT, 143 for SIGTERM). This is the one `process::exit` in the library,
//! and it has to live here: the operator (or systemd after TimeoutStopSec,
//! though it sends SIGKILL) asks again precisely because the graceful stop
//! is stuck, so the main thread, which is the one stuck, cannot be relied
//! on to act on it. The pidfile stays behind but its lock dies with the
//! process, so the next start takes it over.

use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::{Handle, Signals};

/// What a received signal asks of the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: stop gracefully.
    Stop,
    /// SIGHUP: reload configuration and credentials.
    Reload,
    /// SIGUSR1: write each feed's flight recorder to the runtime folder.
    DumpBlackbox,
    /// SIGUSR2: `brokerguard ha step-down`, hand the failover lease over.
    StepDown,
}

/// The running signal thread. Close it on shutdown ([`SignalThread::close`],
/// or drop it); after that the signals are no longer forwarded.
#[derive(Debug)]
pub struct SignalThread {
    handle: Handle,
    join: Option<JoinHandle<()>>,
}

impl SignalThread {
    /// Stops forwarding and joins the thread.
    pub fn close(mut self) {
        self.close_inner();
    }

    fn close_inner(&mut self) {
        self.handle.close();
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

impl Drop for SignalThread {
    fn drop(&mut self) {
        self.close_inner();
    }
}

/// Exit code for a second stop signal: 128 + the signal number, as a shell
/// reports a process killed by it.
pub fn forced_exit_code(signal: i32) -> i32 {
    128 + signal
}

/// Starts the signal thread; `deliver` is called on that thread for every
/// stop or reload request. Fails only if the handlers cannot be installed.
pub fn spawn<F: Fn(Signal) + Send + 'static>(deliver: F) -> io::Result<SignalThread> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])?;
    let handle = signals.handle();
    let closed = signals.handle();
    let mut stopping = false;
    // A panic (a bug, in `deliver`) restarts the loop on the same
    // handlers, remembering a stop already asked for.
    let join = crate::threads::spawn_isolated(
        "signals",
        crate::threads::SMALL_STACK,
        crate::threads::Restart::WithBackoff {
            stopping: Box::new(move || closed.is_closed()),
        },
        move || {
            for sig in signals.forever() {
                match sig {
                    SIGHUP => deliver(Signal::Reload),
                    SIGUSR1 => deliver(Signal::DumpBlackbox),
                    SIGUSR2 => deliver(Signal::StepDown),
                    SIGTERM | SIGINT if stopping => {
                        let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                        log::warn!(
                            "second {name} while stopping: exiting now without a clean stop"
                        );
                        log::logger().flush();
                        std::process::exit(forced_exit_code(sig));
                    }
                    SIGTERM | SIGINT => {
                        stopping = true;
                        deliver(Signal::Stop);
                    }
                    _ => {}
                }
            }
        },
    )?;
    Ok(SignalThread {
        handle,
        join: Some(join),
    })
}

/// Like [`spawn`], sending `map(signal)` on `tx` (e.g. into main's event
/// channel). A closed channel is ignored: main is already gone or going.
pub fn spawn_sender<T, M>(tx: mpsc::Sender<T>, map: M) -> io::Result<SignalThread>
where
    T: Send + 'static,
    M: Fn(Signal) -> T + Send + 'static,
{
    spawn(move |sig| {
        let _ = tx.send(map(sig));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_exit_codes_match_the_shell() {
        assert_eq!(forced_exit_code(SIGINT), 130);
        assert_eq!(forced_exit_code(SIGTERM), 143);
    }
}
