//! The IBKR feed's own configuration rules (`host`, `port`, `client_id`,
//! `client_id_range`, `contracts`, `reset_window`) as plain values and
//! checks the registry calls, and the rule that picks the next client id
//! after TWS refused one with 326.

use super::contract::{self, Contract};
use super::reset_window::ResetWindow;
use std::fmt;

/// TWS and IB Gateway listen on the local machine unless told otherwise.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// TWS paper trading's socket port (PROTOCOLS.md §4.7).
pub const DEFAULT_PORT: u16 = 7497;
/// The client id when neither `client_id` nor `client_id_range` is given.
pub const DEFAULT_CLIENT_ID: i32 = 1;
/// One TWS session accepts at most 32 clients (connection.html), so a
/// larger range only delays the error.
pub const MAX_RANGE_LEN: i64 = 32;

/// One problem with the feed's IBKR keys, named by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingProblem {
    /// e.g. `client_id_range`, `contracts[1].currency`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for SettingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> SettingProblem {
    SettingProblem {
        key: key.into(),
        message: message.into(),
    }
}

/// The client ids a feed may use: the first it tries, and the range it
/// rotates through on 326.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIds {
    pub first: i32,
    /// Inclusive; `None` means only `first`.
    pub range: Option<(i32, i32)>,
}

impl ClientIds {
    /// Checks `client_id` and `client_id_range = [first, last]`: first ≤
    /// last, at most 32 ids, ids not negative, and `client_id` inside the
    /// range when both are given. Without `client_id`, the range's first id
    /// is tried first.
    pub fn from_config(
        client_id: Option<i64>,
        range: Option<&[i64]>,
    ) -> Result<ClientIds, Vec<SettingProblem>> {
        let mut problems = Vec::new();
        let id = match client_id {
            None => None,
            Some(v) => match i32::try_from(v) {
                Ok(v) if v >= 0 => Some(v),
                _ => {
                    problems.push(problem(
                        "client_id",
                        format!("{v} must be a whole number from 0 to {}", i32::MAX),
                    ));
                    None
                }
            },
        };
        let range = match range {
            None => None,
            Some(&[first, last]) => {
                let bounds = (i32::try_from(first), i32::try_from(last));
                match bounds {
                    (Ok(a), Ok(b)) if a >= 0 && b >= 0 => {
                        if a > b {
                            problems.push(problem(
                                "client_id_range",
                                format!("[{a}, {b}]: the first id must not be above the last"),
                            ));
                            None
                        } else if i64::from(b) - i64::from(a) + 1 > MAX_RANGE_LEN {
                            problems.push(problem(
                                "client_id_range",
                                format!(
                                    "[{a}, {b}] holds {} ids; one TWS accepts at most {MAX_RANGE_LEN} clients",
                                    i64::from(b) - i64::from(a) + 1
                                ),
                            ));
                            None
                        } else {
                            Some((a, b))
                        }
                    }
                    _ => {
                        problems.push(problem(
                            "client_id_range",
                            format!(
                                "[{first}, {last}]: ids must be whole numbers from 0 to {}",
                                i32::MAX
                            ),
                        ));
                        None
                    }
                }
            }
            Some(other) => {
                problems.push(problem(
                    "client_id_range",
                    format!(
                        "must be two ids [first, last], e.g. [10, 19]; got {} value(s)",
                        other.len()
                    ),
                ));
                None
            }
        };
        if let (Some(id), Some((a, b))) = (id, range) {
            if id < a || id > b {
                problems.push(problem(
                    "client_id",
                    format!("{id} is outside client_id_range [{a}, {b}]"),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ClientIds {
            first: id.or(range.map(|r| r.0)).unwrap_or(DEFAULT_CLIENT_ID),
            range,
        })
    }

    /// The id to try after `rejected` was refused with 326: the next one
    /// in the range, wrapping around, or `None` when there is no other id
    /// (the adapter then waits a short backoff and tries the same id, since
    /// 326 right after a reconnect is usually TWS still holding the old
    /// socket). Once every id of the range has been refused in a row
    /// (`refused_in_a_row` ≥ the range's length) it is `None` too.
    pub fn next_after(&self, rejected: i32, refused_in_a_row: u32) -> Option<i32> {
        let (a, b) = self.range?;
        let len = i64::from(b) - i64::from(a) + 1;
        if len <= 1 || i64::from(refused_in_a_row) >= len {
            return None;
        }
        if rejected < a || rejected > b {
            return Some(a);
        }
        Some(if rejected == b { a } else { rejected + 1 })
    }
}

/// The checked IBKR part of a feed's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct IbkrSettings {
    pub host: String,
    pub port: u16,
    pub client_ids: ClientIds,
    pub contracts: Vec<Contract>,
    pub reset_window: Option<ResetWindow>,
}

/// The raw values, as the configuration file gives them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IbkrKeys {
    pub host: Option<String>,
    pub port: Option<i64>,
    pub client_id: Option<i64>,
    pub client_id_range: Option<Vec<i64>>,
    pub contracts: Vec<Contract>,
    pub reset_window: Option<String>,
}

fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("must not be empty (default \"127.0.0.1\")".into());
    }
    let ok = host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
    (!ok).then(|| format!("\"{host}\" is not a host name or IP address"))
}

impl IbkrSettings {
    /// Checks every key and reports every problem at once.
    pub fn from_keys(keys: &IbkrKeys) -> Result<IbkrSettings, Vec<SettingProblem>> {
        let mut problems = Vec::new();
        let host = keys
            .host
            .clone()
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        if let Some(m) = host_problem(&host) {
            problems.push(problem("host", m));
        }
        let port = match keys.port {
            None => DEFAULT_PORT,
            Some(p) => match u16::try_from(p) {
                Ok(p) if p > 0 => p,
                _ => {
                    problems.push(problem(
                        "port",
                        format!("{p} must be a TCP port from 1 to 65535 (TWS 7497 paper / 7496 live, Gateway 4002 / 4001)"),
                    ));
                    DEFAULT_PORT
                }
            },
        };
        let client_ids =
            match ClientIds::from_config(keys.client_id, keys.client_id_range.as_deref()) {
                Ok(ids) => ids,
                Err(p) => {
                    problems.extend(p);
                    ClientIds {
                        first: DEFAULT_CLIENT_ID,
                        range: None,
                    }
                }
            };
        for (i, c) in keys.contracts.iter().enumerate() {
            for p in contract::check(c) {
                problems.push(problem(format!("contracts[{i}].{}", p.key), p.message));
            }
            if let Some(j) = keys.contracts[..i].iter().position(|d| d == c) {
                problems.push(problem(
                    format!("contracts[{i}]"),
                    format!("is the same contract as contracts[{j}] ({})", c.label()),
                ));
            }
        }
        let reset_window = match keys.reset_window.as_deref().map(str::parse::<ResetWindow>) {
            None => None,
            Some(Ok(w)) => Some(w),
            Some(Err(e)) => {
                problems.push(problem("reset_window", e));
                None
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(IbkrSettings {
            host,
            port,
            client_ids,
            contracts: keys.contracts.clone(),
            reset_window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(id: Option<i64>, range: Option<&[i64]>) -> Result<ClientIds, Vec<String>> {
        ClientIds::from_config(id, range)
            .map_err(|p| p.into_iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn client_id_rules() {
        assert_eq!(
            ids(None, None),
            Ok(ClientIds {
                first: 1,
                range: None
            })
        );
        assert_eq!(
            ids(Some(7), None),
            Ok(ClientIds {
                first: 7,
                range: None
            })
        );
        assert_eq!(
            ids(None, Some(&[10, 19])),
            Ok(ClientIds {
                first: 10,
                range: Some((10, 19))
            })
        );
        assert_eq!(
            ids(Some(12), Some(&[10, 19])),
            Ok(ClientIds {
                first: 12,
                range: Some((10, 19))
            })
        );
        assert_eq!(
            ids(Some(5), Some(&[10, 19])),
            Err(vec![
                "client_id: 5 is outside client_id_range [10, 19]".to_string()
            ])
        );
        assert_eq!(
            ids(None, Some(&[19, 10])),
            Err(vec![
                "client_id_range: [19, 10]: the first id must not be above the last".to_string()
            ])
        );
        assert!(ids(None, Some(&[1])).unwrap_err()[0].contains("two ids"));
        assert!(ids(None, Some(&[0, 40])).unwrap_err()[0].contains("at most 32"));
        assert!(ids(Some(-1), None).unwrap_err()[0].starts_with("client_id: -1"));
        assert!(ids(Some(1 << 40), None).is_err());
        assert!(ids(None, Some(&[-3, 2])).is_err());
    }

    #[test]
    fn next_client_id_rotates_through_the_range() {
        let r = ClientIds {
            first: 10,
            range: Some((10, 12)),
        };
        let table = [
            (10, 1, Some(11)),
            (11, 2, Some(12)),
            (12, 1, Some(10)),
            (12, 3, None),
            (99, 1, Some(10)),
        ];
        for (rejected, n, want) in table {
            assert_eq!(r.next_after(rejected, n), want, "{rejected} {n}");
        }
        let single = ClientIds {
            first: 3,
            range: None,
        };
        assert_eq!(single.next_after(3, 1), None);
        let one = ClientIds {
            first: 3,
            range: Some((3, 3)),
        };
        assert_eq!(one.next_after(3, 1), None);
    }

    #[test]
    fn keys_get_defaults_and_every_problem_at_once() {
        let s = IbkrSettings::from_keys(&IbkrKeys::default()).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 7497));
        assert!(s.contracts.is_empty());
        let bad = IbkrKeys {
            host: Some("tws host".into()),
            port: Some(70000),
            client_id: Some(5),
            client_id_range: Some(vec![10, 19]),
            contracts: vec![
                Contract::stock("AAPL", "SMART", "USD"),
                Contract::stock("AAPL", "SMART", "USD"),
                Contract::stock("MSFT", "", "usd"),
            ],
            reset_window: Some("25:00-01:00".into()),
        };
        let keys: Vec<String> = IbkrSettings::from_keys(&bad)
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "host",
                "port",
                "client_id",
                "contracts[1]",
                "contracts[2].exchange",
                "contracts[2].currency",
                "reset_window"
            ]
        );
    }
}
