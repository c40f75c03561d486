//! Whether the agent is healthy: every feed it must have is live with data,
//! or quiet because its market is closed. One pure function, used by the
//! dead-man's switch heartbeat (and meant for `/readyz` too, so both say
//! the same thing).

use crate::calendar::MarketState;
use crate::feed::health::HealthData;
use crate::feed::state::FeedState;

/// Why the agent is not ready: the feeds that are neither live nor
/// expectedly quiet, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    pub feeds: Vec<String>,
}

/// Ready when every feed for which `required(name)` holds is `live` (data
/// has arrived on its connection: a connection is never live on its
/// handshake alone) or its market is closed (quiet is expected then).
/// Feeds that are not required (`required = false`) are left aside; an
/// agent without feeds is ready.
pub fn ready(feeds: &[HealthData], required: &dyn Fn(&str) -> bool) -> Result<(), NotReady> {
    let down: Vec<String> = feeds
        .iter()
        .filter(|f| required(&f.name))
        .filter(|f| !(f.state == FeedState::Live || f.market == Some(MarketState::Closed)))
        .map(|f| f.name.clone())
        .collect();
    if down.is_empty() {
        Ok(())
    } else {
        Err(NotReady { feeds: down })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Mono;
    use std::time::SystemTime;

    fn feed(name: &str, state: FeedState, market: Option<MarketState>) -> HealthData {
        let mut h = crate::feed::health::FeedHealth::new(
            name,
            "generic",
            Mono::default(),
            SystemTime::UNIX_EPOCH,
        )
        .snapshot();
        h.state = state;
        h.market = market;
        h
    }

    /// Feeds, which are required, and the expected not-ready names.
    type Case<'a> = (
        Vec<HealthData>,
        &'a dyn Fn(&str) -> bool,
        Result<(), Vec<&'a str>>,
    );

    #[test]
    fn readiness_table() {
        use FeedState::*;
        let all = |_: &str| true;
        let not_b = |n: &str| n != "b";
        let cases: Vec<Case> = vec![
            (vec![], &all, Ok(())),
            (vec![feed("a", Live, None)], &all, Ok(())),
            (
                vec![feed("a", Live, None), feed("b", Backoff, None)],
                &all,
                Err(vec!["b"]),
            ),
            (
                vec![feed("a", Live, None), feed("b", Backoff, None)],
                &not_b,
                Ok(()),
            ),
            (
                vec![feed("a", Backoff, Some(MarketState::Closed))],
                &all,
                Ok(()),
            ),
            (
                vec![feed("a", Connecting, Some(MarketState::Open))],
                &all,
                Err(vec!["a"]),
            ),
            (vec![feed("a", Parked, None)], &all, Err(vec!["a"])),
        ];
        for (i, (feeds, required, want)) in cases.into_iter().enumerate() {
            let got = ready(&feeds, required).map_err(|e| e.feeds);
            let want = want.map_err(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(got, want, "case {i}");
        }
    }
}
