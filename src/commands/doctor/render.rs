//! The report for people (`doctor`) and for scripts (`doctor --json`).
//! The text is one section per part of the audit, in a fixed order;
//! sections with nothing to say are left out (Sessions, Online checks,
//! Feeds, Running agent), and Failover follows the problems only when
//! there are any.

use super::report::{
    AgentReport, CredentialReport, DoctorProblem, DoctorReport, FeedNotes, FileReport, OnlineCheck,
    PlatformReport, SessionReport,
};
use crate::credentials::format::Severity;
use crate::timefmt::human;
use std::fmt::Write as _;

impl DoctorReport {
    /// Pretty JSON (for `doctor --json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("doctor report serializes")
    }

    /// The human report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "brokerguard doctor (config {})", self.config.display());
        credentials(&mut out, &self.credentials);
        files(&mut out, &self.files);
        if !self.sessions.is_empty() {
            sessions(&mut out, &self.sessions);
        }
        if let Some(checks) = &self.online {
            online(&mut out, checks);
        }
        if !self.feed_notes.is_empty() {
            feed_notes(&mut out, &self.feed_notes);
        }
        platform(&mut out, &self.platform);
        if let Some(a) = &self.agent {
            agent(&mut out, a);
        }
        if self.problems.is_empty() {
            let _ = writeln!(out, "\nAll good.");
            return out;
        }
        problems(&mut out, &self.problems);
        if let Some(f) = &self.failover {
            let _ = writeln!(out, "\nFailover\n  {f}");
        }
        out
    }
}

/// One line per credential: name, state, source, fingerprint, age, feeds;
/// then its format problems.
fn credentials(out: &mut String, credentials: &[CredentialReport]) {
    let _ = writeln!(out, "\nCredentials");
    if credentials.is_empty() {
        let _ = writeln!(out, "  (the configuration needs none)");
    }
    let w = credentials.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in credentials {
        let age = c
            .file_age_s
            .map(|s| format!("  changed {} ago", human(std::time::Duration::from_secs(s))))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:w$}  {:9}  {}  {}{}  (feed {})",
            c.name,
            c.state.as_str(),
            c.source.as_deref().unwrap_or("-"),
            c.fingerprint.as_deref().unwrap_or("-"),
            age,
            c.feeds.join(", "),
        );
        for p in &c.problems {
            let _ = writeln!(out, "  {:w$}  value {p}", "");
        }
    }
}

/// One line per credentials file: path (and link target), owner:group,
/// mode, whether it parses.
fn files(out: &mut String, files: &[FileReport]) {
    let _ = writeln!(out, "\nCredential files");
    for f in files {
        if !f.exists {
            let _ = writeln!(out, "  {}  missing", f.path.display());
            continue;
        }
        let link = f
            .symlink_target
            .as_ref()
            .map(|t| format!(" -> {}", t.display()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}{link}  {}:{} {}  {}",
            f.path.display(),
            f.owner.as_deref().unwrap_or("?"),
            f.group.as_deref().unwrap_or("?"),
            f.mode.as_deref().unwrap_or("?"),
            f.error.as_deref().unwrap_or("parses"),
        );
    }
}

fn sessions(out: &mut String, sessions: &[SessionReport]) {
    let _ = writeln!(out, "\nSessions");
    for r in sessions {
        let _ = writeln!(out, "  {} ({})", r.feed, r.broker);
        for (k, v) in &r.facts {
            let _ = writeln!(out, "    {:<16} {v}", k.replace('_', " "));
        }
    }
}

fn online(out: &mut String, checks: &[OnlineCheck]) {
    let _ = writeln!(out, "\nOnline checks (the brokers' REST APIs)");
    for c in checks {
        let _ = writeln!(
            out,
            "  {:<16} {:<10} {:<13} {}",
            c.feed, c.broker, c.outcome, c.detail
        );
    }
}

fn feed_notes(out: &mut String, notes: &[FeedNotes]) {
    let _ = writeln!(out, "\nFeeds");
    for n in notes {
        let _ = writeln!(out, "  {} ({})", n.feed, n.broker);
        for line in &n.notes {
            let _ = writeln!(out, "    {line}");
        }
    }
}

fn platform(out: &mut String, p: &PlatformReport) {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(out, "\nPlatform");
    let _ = writeln!(
        out,
        "  systemd unit: {}",
        p.systemd_unit
            .as_ref()
            .map(|u| u.display().to_string())
            .unwrap_or_else(|| "not installed".into())
    );
    let _ = writeln!(out, "  running under systemd: {}", yes_no(p.under_systemd));
    let _ = writeln!(
        out,
        "  DigitalOcean droplet: {}",
        match (&p.digitalocean, &p.droplet_id) {
            (Some(how), Some(id)) => format!("yes, id {id} ({how})"),
            (Some(how), None) => format!("yes ({how})"),
            _ => "no".into(),
        }
    );
    let _ = writeln!(
        out,
        "  container: {}",
        p.container.as_deref().unwrap_or("no")
    );
}

fn agent(out: &mut String, a: &AgentReport) {
    let _ = writeln!(out, "\nRunning agent (pid {})", a.pid);
    match &a.clock {
        Some(c) => {
            let _ = writeln!(
                out,
                "  clock: {:+} ms from {} (±{} ms, at {})",
                c.offset_ms, c.host, c.uncertainty_ms, c.at
            );
        }
        None => {
            let _ = writeln!(out, "  clock: no broker REST call yet");
        }
    }
    for (feed, info) in &a.feeds {
        let facts: Vec<String> = info.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "  {feed}: {}", facts.join(", "));
    }
}

/// The count of errors and warnings, then each problem with its note and
/// fix commands.
fn problems(out: &mut String, problems: &[DoctorProblem]) {
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let _ = writeln!(
        out,
        "\nProblems: {}, {}",
        crate::count::count(errors, "error", "errors"),
        crate::count::count(problems.len() - errors, "warning", "warnings")
    );
    for p in problems {
        let sev = match p.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "\n  {sev}: {}", p.message);
        if let Some(n) = &p.note {
            let _ = writeln!(out, "    ({n})");
        }
        if !p.fix.is_empty() {
            let _ = writeln!(out, "    fix:");
            for c in &p.fix {
                let _ = writeln!(out, "      {c}");
            }
        }
    }
}
