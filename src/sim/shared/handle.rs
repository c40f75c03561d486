//! The methods every simulator's handle offers a test in the same words
//! (`set_fault`, `clear_fault`, `fault`, `stats`, `wait_for`, `stop`, and
//! stopping when dropped), written once. They are inherent methods of
//! each public handle type, so tests and benches call them without a trait
//! in scope; hence a macro rather than a generic handle.

/// Implements the shared handle methods for `$handle`, a struct with a
/// `shared: Arc<Shared>` field where `Shared` implements
/// [`Host`](super::Host), has `stats: Watched<$stats>`, `faults:
/// Faults<$fault>` and `fn set_fault(&self, Option<$fault>)`.
macro_rules! handle_methods {
    ($handle:ident, fault: $fault:ty, stats: $stats:ty) => {
        impl $handle {
            /// Sets the fault; returns once every open connection has seen
            /// it (at most about a second), so the next step of a test
            /// meets it.
            pub fn set_fault(&self, fault: $fault) {
                self.shared.set_fault(Some(fault));
            }

            /// Ends the fault (where it had closed the listener, the port
            /// is bound again).
            pub fn clear_fault(&self) {
                self.shared.set_fault(None);
            }

            pub fn fault(&self) -> Option<$fault> {
                self.shared.faults.current().0
            }

            pub fn stats(&self) -> $stats {
                self.shared.stats.snapshot()
            }

            /// Waits until `pred` holds for the stats, at most `deadline` long.
            pub fn wait_for(
                &self,
                pred: impl Fn(&$stats) -> bool,
                deadline: std::time::Duration,
            ) -> bool {
                self.shared.stats.wait_for(pred, deadline)
            }

            /// Stops accepting, ends every connection and joins every
            /// thread (within about a second). Idempotent.
            pub fn stop(&self) {
                use $crate::sim::shared::Host;
                self.shared
                    .base()
                    .shutdown(|| self.shared.close_listeners());
            }
        }

        impl Drop for $handle {
            fn drop(&mut self) {
                self.stop();
            }
        }
    };
}

pub(crate) use handle_methods;
