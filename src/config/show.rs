//! Prints the effective configuration (every default filled in) as TOML that
//! `parse_str` accepts again, with secrets redacted: `brokerguard config check`
//! shows this to the operator.

use std::fmt::Write as _;
use std::path::Path;

use super::{Config, FeedConfig, PreflightMode, format_duration, template_names};

/// Replaces an `auth` that embeds a literal credential (no `${NAME}` reference).
pub const REDACTED_LITERAL_AUTH: &str =
    "<redacted: literal credential; move it to credentials.env and write ${NAME}>";
/// Replaces the value of a secret-looking URL query parameter or URL password.
pub const REDACTED: &str = "<redacted>";

/// Query parameter names containing one of these carry a secret.
const SECRET_PARAM_WORDS: &[&str] = &["token", "key", "secret", "password", "sig"];

/// The effective configuration as TOML, secrets redacted.
pub fn effective_toml(cfg: &Config) -> String {
    let mut out = String::new();
    let a = &cfg.agent;
    let _ = writeln!(
        out,
        "# Effective configuration read from {} (defaults filled in, secrets redacted).",
        one_line(&cfg.path.display().to_string())
    );
    out.push_str("\n[agent]\n");
    line(&mut out, "runtime_dir", &path_str(&a.runtime_dir));
    line(&mut out, "state_dir", &path_str(&a.state_dir));
    let files: Vec<String> = a.credential_files.iter().map(|p| path_str(p)).collect();
    line(&mut out, "credential_files", &format!("[{}]", files.join(", ")));
    let preflight = match a.preflight {
        PreflightMode::Require => "require",
        PreflightMode::Warn => "warn",
        PreflightMode::Off => "off",
    };
    line(&mut out, "preflight", &toml_string(preflight));
    line(&mut out, "log_level", &toml_string(&a.log_level.to_string().to_lowercase()));
    line(&mut out, "stop_timeout", &dur(a.stop_timeout));
    line(&mut out, "status_every", &dur(a.status_every));
    line(&mut out, "credential_check", &dur(a.credential_check));
    line(&mut out, "alert_after", &dur(a.alert_after));
    line(&mut out, "alert_repeat", &dur(a.alert_repeat));
    line(&mut out, "fanout_queue", &a.fanout_queue.to_string());
    for f in &cfg.feeds {
        out.push_str("\n[[feed]]\n");
        feed(&mut out, f, cfg);
    }
    out
}

fn feed(out: &mut String, f: &FeedConfig, cfg: &Config) {
    line(out, "name", &toml_string(&f.name));
    line(out, "broker", &toml_string(f.broker.as_str()));
    opt(out, "url", f.url.as_deref().map(redact_url));
    opt(out, "rest_url", f.rest_url.as_deref().map(redact_url));
    opt(out, "account", f.account.clone());
    opt(out, "host", f.host.clone());
    if let Some(p) = f.port {
        line(out, "port", &p.to_string());
    }
    if let Some(c) = f.client_id {
        line(out, "client_id", &c.to_string());
    }
    opt(out, "auth", f.auth.as_deref().map(redact_auth));
    opt(out, "auth_ok", f.auth_ok.clone());
    opt(out, "auth_error", f.auth_error.clone());
    let subs: Vec<String> = f.subscribe.iter().map(|s| toml_string(s)).collect();
    line(out, "subscribe", &format!("[{}]", subs.join(", ")));
    opt(out, "poll", f.poll.clone());
    line(out, "poll_every", &dur(f.poll_every));
    // An empty heartbeat means "no heartbeat messages" when read back.
    line(out, "heartbeat", &toml_string(f.heartbeat.as_deref().unwrap_or("")));
    line(out, "ping_every", &dur(f.ping_every));
    line(out, "pong_timeout", &dur(f.pong_timeout));
    line(out, "stall_after", &dur(f.stall_after));
    line(out, "connect_timeout", &dur(f.connect_timeout));
    line(out, "handshake_timeout", &dur(f.handshake_timeout));
    line(out, "write_timeout", &dur(f.write_timeout));
    if let Some(p) = &f.tls_ca_file {
        line(out, "tls_ca_file", &path_str(p));
    }
    let b = &f.backoff;
    line(
        out,
        "backoff",
        &format!(
            "{{ initial = {}, max = {}, multiplier = {:?}, stable_after = {}, parked_retry = {} }}",
            dur(b.initial),
            dur(b.max),
            b.multiplier,
            dur(b.stable_after),
            dur(b.parked_retry)
        ),
    );
    if let Some(e) = &f.expect {
        line(
            out,
            "expect",
            &format!(
                "{{ every = {}, offset = {}, grace = {} }}",
                dur(e.every),
                dur(e.offset),
                dur(e.grace)
            ),
        );
    }
    match f.alert_after {
        Some(d) => line(out, "alert_after", &dur(d)),
        None => {
            let _ = writeln!(
                out,
                "# alert_after = {}  (not set: agent.alert_after applies)",
                dur(cfg.agent.alert_after)
            );
        }
    }
    line(out, "max_message_bytes", &f.max_message_bytes.to_string());
}

fn line(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "{key} = {value}");
}

fn opt(out: &mut String, key: &str, value: Option<String>) {
    if let Some(v) = value {
        line(out, key, &toml_string(&v));
    }
}

fn dur(d: std::time::Duration) -> String {
    toml_string(&format_duration(d))
}

fn path_str(p: &Path) -> String {
    toml_string(&p.to_string_lossy())
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A TOML string: a literal `'...'` when that needs no escaping (JSON reads
/// better that way), else a basic `"..."` string with escapes.
fn toml_string(s: &str) -> String {
    let literal_ok = !s.contains('\'') && !s.chars().any(|c| c.is_control());
    if literal_ok && s.contains('"') {
        return format!("'{s}'");
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True when `auth` holds no `${NAME}` reference, so it must embed the credential itself.
pub fn is_literal_auth(auth: &str) -> bool {
    template_names(auth).is_empty()
}

fn redact_auth(auth: &str) -> String {
    if is_literal_auth(auth) {
        REDACTED_LITERAL_AUTH.to_string()
    } else {
        auth.to_string()
    }
}

/// The URL with any userinfo password and the values of secret-looking query
/// parameters (`access_token=...`, `api_key=...`, `sig=...`) replaced.
pub fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(q) = query {
        out.push('?');
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}={REDACTED}"),
                _ => p.to_string(),
            })
            .collect();
        out += &params.join("&");
    }
    if let Some(f) = fragment {
        out.push('#');
        out += f;
    }
    out
}

fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_PARAM_WORDS.iter().any(|w| n.contains(w))
}

/// `scheme://user:password@host/...` → `scheme://user:<redacted>@host/...`.
fn redact_userinfo(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{REDACTED}@{host}{path}"),
            None => base.to_string(),
        },
        None => base.to_string(),
    }
}
