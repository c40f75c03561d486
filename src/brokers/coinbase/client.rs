//! Coinbase's REST credential check over the agent's HTTP client
//! (`crate::net::http`): the request of [`super::rest`] with a JWT minted
//! for this one call, and its answer classified (a transport failure is
//! kept apart from Coinbase's answer, so an outage is never mistaken for a
//! refused key).

use super::jwt::Minter;
use super::rest::{accounts_url, classify_accounts};
use crate::feed::{FeedError, Layer};
use crate::net::http::{HttpClient, Request, clock_offset};
use crate::secret::Secret;

/// Lists the accounts with a fresh JWT; says what was proven.
pub fn check_accounts(
    http: &HttpClient,
    minter: &Minter,
    rest_base: &str,
) -> Result<String, FeedError> {
    let url = accounts_url(rest_base);
    let jwt = minter
        .rest_jwt("GET", &url)
        .map_err(|e| FeedError::protocol(e.to_string()).at(Layer::Auth))?;
    let req = Request::get(url.clone())
        .header(
            "Authorization",
            Secret::new(format!("Bearer {}", jwt.expose())),
        )
        .header("Content-Type", Secret::new("application/json"));
    let resp = http.send(&req).map_err(|e| {
        FeedError::network(format!("no answer from Coinbase's REST API: {e}")).at(Layer::Auth)
    })?;
    let clock = resp
        .date
        .map(|d| clock_offset(d, resp.sent_at, resp.received_at));
    match classify_accounts(resp.status, &resp.body, clock) {
        Ok(n) => Ok(format!(
            "Coinbase accepted the {} JWT for GET /api/v3/brokerage/accounts ({n} account(s))",
            minter.algorithm_name()
        )),
        Err(e) => Err(e.to_feed_error()),
    }
}
