//! What reaches the main thread: signals, file changes, feed state changes.

/// One event for the main loop (std::sync::mpsc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// SIGTERM or SIGINT: stop gracefully.
    Stop,
    /// SIGHUP: reload configuration and credentials.
    Reload,
    /// The watcher saw a credential file change.
    CredentialsChanged,
    /// A feed changed state: rewrite status now.
    FeedStateChanged,
    /// SIGUSR1: write each feed's flight recorder (`brokerguard blackbox`).
    DumpBlackbox,
    /// SIGUSR2: step down from failover leadership.
    StepDown,
    /// The failover role changed: start or stop the private feeds.
    HaChanged,
}
