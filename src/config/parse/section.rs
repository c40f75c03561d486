//! The face of the configuration walker that brokers see: a [`Section`] is
//! the part of one `[[feed]]` table (or of a table nested in it, such as
//! one IBKR contract) that a broker reads, with typed readers that report
//! every problem at its file:line:col, exactly as the common keys do.
//!
//! Readers return `None` both when the key is absent and when its value is
//! unusable (the problem is then already reported); use [`Section::has`]
//! to tell the two apart.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;

use super::walker::{Value, Walker};

/// A broker's view of one table of the configuration.
pub struct Section<'a, 's, 'b, 'i> {
    pub(super) w: &'a mut Walker<'s, 'b>,
    pub(super) table: &'a DeTable<'i>,
    /// Key path of the table, e.g. `feed[2]` or `feed[2].contracts[0]`.
    pub(super) path: String,
    /// How the table is named in messages, e.g. `[[feed]] "tws"`.
    pub(super) place: String,
    /// Where "missing key" problems are reported (the `broker` value).
    pub(super) anchor: Range<usize>,
}

impl<'a, 's, 'b, 'i> Section<'a, 's, 'b, 'i> {
    fn value(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    fn keypath(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// `[[feed]] "name"` (or the nested table's name), for messages.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Whether the key is written in the table.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Reports a problem at the key's value (or the table when it is absent).
    pub fn report(&mut self, key: &str, message: impl Into<String>) {
        let span = self
            .value(key)
            .map(|v| v.span())
            .unwrap_or_else(|| self.anchor.clone());
        let kp = self.keypath(key);
        self.w.report(span, &kp, message);
    }

    /// Reports a key that must be written but is not.
    pub fn report_missing(&mut self, key: &str, message: impl Into<String>) {
        let kp = self.keypath(key);
        self.w.report(self.anchor.clone(), &kp, message);
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        let v = self.value(key)?;
        self.w.string(v, &self.keypath(key))
    }

    pub fn nonempty_string(&mut self, key: &str) -> Option<String> {
        let v = self.value(key)?;
        self.w.nonempty_string(v, &self.keypath(key))
    }

    /// A message template: `${NAME}` references must be closed and well named.
    pub fn template(&mut self, key: &str) -> Option<String> {
        let v = self.value(key)?;
        self.w.template(v, &self.keypath(key))
    }

    pub fn integer(&mut self, key: &str) -> Option<i64> {
        let v = self.value(key)?;
        self.w.integer(v, &self.keypath(key))
    }

    /// An integer within `[min, max]`.
    pub fn integer_in(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        let n = self.integer(key)?;
        if n < min || n > max {
            self.report(key, format!("{n} is out of range; use {min} to {max}"));
            return None;
        }
        Some(n)
    }

    /// A finite number; an integer is taken as one (`strike = 150`).
    pub fn float(&mut self, key: &str) -> Option<f64> {
        let v = self.value(key)?;
        self.w.float(v, &self.keypath(key))
    }

    pub fn boolean(&mut self, key: &str) -> Option<bool> {
        let v = self.value(key)?;
        self.w.boolean(v, &self.keypath(key))
    }

    pub fn duration(&mut self, key: &str) -> Option<Duration> {
        let v = self.value(key)?;
        self.w.duration(v, &self.keypath(key))
    }

    pub fn positive_duration(&mut self, key: &str) -> Option<Duration> {
        let v = self.value(key)?;
        self.w.positive_duration(v, &self.keypath(key))
    }

    pub fn path(&mut self, key: &str) -> Option<PathBuf> {
        let v = self.value(key)?;
        self.w.path(v, &self.keypath(key))
    }

    /// One of `choices`, with a did-you-mean for near misses.
    pub fn choice(
        &mut self,
        key: &str,
        what: &str,
        choices: &[&'static str],
    ) -> Option<&'static str> {
        let v = self.value(key)?;
        self.w.choice(v, &self.keypath(key), what, choices)
    }

    /// The items of an array, each read by `item` (given the item's value
    /// and key path). `None` if absent, not an array, or any item failed.
    fn list<T>(
        &mut self,
        key: &str,
        expected: &str,
        mut item: impl FnMut(&mut Walker<'s, 'b>, &Value<'i>, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let v = self.value(key)?;
        let kp = self.keypath(key);
        let items = self.w.array(v, &kp, expected)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (j, it) in items.iter().enumerate() {
            match item(self.w, it, &format!("{kp}[{j}]")) {
                Some(x) => out.push(x),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        self.list(key, "a list of strings", |w, v, kp| {
            w.nonempty_string(v, kp)
        })
    }

    /// A list of message templates (`${NAME}` references checked).
    pub fn template_list(&mut self, key: &str) -> Option<Vec<String>> {
        self.list(key, "a list of message strings", |w, v, kp| {
            w.template(v, kp)
        })
    }

    pub fn integer_list(&mut self, key: &str) -> Option<Vec<i64>> {
        self.list(key, "a list of integers", |w, v, kp| w.integer(v, kp))
    }

    /// A list of `choices`.
    pub fn choice_list(
        &mut self,
        key: &str,
        what: &str,
        choices: &[&'static str],
    ) -> Option<Vec<&'static str>> {
        self.list(key, "a list of strings", |w, v, kp| {
            w.choice(v, kp, what, choices)
        })
    }

    /// A list of tables (e.g. `contracts = [{ symbol = "AAPL", ... }]`),
    /// each read by `item` as a nested section whose keys must be in
    /// `allowed` (unknown keys are reported with a did-you-mean).
    pub fn table_list<T>(
        &mut self,
        key: &str,
        what: &str,
        allowed: &[&str],
        mut item: impl FnMut(&mut Section<'_, 's, 'b, 'i>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let v = self.value(key)?;
        let kp = self.keypath(key);
        let items = self.w.array(v, &kp, &format!("a list of {what} tables"))?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (j, it) in items.iter().enumerate() {
            let ikp = format!("{kp}[{j}]");
            let Some(t) = self.w.table(it, &ikp, &format!("a table ({what})")) else {
                ok = false;
                continue;
            };
            let place = format!("{key}[{j}] of {}", self.place);
            for (k, _) in t.iter() {
                let name: &str = k.get_ref();
                if !allowed.contains(&name) {
                    self.w
                        .unknown_key(k.span(), &format!("{ikp}.{name}"), name, &place, allowed);
                    ok = false;
                }
            }
            let mut sub = Section {
                w: &mut *self.w,
                table: t,
                path: ikp,
                place,
                anchor: it.span(),
            };
            match item(&mut sub) {
                Some(x) => out.push(x),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}
