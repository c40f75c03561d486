//! The `[[feed]]` section of an IBKR feed, read through `config::Section`
//! (every problem at its file:line:col) and printed back through
//! `config::Shown` for `config check`. The rules themselves are
//! [`IbkrSettings::from_keys`]'s: this module only reads the raw values
//! and puts each problem it names where the operator wrote the value.

use super::contract::Contract;
use super::settings::{IbkrKeys, IbkrSettings};
use crate::brokers::registry::BrokerSettings;
use crate::config::{Section, Shown};

/// The keys an IBKR feed takes besides the common ones.
pub const KEYS: &[&str] = &[
    "host",
    "port",
    "client_id",
    "client_id_range",
    "contracts",
    "reset_window",
];

/// The keys of one `contracts` table.
pub const CONTRACT_KEYS: &[&str] = &[
    "symbol",
    "sec_type",
    "exchange",
    "currency",
    "primary_exchange",
    "con_id",
    "local_symbol",
    "last_trade_date",
    "strike",
    "right",
    "multiplier",
    "trading_class",
    "generic_ticks",
];

/// Reads one contract table; `None` when a value had the wrong type (the
/// problem is reported). The rules on the values come later, from
/// [`IbkrSettings::from_keys`].
fn read_contract(c: &mut Section<'_, '_, '_, '_>) -> Option<Contract> {
    let mut ok = true;
    let mut text = |c: &mut Section<'_, '_, '_, '_>, key: &str| -> String {
        match c.string(key) {
            Some(v) => v,
            None => {
                ok &= !c.has(key);
                String::new()
            }
        }
    };
    let mut out = Contract {
        symbol: text(c, "symbol"),
        sec_type: text(c, "sec_type"),
        exchange: text(c, "exchange"),
        currency: text(c, "currency"),
        primary_exchange: text(c, "primary_exchange"),
        local_symbol: text(c, "local_symbol"),
        last_trade_date: text(c, "last_trade_date"),
        right: text(c, "right"),
        multiplier: text(c, "multiplier"),
        trading_class: text(c, "trading_class"),
        generic_ticks: text(c, "generic_ticks"),
        ..Contract::default()
    };
    out.con_id = c.integer("con_id");
    ok &= out.con_id.is_some() || !c.has("con_id");
    out.strike = c.float("strike");
    ok &= out.strike.is_some() || !c.has("strike");
    ok.then_some(out)
}

/// Splits `contracts[3].currency` into (3, Some("currency")) and
/// `contracts[3]` into (3, None).
fn contract_key(key: &str) -> Option<(usize, Option<&str>)> {
    let rest = key.strip_prefix("contracts[")?;
    let (index, after) = rest.split_once(']')?;
    let index = index.parse().ok()?;
    match after {
        "" => Some((index, None)),
        _ => after.strip_prefix('.').map(|field| (index, Some(field))),
    }
}

/// Reads and checks an IBKR feed's keys; `None` after any problem (each
/// reported at its place).
pub fn parse(s: &mut Section<'_, '_, '_, '_>) -> Option<IbkrSettings> {
    let mut ok = true;
    let mut keys = IbkrKeys {
        host: s.string("host"),
        port: s.integer("port"),
        client_id: s.integer("client_id"),
        client_id_range: s.integer_list("client_id_range"),
        reset_window: s.string("reset_window"),
        ..IbkrKeys::default()
    };
    for (key, read) in [
        ("host", keys.host.is_some()),
        ("port", keys.port.is_some()),
        ("client_id", keys.client_id.is_some()),
        ("client_id_range", keys.client_id_range.is_some()),
        ("reset_window", keys.reset_window.is_some()),
    ] {
        ok &= read || !s.has(key);
    }
    match s.table_list("contracts", "contract", CONTRACT_KEYS, read_contract) {
        Some(list) => keys.contracts = list,
        None => ok &= !s.has("contracts"),
    }
    let problems = match IbkrSettings::from_keys(&keys) {
        Ok(settings) => return ok.then_some(settings),
        Err(problems) => problems,
    };
    let mut per_contract: Vec<(usize, String, String)> = Vec::new();
    for p in problems {
        match contract_key(&p.key) {
            Some((i, field)) => {
                // A whole-contract problem (a repeat) is shown at its symbol.
                let field = field.unwrap_or("symbol").to_string();
                per_contract.push((i, field, p.message));
            }
            None => s.report(&p.key, p.message),
        }
    }
    if !per_contract.is_empty() {
        // A second walk over the contracts, which read cleanly the first
        // time, to report each problem inside its own table.
        let mut index = 0;
        s.table_list("contracts", "contract", CONTRACT_KEYS, |c| {
            for (_, field, message) in per_contract.iter().filter(|(i, ..)| *i == index) {
                c.report(field, message.clone());
            }
            index += 1;
            Some(())
        });
    }
    None
}

/// A contract as an inline TOML table, its set fields only.
fn contract_toml(c: &Contract) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (key, value) in c.text_fields() {
        if !value.is_empty() {
            parts.push(format!("{key} = {}", Shown::quote(value)));
        }
    }
    if let Some(id) = c.con_id {
        parts.push(format!("con_id = {id}"));
    }
    if let Some(k) = c.strike {
        parts.push(format!("strike = {}", super::wire::python_float(k)));
    }
    format!("{{ {} }}", parts.join(", "))
}

impl BrokerSettings for IbkrSettings {
    crate::broker_settings_plumbing!();

    fn show(&self, out: &mut Shown<'_>) {
        out.string("host", &self.host);
        out.integer("port", i64::from(self.port));
        out.integer("client_id", i64::from(self.client_ids.first));
        if let Some((a, b)) = self.client_ids.range {
            out.integers("client_id_range", &[i64::from(a), i64::from(b)]);
        }
        let items: Vec<String> = self.contracts.iter().map(contract_toml).collect();
        out.raw("contracts", &format!("[{}]", items.join(", ")));
        if let Some(w) = &self.reset_window {
            out.string("reset_window", &w.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_keys_split() {
        assert_eq!(
            contract_key("contracts[3].currency"),
            Some((3, Some("currency")))
        );
        assert_eq!(contract_key("contracts[0]"), Some((0, None)));
        assert_eq!(contract_key("client_id"), None);
        assert_eq!(contract_key("contracts[x]"), None);
    }

    #[test]
    fn contracts_print_as_inline_tables() {
        let mut c = Contract::stock("AAPL", "SMART", "USD");
        c.con_id = Some(265598);
        assert_eq!(
            contract_toml(&c),
            r#"{ symbol = "AAPL", sec_type = "STK", exchange = "SMART", currency = "USD", con_id = 265598 }"#
        );
    }
}
