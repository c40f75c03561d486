//! Credentials over plaintext: where a feed that sends a credential may use
//! `ws://` or `http://`. Pure: the URL's host decides.
//!
//! Loopback is silent (a local signal server, a tunnel's local end). A
//! private range is a warning: a bot's own signal server over WireGuard or
//! Tailscale is a normal set-up, and the tunnel encrypts. Anything else —
//! a public address or any host name but `localhost`, which may resolve
//! anywhere — is refused by `config check` unless the feed says
//! `allow_plaintext = true`, and then warned about at every start.

use std::net::IpAddr;

/// Where a plaintext URL's host is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT, Tailscale), fd00::/8,
    /// link-local.
    Private,
    Public,
}

/// The scheme's plaintext name when `url` is plaintext (`ws`, `http`).
pub fn plaintext_scheme(url: &str) -> Option<&'static str> {
    let scheme = url.split_once("://")?.0;
    if scheme.eq_ignore_ascii_case("ws") {
        Some("ws")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// The host part of a URL, without port, user info or IPv6 brackets.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    host_port.split(':').next().unwrap_or("")
}

pub fn reach(host: &str) -> Reach {
    if host.eq_ignore_ascii_case("localhost") {
        return Reach::Loopback;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            let [a, b, ..] = ip.octets();
            if ip.is_loopback() {
                Reach::Loopback
            } else if ip.is_private() || ip.is_link_local() || (a == 100 && (64..128).contains(&b))
            {
                Reach::Private
            } else {
                Reach::Public
            }
        }
        Ok(IpAddr::V6(ip)) => {
            let first = ip.segments()[0];
            if ip.is_loopback() {
                Reach::Loopback
            } else if first & 0xff00 == 0xfd00 || first & 0xffc0 == 0xfe80 {
                Reach::Private
            } else if let Some(v4) = ip.to_ipv4_mapped() {
                reach(&v4.to_string())
            } else {
                Reach::Public
            }
        }
        Err(_) => Reach::Public,
    }
}

/// What to say about one URL of a feed that sends a credential: `Err` is a
/// configuration error, `Ok(Some)` a warning, `Ok(None)` nothing.
pub fn judge(feed: &str, key: &str, url: &str, allowed: bool) -> Result<Option<String>, String> {
    let Some(scheme) = plaintext_scheme(url) else {
        return Ok(None);
    };
    let host = host_of(url);
    let secure = if scheme == "ws" { "wss" } else { "https" };
    match reach(host) {
        Reach::Loopback => Ok(None),
        Reach::Private => Ok(Some(format!(
            "feed \"{feed}\": {key} sends credentials over {scheme}:// to {host}, a private address: \
             fine inside an encrypted tunnel (WireGuard, Tailscale); otherwise use {secure}://"
        ))),
        Reach::Public if allowed => Ok(Some(format!(
            "feed \"{feed}\": {key} sends credentials unencrypted over {scheme}:// to {host} \
             (allow_plaintext = true): anyone on the path can read them; use {secure}://"
        ))),
        Reach::Public => Err(format!(
            "sends credentials unencrypted over {scheme}:// to {host}, which is not a loopback or \
             private address; use {secure}://, or set allow_plaintext = true on this feed if you \
             accept that anyone on the path can read them"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_placed() {
        let cases: &[(&str, Reach)] = &[
            ("ws://127.0.0.1:8765/x", Reach::Loopback),
            ("ws://127.9.9.9", Reach::Loopback),
            ("ws://localhost:1", Reach::Loopback),
            ("ws://[::1]:80/", Reach::Loopback),
            ("ws://10.8.0.1:8765", Reach::Private),
            ("ws://172.16.0.1", Reach::Private),
            ("ws://172.31.255.1", Reach::Private),
            ("ws://172.32.0.1", Reach::Public),
            ("ws://192.168.1.5", Reach::Private),
            ("ws://100.64.0.1", Reach::Private),
            ("ws://100.127.255.255", Reach::Private),
            ("ws://100.128.0.1", Reach::Public),
            ("ws://[fd7a:115c:a1e0::1]:9", Reach::Private),
            ("ws://[2001:db8::1]", Reach::Public),
            ("http://user:pw@8.8.8.8:80/a", Reach::Public),
            ("ws://signals.example.com", Reach::Public),
        ];
        for (url, want) in cases {
            assert_eq!(reach(host_of(url)), *want, "{url}");
        }
    }

    #[test]
    fn only_public_plaintext_is_refused_and_allow_plaintext_turns_it_into_a_warning() {
        assert_eq!(judge("f", "url", "wss://api.example.com", false), Ok(None));
        assert_eq!(judge("f", "url", "ws://127.0.0.1:1", false), Ok(None));
        assert!(
            judge("f", "url", "ws://10.0.0.1:1", false)
                .unwrap()
                .unwrap()
                .contains("private address")
        );
        let e = judge("f", "rest_url", "http://203.0.113.9/x?token=CANARY", false).unwrap_err();
        assert!(
            e.contains("use https://") && e.contains("allow_plaintext = true"),
            "{e}"
        );
        assert!(
            !e.contains("CANARY"),
            "the URL's query is never quoted: {e}"
        );
        assert!(
            judge("f", "url", "ws://203.0.113.9", true)
                .unwrap()
                .unwrap()
                .contains("unencrypted")
        );
    }

    fn feed(url: &str, extra: &str) -> String {
        format!(
            "[[feed]]\nname = \"sig\"\nbroker = \"websocket\"\nurl = \"{url}\"\n\
             auth = '{{\"token\":\"${{SIGNALS_TOKEN}}\"}}'\n{extra}"
        )
    }

    #[test]
    fn config_check_refuses_public_plaintext_at_its_line_and_warns_for_the_rest() {
        let path = std::path::Path::new("/etc/brokerguard/brokerguard.toml");
        let e = crate::config::parse_str(&feed("ws://signals.example.com:8765", ""), path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "brokerguard.toml:4:7: feed[0].url: sends credentials unencrypted over ws://"
            ),
            "{e}"
        );
        let cfg = crate::config::parse_str(
            &feed("ws://signals.example.com:8765", "allow_plaintext = true\n"),
            path,
        )
        .unwrap();
        let w = crate::config::setup_warnings(&cfg);
        assert!(
            w.iter().any(|w| w.contains("(allow_plaintext = true)")),
            "{w:?}"
        );
        let cfg = crate::config::parse_str(&feed("ws://10.8.0.1:8765", ""), path).unwrap();
        let w = crate::config::setup_warnings(&cfg);
        assert!(w.iter().any(|w| w.contains("a private address")), "{w:?}");
        let cfg = crate::config::parse_str(&feed("ws://127.0.0.1:8765", ""), path).unwrap();
        assert!(crate::config::setup_warnings(&cfg).is_empty());
        // A feed that sends no credential may use any plaintext host.
        let text = "[[feed]]\nname = \"pub\"\nbroker = \"websocket\"\nurl = \"ws://203.0.113.9\"\n";
        assert!(crate::config::parse_str(text, path).is_ok());
    }
}
