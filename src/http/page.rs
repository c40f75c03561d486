//! The operator page at `/` and the page a browser login returns to.
//!
//! One self-contained HTML document (`page.html`: inline CSS and script, no
//! external asset, no build step) that fetches `/status`, `/readyz` and
//! `/timeline` itself and draws every feed's row (with `data-feed` and
//! `data-state` attributes for scripts and tests) and its last 24 hours as
//! inline SVG. The only thing filled in on the server is the list of
//! browser-login buttons (a broker's login page and the account; never a
//! secret), as JSON in a `<script type="application/json">` block.

use super::board::Published;
use crate::brokers::registry::LoginResult;
use std::fmt::Write;

const TEMPLATE: &str = include_str!("page.html");
const LOGINS_SLOT: &str = "/*LOGINS*/";

/// JSON that is safe inside a `<script>` block: no `<` can end it.
fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c")
}

/// HTML text: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page, with one login button per account that has a login link.
pub fn render(p: &Published, out: &mut String) {
    let mut logins: Vec<serde_json::Value> = Vec::new();
    for (f, x) in p.doc.feeds.iter().zip(&p.extra) {
        let Some(l) = &x.login else {
            continue;
        };
        let entry = serde_json::json!({
            "broker": f.broker, "label": l.label, "account": l.account, "url": l.url,
        });
        if !logins.contains(&entry) {
            logins.push(entry);
        }
    }
    let (head, tail) = TEMPLATE.split_once(LOGINS_SLOT).unwrap_or((TEMPLATE, ""));
    out.push_str(head);
    out.push_str(&script_json(&serde_json::Value::from(logins)));
    out.push_str(tail);
}

/// The login page's style and script: constant, so the page's policy can
/// allow exactly them by hash (the feeds to watch come as JSON data).
const LOGIN_STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:12px}\
pre{white-space:pre-wrap;background:#f3f4f6;padding:8px}td{padding:4px 8px}";
const LOGIN_SCRIPT: &str = "\"use strict\";\
const want=JSON.parse(document.getElementById(\"login-feeds\").textContent);\
async function poll(){try{const d=await (await fetch(\"/status\",{cache:\"no-store\"})).json();\
const b=document.getElementById(\"feeds\");b.textContent=\"\";\
for(const f of d.feeds||[]){if(!want.includes(f.name))continue;\
const tr=document.createElement(\"tr\");tr.setAttribute(\"data-feed\",f.name);tr.setAttribute(\"data-state\",f.state);\
for(const t of [f.name,f.state]){const td=document.createElement(\"td\");td.textContent=t;tr.appendChild(td);}\
b.appendChild(tr);}}catch(e){}}\
if(want.length){poll();setInterval(poll,1000);}";

/// The page a browser login's callback shows: what happened, then the
/// account's feeds as they reconnect on the new token.
pub fn login_outcome(result: &Result<LoginResult, String>, out: &mut String) {
    let (title, text, feeds) = match result {
        Ok(r) => (
            format!("Logged in: account {}", r.account),
            r.text.as_str(),
            r.feeds.clone(),
        ),
        Err(e) => ("The login did not work".to_string(), e.as_str(), Vec::new()),
    };
    let title = escape(&title);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{LOGIN_STYLE}</style></head><body>\
         <h1 id=\"outcome\" data-outcome=\"{}\">{title}</h1><pre>{}</pre>\
         <table><tbody id=\"feeds\"></tbody></table><p><a href=\"/\">back to the operator page</a></p>\
         <script id=\"login-feeds\" type=\"application/json\">{}</script>\
         <script>{LOGIN_SCRIPT}</script></body></html>",
        if result.is_ok() { "ok" } else { "failed" },
        escape(text),
        script_json(&serde_json::Value::from(feeds)),
    );
}

/// `'sha256-…'`: a CSP source allowing exactly this inline block.
fn csp_hash(block: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(block.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The text between `open` and the next `close` in `html`.
fn inline_block<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    html.split_once(open)
        .and_then(|(_, rest)| rest.split_once(close))
        .map_or("", |(block, _)| block)
}

/// A policy that loads nothing from elsewhere, may not be framed, and runs
/// only the one inline style and script named by their hashes (nothing
/// inline is allowed wholesale: an injected `<script>` or `style=` would
/// not run).
fn policy(style: &str, script: &str) -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
         img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        csp_hash(script),
        csp_hash(style)
    )
}

/// The operator page's Content-Security-Policy.
pub fn page_policy() -> &'static str {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        policy(
            inline_block(TEMPLATE, "<style>", "</style>"),
            inline_block(TEMPLATE, "<script>", "</script>"),
        )
    })
}

/// The login outcome page's Content-Security-Policy.
pub fn login_policy() -> &'static str {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| policy(LOGIN_STYLE, LOGIN_SCRIPT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::board::FeedExtra;
    use crate::status::schema::{FeedStatus, StatusDoc};
    use std::sync::Arc;

    #[test]
    fn login_buttons_are_filled_in_once_per_account_and_cannot_end_the_script() {
        let feed = |n: &str| FeedStatus {
            name: n.into(),
            broker: "exch".into(),
            ..FeedStatus::default()
        };
        let link = crate::brokers::registry::LoginLink {
            label: "Exch",
            account: "main".into(),
            url: "https://login.example/?k=1&x=</script>".into(),
        };
        let extra = FeedExtra {
            login: Some(link),
            ..FeedExtra::default()
        };
        let p = Published {
            doc: StatusDoc {
                feeds: vec![feed("a"), feed("b")],
                ..StatusDoc::default()
            },
            extra: vec![extra.clone(), extra],
            config: Arc::new(crate::config::parse_str("", std::path::Path::new("t")).unwrap()),
        };
        let mut out = String::new();
        render(&p, &mut out);
        assert_eq!(
            out.matches("\"account\":\"main\"").count(),
            1,
            "one button per account"
        );
        assert!(!out.contains("x=</script>") && out.contains("x=\\u003c/script>"));
        assert!(!out.contains(LOGINS_SLOT));
        assert!(out.contains("data-feed") && out.contains("data-state"));
        assert!(
            !out.contains("src=\"http") && !out.contains("href=\"http"),
            "no external asset"
        );
    }

    #[test]
    fn the_outcome_page_escapes_what_it_shows() {
        let mut out = String::new();
        login_outcome(&Err("bad <b>token</b>".into()), &mut out);
        assert!(
            out.contains("bad &lt;b&gt;token&lt;/b&gt;") && out.contains("data-outcome=\"failed\"")
        );
        let mut ok = String::new();
        let r = LoginResult {
            account: "main".into(),
            text: "KITE_MAIN_ACCESS_TOKEN written".into(),
            feeds: vec!["k1".into()],
        };
        login_outcome(&Ok(r), &mut ok);
        assert!(ok.contains("data-outcome=\"ok\"") && ok.contains("[\"k1\"]"));
    }

    #[test]
    fn the_policies_allow_exactly_the_pages_own_inline_blocks() {
        // The operator page: one style and one script, each hashed; the
        // login JSON block is data and needs no allowance.
        let page = page_policy();
        let style = inline_block(TEMPLATE, "<style>", "</style>");
        let script = inline_block(TEMPLATE, "<script>", "</script>");
        assert!(style.contains(".legend") && script.contains("use strict"));
        assert!(page.contains(&format!("script-src {};", csp_hash(script))));
        assert!(page.contains(&format!("style-src {};", csp_hash(style))));
        assert!(!page.contains("inline"), "{page}");
        assert!(
            !TEMPLATE.contains("style=\""),
            "a style attribute would be refused"
        );
        assert_eq!(TEMPLATE.matches("<script>").count(), 1);
        assert_eq!(TEMPLATE.matches("<style>").count(), 1);
        // The login page: its blocks are the constants the policy hashes.
        let mut out = String::new();
        login_outcome(&Err("no <b>token</b>".into()), &mut out);
        assert_eq!(inline_block(&out, "<script>", "</script>"), LOGIN_SCRIPT);
        assert_eq!(inline_block(&out, "<style>", "</style>"), LOGIN_STYLE);
        assert!(login_policy().contains(&csp_hash(LOGIN_SCRIPT)));
        assert!(!login_policy().contains("inline"));
        assert!(out.contains("no &lt;b&gt;token"));
        // Checked against a digest computed elsewhere: sha256("") in base64.
        assert_eq!(
            csp_hash(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }
}
