//! What TWS's error and notice codes mean for a connection (PROTOCOLS.md
//! §4.5–4.6): which are warnings, which report IB connectivity or a data
//! farm, and which end the session.

/// Codes ib_async (`wrapper.py`, `Wrapper.error`) treats as warnings,
/// besides the whole 2100–2199 range. ib_insync's set differed (it had 202
/// and lacked 105, 321, 329); ib_async's is the reference here.
pub const WARNING_CODES: &[i32] = &[105, 110, 165, 321, 329, 399, 404, 434, 492, 10167];

/// Whether ib_async would report this code as a warning rather than an error.
pub fn is_warning(code: i32) -> bool {
    (2100..2200).contains(&code) || WARNING_CODES.contains(&code)
}

/// A client id is already connected to this TWS.
pub const CLIENT_ID_IN_USE: i32 = 326;
/// No security definition has been found for the request.
pub const NO_SECURITY_DEFINITION: i32 = 200;
/// A market data request reused a request id that is still subscribed.
pub const DUPLICATE_TICKER_ID: i32 = 322;
/// A cancel for a request id TWS does not know (a harmless race).
pub const UNKNOWN_TICKER_ID: i32 = 300;
/// Part of the requested market data is not subscribed (data still flows).
pub const PARTLY_SUBSCRIBED: i32 = 10090;
/// Another live session of this user holds the market data (data stops until it ends).
pub const COMPETING_SESSION: i32 = 10197;

/// The farms whose status TWS reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Farm {
    /// Real-time market data (2103 / 2104).
    MarketData,
    /// Historical data, HMDS (2105 / 2106).
    Historical,
    /// Security definitions (2157 / 2158).
    SecDef,
}

impl Farm {
    pub fn as_str(self) -> &'static str {
        match self {
            Farm::MarketData => "market data",
            Farm::Historical => "HMDS",
            Farm::SecDef => "sec-def",
        }
    }
}

/// What a code says about the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// 326: another connection holds this client id.
    ClientIdInUse,
    /// 1100: connectivity between TWS and IB lost.
    ConnectivityLost,
    /// 1101: restored, market data subscriptions lost (re-request them).
    RestoredDataLost,
    /// 1102: restored, subscriptions kept.
    RestoredDataKept,
    /// 1300: TWS reset its socket port; this connection is being dropped.
    SocketPortReset,
    /// 2103 / 2105 / 2157.
    FarmBroken(Farm),
    /// 2104 / 2106 / 2158.
    FarmOk(Farm),
    /// 2107 / 2108 / 2159: a farm went inactive, which affects nothing.
    FarmInactive,
    /// Everything else: logged at its level and passed to the bot.
    Other,
}

pub fn kind(code: i32) -> CodeKind {
    match code {
        CLIENT_ID_IN_USE => CodeKind::ClientIdInUse,
        1100 => CodeKind::ConnectivityLost,
        1101 => CodeKind::RestoredDataLost,
        1102 => CodeKind::RestoredDataKept,
        1300 => CodeKind::SocketPortReset,
        2103 => CodeKind::FarmBroken(Farm::MarketData),
        2105 => CodeKind::FarmBroken(Farm::Historical),
        2157 => CodeKind::FarmBroken(Farm::SecDef),
        2104 => CodeKind::FarmOk(Farm::MarketData),
        2106 => CodeKind::FarmOk(Farm::Historical),
        2158 => CodeKind::FarmOk(Farm::SecDef),
        2107 | 2108 | 2159 => CodeKind::FarmInactive,
        _ => CodeKind::Other,
    }
}

/// The farm name TWS appends after a colon (`...is OK:usfarm.nj`), if any.
pub fn farm_name(message: &str) -> Option<&str> {
    let (_, name) = message.rsplit_once(':')?;
    let name = name.trim();
    (!name.is_empty() && !name.contains(' ')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_follow_ib_async() {
        for c in [2104, 2100, 2199, 110, 10167, 321] {
            assert!(is_warning(c), "{c}");
        }
        for c in [200, 202, 326, 1100, 2200, 354, 10197] {
            assert!(!is_warning(c), "{c}");
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        let table = [
            (326, CodeKind::ClientIdInUse),
            (1100, CodeKind::ConnectivityLost),
            (1101, CodeKind::RestoredDataLost),
            (1102, CodeKind::RestoredDataKept),
            (1300, CodeKind::SocketPortReset),
            (2103, CodeKind::FarmBroken(Farm::MarketData)),
            (2105, CodeKind::FarmBroken(Farm::Historical)),
            (2157, CodeKind::FarmBroken(Farm::SecDef)),
            (2104, CodeKind::FarmOk(Farm::MarketData)),
            (2106, CodeKind::FarmOk(Farm::Historical)),
            (2158, CodeKind::FarmOk(Farm::SecDef)),
            (2108, CodeKind::FarmInactive),
            (200, CodeKind::Other),
        ];
        for (code, want) in table {
            assert_eq!(kind(code), want, "{code}");
        }
    }

    #[test]
    fn farm_names_come_after_the_colon() {
        assert_eq!(
            farm_name("Market data farm connection is OK:usfarm.nj"),
            Some("usfarm.nj")
        );
        assert_eq!(
            farm_name("Market data farm connection is broken:usfarm"),
            Some("usfarm")
        );
        assert_eq!(farm_name("no farm here"), None);
        assert_eq!(farm_name("trailing:"), None);
    }
}
