//! A simulator's fault in force, kept so that `set_fault` means something
//! a test can rely on: every change gets a generation and stays in the
//! history, so a connection thread that looks late still sees one-shot
//! faults (close once, reset) set and cleared between two of its turns;
//! each connection acknowledges the generation it has acted on (to the
//! [`Base`]), so `set_fault` returns only once the change is in force
//! everywhere.

use super::{Base, lock};
use std::fmt::Display;
use std::sync::Mutex;

struct State<F> {
    current: Option<F>,
    generation: u64,
    history: Vec<(u64, Option<F>)>,
}

impl<F: Clone> State<F> {
    fn set(&mut self, fault: Option<F>) -> u64 {
        self.generation += 1;
        self.history.push((self.generation, fault.clone()));
        self.current = fault;
        self.generation
    }
}

/// The fault in force (`None`: none), its generations and history.
pub(crate) struct Faults<F> {
    state: Mutex<State<F>>,
}

impl<F: Clone + Display> Faults<F> {
    /// `initial` is in force from the start, as generation 0.
    pub(crate) fn new(initial: Option<F>) -> Self {
        Faults {
            state: Mutex::new(State {
                current: initial,
                generation: 0,
                history: Vec::new(),
            }),
        }
    }

    /// The fault in force and its generation.
    pub(crate) fn current(&self) -> (Option<F>, u64) {
        let s = lock(&self.state);
        (s.current.clone(), s.generation)
    }

    /// Fault changes after generation `seen`, in order, and the latest generation.
    pub(crate) fn changes_since(&self, seen: u64) -> (Vec<Option<F>>, u64) {
        let s = lock(&self.state);
        if s.generation == seen {
            return (Vec::new(), seen);
        }
        let changes = s
            .history
            .iter()
            .filter(|(g, _)| *g > seen)
            .map(|(_, c)| c.clone())
            .collect();
        (changes, s.generation)
    }

    /// For connection `id`, which has acted on changes up to `*generation`:
    /// the changes since, in order, acknowledged as seen (the connection
    /// acts on them before it next looks).
    pub(crate) fn catch_up(&self, base: &Base, id: usize, generation: &mut u64) -> Vec<Option<F>> {
        let (changes, latest) = self.changes_since(*generation);
        *generation = latest;
        base.ack(id, latest);
        changes
    }

    /// Puts `fault` in force as a new generation and returns it.
    fn set(&self, fault: Option<F>) -> u64 {
        lock(&self.state).set(fault)
    }

    /// Changes the fault: `apply` does what the change means beyond the
    /// connections (closing or re-binding a listener), an event line says
    /// so, and the call returns once every connection that acknowledges
    /// generations has seen the change (at most about a second).
    pub(crate) fn change(&self, base: &Base, fault: Option<F>, apply: impl FnOnce(Option<&F>)) {
        let generation = self.set(fault.clone());
        apply(fault.as_ref());
        base.event(match &fault {
            Some(f) => format!("fault set: {f}"),
            None => "fault cleared".into(),
        });
        base.wait_seen(generation);
    }

    /// Ends a one-shot fault if it is still the one in force (a new
    /// generation, not waited on: the connection that used it up is the
    /// one asking).
    pub(crate) fn take_once(&self, which: &F) -> bool
    where
        F: PartialEq,
    {
        // One lock for the test and the change: two connections must not
        // both use up the same one-shot fault.
        let mut s = lock(&self.state);
        let in_force = s.current.as_ref() == Some(which);
        if in_force {
            s.set(None);
        }
        in_force
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn changes_are_kept_in_order_and_one_shots_end() {
        let base = Base::new(None);
        let f = Faults::new(Some("a".to_string()));
        assert_eq!(f.current(), (Some("a".into()), 0));
        f.change(&base, Some("b".into()), |_| {});
        f.change(&base, None, |_| {});
        assert_eq!(f.changes_since(0), (vec![Some("b".into()), None], 2));
        assert_eq!(f.changes_since(2), (vec![], 2));
        f.change(&base, Some("once".into()), |_| {});
        assert!(!f.take_once(&"other".to_string()));
        assert!(f.take_once(&"once".to_string()));
        assert_eq!(f.current(), (None, 4));
    }

    #[test]
    fn a_change_waits_for_every_connection_to_acknowledge_it() {
        let base = Arc::new(Base::new(None));
        let f = Arc::new(Faults::<String>::new(None));
        base.ack(7, 0);
        let (f2, b2) = (f.clone(), base.clone());
        let started = Instant::now();
        let setter = std::thread::spawn(move || f2.change(&b2, Some("x".into()), |_| {}));
        // The change is in force at once, and the setter waits for the ack.
        let deadline = Instant::now() + Duration::from_secs(5);
        while f.current().1 != 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(f.current(), (Some("x".into()), 1));
        assert!(!setter.is_finished());
        base.ack(7, 1);
        setter.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
