//! Kite's connection limits, checked at `config check` so a configuration
//! that cannot work is refused before it meets the broker: at most 3 000
//! instruments per ticker connection and 3 ticker connections per API key
//! (PROTOCOLS.md §3.4; Zerodha calls them soft limits that may change).
//! Each message says how to split the feeds.

use std::collections::BTreeMap;

pub const MAX_INSTRUMENTS_PER_CONNECTION: usize = 3_000;
pub const MAX_CONNECTIONS_PER_API_KEY: usize = 3;

/// One feed's instrument list, as configured.
pub fn check_instruments(feed: &str, instruments: &[u32]) -> Result<(), String> {
    let n = instruments.len();
    if n == 0 {
        return Err(format!(
            "feed {feed}: instruments is empty; list the instrument tokens to stream, e.g. instruments = [408065]"
        ));
    }
    if n > MAX_INSTRUMENTS_PER_CONNECTION {
        let feeds = n.div_ceil(MAX_INSTRUMENTS_PER_CONNECTION);
        let key_note = if feeds > MAX_CONNECTIONS_PER_API_KEY {
            format!(
                "; that is more than the {MAX_CONNECTIONS_PER_API_KEY} connections one API key allows, \
                 so the rest needs a second Kite Connect app (another account with its own API key)"
            )
        } else {
            String::new()
        };
        return Err(format!(
            "feed {feed}: {n} instruments, but Kite allows {MAX_INSTRUMENTS_PER_CONNECTION} per connection; \
             split them into {feeds} feeds of at most {MAX_INSTRUMENTS_PER_CONNECTION} instruments each, \
             on the same account{key_note}"
        ));
    }
    Ok(())
}

/// One ticker feed's use of an API key. `key` identifies the key: the
/// account name, or better the key's fingerprint (two accounts may hold
/// the same key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUse<'a> {
    pub feed: &'a str,
    pub key: &'a str,
    pub instruments: usize,
}

/// Every key used by more feeds than it has connections, one message each.
pub fn check_connections(uses: &[KeyUse<'_>]) -> Vec<String> {
    let mut by_key: BTreeMap<&str, Vec<&KeyUse<'_>>> = BTreeMap::new();
    for u in uses {
        by_key.entry(u.key).or_default().push(u);
    }
    let mut out = Vec::new();
    for (key, feeds) in by_key {
        if feeds.len() <= MAX_CONNECTIONS_PER_API_KEY {
            continue;
        }
        let names: Vec<&str> = feeds.iter().map(|u| u.feed).collect();
        let total: usize = feeds.iter().map(|u| u.instruments).sum();
        let capacity = MAX_CONNECTIONS_PER_API_KEY * MAX_INSTRUMENTS_PER_CONNECTION;
        let how = if total <= capacity {
            format!(
                "merge them into at most {MAX_CONNECTIONS_PER_API_KEY} feeds (they hold {total} instruments; \
                 each feed takes up to {MAX_INSTRUMENTS_PER_CONNECTION}), or move some to another account with its own API key"
            )
        } else {
            format!(
                "they hold {total} instruments, more than one key can stream ({capacity}); \
                 move feeds to another account with its own API key (a second Kite Connect app)"
            )
        };
        out.push(format!(
            "API key {key} is used by {} feeds ({}), but Kite allows {MAX_CONNECTIONS_PER_API_KEY} \
             ticker connections per API key; {how}",
            feeds.len(),
            names.join(", ")
        ));
    }
    out
}

/// The feeds beyond the third on one key, each with its key's message
/// from [`check_connections`]: `(index into uses, message)`, in order.
pub fn over_connection_limit(uses: &[KeyUse<'_>]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for message in check_connections(uses) {
        // check_connections names the key as "API key {key} ...".
        let Some(key) = uses
            .iter()
            .map(|u| u.key)
            .find(|k| message.starts_with(&format!("API key {k} is used by ")))
        else {
            continue;
        };
        out.extend(
            uses.iter()
                .enumerate()
                .filter(|(_, u)| u.key == key)
                .skip(MAX_CONNECTIONS_PER_API_KEY)
                .map(|(i, _)| (i, message.clone())),
        );
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instrument_counts() {
        let tokens = |n: usize| (0..n as u32).collect::<Vec<u32>>();
        assert!(check_instruments("k", &tokens(1)).is_ok());
        assert!(check_instruments("k", &tokens(3_000)).is_ok());
        let cases = [
            (0, "instruments is empty"),
            (
                3_001,
                "3001 instruments, but Kite allows 3000 per connection; split them into 2 feeds of at most 3000 instruments each, on the same account",
            ),
            (9_000, "split them into 3 feeds"),
            (
                9_001,
                "split them into 4 feeds of at most 3000 instruments each, on the same account; that is more than the 3 connections one API key allows",
            ),
        ];
        for (n, needle) in cases {
            let e = check_instruments("k", &tokens(n)).unwrap_err();
            assert!(e.starts_with("feed k: "), "{e}");
            assert!(e.contains(needle), "{n}: {e}");
        }
    }

    #[test]
    fn connections_per_key() {
        let u = |feed, key, instruments| KeyUse {
            feed,
            key,
            instruments,
        };
        assert!(
            check_connections(&[
                u("a", "main", 10),
                u("b", "main", 10),
                u("c", "main", 10),
                u("d", "other", 10)
            ])
            .is_empty()
        );
        let four = [
            u("a", "main", 100),
            u("b", "main", 200),
            u("c", "main", 300),
            u("d", "main", 400),
            u("e", "other", 1),
        ];
        let m = check_connections(&four);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0],
            "API key main is used by 4 feeds (a, b, c, d), but Kite allows 3 ticker connections per API key; \
             merge them into at most 3 feeds (they hold 1000 instruments; each feed takes up to 3000), \
             or move some to another account with its own API key"
        );
        let big = [
            u("a", "k", 3000),
            u("b", "k", 3000),
            u("c", "k", 3000),
            u("d", "k", 1),
        ];
        assert!(check_connections(&big)[0].contains("more than one key can stream (9000)"));
        // Two keys over the limit: one message each, in key order.
        let both: Vec<KeyUse> = ["x", "y"]
            .iter()
            .flat_map(|k| (0..4).map(move |_| u("f", k, 1)))
            .collect();
        let m = check_connections(&both);
        assert_eq!(m.len(), 2);
        assert!(m[0].starts_with("API key x") && m[1].starts_with("API key y"));
        // Reported at the fourth feed of each key (and any later one).
        let at: Vec<usize> = over_connection_limit(&both)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at, [3, 7]);
        let five: Vec<KeyUse> = (0..5).map(|_| u("f", "of account main", 1)).collect();
        let got = over_connection_limit(&five);
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3, 4]);
        assert!(
            got[0]
                .1
                .starts_with("API key of account main is used by 5 feeds"),
            "{}",
            got[0].1
        );
        assert!(over_connection_limit(&five[..3]).is_empty());
    }
}
