//! Building Kite URLs and form bodies that carry credentials: percent-
//! encoding (RFC 3986: everything outside the unreserved characters
//! `A-Z a-z 0-9 - . _ ~` becomes `%XX`), the ticker URL with `api_key` and
//! `access_token` in its query string, and `application/x-www-form-urlencoded`
//! bodies. Anything that holds a credential comes back as a [`Secret`];
//! for logs use `crate::net::redact_url`, which drops the query string.
//!
//! pykiteconnect pastes the values in unencoded (`"{root}?api_key={api_key}
//! &access_token={access_token}"`); Kite's keys and tokens are alphanumeric
//! so far, so encoding changes nothing for them and keeps a value with `&`,
//! `=` or `%` from breaking the URL.

use crate::secret::Secret;

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes `s` (UTF-8 bytes) for a query value or form field.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    out
}

/// Appends `?` or `&` and the encoded pairs to `base`.
fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = String::from(base);
    let mut sep = if base.contains('?') { '&' } else { '?' };
    if base.ends_with('?') || base.ends_with('&') {
        sep = '\0';
    }
    for (k, v) in pairs {
        if sep != '\0' {
            url.push(sep);
        }
        url.push_str(&percent_encode(k));
        url.push('=');
        url.push_str(&percent_encode(v));
        sep = '&';
    }
    url
}

/// `wss://ws.kite.trade?api_key=…&access_token=…` from the ticker's base URL
/// (the feed's `url`, default [`super::DEFAULT_TICKER_URL`]).
pub fn ticker_url(base: &str, api_key: &Secret, access_token: &Secret) -> Secret {
    Secret::new(with_query(
        base,
        &[
            ("api_key", api_key.expose()),
            ("access_token", access_token.expose()),
        ],
    ))
}

/// An `application/x-www-form-urlencoded` body (`a=1&b=2`). A [`Secret`]:
/// the bodies we build carry request tokens and checksums.
pub fn form_body(pairs: &[(&str, &str)]) -> Secret {
    let mut body = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            body.push('&');
        }
        body.push_str(&percent_encode(k));
        body.push('=');
        body.push_str(&percent_encode(v));
    }
    Secret::new(body)
}

/// `base` + `?` + encoded pairs, for URLs without secrets (the login URL).
pub(crate) fn plain_url(base: &str, pairs: &[(&str, &str)]) -> String {
    with_query(base, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved() {
        for (raw, want) in [
            ("abcXYZ019-._~", "abcXYZ019-._~"),
            ("a&b=c%d+e f", "a%26b%3Dc%25d%2Be%20f"),
            (
                "/?#[]@!$'()*,;:",
                "%2F%3F%23%5B%5D%40%21%24%27%28%29%2A%2C%3B%3A",
            ),
            ("é", "%C3%A9"),
            ("", ""),
        ] {
            assert_eq!(percent_encode(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn ticker_url_encodes_both_values() {
        let key = Secret::new("key&=%+ 1");
        let token = Secret::new("tok&en=%+ x");
        let url = ticker_url("wss://ws.kite.trade", &key, &token);
        assert_eq!(
            url.expose(),
            "wss://ws.kite.trade?api_key=key%26%3D%25%2B%201&access_token=tok%26en%3D%25%2B%20x"
        );
        // Exactly two query parameters survive, whatever the values hold.
        let query = url.expose().split_once('?').unwrap().1;
        assert_eq!(query.split('&').count(), 2);
        // The redacted form for logs keeps no part of either.
        let shown = crate::net::redact_url(url.expose());
        assert_eq!(shown, "wss://ws.kite.trade:443/");
        assert!(!format!("{url:?} {url}").contains("tok"));
    }

    #[test]
    fn ticker_url_on_bases_with_a_path_or_query() {
        let (k, t) = (Secret::new("k"), Secret::new("t"));
        assert_eq!(
            ticker_url("ws://127.0.0.1:9/", &k, &t).expose(),
            "ws://127.0.0.1:9/?api_key=k&access_token=t"
        );
        assert_eq!(
            ticker_url("ws://h/x?v=3", &k, &t).expose(),
            "ws://h/x?v=3&api_key=k&access_token=t"
        );
        assert_eq!(
            ticker_url("ws://h/?", &k, &t).expose(),
            "ws://h/?api_key=k&access_token=t"
        );
    }

    #[test]
    fn form_bodies() {
        assert_eq!(
            form_body(&[
                ("api_key", "k"),
                ("request_token", "r t&"),
                ("checksum", "ab")
            ])
            .expose(),
            "api_key=k&request_token=r%20t%26&checksum=ab"
        );
        assert_eq!(form_body(&[]).expose(), "");
    }
}
