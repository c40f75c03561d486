//! Every error code of Alpaca's market-data stream (PROTOCOLS.md §2.2,
//! alpaca-docs realtime.md, alpaca-trade-api-go `marketdata/stream/errors.go`)
//! mapped to what the feed does about it. Pure: a code, Alpaca's message
//! and what the feed knows in, an [`Outcome`] out.
//!
//! | code | meaning | outcome |
//! | --- | --- | --- |
//! | 400 invalid syntax, 401 not authenticated, 403 already authenticated | our bug | protocol error with the message we sent (secret redacted); backoff |
//! | 402 auth failed | the key is wrong | auth: parked until the credential changes |
//! | 404 auth timeout | we were late | network: reconnect |
//! | 405 symbol limit, 408 v2 not enabled, 409 insufficient subscription, 410 invalid for this feed, 411 insufficient scope | only the configuration or the plan can fix it | config: parked, cause and fix named, no retry loop |
//! | 406 connection limit exceeded | another program holds the key's stream | `alert=connection_limit`, rate limited for at least 90 s (doubling, capped), never a storm |
//! | 407 slow client | we read too slowly | reported with the read figures; the connection goes on until Alpaca closes it |
//! | 500 internal error | Alpaca's side | network: backoff |

use crate::alert::{Alert, AlertKind};
use crate::feed::{ErrorClass, FeedError, Layer};
use crate::peertext::short;
use std::time::Duration;

/// Alpaca reaps a dead connection's slot after about 90 s: no retry after
/// 406 comes sooner than this.
pub const CONNECTION_LIMIT_WAIT: Duration = Duration::from_secs(90);
/// Longest wait between attempts while 406 keeps coming.
pub const CONNECTION_LIMIT_MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// What the feed knows when an error arrives, for the messages.
#[derive(Clone, Debug)]
pub struct ErrorContext<'a> {
    pub feed: &'a str,
    /// `ALPACA_<ACCOUNT>_API_KEY_ID`, for fixes.
    pub key_name: &'a str,
    pub secret_name: &'a str,
    /// `iex`, `sip`, `crypto`, `test`.
    pub stream: &'a str,
    pub paper: bool,
    /// The last message we sent, secrets redacted (for 400/401/403).
    pub last_sent: Option<&'a str>,
    /// 406s in a row on this feed before this one.
    pub limit_strikes: u32,
    /// What was read on this connection (for 407).
    pub reads: ReadFigures,
}

/// What a connection has read, for the 407 report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadFigures {
    pub messages: u64,
    pub frames: u64,
    pub bytes: u64,
    /// Messages per second over the connection's last few seconds.
    pub recent_rate: u64,
    pub largest_frame: u64,
    /// The transport's read buffer and largest accepted message.
    pub read_buffer: usize,
    pub max_message: usize,
}

/// What an error code leads to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The connection ends with this error (after the alert, if any).
    Fail {
        error: FeedError,
        alert: Option<Alert>,
    },
    /// Reported; the connection goes on (Alpaca may close it next).
    Report { message: String },
}

/// How long to wait after the `strikes`-th 406 in a row (1 = the first):
/// 90 s, 180 s, 360 s, … capped at [`CONNECTION_LIMIT_MAX_WAIT`].
pub fn connection_limit_wait(strikes: u32) -> Duration {
    let doubling = strikes.saturating_sub(1).min(8);
    (CONNECTION_LIMIT_WAIT * (1u32 << doubling)).min(CONNECTION_LIMIT_MAX_WAIT)
}

/// The outcome of `[{"T":"error","code":code,"msg":msg}]`.
pub fn outcome(code: u16, msg: &str, ctx: &ErrorContext<'_>) -> Outcome {
    let said = short(msg);
    let feed = ctx.feed;
    let head = format!("feed {feed}: Alpaca error {code} ({said})");
    let config = |fix: String| Outcome::Fail {
        error: FeedError::config(format!("{head}: {fix}")).at(Layer::Auth),
        alert: None,
    };
    match code {
        400 | 401 | 403 => {
            let sent = ctx
                .last_sent
                .map(|s| format!("; the message we sent was {s}"))
                .unwrap_or_default();
            Outcome::Fail {
                error: FeedError::protocol(format!(
                    "{head}: brokerguard sent something Alpaca did not expect (a bug: please \
                     report it){sent}"
                )),
                alert: None,
            }
        }
        402 => Outcome::Fail {
            error: FeedError::auth(format!(
                "{head}: Alpaca rejected the API key; set the current pair with `sudo \
                 brokerguard set-credential {}` and `… {}` ({} keys: paper and live keys \
                 differ, and `paper = {}` is set); the feed waits for the change",
                ctx.key_name,
                ctx.secret_name,
                if ctx.paper { "paper" } else { "live" },
                ctx.paper
            ))
            .at(Layer::Auth),
            alert: None,
        },
        404 => Outcome::Fail {
            error: FeedError::network(format!(
                "{head}: Alpaca closed the wait for authentication (it allows 10 s after \
                 connecting); reconnecting"
            ))
            .at(Layer::Auth),
            alert: None,
        },
        405 => config(
            "the subscription asks for more symbols than the plan allows (Alpaca kept the \
             previous set); subscribe fewer symbols, or use \"*\" where the channel allows it"
                .into(),
        ),
        406 => connection_limit(&head, ctx),
        407 => slow_client(&head, &ctx.reads),
        408 => config(
            "the account does not have v2 market data enabled; enable it in Alpaca's dashboard \
             (or ask Alpaca support)"
                .into(),
        ),
        409 => config(format!(
            "the account's market-data plan does not include the {} stream{}",
            ctx.stream,
            if ctx.stream == "sip" {
                ": the SIP feed needs Algo Trader Plus: use stream = \"iex\""
            } else {
                ": choose a stream the plan includes (iex is free)"
            }
        )),
        410 => config(format!(
            "a channel is not served on the {} stream; remove it from `channels` (statuses and \
             lulds are for stocks, orderbooks for crypto)",
            ctx.stream
        )),
        411 => config(
            "the key lacks the scope for this stream (e.g. an OAuth or broker key); use a \
             trading API key made in Alpaca's dashboard"
                .into(),
        ),
        500 => Outcome::Fail {
            error: FeedError::network(format!("{head}: Alpaca's side failed; reconnecting")),
            alert: None,
        },
        _ => Outcome::Fail {
            error: FeedError::protocol(format!("{head}: a code brokerguard does not know")),
            alert: None,
        },
    }
}

/// 406: another program holds the key's stream; wait ever longer (from
/// Alpaca's 90 s reaping), with an alert.
fn connection_limit(head: &str, ctx: &ErrorContext<'_>) -> Outcome {
    let strikes = ctx.limit_strikes + 1;
    let wait = connection_limit_wait(strikes);
    let why = "another program holds this key's stream: stop it, or let it read from \
               brokerguard's fan-out (feeds.sock)";
    Outcome::Fail {
        error: FeedError::new(
            ErrorClass::RateLimited {
                retry_after: Some(wait),
            },
            format!(
                "{head}: Alpaca allows one {} connection per key; {why}; retrying in {} \
                 (Alpaca frees a dead connection's slot after about 90 s)",
                ctx.stream,
                crate::timefmt::human(wait)
            ),
        )
        .at(Layer::Auth),
        alert: Some(
            Alert::new(AlertKind::ConnectionLimit)
                .with("feed", ctx.feed)
                .with("stream", ctx.stream)
                .with("limit", 1)
                .with("reason", why)
                .with("retry_in", crate::timefmt::human(wait)),
        ),
    }
}

/// 407: the connection reads too slowly; reported with what it read.
fn slow_client(head: &str, r: &ReadFigures) -> Outcome {
    Outcome::Report {
        message: format!(
            "{head}: Alpaca says this connection reads too slowly and may drop it. \
             Read so far: {} messages in {} frames, {} bytes, {} msg/s lately, largest \
             frame {} bytes; read buffer {} bytes, largest message accepted {} bytes. \
             The fan-out never slows the feed (each local reader has its own bounded \
             queue), so look at the host's CPU and network, or subscribe fewer symbols",
            r.messages,
            r.frames,
            r.bytes,
            r.recent_rate,
            r.largest_frame,
            r.read_buffer,
            r.max_message
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::backoff::Backoff;

    fn ctx<'a>(last_sent: Option<&'a str>, strikes: u32) -> ErrorContext<'a> {
        ErrorContext {
            feed: "stocks",
            key_name: "ALPACA_MAIN_API_KEY_ID",
            secret_name: "ALPACA_MAIN_API_SECRET_KEY",
            stream: "sip",
            paper: false,
            last_sent,
            limit_strikes: strikes,
            reads: ReadFigures {
                messages: 1200,
                frames: 300,
                bytes: 90_000,
                recent_rate: 400,
                largest_frame: 4000,
                read_buffer: 4096,
                max_message: 16 << 20,
            },
        }
    }

    fn fail(o: Outcome) -> (FeedError, Option<Alert>) {
        match o {
            Outcome::Fail { error, alert } => (error, alert),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_code_has_its_class_and_remedy() {
        let sent = r#"{"action":"subscribe","trades":["AAPL"]}"#;
        let rows: &[(u16, &str, ErrorClass, &str)] = &[
            (400, "invalid syntax", ErrorClass::Protocol, sent),
            (401, "not authenticated", ErrorClass::Protocol, "a bug"),
            (403, "already authenticated", ErrorClass::Protocol, sent),
            (
                402,
                "auth failed",
                ErrorClass::Auth,
                "set-credential ALPACA_MAIN_API_KEY_ID",
            ),
            (404, "auth timeout", ErrorClass::Network, "reconnecting"),
            (
                405,
                "symbol limit exceeded",
                ErrorClass::Config,
                "fewer symbols",
            ),
            (408, "v2 not enabled", ErrorClass::Config, "enable it"),
            (
                409,
                "insufficient subscription",
                ErrorClass::Config,
                "Algo Trader Plus: use stream = \"iex\"",
            ),
            (
                410,
                "invalid subscribe action for this feed",
                ErrorClass::Config,
                "remove it from `channels`",
            ),
            (
                411,
                "insufficient scope",
                ErrorClass::Config,
                "trading API key",
            ),
            (500, "internal error", ErrorClass::Network, "Alpaca's side"),
            (499, "who knows", ErrorClass::Protocol, "does not know"),
        ];
        for (code, msg, class, needle) in rows {
            let (e, alert) = fail(outcome(*code, msg, &ctx(Some(sent), 0)));
            assert_eq!(e.class, *class, "{code}");
            assert!(e.message.contains(needle), "{code}: {e}");
            assert!(e.message.contains(&format!("error {code} ({msg})")), "{e}");
            assert!(alert.is_none(), "{code}");
        }
    }

    #[test]
    fn connection_limit_alerts_and_waits_at_least_90s_never_a_storm() {
        for strikes in 0..12 {
            let (e, alert) = fail(outcome(
                406,
                "connection limit exceeded",
                &ctx(None, strikes),
            ));
            let alert = alert.expect("406 raises connection_limit");
            assert_eq!(alert.kind, AlertKind::ConnectionLimit);
            assert!(
                alert
                    .to_string()
                    .contains("reason=\"another program holds this key's stream")
            );
            let ErrorClass::RateLimited {
                retry_after: Some(wait),
            } = e.class
            else {
                panic!("{:?}", e.class)
            };
            assert!(wait >= CONNECTION_LIMIT_WAIT, "{wait:?}");
            assert!(wait <= CONNECTION_LIMIT_MAX_WAIT);
            // The engine's backoff waits exactly that: no second attempt
            // within 90 s, whatever came before.
            let mut b = Backoff::new(crate::config::BackoffConfig::default(), 7);
            for _ in 0..5 {
                b.next_delay(ErrorClass::Network);
            }
            assert!(b.next_delay(e.class) >= Duration::from_secs(90));
        }
        assert_eq!(connection_limit_wait(1), Duration::from_secs(90));
        assert_eq!(connection_limit_wait(2), Duration::from_secs(180));
        assert_eq!(connection_limit_wait(30), CONNECTION_LIMIT_MAX_WAIT);
    }

    #[test]
    fn slow_client_is_reported_with_the_figures() {
        let Outcome::Report { message } = outcome(407, "slow client", &ctx(None, 0)) else {
            panic!("407 does not end the connection by itself")
        };
        for needle in [
            "1200 messages",
            "400 msg/s",
            "read buffer 4096 bytes",
            "fan-out",
        ] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
    }
}
