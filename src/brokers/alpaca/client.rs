//! Alpaca's REST account check over the agent's HTTP client
//! (`crate::net::http`, ureq with named timeouts): `GET /v2/account` on
//! the feed's endpoint, and on the other kind's endpoint (paper ↔ live)
//! when the key is refused, so the verdict can say which kind the key is.
//! Every response's `Date` reaches the clock-drift check through the
//! client. Transport failures are kept apart from Alpaca's answers: an
//! outage is never mistaken for a rejected key.

use super::rest::{self, Account, RestError, account_request, other_base, parse_account};
use crate::feed::{FeedError, Layer};
use crate::net::http::HttpClient;
use crate::secret::Secret;

/// One `/v2/account` call: the account, Alpaca's refusal, or no answer.
fn account(
    client: &HttpClient,
    base: &str,
    key_id: &Secret,
    secret: &Secret,
) -> Result<Result<Account, RestError>, FeedError> {
    let resp = client
        .send(&account_request(base, key_id, secret))
        .map_err(|e| {
            FeedError::network(format!("no answer from Alpaca's REST API: {e}")).at(Layer::Auth)
        })?;
    Ok(parse_account(resp.status, &resp.body))
}

/// Proves the key on `base` (the feed's `rest_url`, or the paper or live
/// default), naming the other endpoint when only that one accepts it.
pub fn validate(
    client: &HttpClient,
    base: &str,
    key_id: &Secret,
    secret: &Secret,
    paper: bool,
    names: (&str, &str),
) -> Result<String, FeedError> {
    let own = account(client, base, key_id, secret)?;
    let other = match (&own, other_base(base)) {
        (Err(RestError::Refused { .. }), Some(other)) => {
            // No answer from the other endpoint says nothing about the key.
            account(client, &other, key_id, secret).ok()
        }
        _ => None,
    };
    rest::verdict(own, other, paper, names)
}
