//! What a benchmark hands to `bench/run.sh`: its section of bench/RESULTS.md
//! as markdown, written to `$BROKERGUARD_RESULTS_DIR/<name>.md` when run.sh
//! set that folder (the same text goes to stdout either way, so a bench run
//! on its own still shows every figure).

use std::path::PathBuf;

pub struct Report {
    name: String,
    text: String,
    /// Rows of the summary table run.sh puts first: target, brokerguard,
    /// baseline, ratio, verdict.
    targets: Vec<[String; 5]>,
}

/// `value` with `digits` decimals, or "n/a" for a figure that was not measured.
pub fn fmt(value: f64, digits: usize) -> String {
    if value.is_finite() {
        format!("{value:.digits$}")
    } else {
        "n/a".into()
    }
}

/// "met" or "MISSED".
pub fn verdict(ok: bool) -> String {
    if ok { "met" } else { "MISSED" }.to_string()
}

/// `a / b` as "3.2×", or "n/a".
pub fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".into()
    }
}

impl Report {
    pub fn new(name: &str) -> Report {
        Report {
            name: name.to_string(),
            text: String::new(),
            targets: Vec::new(),
        }
    }

    /// One paragraph line (printed too).
    pub fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }

    /// A markdown table.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        self.line(format!("| {} |", header.join(" | ")));
        self.line(format!(
            "|{}|",
            header.iter().map(|_| " --- ").collect::<Vec<_>>().join("|")
        ));
        for r in rows {
            self.line(format!("| {} |", r.join(" | ")));
        }
        self.line("");
    }

    /// One row of the summary: the target, brokerguard's figure, the
    /// baseline's, their ratio and the verdict (also a line of this section).
    pub fn target(&mut self, row: [String; 5]) {
        self.line(format!(
            "- **{}**: brokerguard {}; baseline {}; ratio {}; **{}**",
            row[0], row[1], row[2], row[3], row[4]
        ));
        self.targets.push(row);
    }

    /// Writes the section for run.sh (again on every call: a bench that
    /// fails later still leaves what it measured).
    pub fn save(&self) {
        let Some(dir) = std::env::var_os("BROKERGUARD_RESULTS_DIR") else {
            return;
        };
        let dir = PathBuf::from(dir);
        let path = dir.join(format!("{}.md", self.name));
        if let Err(e) = std::fs::write(&path, &self.text) {
            eprintln!("cannot write {}: {e}", path.display());
        }
        let rows: String = self
            .targets
            .iter()
            .map(|r| format!("| {} |\n", r.join(" | ")))
            .collect();
        let _ = std::fs::write(dir.join(format!("{}.targets", self.name)), rows);
    }
}
