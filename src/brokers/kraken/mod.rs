//! Kraken (Spot): signed REST calls whose nonces never collide, fallback
//! key sets, and the WebSocket v2 public and private feeds with verified
//! order books (PROTOCOLS.md §1).
//!
//! - `sign`: the `API-Sign` HMAC and the decoded private key;
//! - `rest`: request builder and the classification of answers;
//! - `keys`: key sets of an account and the fallback between them;
//! - `call`: one private call under the nonce-conflict and fallback rules;
//! - `book`: order books kept as decimal text, and Kraken's CRC32;
//! - `ws`: the WebSocket v2 protocol core;
//! - `config`: the configuration rules, endpoints and credential checks.
//!
//! Everything here is pure: I/O (the nonce store, HTTP, the WebSocket)
//! is handed in by the adapter.

pub mod book;
pub mod call;
pub mod config;
pub mod keys;
pub mod rest;
pub mod sign;
pub mod ws;

pub use call::{CallError, CallEvent, CallReport, HttpReply, call_private};
pub use config::{Channel, FeedPlan, PrivatePlan, PublicPlan};
pub use keys::{KeyFallback, KeySet, KeySets, load_key_sets};
pub use rest::{KrakenError, PrivateRequest, Reply, parse_response, private_request};
pub use sign::{ApiSecret, SecretFormatError, api_sign};
pub use ws::KrakenCore;
