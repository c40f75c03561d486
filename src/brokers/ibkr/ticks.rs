//! Tick type numbers and their names (IB's `ticktype.py`, lower-cased), so
//! the bot reads `"tick": "last"` next to `"tick_type": 4`.

const NAMES: &[&str] = &[
    "bid_size",
    "bid",
    "ask",
    "ask_size",
    "last",
    "last_size",
    "high",
    "low",
    "volume",
    "close",
    "bid_option_computation",
    "ask_option_computation",
    "last_option_computation",
    "model_option",
    "open",
    "low_13_week",
    "high_13_week",
    "low_26_week",
    "high_26_week",
    "low_52_week",
    "high_52_week",
    "avg_volume",
    "open_interest",
    "option_historical_vol",
    "option_implied_vol",
    "option_bid_exch",
    "option_ask_exch",
    "option_call_open_interest",
    "option_put_open_interest",
    "option_call_volume",
    "option_put_volume",
    "index_future_premium",
    "bid_exch",
    "ask_exch",
    "auction_volume",
    "auction_price",
    "auction_imbalance",
    "mark_price",
    "bid_efp_computation",
    "ask_efp_computation",
    "last_efp_computation",
    "open_efp_computation",
    "high_efp_computation",
    "low_efp_computation",
    "close_efp_computation",
    "last_timestamp",
    "shortable",
    "not_used",
    "rt_volume",
    "halted",
    "bid_yield",
    "ask_yield",
    "last_yield",
    "cust_option_computation",
    "trade_count",
    "trade_rate",
    "volume_rate",
    "last_rth_trade",
    "rt_historical_vol",
    "ib_dividends",
    "bond_factor_multiplier",
    "regulatory_imbalance",
    "news_tick",
    "short_term_volume_3_min",
    "short_term_volume_5_min",
    "short_term_volume_10_min",
    "delayed_bid",
    "delayed_ask",
    "delayed_last",
    "delayed_bid_size",
    "delayed_ask_size",
    "delayed_last_size",
    "delayed_high",
    "delayed_low",
    "delayed_volume",
    "delayed_close",
    "delayed_open",
    "rt_trd_volume",
    "creditman_mark_price",
    "creditman_slow_mark_price",
    "delayed_bid_option",
    "delayed_ask_option",
    "delayed_last_option",
    "delayed_model_option",
    "last_exch",
    "last_reg_time",
    "futures_open_interest",
    "avg_opt_volume",
    "delayed_last_timestamp",
    "shortable_shares",
    "delayed_halted",
    "reuters_2_mutual_funds",
    "etf_nav_close",
    "etf_nav_prior_close",
    "etf_nav_bid",
    "etf_nav_ask",
    "etf_nav_last",
    "etf_frozen_nav_last",
    "etf_nav_high",
    "etf_nav_low",
    "social_market_analytics",
    "estimated_ipo_midpoint",
    "final_ipo_last",
    "delayed_yield_bid",
    "delayed_yield_ask",
    "odd_lot_bid",
    "odd_lot_ask",
    "odd_lot_bid_size",
    "odd_lot_ask_size",
    "odd_lot_bid_exch",
    "odd_lot_ask_exch",
];

/// The name of a tick type, `"unknown"` for numbers this build does not know.
pub fn name(tick_type: i64) -> &'static str {
    usize::try_from(tick_type)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers_have_ib_names() {
        assert_eq!(name(0), "bid_size");
        assert_eq!(name(1), "bid");
        assert_eq!(name(4), "last");
        assert_eq!(name(8), "volume");
        assert_eq!(name(45), "last_timestamp");
        assert_eq!(name(48), "rt_volume");
        assert_eq!(name(66), "delayed_bid");
        assert_eq!(name(88), "delayed_last_timestamp");
        assert_eq!(name(104), "delayed_yield_ask");
        assert_eq!(name(110), "odd_lot_ask_exch");
        assert_eq!(name(111), "unknown");
        assert_eq!(name(-1), "unknown");
    }
}
