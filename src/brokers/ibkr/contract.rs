//! A contract to request market data for, as the configuration gives it
//! (`contracts = [{ symbol, sec_type, exchange, currency, ... }]`), its
//! checks, and the twelve contract fields ib_async writes into `reqMktData`.

use super::wire::Writer;
use std::fmt;

/// Security types TWS accepts in a market data request. `BAG` (combos)
/// needs legs this configuration cannot express, so it is not offered.
pub const SEC_TYPES: &[&str] = &[
    "STK", "OPT", "FUT", "FOP", "CASH", "IND", "CFD", "BOND", "CMDTY", "WAR", "IOPT", "FUND",
    "CRYPTO", "CONTFUT",
];

/// Longest text accepted in a contract field: TWS's own are far shorter,
/// and a limit keeps a typo'd paste from becoming a kilobyte request.
pub const FIELD_MAX: usize = 64;

/// One contract of a feed. Empty strings and `None` are "unset", written
/// as ib_async writes its defaults (`""`, con_id `0`, strike `0.0`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contract {
    pub symbol: String,
    pub sec_type: String,
    pub exchange: String,
    pub currency: String,
    pub primary_exchange: String,
    pub con_id: Option<i64>,
    pub local_symbol: String,
    /// `YYYYMM` or `YYYYMMDD` (options and futures).
    pub last_trade_date: String,
    pub strike: Option<f64>,
    /// `C` / `P` (or `CALL` / `PUT`).
    pub right: String,
    pub multiplier: String,
    pub trading_class: String,
    /// Comma-separated generic tick ids (`"233,236"`), empty for the default set.
    pub generic_ticks: String,
}

impl Contract {
    /// Every text field with its configuration key, in the order the
    /// configuration documents them (for checks and for printing back).
    pub fn text_fields(&self) -> [(&'static str, &str); 11] {
        [
            ("symbol", &self.symbol),
            ("sec_type", &self.sec_type),
            ("exchange", &self.exchange),
            ("currency", &self.currency),
            ("primary_exchange", &self.primary_exchange),
            ("local_symbol", &self.local_symbol),
            ("last_trade_date", &self.last_trade_date),
            ("right", &self.right),
            ("multiplier", &self.multiplier),
            ("trading_class", &self.trading_class),
            ("generic_ticks", &self.generic_ticks),
        ]
    }

    /// A stock, the common case.
    pub fn stock(symbol: &str, exchange: &str, currency: &str) -> Self {
        Contract {
            symbol: symbol.into(),
            sec_type: "STK".into(),
            exchange: exchange.into(),
            currency: currency.into(),
            ..Contract::default()
        }
    }

    /// Appends the contract's fields in ib_async's order: conId, symbol,
    /// secType, lastTradeDateOrContractMonth, strike, right, multiplier,
    /// exchange, primaryExchange, currency, localSymbol, tradingClass.
    pub fn write_fields(&self, w: &mut Writer) {
        w.int(self.con_id.unwrap_or(0))
            .text(&self.symbol)
            .text(&self.sec_type)
            .text(&self.last_trade_date)
            .float(self.strike.unwrap_or(0.0))
            .text(&self.right)
            .text(&self.multiplier)
            .text(&self.exchange)
            .text(&self.primary_exchange)
            .text(&self.currency)
            .text(&self.local_symbol)
            .text(&self.trading_class);
    }

    /// How the contract is named in errors and logs: `AAPL STK SMART USD`
    /// (plus what else was configured to tell it apart).
    pub fn label(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let name = if self.symbol.is_empty() {
            self.local_symbol.clone()
        } else {
            self.symbol.clone()
        };
        parts.push(name);
        for s in [&self.sec_type, &self.last_trade_date] {
            if !s.is_empty() {
                parts.push(s.clone());
            }
        }
        if let Some(k) = self.strike {
            parts.push(super::wire::python_float(k));
        }
        for s in [&self.right, &self.exchange, &self.currency] {
            if !s.is_empty() {
                parts.push(s.clone());
            }
        }
        if let Some(id) = self.con_id {
            parts.push(format!("conId {id}"));
        }
        parts.join(" ")
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// One thing wrong with a contract: the key and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractProblem {
    pub key: &'static str,
    pub message: String,
}

impl fmt::Display for ContractProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn text_problem(key: &'static str, value: &str) -> Option<ContractProblem> {
    if value.chars().any(|c| c.is_control()) {
        return Some(ContractProblem {
            key,
            message: "must not contain control characters".into(),
        });
    }
    if value.chars().count() > FIELD_MAX {
        return Some(ContractProblem {
            key,
            message: format!("is longer than {FIELD_MAX} characters"),
        });
    }
    if value.trim() != value {
        return Some(ContractProblem {
            key,
            message: "must not start or end with spaces".into(),
        });
    }
    None
}

fn is_upper_code(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Every problem of one contract (empty when it is fine).
pub fn check(c: &Contract) -> Vec<ContractProblem> {
    let mut out = Vec::new();
    let mut push = |key: &'static str, message: String| out.push(ContractProblem { key, message });
    for (key, value) in c.text_fields() {
        if let Some(p) = text_problem(key, value) {
            push(p.key, p.message);
        }
    }
    if c.symbol.is_empty() && c.local_symbol.is_empty() && c.con_id.is_none() {
        push(
            "symbol",
            "is required (or give local_symbol or con_id), e.g. symbol = \"AAPL\"".into(),
        );
    }
    shape_problems(c, &mut push);
    missing_for_sec_type(c, &mut push);
    out
}

/// Each field's own shape: a known security type, a currency code, a
/// positive strike, ...
fn shape_problems(c: &Contract, push: &mut impl FnMut(&'static str, String)) {
    if !SEC_TYPES.contains(&c.sec_type.as_str()) {
        push(
            "sec_type",
            format!(
                "\"{}\" is not one of {} (e.g. \"STK\" for a stock)",
                c.sec_type,
                SEC_TYPES.join(", ")
            ),
        );
    }
    if c.exchange.is_empty() {
        push(
            "exchange",
            "is required, e.g. \"SMART\" for IB's smart routing".into(),
        );
    }
    if c.currency.len() != 3 || !c.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        push(
            "currency",
            format!(
                "\"{}\" must be a 3-letter ISO code such as \"USD\"",
                c.currency
            ),
        );
    }
    if !c.primary_exchange.is_empty() && !is_upper_code(&c.primary_exchange) {
        push(
            "primary_exchange",
            format!(
                "\"{}\" must be an exchange code in capitals, e.g. \"NASDAQ\"",
                c.primary_exchange
            ),
        );
    }
    if let Some(id) = c.con_id {
        if id <= 0 || id > i64::from(i32::MAX) {
            push("con_id", format!("{id} must be a positive IB contract id"));
        }
    }
    let date = &c.last_trade_date;
    if !date.is_empty()
        && !((date.len() == 6 || date.len() == 8) && date.bytes().all(|b| b.is_ascii_digit()))
    {
        push(
            "last_trade_date",
            format!("\"{date}\" must be YYYYMM or YYYYMMDD"),
        );
    }
    if let Some(k) = c.strike {
        if !k.is_finite() || k <= 0.0 {
            push("strike", format!("{k} must be a positive price"));
        }
    }
    if !c.right.is_empty() && !["C", "P", "CALL", "PUT"].contains(&c.right.as_str()) {
        push(
            "right",
            format!(
                "\"{}\" must be \"C\" or \"P\" (or \"CALL\"/\"PUT\")",
                c.right
            ),
        );
    }
    if !c.multiplier.is_empty() && super::wire::parse_number(c.multiplier.as_bytes()).is_none() {
        push(
            "multiplier",
            format!("\"{}\" must be a number, e.g. \"100\"", c.multiplier),
        );
    }
    if !c.generic_ticks.is_empty()
        && !c
            .generic_ticks
            .split(',')
            .all(|t| !t.is_empty() && t.len() <= 4 && t.bytes().all(|b| b.is_ascii_digit()))
    {
        push(
            "generic_ticks",
            format!(
                "\"{}\" must be tick ids separated by commas, e.g. \"233,236\"",
                c.generic_ticks
            ),
        );
    }
}

/// What a derivative or a future needs to be found when neither
/// `local_symbol` nor `con_id` names it: its expiry, strike and right.
fn missing_for_sec_type(c: &Contract, push: &mut impl FnMut(&'static str, String)) {
    let derivative = matches!(c.sec_type.as_str(), "OPT" | "FOP" | "WAR" | "IOPT");
    if derivative && c.local_symbol.is_empty() && c.con_id.is_none() {
        if c.last_trade_date.is_empty() {
            push(
                "last_trade_date",
                format!(
                    "is required for {} (or give local_symbol or con_id)",
                    c.sec_type
                ),
            );
        }
        if c.strike.is_none() {
            push(
                "strike",
                format!(
                    "is required for {} (or give local_symbol or con_id)",
                    c.sec_type
                ),
            );
        }
        if c.right.is_empty() {
            push(
                "right",
                format!(
                    "is required for {} (or give local_symbol or con_id)",
                    c.sec_type
                ),
            );
        }
    }
    if c.sec_type == "FUT"
        && c.local_symbol.is_empty()
        && c.con_id.is_none()
        && c.last_trade_date.is_empty()
    {
        push(
            "last_trade_date",
            "is required for FUT (or give local_symbol or con_id)".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &Contract) -> Vec<&'static str> {
        check(c).into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_plain_stock_is_fine() {
        assert!(check(&Contract::stock("AAPL", "SMART", "USD")).is_empty());
        let mut c = Contract::stock("MSFT", "SMART", "USD");
        c.primary_exchange = "NASDAQ".into();
        c.con_id = Some(272093);
        c.generic_ticks = "233,236".into();
        assert!(check(&c).is_empty(), "{:?}", check(&c));
    }

    #[test]
    fn each_rule_names_its_key() {
        let table: Vec<(Contract, Vec<&str>)> = vec![
            (Contract::stock("", "SMART", "USD"), vec!["symbol"]),
            (
                Contract {
                    sec_type: "SHARE".into(),
                    ..Contract::stock("AAPL", "SMART", "USD")
                },
                vec!["sec_type"],
            ),
            (Contract::stock("AAPL", "", "USD"), vec!["exchange"]),
            (Contract::stock("AAPL", "SMART", "usd"), vec!["currency"]),
            (Contract::stock("AA\0PL", "SMART", "USD"), vec!["symbol"]),
            (Contract::stock(" AAPL", "SMART", "USD"), vec!["symbol"]),
            (
                Contract {
                    con_id: Some(0),
                    ..Contract::stock("AAPL", "SMART", "USD")
                },
                vec!["con_id"],
            ),
            (
                Contract {
                    generic_ticks: "233,,x".into(),
                    ..Contract::stock("AAPL", "SMART", "USD")
                },
                vec!["generic_ticks"],
            ),
            (
                Contract {
                    sec_type: "OPT".into(),
                    ..Contract::stock("AAPL", "SMART", "USD")
                },
                vec!["last_trade_date", "strike", "right"],
            ),
            (
                Contract {
                    sec_type: "OPT".into(),
                    last_trade_date: "2026-01-16".into(),
                    strike: Some(-1.0),
                    right: "X".into(),
                    ..Contract::stock("AAPL", "SMART", "USD")
                },
                vec!["last_trade_date", "strike", "right"],
            ),
            (
                Contract {
                    sec_type: "FUT".into(),
                    ..Contract::stock("ES", "CME", "USD")
                },
                vec!["last_trade_date"],
            ),
            (
                Contract {
                    sec_type: "FUT".into(),
                    local_symbol: "ESZ6".into(),
                    multiplier: "fifty".into(),
                    ..Contract::stock("ES", "CME", "USD")
                },
                vec!["multiplier"],
            ),
        ];
        for (c, want) in table {
            assert_eq!(keys(&c), want, "{c:?}");
        }
    }

    #[test]
    fn fields_are_written_like_ib_async_defaults() {
        let mut w = Writer::new();
        Contract::stock("AAPL", "SMART", "USD").write_fields(&mut w);
        assert_eq!(
            w.finish(),
            b"0\0AAPL\0STK\0\x000.0\0\0\0SMART\0\0USD\0\0\0".to_vec()
        );
    }

    #[test]
    fn labels_name_what_tells_contracts_apart() {
        assert_eq!(
            Contract::stock("AAPL", "SMART", "USD").label(),
            "AAPL STK SMART USD"
        );
        let opt = Contract {
            sec_type: "OPT".into(),
            last_trade_date: "20260116".into(),
            strike: Some(150.0),
            right: "C".into(),
            con_id: Some(7),
            ..Contract::stock("AAPL", "SMART", "USD")
        };
        assert_eq!(opt.label(), "AAPL OPT 20260116 150.0 C SMART USD conId 7");
    }
}
