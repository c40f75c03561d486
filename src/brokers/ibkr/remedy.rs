//! What an operator reads when an IB connection fails at a layer, and what
//! to do about it: the texts `check`, `status` and the journal show.

/// TCP connect refused: nothing listens on the port.
pub fn tcp_refused(host: &str, port: u16) -> String {
    format!(
        "nothing listens on {host}:{port}: start TWS/IB Gateway, check the socket port \
         (TWS 7497 paper / 7496 live, Gateway 4002 / 4001)"
    )
}

/// The socket was accepted but the `API\0` greeting got no answer.
pub const HANDSHAKE_UNANSWERED: &str = "TWS/IB Gateway accepted the connection but never answered the API greeting: \
     enable API socket clients (Configure > API > Settings > \"Enable ActiveX and Socket Clients\"), \
     accept the pending \"incoming connection\" dialog in TWS, add 127.0.0.1 to Trusted IPs, \
     and check that no other program is listening on that port";

/// The greeting was answered but `nextValidId` never came.
pub const SESSION_NOT_READY: &str = "API session not ready: TWS is still logging in, or Read-Only API blocks it \
     (finish the TWS login; untick Configure > API > Settings > \"Read-Only API\" if the session stays stuck)";

/// 326 with no other id to try.
pub fn client_id_in_use(client_id: i32) -> String {
    format!(
        "client id {client_id} is already in use (TWS error 326): another program is connected with it, \
         or TWS still holds the previous connection; set client_id_range = [first, last] to let \
         brokerguard try other ids"
    )
}

/// 326 for every id of `client_id_range` in a row.
pub fn client_ids_exhausted(first: i32, last: i32) -> String {
    format!(
        "every client id in client_id_range [{first}, {last}] is in use (TWS error 326): other programs \
         hold them, or TWS still holds earlier connections; brokerguard retries shortly; widen the \
         range or stop the programs holding those ids"
    )
}

/// An IBKR feed connects to TWS by host and port, never by URL.
pub const NO_URL: &str = "an ibkr feed connects to TWS/IB Gateway by host and port, not by URL: \
     remove url and set host (default \"127.0.0.1\") and port (default 7497)";

/// TWS itself holds the login; brokerguard needs no IBKR credentials.
pub const NO_ACCOUNT: &str = "an ibkr feed has no credentials of its own (TWS/IB Gateway holds the login): \
     remove account; tell sessions apart with client_id";

/// The server's version is older than the lowest the client speaks.
pub fn server_too_old(version: u32, min: u32) -> String {
    format!(
        "TWS/IB Gateway speaks API server version {version}, older than the {min} brokerguard needs: \
         upgrade TWS/IB Gateway (version 972 or newer)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remedies_name_the_causes() {
        let t = tcp_refused("127.0.0.1", 7497);
        assert!(t.starts_with("nothing listens on 127.0.0.1:7497: start TWS/IB Gateway"));
        assert!(t.contains("TWS 7497 paper / 7496 live, Gateway 4002 / 4001"));
        for cause in [
            "Enable ActiveX and Socket Clients",
            "incoming connection",
            "127.0.0.1",
            "Trusted IPs",
            "other program",
        ] {
            assert!(HANDSHAKE_UNANSWERED.contains(cause), "{cause}");
        }
        assert!(SESSION_NOT_READY.starts_with(
            "API session not ready: TWS is still logging in, or Read-Only API blocks it"
        ));
        assert!(client_id_in_use(3).contains("client id 3 is already in use (TWS error 326)"));
        assert!(server_too_old(150, 157).contains("150"));
        assert!(client_ids_exhausted(10, 12).contains("[10, 12]"));
        assert!(NO_URL.contains("host and port"));
    }
}
