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
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font:15px/1.4 system-ui,sans-serif;margin:0;padding:12px}}\
         pre{{white-space:pre-wrap;background:#f3f4f6;padding:8px}}td{{padding:4px 8px}}</style></head><body>\
         <h1 id=\"outcome\" data-outcome=\"{}\">{title}</h1><pre>{}</pre>\
         <table><tbody id=\"feeds\"></tbody></table><p><a href=\"/\">back to the operator page</a></p>\
         <script id=\"login-feeds\" type=\"application/json\">{}</script>\
         <script>\"use strict\";\
         const want=JSON.parse(document.getElementById(\"login-feeds\").textContent);\
         async function poll(){{try{{const d=await (await fetch(\"/status\",{{cache:\"no-store\"}})).json();\
         const b=document.getElementById(\"feeds\");b.textContent=\"\";\
         for(const f of d.feeds||[]){{if(!want.includes(f.name))continue;\
         const tr=document.createElement(\"tr\");tr.setAttribute(\"data-feed\",f.name);tr.setAttribute(\"data-state\",f.state);\
         for(const t of [f.name,f.state]){{const td=document.createElement(\"td\");td.textContent=t;tr.appendChild(td);}}\
         b.appendChild(tr);}}}}catch(e){{}}}}\
         if(want.length){{poll();setInterval(poll,1000);}}</script></body></html>",
        if result.is_ok() { "ok" } else { "failed" },
        escape(text),
        script_json(&serde_json::Value::from(feeds)),
    );
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
}
