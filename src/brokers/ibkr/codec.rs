//! The TWS API messages brokerguard sends and reads, in the classic text
//! protocol (server versions below 201). Pure: bytes in, typed messages
//! out, and back. Layouts follow ib_async (`client.py`, `decoder.py`) for
//! the versions it negotiates (157..178), and IB's own decoders for the
//! `error` layouts of other server versions (PROTOCOLS.md §4).

use super::contract::Contract;
use super::wire::{Fields, ProtocolError, Writer, length_prefixed, split};

/// The lowest server version accepted, as in ib_async (`MinClientVersion`).
pub const MIN_CLIENT_VERSION: u32 = 157;
/// The highest server version offered, as in ib_async (`MaxClientVersion`):
/// below 201, where protobuf messages begin.
pub const MAX_CLIENT_VERSION: u32 = 178;
/// `START_API` carries optional capabilities from this server version on
/// (IB's `MIN_SERVER_VER_OPTIONAL_CAPABILITIES`).
pub const MIN_SERVER_VER_OPTIONAL_CAPABILITIES: u32 = 72;
/// tickPrice's attribute mask has a past-limit bit from this version on.
pub const MIN_SERVER_VER_PAST_LIMIT: u32 = 109;
/// ... and a pre-open bit from this one.
pub const MIN_SERVER_VER_PRE_OPEN_BID_ASK: u32 = 132;
/// `error` gains advancedOrderRejectJson.
pub const MIN_SERVER_VER_ADVANCED_ORDER_REJECT: u32 = 166;
/// `error` loses its version field and gains errorTime.
pub const MIN_SERVER_VER_ERROR_TIME: u32 = 194;

/// Outgoing message ids.
pub mod out_id {
    pub const REQ_MKT_DATA: i64 = 1;
    pub const CANCEL_MKT_DATA: i64 = 2;
    pub const REQ_CURRENT_TIME: i64 = 49;
    pub const START_API: i64 = 71;
}

/// Incoming message ids.
pub mod in_id {
    pub const TICK_PRICE: i64 = 1;
    pub const TICK_SIZE: i64 = 2;
    pub const ERR_MSG: i64 = 4;
    pub const NEXT_VALID_ID: i64 = 9;
    pub const MANAGED_ACCTS: i64 = 15;
    pub const TICK_GENERIC: i64 = 45;
    pub const TICK_STRING: i64 = 46;
    pub const CURRENT_TIME: i64 = 49;
    pub const TICK_SNAPSHOT_END: i64 = 57;
    pub const MARKET_DATA_TYPE: i64 = 58;
    pub const TICK_REQ_PARAMS: i64 = 81;
}

/// The client's opening bytes: `API\0`, then the length-prefixed
/// `v<min>..<max>` (with `" " + options` when connect options are given,
/// e.g. `+PACEAPI`). Written raw: the framing only starts after `API\0`.
pub fn client_greeting(min: u32, max: u32, connect_options: &str) -> Vec<u8> {
    let mut version = format!("v{min}..{max}");
    if !connect_options.is_empty() {
        version.push(' ');
        version.push_str(connect_options);
    }
    let mut out = b"API\0".to_vec();
    out.extend(length_prefixed(version.as_bytes()));
    out
}

/// The server's answer to the greeting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHello {
    pub server_version: u32,
    /// As TWS writes it, e.g. `20230228 17:24:14 EST`.
    pub connection_time: String,
}

/// Reads the server's answer to the greeting: exactly two fields. Any other
/// message before it yields `Ok(None)` (IB's client: "sometimes I get news
/// before the server version").
pub fn decode_server_hello(payload: &[u8]) -> Result<Option<ServerHello>, ProtocolError> {
    let fields = split(payload)?;
    if fields.len() != 2 {
        return Ok(None);
    }
    let mut f = Fields::new(fields, "server version reply", 0);
    let version = f.int("server_version")?;
    let connection_time = f.text("connection_time")?;
    let server_version = u32::try_from(version).map_err(|_| ProtocolError::BadField {
        msg: "server version reply",
        field: "server_version",
        index: 0,
        value: version.to_string(),
    })?;
    Ok(Some(ServerHello {
        server_version,
        connection_time,
    }))
}

/// `START_API` (71, version 2): the client id, and the optional
/// capabilities when the server version has that field.
pub fn start_api(client_id: i32, optional_capabilities: &str, server_version: u32) -> Vec<u8> {
    let mut w = Writer::new();
    w.int(out_id::START_API).int(2).int(i64::from(client_id));
    if server_version >= MIN_SERVER_VER_OPTIONAL_CAPABILITIES {
        w.text(optional_capabilities);
    }
    w.finish()
}

/// `reqCurrentTime` (49, version 1).
pub fn req_current_time() -> Vec<u8> {
    let mut w = Writer::new();
    w.int(out_id::REQ_CURRENT_TIME).int(1);
    w.finish()
}

/// `reqMktData` (1, version 11) with exactly the fields ib_async sends:
/// the request id, the twelve contract fields, no delta-neutral contract
/// (`0`), the generic tick list, snapshot, regulatory snapshot and empty
/// market data options. Every server version from [`MIN_CLIENT_VERSION`]
/// on takes this one layout (IB's gates for these fields are all lower).
pub fn req_mkt_data(
    req_id: i64,
    contract: &Contract,
    snapshot: bool,
    regulatory_snapshot: bool,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.int(out_id::REQ_MKT_DATA).int(11).int(req_id);
    contract.write_fields(&mut w);
    w.flag(false)
        .text(&contract.generic_ticks)
        .flag(snapshot)
        .flag(regulatory_snapshot)
        .text("");
    w.finish()
}

/// `cancelMktData` (2, version 2).
pub fn cancel_mkt_data(req_id: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.int(out_id::CANCEL_MKT_DATA).int(2).int(req_id);
    w.finish()
}

/// tickPrice's attribute bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickAttrib {
    pub can_auto_execute: bool,
    pub past_limit: bool,
    pub pre_open: bool,
}

impl TickAttrib {
    /// The mask as IB's decoder reads it for this server version.
    pub fn from_mask(mask: i64, server_version: u32) -> Self {
        if server_version < MIN_SERVER_VER_PAST_LIMIT {
            return TickAttrib {
                can_auto_execute: mask == 1,
                ..TickAttrib::default()
            };
        }
        TickAttrib {
            can_auto_execute: mask & 1 != 0,
            past_limit: mask & 2 != 0,
            pre_open: server_version >= MIN_SERVER_VER_PRE_OPEN_BID_ASK && mask & 4 != 0,
        }
    }
}

/// An `error` message: an error, a warning or a notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMsg {
    /// The request it is about, -1 for none.
    pub req_id: i64,
    pub code: i32,
    pub message: String,
    /// From server version 166 on (empty before).
    pub advanced_order_reject_json: String,
    /// Milliseconds since the epoch, from server version 194 on.
    pub error_time: Option<i64>,
}

/// One decoded message from TWS.
#[derive(Clone, Debug, PartialEq)]
pub enum TwsMessage {
    TickPrice {
        req_id: i64,
        tick_type: i64,
        /// `None` when TWS left it empty.
        price: Option<f64>,
        /// From message version 2 on.
        size: Option<f64>,
        /// From message version 3 on.
        attrib: Option<TickAttrib>,
    },
    TickSize {
        req_id: i64,
        tick_type: i64,
        size: Option<f64>,
    },
    TickString {
        req_id: i64,
        tick_type: i64,
        value: String,
    },
    TickGeneric {
        req_id: i64,
        tick_type: i64,
        value: Option<f64>,
    },
    Error(ErrorMsg),
    NextValidId(i64),
    ManagedAccounts(Vec<String>),
    /// Seconds since the epoch, TWS's clock.
    CurrentTime(i64),
    TickSnapshotEnd {
        req_id: i64,
    },
    /// 1 real-time, 2 frozen, 3 delayed, 4 delayed frozen.
    MarketDataType {
        req_id: i64,
        data_type: i64,
    },
    /// Sent once after each `reqMktData`: the subscription is in place.
    TickReqParams {
        req_id: i64,
        min_tick: Option<f64>,
        bbo_exchange: String,
        snapshot_permissions: Option<i64>,
    },
    /// A well-formed message of a kind brokerguard does not use (order
    /// status, account values, ...): skipped.
    Other {
        id: i64,
    },
}

/// The name of a message id for errors and logs.
fn msg_name(id: i64) -> &'static str {
    match id {
        in_id::TICK_PRICE => "tickPrice",
        in_id::TICK_SIZE => "tickSize",
        in_id::ERR_MSG => "error",
        in_id::NEXT_VALID_ID => "nextValidId",
        in_id::MANAGED_ACCTS => "managedAccounts",
        in_id::TICK_GENERIC => "tickGeneric",
        in_id::TICK_STRING => "tickString",
        in_id::CURRENT_TIME => "currentTime",
        in_id::TICK_SNAPSHOT_END => "tickSnapshotEnd",
        in_id::MARKET_DATA_TYPE => "marketDataType",
        in_id::TICK_REQ_PARAMS => "tickReqParams",
        _ => "message",
    }
}

fn code_of(f: &mut Fields<'_>) -> Result<i32, ProtocolError> {
    let index = f.position();
    let code = f.int("errorCode")?;
    i32::try_from(code).map_err(|_| ProtocolError::BadField {
        msg: "error",
        field: "errorCode",
        index,
        value: code.to_string(),
    })
}

/// A message's id, its first field: a short decimal number.
fn message_id(raw: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(raw)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 6)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProtocolError::BadMessageId {
            value: String::from_utf8_lossy(raw).chars().take(20).collect(),
        })
}

/// tickPrice: its size from message version 2, its attributes from 3.
fn tick_price(f: &mut Fields<'_>, server_version: u32) -> Result<TwsMessage, ProtocolError> {
    let version = f.int("version")?;
    let req_id = f.int("reqId")?;
    let tick_type = f.int("tickType")?;
    let price = f.opt_number("price")?;
    let size = if version >= 2 {
        f.opt_number("size")?
    } else {
        None
    };
    let attrib = if version >= 3 {
        Some(TickAttrib::from_mask(
            f.opt_int("attrMask")?.unwrap_or(0),
            server_version,
        ))
    } else {
        None
    };
    Ok(TwsMessage::TickPrice {
        req_id,
        tick_type,
        price,
        size,
        attrib,
    })
}

/// errMsg: versioned until the server sends its time (194), with the
/// order-reject JSON from 166.
fn error_msg(f: &mut Fields<'_>, server_version: u32) -> Result<ErrorMsg, ProtocolError> {
    if server_version < MIN_SERVER_VER_ERROR_TIME {
        f.skip("version")?;
    }
    let req_id = f.int("reqId")?;
    let code = code_of(f)?;
    let message = f.text("errorString")?;
    let advanced_order_reject_json = if server_version >= MIN_SERVER_VER_ADVANCED_ORDER_REJECT {
        f.text("advancedOrderRejectJson")?
    } else {
        String::new()
    };
    let error_time = if server_version >= MIN_SERVER_VER_ERROR_TIME {
        f.opt_int("errorTime")?
    } else {
        None
    };
    Ok(ErrorMsg {
        req_id,
        code,
        message,
        advanced_order_reject_json,
        error_time,
    })
}

/// Decodes one message body (after the handshake) for the negotiated
/// server version.
pub fn decode(payload: &[u8], server_version: u32) -> Result<TwsMessage, ProtocolError> {
    let fields = split(payload)?;
    let id = message_id(fields.first().copied().unwrap_or_default())?;
    let mut f = Fields::new(fields, msg_name(id), 1);
    let msg = match id {
        in_id::TICK_PRICE => tick_price(&mut f, server_version)?,
        in_id::TICK_SIZE => {
            f.skip("version")?;
            TwsMessage::TickSize {
                req_id: f.int("reqId")?,
                tick_type: f.int("tickType")?,
                size: f.opt_number("size")?,
            }
        }
        in_id::TICK_STRING => {
            f.skip("version")?;
            TwsMessage::TickString {
                req_id: f.int("reqId")?,
                tick_type: f.int("tickType")?,
                value: f.text("value")?,
            }
        }
        in_id::TICK_GENERIC => {
            f.skip("version")?;
            TwsMessage::TickGeneric {
                req_id: f.int("reqId")?,
                tick_type: f.int("tickType")?,
                value: f.opt_number("value")?,
            }
        }
        in_id::ERR_MSG => TwsMessage::Error(error_msg(&mut f, server_version)?),
        in_id::NEXT_VALID_ID => {
            f.skip("version")?;
            TwsMessage::NextValidId(f.int("orderId")?)
        }
        in_id::MANAGED_ACCTS => {
            f.skip("version")?;
            let list = f.text("accountsList")?;
            TwsMessage::ManagedAccounts(
                list.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect(),
            )
        }
        in_id::CURRENT_TIME => {
            f.skip("version")?;
            TwsMessage::CurrentTime(f.int("time")?)
        }
        in_id::TICK_SNAPSHOT_END => {
            f.skip("version")?;
            TwsMessage::TickSnapshotEnd {
                req_id: f.int("reqId")?,
            }
        }
        in_id::MARKET_DATA_TYPE => {
            f.skip("version")?;
            TwsMessage::MarketDataType {
                req_id: f.int("reqId")?,
                data_type: f.int("marketDataType")?,
            }
        }
        in_id::TICK_REQ_PARAMS => TwsMessage::TickReqParams {
            req_id: f.int("reqId")?,
            min_tick: f.opt_number("minTick")?,
            bbo_exchange: f.text("bboExchange")?,
            snapshot_permissions: f.opt_int("snapshotPermissions")?,
        },
        other => TwsMessage::Other { id: other },
    };
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(fields: &[&str]) -> Vec<u8> {
        let mut w = Writer::new();
        for f in fields {
            w.text(f);
        }
        w.finish()
    }

    #[test]
    fn greeting_bytes_match_protocols_4_2() {
        let mut want = vec![0x41, 0x50, 0x49, 0x00, 0x00, 0x00, 0x00, 0x09];
        want.extend_from_slice(b"v157..178");
        assert_eq!(
            client_greeting(MIN_CLIENT_VERSION, MAX_CLIENT_VERSION, ""),
            want
        );
        let with = client_greeting(157, 178, "+PACEAPI");
        assert_eq!(&with[4..8], &[0, 0, 0, 18]);
        assert_eq!(&with[8..], b"v157..178 +PACEAPI");
    }

    #[test]
    fn server_hello_is_the_two_field_message() {
        // The nautilus_trader fixture of PROTOCOLS.md §4.3, prefix removed.
        let hello = b"176\x0020230228 17:24:14 EST\x00";
        assert_eq!(
            decode_server_hello(hello),
            Ok(Some(ServerHello {
                server_version: 176,
                connection_time: "20230228 17:24:14 EST".into()
            }))
        );
        assert_eq!(decode_server_hello(b"4\x002\x00-1\x00"), Ok(None));
        assert!(decode_server_hello(b"abc\x00x\x00").is_err());
        assert!(decode_server_hello(b"-5\x00x\x00").is_err());
        assert!(decode_server_hello(b"176\x00x").is_err());
    }

    #[test]
    fn start_api_bytes_match_protocols_4_4() {
        let framed = length_prefixed(&start_api(1, "", 176));
        assert_eq!(
            framed,
            vec![
                0x00, 0x00, 0x00, 0x08, 0x37, 0x31, 0x00, 0x32, 0x00, 0x31, 0x00, 0x00
            ]
        );
        // Before optional capabilities existed the field is left out.
        assert_eq!(start_api(7, "x", 71), b"71\x002\x007\x00");
        assert_eq!(start_api(7, "x", 72), b"71\x002\x007\x00x\x00");
    }

    #[test]
    fn requests_are_laid_out_like_ib_async() {
        assert_eq!(req_current_time(), b"49\x001\x00");
        assert_eq!(cancel_mkt_data(1000), b"2\x002\x001000\x00");
        // What ib_async 2.0.1 sends for ib.reqMktData(Stock('AAPL','SMART','USD'))
        // with reqId 1000: fields [1, 11, reqId, <12 contract fields>, False,
        // genericTickList '', snapshot False, regulatorySnapshot False, []].
        let want = body(&[
            "1", "11", "1000", "0", "AAPL", "STK", "", "0.0", "", "", "SMART", "", "USD", "", "",
            "0", "", "0", "0", "",
        ]);
        assert_eq!(
            req_mkt_data(1000, &Contract::stock("AAPL", "SMART", "USD"), false, false),
            want
        );
        let mut c = Contract::stock("MSFT", "SMART", "USD");
        c.primary_exchange = "NASDAQ".into();
        c.con_id = Some(272093);
        c.generic_ticks = "233".into();
        let fields = req_mkt_data(5, &c, true, false);
        let got = split(&fields).unwrap();
        assert_eq!(got.len(), 20);
        assert_eq!(got[3], b"272093");
        assert_eq!(got[11], b"NASDAQ");
        assert_eq!(got[16], b"233");
        assert_eq!(got[17], b"1");
    }

    #[test]
    fn the_2104_fixture_decodes_in_the_166_to_193_layout() {
        // PROTOCOLS.md §4.5: the 57-byte body (after its length prefix).
        let fixture =
            b"4\x002\x00-1\x002104\x00Market data farm connection is OK:usfarm.nj\x00\x00";
        assert_eq!(fixture.len(), 57);
        assert_eq!(
            decode(fixture, 176),
            Ok(TwsMessage::Error(ErrorMsg {
                req_id: -1,
                code: 2104,
                message: "Market data farm connection is OK:usfarm.nj".into(),
                advanced_order_reject_json: String::new(),
                error_time: None,
            }))
        );
    }

    #[test]
    fn error_layouts_by_server_version() {
        let old = body(&[
            "4",
            "2",
            "7",
            "200",
            "No security definition has been found",
        ]);
        let TwsMessage::Error(e) = decode(&old, 165).unwrap() else {
            panic!()
        };
        assert_eq!((e.req_id, e.code), (7, 200));
        // The pre-166 body read as 166+ lacks the JSON field.
        assert!(matches!(
            decode(&old, 166),
            Err(ProtocolError::MissingField {
                field: "advancedOrderRejectJson",
                ..
            })
        ));
        let new = body(&[
            "4",
            "7",
            "200",
            "No security definition",
            "{\"r\":1}",
            "1700000000123",
        ]);
        let TwsMessage::Error(e) = decode(&new, 194).unwrap() else {
            panic!()
        };
        assert_eq!((e.req_id, e.code), (7, 200));
        assert_eq!(e.advanced_order_reject_json, "{\"r\":1}");
        assert_eq!(e.error_time, Some(1_700_000_000_123));
        // The 194 body misread as 176 puts the message text in errorCode.
        assert!(decode(&new, 176).is_err());
        let huge = body(&["4", "2", "-1", "99999999999", "x", ""]);
        assert!(decode(&huge, 176).is_err());
    }

    #[test]
    fn ticks_decode_with_their_versioned_fields() {
        let price = body(&["1", "6", "1000", "4", "187.25", "100", "3"]);
        assert_eq!(
            decode(&price, 176),
            Ok(TwsMessage::TickPrice {
                req_id: 1000,
                tick_type: 4,
                price: Some(187.25),
                size: Some(100.0),
                attrib: Some(TickAttrib {
                    can_auto_execute: true,
                    past_limit: true,
                    pre_open: false
                }),
            })
        );
        let v1 = body(&["1", "1", "1000", "1", "10.5"]);
        assert!(matches!(
            decode(&v1, 176),
            Ok(TwsMessage::TickPrice {
                size: None,
                attrib: None,
                ..
            })
        ));
        assert!(TickAttrib::from_mask(1, 100).can_auto_execute);
        assert!(!TickAttrib::from_mask(3, 100).can_auto_execute);
        assert!(TickAttrib::from_mask(4, 176).pre_open);
        assert_eq!(
            decode(&body(&["2", "6", "1000", "8", "12345"]), 176),
            Ok(TwsMessage::TickSize {
                req_id: 1000,
                tick_type: 8,
                size: Some(12345.0)
            })
        );
        assert_eq!(
            decode(&body(&["46", "6", "1000", "45", "1700000000"]), 176),
            Ok(TwsMessage::TickString {
                req_id: 1000,
                tick_type: 45,
                value: "1700000000".into()
            })
        );
        assert_eq!(
            decode(&body(&["81", "1000", "0.01", "9c0001", "3"]), 176),
            Ok(TwsMessage::TickReqParams {
                req_id: 1000,
                min_tick: Some(0.01),
                bbo_exchange: "9c0001".into(),
                snapshot_permissions: Some(3)
            })
        );
        assert_eq!(
            decode(&body(&["58", "1", "1000", "3"]), 176),
            Ok(TwsMessage::MarketDataType {
                req_id: 1000,
                data_type: 3
            })
        );
    }

    #[test]
    fn session_messages_decode() {
        assert_eq!(
            decode(b"15\x001\x00DU1234567,DU7654321,\x00", 176),
            Ok(TwsMessage::ManagedAccounts(vec![
                "DU1234567".into(),
                "DU7654321".into()
            ]))
        );
        assert_eq!(
            decode(b"9\x001\x00117\x00", 176),
            Ok(TwsMessage::NextValidId(117))
        );
        assert_eq!(
            decode(b"49\x001\x001700000000\x00", 176),
            Ok(TwsMessage::CurrentTime(1_700_000_000))
        );
        assert_eq!(
            decode(b"62\x001\x00", 176),
            Ok(TwsMessage::Other { id: 62 })
        );
    }

    #[test]
    fn malformed_messages_are_errors_never_panics() {
        let table: &[&[u8]] = &[
            b"",
            b"\x00",
            b"x\x00",
            b"1\x00",
            b"1\x006\x001000\x004\x00abc\x00100\x000\x00",
            b"1\x006\x001000\x004\x00187.25\x00",
            b"2\x006\x00",
            b"4\x002\x00-1\x00",
            b"9\x001\x00",
            b"9\x001\x00x\x00",
            b"15\x001\x00",
            b"49\x001\x00soon\x00",
            b"81\x00",
            b"58\x001\x001\x00",
            b"46\x006\x001000\x00",
            b"1\x006\x001000\x004\x00187",
            b"99999999999\x00",
        ];
        for raw in table {
            assert!(
                decode(raw, 176).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        // Every prefix of a good message is an error or a message, never a panic.
        let good = body(&["1", "6", "1000", "4", "187.25", "100", "3"]);
        for n in 0..good.len() {
            let _ = decode(&good[..n], 176);
            let _ = decode_server_hello(&good[..n]);
        }
    }
}
