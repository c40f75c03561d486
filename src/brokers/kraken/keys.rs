//! Kraken key sets and the fallback between them.
//!
//! An account may have up to three key sets: `KRAKEN_<ACCOUNT>_API_KEY` /
//! `_API_SECRET` (set 1), and `…_API_KEY_2` / `…_API_SECRET_2`, `…_3` as
//! fallbacks. [`KeyFallback`] is the pure state machine that says which set
//! is in use: repeated nonce conflicts or a lockout move to the next set
//! (`alert=key_fallback`), and after `key_fallback_reset` (default 1 h)
//! without a key error it goes back to set 1. Time comes in as [`Mono`].
//! One `KeyFallback` per account and process: feeds of the same account
//! share it (the adapter keeps it behind a mutex).

use super::sign::{ApiSecret, SecretFormatError};
use crate::alert::{Alert, AlertKind};
use crate::clock::Mono;
use crate::secret::Secret;
use std::fmt;
use std::time::Duration;

/// Key sets an account may have: 1 and the fallbacks 2 and 3.
pub const MAX_KEY_SETS: u8 = 3;
/// Default `key_fallback_reset`: back to set 1 after this long without a key error.
pub const DEFAULT_FALLBACK_RESET: Duration = Duration::from_secs(3600);

/// The credential names of one key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySetNames {
    pub index: u8,
    pub key: String,
    pub secret: String,
}

/// `KRAKEN_<ACCOUNT>_API_KEY[_n]` / `…_API_SECRET[_n]` for `index` 1 to 3
/// (the account upper-cased, any other character than a letter or digit
/// as `_`, the rule of every credential name).
pub fn key_set_names(account: &str, index: u8) -> KeySetNames {
    let acct = crate::credentials::required::name_part(account);
    let suffix = if index <= 1 {
        String::new()
    } else {
        format!("_{index}")
    };
    KeySetNames {
        index,
        key: format!("KRAKEN_{acct}_API_KEY{suffix}"),
        secret: format!("KRAKEN_{acct}_API_SECRET{suffix}"),
    }
}

/// The names of every key set an account may have, set 1 first.
pub fn all_key_set_names(account: &str) -> Vec<KeySetNames> {
    (1..=MAX_KEY_SETS)
        .map(|i| key_set_names(account, i))
        .collect()
}

/// One API key and its decoded private key.
#[derive(Clone, Debug)]
pub struct KeySet {
    pub index: u8,
    pub key: Secret,
    pub secret: ApiSecret,
}

impl KeySet {
    /// The id the nonce store files this key's counter under: the API
    /// key's fingerprint (a nonce belongs to the key, not to the secret).
    pub fn key_id(&self) -> String {
        self.key.fingerprint()
    }
}

/// Why a key set cannot be used. Names credentials, never values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySetProblem {
    /// One of the pair is set, the other is not.
    Incomplete { index: u8, missing: String },
    /// The private key is not base64 of 64 bytes.
    BadSecret {
        index: u8,
        name: String,
        error: SecretFormatError,
    },
}

impl fmt::Display for KeySetProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySetProblem::Incomplete { index, missing } => write!(
                f,
                "key set {index} is incomplete: {missing} is not set; add it with `{}`",
                crate::fixcmd::command(&format!("set-credential {missing}"))
            ),
            KeySetProblem::BadSecret { name, error, .. } => write!(f, "{name} {error}"),
        }
    }
}

/// The usable key sets of an account, and what is wrong with the others.
#[derive(Clone, Debug)]
pub struct KeySets {
    /// Set 1 first, then the usable fallbacks in order.
    pub sets: Vec<KeySet>,
    /// Fallback sets that were skipped, and why.
    pub skipped: Vec<KeySetProblem>,
}

/// Why an account has no usable first key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySetsError {
    /// Neither credential of set 1 is set.
    Missing { key: String, secret: String },
    /// Set 1 exists but cannot be used.
    Unusable(KeySetProblem),
}

impl fmt::Display for KeySetsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySetsError::Missing { key, secret } => write!(
                f,
                "{key} and {secret} are not set; add them with `{}` and `{}`",
                crate::fixcmd::command(&format!("set-credential {key}")),
                crate::fixcmd::command(&format!("set-credential {secret}"))
            ),
            KeySetsError::Unusable(p) => p.fmt(f),
        }
    }
}

impl std::error::Error for KeySetsError {}

/// Reads an account's key sets through `lookup`. Set 1 must be complete
/// and well formed; a fallback set that is not is skipped and reported.
pub fn load_key_sets(
    account: &str,
    lookup: &dyn Fn(&str) -> Option<Secret>,
) -> Result<KeySets, KeySetsError> {
    let mut sets = Vec::new();
    let mut skipped = Vec::new();
    for names in all_key_set_names(account) {
        let index = names.index;
        let loaded = match (lookup(&names.key), lookup(&names.secret)) {
            (None, None) if index == 1 => {
                return Err(KeySetsError::Missing {
                    key: names.key,
                    secret: names.secret,
                });
            }
            (None, None) => continue,
            (Some(_), None) => Err(KeySetProblem::Incomplete {
                index,
                missing: names.secret.clone(),
            }),
            (None, Some(_)) => Err(KeySetProblem::Incomplete {
                index,
                missing: names.key.clone(),
            }),
            (Some(key), Some(secret)) => ApiSecret::from_base64(&secret)
                .map(|secret| KeySet { index, key, secret })
                .map_err(|error| KeySetProblem::BadSecret {
                    index,
                    name: names.secret.clone(),
                    error,
                }),
        };
        match loaded {
            Ok(set) => sets.push(set),
            Err(p) if index == 1 => return Err(KeySetsError::Unusable(p)),
            Err(p) => skipped.push(p),
        }
    }
    Ok(KeySets { sets, skipped })
}

/// Why the next key set was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// `EAPI:Invalid nonce` again after a fresh draw.
    NonceConflict,
    /// `EGeneral:Temporary lockout`.
    Lockout,
}

impl FallbackReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::NonceConflict => "nonce_conflict",
            FallbackReason::Lockout => "lockout",
        }
    }
}

/// A change of the key set in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyEvent {
    /// Moved to a fallback set.
    Switched {
        account: String,
        from: u8,
        to: u8,
        reason: FallbackReason,
    },
    /// Back to set 1 after `key_fallback_reset` without a key error.
    Reset {
        account: String,
        from: u8,
        quiet_for: Duration,
    },
}

impl KeyEvent {
    /// `alert=key_fallback account=… from=1 to=2 reason=…` for a switch;
    /// a return to set 1 is good news and only logged.
    pub fn alert(&self) -> Option<Alert> {
        match self {
            KeyEvent::Switched {
                account,
                from,
                to,
                reason,
            } => Some(
                Alert::new(AlertKind::KeyFallback)
                    .with("account", account)
                    .with("from", from)
                    .with("to", to)
                    .with("reason", reason.as_str()),
            ),
            KeyEvent::Reset { .. } => None,
        }
    }

    /// A line for the operator's log.
    pub fn message(&self) -> String {
        match self {
            KeyEvent::Switched {
                account,
                from,
                to,
                reason,
            } => format!(
                "kraken account {account}: key set {from} failed ({}), using key set {to}",
                reason.as_str()
            ),
            KeyEvent::Reset {
                account,
                from,
                quiet_for,
            } => format!(
                "kraken account {account}: back to key set 1 from key set {from} after {} without a key error",
                crate::timefmt::human(*quiet_for)
            ),
        }
    }
}

/// Which key set of one account is in use, over time.
#[derive(Clone, Debug)]
pub struct KeyFallback {
    account: String,
    /// Indices of the usable sets, ascending; the first is 1.
    available: Vec<u8>,
    /// Position in `available` of the set in use.
    current: usize,
    reset_after: Duration,
    last_key_error: Option<Mono>,
}

impl KeyFallback {
    /// `available`: the indices of the usable sets (see [`load_key_sets`]).
    pub fn new(account: &str, available: &[u8], reset_after: Duration) -> Self {
        let mut available: Vec<u8> = available.to_vec();
        available.sort_unstable();
        available.dedup();
        if available.is_empty() {
            available.push(1);
        }
        KeyFallback {
            account: account.to_string(),
            available,
            current: 0,
            reset_after,
            last_key_error: None,
        }
    }

    /// For the sets that [`load_key_sets`] found usable.
    pub fn for_sets(account: &str, sets: &KeySets, reset_after: Duration) -> Self {
        let idx: Vec<u8> = sets.sets.iter().map(|s| s.index).collect();
        Self::new(account, &idx, reset_after)
    }

    /// The account, as configured.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The key set in use (1, 2 or 3), for status and doctor.
    pub fn in_use(&self) -> u8 {
        self.available.get(self.current).copied().unwrap_or(1)
    }

    /// The credential names of the set in use.
    pub fn names_in_use(&self) -> KeySetNames {
        key_set_names(&self.account, self.in_use())
    }

    /// Whether a fallback set is in use.
    pub fn falling_back(&self) -> bool {
        self.current > 0
    }

    /// A key error happened now (it restarts the quiet period).
    pub fn key_error(&mut self, now: Mono) {
        self.last_key_error = Some(now);
    }

    /// Moves to the next usable set; `None` when the last one is in use
    /// (the error then stands).
    pub fn fall_back(&mut self, reason: FallbackReason, now: Mono) -> Option<KeyEvent> {
        self.key_error(now);
        if self.current + 1 >= self.available.len() {
            return None;
        }
        let from = self.in_use();
        self.current += 1;
        Some(KeyEvent::Switched {
            account: self.account.clone(),
            from,
            to: self.in_use(),
            reason,
        })
    }

    /// Back to set 1 once `reset_after` has passed since the last key error.
    pub fn tick(&mut self, now: Mono) -> Option<KeyEvent> {
        if self.current == 0 {
            return None;
        }
        let since = self.last_key_error.unwrap_or_default();
        let quiet_for = now.since(since);
        if quiet_for < self.reset_after {
            return None;
        }
        let from = self.in_use();
        self.current = 0;
        Some(KeyEvent::Reset {
            account: self.account.clone(),
            from,
            quiet_for,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(n: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(vec![3u8; n])
    }

    #[test]
    fn names_follow_the_account() {
        assert_eq!(
            all_key_set_names("user-daivon"),
            vec![
                KeySetNames {
                    index: 1,
                    key: "KRAKEN_USER_DAIVON_API_KEY".into(),
                    secret: "KRAKEN_USER_DAIVON_API_SECRET".into()
                },
                KeySetNames {
                    index: 2,
                    key: "KRAKEN_USER_DAIVON_API_KEY_2".into(),
                    secret: "KRAKEN_USER_DAIVON_API_SECRET_2".into()
                },
                KeySetNames {
                    index: 3,
                    key: "KRAKEN_USER_DAIVON_API_KEY_3".into(),
                    secret: "KRAKEN_USER_DAIVON_API_SECRET_3".into()
                },
            ]
        );
    }

    #[test]
    fn loading_sets_skips_broken_fallbacks_and_refuses_a_broken_first() {
        let env = |pairs: Vec<(&'static str, String)>| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| Secret::new(v.clone()))
            }
        };
        let ok = env(vec![
            ("KRAKEN_MASTER_API_KEY", "k1".into()),
            ("KRAKEN_MASTER_API_SECRET", b64(64)),
            ("KRAKEN_MASTER_API_KEY_2", "k2".into()),
            ("KRAKEN_MASTER_API_SECRET_2", b64(63)),
            ("KRAKEN_MASTER_API_KEY_3", "k3".into()),
            ("KRAKEN_MASTER_API_SECRET_3", b64(64)),
        ]);
        let sets = load_key_sets("master", &ok).unwrap();
        assert_eq!(
            sets.sets.iter().map(|s| s.index).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(sets.skipped.len(), 1);
        assert!(
            sets.skipped[0]
                .to_string()
                .starts_with("KRAKEN_MASTER_API_SECRET_2 decodes to 63 bytes"),
            "{}",
            sets.skipped[0]
        );
        assert_eq!(sets.sets[0].key_id(), Secret::new("k1").fingerprint());

        let missing = env(vec![]);
        assert!(matches!(
            load_key_sets("master", &missing),
            Err(KeySetsError::Missing { .. })
        ));
        let half = env(vec![("KRAKEN_MASTER_API_KEY", "k1".into())]);
        let e = load_key_sets("master", &half).unwrap_err();
        assert!(
            e.to_string()
                .contains("set-credential KRAKEN_MASTER_API_SECRET"),
            "{e}"
        );
        let bad = env(vec![
            ("KRAKEN_MASTER_API_KEY", "k1".into()),
            ("KRAKEN_MASTER_API_SECRET", "CANARY-not-base64".into()),
        ]);
        let e = load_key_sets("master", &bad).unwrap_err();
        assert!(e.to_string().contains("not valid base64"), "{e}");
        assert!(!e.to_string().contains("CANARY"));
    }

    fn t(secs: u64) -> Mono {
        Mono(Duration::from_secs(secs))
    }

    #[derive(Debug)]
    enum Step {
        KeyError,
        FallBack(FallbackReason),
        Tick,
    }

    /// (time, step, expected switch (from, to) or reset (from, 1), set in use after)
    type FallbackRow = (u64, Step, Option<(u8, u8)>, u8);

    #[test]
    fn fallback_over_time() {
        use FallbackReason::*;
        use Step::*;
        let table: &[FallbackRow] = &[
            (0, Tick, None, 1),
            (10, FallBack(NonceConflict), Some((1, 2)), 2),
            (20, Tick, None, 2),
            // a key error on set 2 restarts the quiet hour
            (3000, KeyError, None, 2),
            (3610, Tick, None, 2),
            (6599, Tick, None, 2),
            (6600, Tick, Some((2, 1)), 1),
            (6601, Tick, None, 1),
            (7000, FallBack(Lockout), Some((1, 2)), 2),
            (7001, FallBack(Lockout), Some((2, 3)), 3),
            // no set after 3: the error stands
            (7002, FallBack(NonceConflict), None, 3),
            (10_602, Tick, Some((3, 1)), 1),
        ];
        let mut fb = KeyFallback::new("master", &[1, 2, 3], DEFAULT_FALLBACK_RESET);
        for (at, step, want, in_use) in table {
            let ev = match step {
                KeyError => {
                    fb.key_error(t(*at));
                    None
                }
                FallBack(r) => fb.fall_back(*r, t(*at)),
                Tick => fb.tick(t(*at)),
            };
            let got = ev.as_ref().map(|e| match e {
                KeyEvent::Switched { from, to, .. } => (*from, *to),
                KeyEvent::Reset { from, .. } => (*from, 1),
            });
            assert_eq!(got, *want, "at {at}: {step:?}");
            assert_eq!(fb.in_use(), *in_use, "at {at}: {step:?}");
        }
    }

    #[test]
    fn switch_alert_and_reset_message() {
        let mut fb = KeyFallback::new("master", &[1, 3], Duration::from_secs(60));
        assert!(!fb.falling_back());
        let ev = fb
            .fall_back(FallbackReason::Lockout, t(5))
            .expect("a set is left");
        assert_eq!(fb.in_use(), 3);
        assert_eq!(fb.names_in_use().key, "KRAKEN_MASTER_API_KEY_3");
        assert_eq!(
            ev.alert().unwrap().to_string(),
            "alert=key_fallback account=master from=1 to=3 reason=lockout"
        );
        let reset = fb.tick(t(65)).unwrap();
        assert!(reset.alert().is_none());
        assert!(
            reset.message().contains("back to key set 1 from key set 3"),
            "{}",
            reset.message()
        );
        // A single set never falls back.
        let mut one = KeyFallback::new("solo", &[1], DEFAULT_FALLBACK_RESET);
        assert_eq!(one.fall_back(FallbackReason::Lockout, t(1)), None);
        assert_eq!(one.in_use(), 1);
    }
}
