//! The `[http]` and `[metrics]` tables: the listener's address, its TLS
//! files and open paths, and the textfile collector's file. A non-loopback
//! `listen` without both TLS files is refused here, at its line:col: off
//! the box the listener serves only over TLS (with basic auth, checked at
//! start, since the password hash is a credential).

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::DeTable;

use super::walker::Walker;
use crate::config::{HttpConfig, MetricsConfig};

pub(super) const HTTP_KEYS: &[&str] = &["listen", "tls_cert", "tls_key", "public"];
pub(super) const METRICS_KEYS: &[&str] = &["textfile"];
/// The paths `public` may open: what a monitoring system calls. The page,
/// `/status` and the login callback always need the password.
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

impl Walker<'_, '_> {
    /// `[http]`; `None` when it is unusable (the problems are reported).
    pub(super) fn http(&mut self, t: &DeTable<'_>, span: Range<usize>) -> Option<HttpConfig> {
        let mut listen: Option<(SocketAddr, Range<usize>)> = None;
        let mut listen_seen = false;
        let (mut tls_cert, mut tls_key): (Option<PathBuf>, Option<PathBuf>) = (None, None);
        let mut public = Vec::new();
        let mut ok = true;
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let kp = format!("http.{key}");
            match key {
                "listen" => {
                    listen_seen = true;
                    let Some(s) = self.nonempty_string(v, &kp) else {
                        ok = false;
                        continue;
                    };
                    match s.parse::<SocketAddr>() {
                        Ok(a) => listen = Some((a, v.span())),
                        Err(_) => {
                            self.report(
                                v.span(),
                                &kp,
                                format!(
                                    "\"{s}\" is not an address and port; write e.g. \"127.0.0.1:9187\" \
                                     (an IP address, not a host name)"
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                "tls_cert" => tls_cert = self.path(v, &kp),
                "tls_key" => tls_key = self.path(v, &kp),
                "public" => {
                    let Some(items) = self.array(
                        v,
                        &kp,
                        "a list of paths such as [\"/healthz\", \"/metrics\"]",
                    ) else {
                        ok = false;
                        continue;
                    };
                    for (i, item) in items.iter().enumerate() {
                        let ip = format!("{kp}[{i}]");
                        if let Some(p) = self.choice(item, &ip, "public path", PUBLIC_PATHS) {
                            public.push(p.to_string());
                        } else {
                            ok = false;
                        }
                    }
                }
                _ => {
                    self.unknown_key(k.span(), &kp, key, "[http]", HTTP_KEYS);
                    ok = false;
                }
            }
        }
        let Some((listen, listen_span)) = listen else {
            if !listen_seen {
                self.report(
                    span,
                    "http.listen",
                    "[http] has no listen; add listen = \"127.0.0.1:9187\" (or remove [http] to run without the listener)",
                );
            }
            return None;
        };
        match (&tls_cert, &tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                self.report(
                    listen_span.clone(),
                    "http.tls_cert",
                    "set both tls_cert and tls_key (the certificate chain and its private key, \
                     e.g. certbot's fullchain.pem and privkey.pem), or neither",
                );
                ok = false;
            }
            (None, None) if !listen.ip().is_loopback() => {
                self.report(
                    listen_span,
                    "http.listen",
                    format!(
                        "{listen} is reachable from other hosts, so the listener needs TLS: set tls_cert and \
                         tls_key (and the password: sudo brokerguard set-credential HTTP_PASSWORD), or listen \
                         on 127.0.0.1 behind a reverse proxy (README: \"The HTTP listener\")"
                    ),
                );
                ok = false;
            }
            _ => {}
        }
        ok.then_some(HttpConfig {
            listen,
            tls_cert,
            tls_key,
            public,
        })
    }

    pub(super) fn metrics(&mut self, t: &DeTable<'_>, m: &mut MetricsConfig) {
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let kp = format!("metrics.{key}");
            match key {
                "textfile" => {
                    let path = self.path(v, &kp);
                    if let Some(p) = &path {
                        if p.extension().is_none_or(|e| e != "prom") {
                            self.report(
                                v.span(),
                                &kp,
                                "node_exporter's textfile collector reads only files ending in .prom; \
                                 name it e.g. /var/lib/prometheus/node-exporter/brokerguard.prom",
                            );
                            continue;
                        }
                    }
                    m.textfile = path;
                }
                _ => self.unknown_key(k.span(), &kp, key, "[metrics]", METRICS_KEYS),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use std::path::PathBuf;

    #[test]
    fn http_and_metrics_are_read() {
        let cfg = parse(
            "[http]\nlisten = \"127.0.0.1:9187\"\n[metrics]\ntextfile = \"/var/lib/x/bg.prom\"\n",
        )
        .unwrap();
        let h = cfg.http.unwrap();
        assert_eq!(h.listen.to_string(), "127.0.0.1:9187");
        assert!(h.tls_cert.is_none() && h.public.is_empty());
        assert_eq!(
            cfg.metrics.textfile,
            Some(PathBuf::from("/var/lib/x/bg.prom"))
        );
        assert!(parse("").unwrap().http.is_none());
        let tls = parse(
            "[http]\nlisten = \"0.0.0.0:9187\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\npublic = [\"/healthz\", \"/metrics\"]\n",
        )
        .unwrap()
        .http
        .unwrap();
        assert_eq!(tls.tls_cert, Some(PathBuf::from("/base/c.pem")));
        assert_eq!(tls.public, vec!["/healthz", "/metrics"]);
    }

    #[test]
    fn http_rules() {
        let cases: &[(&str, &str, &str)] = &[
            ("[http]\n", "http.listen", "has no listen"),
            (
                "[http]\nlisten = \"localhost:80\"\n",
                "http.listen",
                "not an address and port",
            ),
            (
                "[http]\nlisten = \"0.0.0.0:9187\"\n",
                "http.listen",
                "needs TLS",
            ),
            (
                "[http]\nlisten = \"127.0.0.1:1\"\ntls_cert = \"c\"\n",
                "http.tls_cert",
                "set both",
            ),
            (
                "[http]\nlisten = \"127.0.0.1:1\"\npublic = [\"/status\"]\n",
                "http.public[0]",
                "unknown public path",
            ),
            (
                "[http]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n",
                "http.lisen",
                "did you mean \"listen\"",
            ),
            (
                "[metrics]\ntextfile = \"/x/bg.txt\"\n",
                "metrics.textfile",
                "ending in .prom",
            ),
            (
                "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"ws://h:1\"\nrequired = \"no\"\n",
                "feed[0].required",
                "true or false",
            ),
        ];
        for (text, key, fragment) in cases {
            one_problem(text, key, fragment);
        }
        let f = parse(&ws("required = false")).unwrap();
        assert!(!f.feeds[0].required);
        assert!(parse(WS).unwrap().feeds[0].required);
    }
}
