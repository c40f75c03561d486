#!/usr/bin/env python3
"""The PyPI `websockets` client (an independent implementation) against
`brokerguard sim`: the generic JSON WebSocket protocol (auth, subscribe,
data, heartbeats, get_signals, ping/pong) and the faults the agent's tests
rely on (close-on-send:1000, http:401) must look to a third-party client
exactly as the agent's tests assume.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from harness import REPO, Checks, SimProcess, expect, expect_http_refusal, main_guard, recv_text, workdir

TOKEN = "interop-token-5b2e"
TIMEOUT = 5.0  # every receive, connect and close waits at most this long
TLS = REPO / "tests" / "fixtures" / "tls"


class Sim(SimProcess):
    """`brokerguard sim --port 0 ...` in a child process; knows its URL."""

    def __init__(self, workdir: Path, tag: str, *extra: str) -> None:
        super().__init__(
            ["--port", "0", "--token", TOKEN, *extra],
            workdir / f"sim-{tag}.stderr",
            r"simulator listening on (wss?://(?:127\.0\.0\.1|localhost):\d+)",
        )
        self.url = self.match.group(1)


def open_client(url: str, tls: ssl.SSLContext | None = None) -> ClientConnection:
    # No automatic keepalive: pings are sent explicitly where the check wants them.
    return connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, ping_interval=None, ssl=tls)


def recv_json(ws: ClientConnection, what: str) -> dict:
    raw = recv_text(ws, what, TIMEOUT)
    try:
        msg = json.loads(raw)
    except json.JSONDecodeError:
        raise AssertionError(f"{what}: not JSON: {raw!r}") from None
    expect(isinstance(msg, dict), f"{what}: expected a JSON object, got {raw!r}")
    return msg


def recv_until(ws: ClientConnection, what: str, pred, skip=lambda m: m.get("type") == "heartbeat") -> dict:
    """The next message matching `pred`, skipping heartbeats (and anything
    `skip` accepts); any other message is a failure."""
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        msg = recv_json(ws, what)
        if pred(msg):
            return msg
        expect(skip(msg), f"{what}: unexpected message {msg!r}")
    raise AssertionError(f"{what}: nothing matching within {TIMEOUT}s")


def auth(ws: ClientConnection, token: str) -> dict:
    ws.send(json.dumps({"type": "auth", "token": token}))
    return recv_json(ws, "the auth reply")


def expect_close(ws: ClientConnection, code: int, what: str) -> ConnectionClosed:
    """Reads until the server closes; the close frame received must carry `code`."""
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        try:
            msg = ws.recv(timeout=max(0.01, end - time.monotonic()))
        except TimeoutError:
            break
        except ConnectionClosed as e:
            expect(e.rcvd is not None, f"{what}: the connection ended without a close frame ({e})")
            expect(
                e.rcvd.code == code,
                f"{what}: expected close code {code}, got {e.rcvd.code} (reason {e.rcvd.reason!r})",
            )
            return e
        raise AssertionError(f"{what}: expected a close with code {code}, got the message {msg!r}")
    raise AssertionError(f"{what}: the server did not close within {TIMEOUT}s")


def run() -> int:
    checks = Checks("ws_client_vs_sim")
    with workdir("bg-interop-sim-") as work:
        sim = Sim(work, "main", "--data-every", "200ms", "--heartbeat-every", "50ms")
        try:
            url = sim.url

            def good_auth() -> None:
                with open_client(url) as ws:
                    expect(auth(ws, TOKEN) == {"type": "auth_ok"}, "a good token must get exactly {\"type\":\"auth_ok\"}")

            def bad_auth() -> None:
                with open_client(url) as ws:
                    reply = auth(ws, "wrong-token")
                    expect(reply.get("type") == "auth_failed", f"a bad token must get auth_failed, got {reply!r}")
                    e = expect_close(ws, 1008, "after auth_failed")
                    expect(e.rcvd.reason == "invalid token", f"close reason {e.rcvd.reason!r}")

            def requests_before_auth_refused() -> None:
                with open_client(url) as ws:
                    ws.send(json.dumps({"type": "subscribe", "channel": "signals"}))
                    reply = recv_json(ws, "subscribe before auth")
                    expect(
                        reply == {"type": "error", "reason": "not authenticated"},
                        f"subscribe before auth must be refused, got {reply!r}",
                    )

            def session() -> None:
                with open_client(url) as ws:
                    expect(auth(ws, TOKEN) == {"type": "auth_ok"}, "auth")
                    ws.send(json.dumps({"type": "subscribe", "channel": "signals"}))
                    ack = recv_until(ws, "the subscribe ack", lambda m: m.get("type") == "subscribed")
                    expect(ack == {"type": "subscribed", "channel": "signals"}, f"subscribe ack {ack!r}")
                    data: list[dict] = []
                    heartbeats = 0
                    end = time.monotonic() + TIMEOUT
                    while (len(data) < 3 or heartbeats < 2) and time.monotonic() < end:
                        m = recv_json(ws, "data and heartbeats")
                        if m.get("type") == "heartbeat":
                            expect(m == {"type": "heartbeat"}, f"heartbeat shape {m!r}")
                            heartbeats += 1
                        else:
                            expect(m.get("type") == "data", f"unexpected message {m!r}")
                            data.append(m)
                    expect(len(data) >= 3, f"expected 3 data messages within {TIMEOUT}s, got {data!r}")
                    expect(heartbeats >= 2, f"expected 2 heartbeats within {TIMEOUT}s, got {heartbeats}")
                    expect(
                        [m["n"] for m in data[:3]] == [1, 2, 3],
                        f"data must be numbered 1,2,3 per connection, got {[m.get('n') for m in data]}",
                    )
                    for m in data:
                        expect(m.get("channel") == "signals", f"data on the wrong channel: {m!r}")
                        expect(
                            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(m.get("ts"))),
                            f"data ts must be RFC 3339 UTC with milliseconds: {m!r}",
                        )
                    # Sent as a fragmented message (text frame + continuation): the simulator must reassemble it.
                    ws.send(['{"type":', '"get_signals"}'])
                    reply = recv_until(
                        ws, "the get_signals reply", lambda m: m.get("type") == "signals",
                        skip=lambda m: m.get("type") in ("heartbeat", "data"),
                    )
                    expect(reply == {"type": "signals", "n": 1}, f"get_signals reply {reply!r}")
                    ws.send(json.dumps({"type": "ping"}))
                    reply = recv_until(
                        ws, "the application pong", lambda m: m.get("type") == "pong",
                        skip=lambda m: m.get("type") in ("heartbeat", "data"),
                    )
                    expect(reply == {"type": "pong"}, f"application pong {reply!r}")
                    # A WebSocket ping must come back as a pong with the same payload.
                    latency = ws.ping(b"interop").wait(TIMEOUT)
                    expect(latency, f"no WebSocket pong within {TIMEOUT}s")
                    # A clean close: the simulator echoes our 1000.
                    ws.close(code=1000, reason="done")
                    rcvd = ws.protocol.close_rcvd
                    expect(rcvd is not None, "the simulator did not answer our close frame")
                    expect(rcvd.code == 1000, f"the simulator answered our close 1000 with {rcvd.code}")

            checks.run("good token gets auth_ok", good_auth)
            checks.run("bad token gets auth_failed then close 1008", bad_auth)
            checks.run("subscribe before auth is refused", requests_before_auth_refused)
            checks.run("subscribe, data 1-2-3, heartbeats, fragmented get_signals, pings, clean close", session)
        finally:
            code = sim.stop()
        checks.run("simulator exits 0 on SIGTERM", lambda: expect(code == 0, f"exit code {code}; events:\n{sim.events()}"))

        def close_on_send() -> None:
            fsim = Sim(work, "close-on-send", "--fault", "close-on-send:1000", "--data-every", "50ms")
            try:
                with open_client(fsim.url) as ws:
                    expect(auth(ws, TOKEN) == {"type": "auth_ok"}, "auth must still succeed under close-on-send")
                    ws.send(json.dumps({"type": "get_signals"}))
                    expect_close(ws, 1000, "the first message after auth under close-on-send:1000")
            finally:
                fsim.stop()

        def reject_auth() -> None:
            fsim = Sim(work, "reject-auth", "--fault", "reject-auth")
            try:
                with open_client(fsim.url) as ws:
                    reply = auth(ws, TOKEN)
                    expect(reply.get("type") == "auth_failed", f"reject-auth must answer even a good token with auth_failed, got {reply!r}")
                    expect_close(ws, 1008, "after auth_failed under reject-auth")
            finally:
                fsim.stop()

        def http_401() -> None:
            fsim = Sim(work, "http401", "--fault", "http:401")
            try:
                expect_http_refusal(401, lambda: open_client(fsim.url))
            finally:
                fsim.stop()

        def tls_session() -> None:
            tsim = Sim(
                work, "tls", "--tls-cert", str(TLS / "server.pem"), "--tls-key", str(TLS / "server.key"),
                "--data-every", "50ms",
            )
            try:
                expect(tsim.url.startswith("wss://localhost:"), f"a TLS simulator must announce wss://localhost, said {tsim.url}")
                ctx = ssl.create_default_context(cafile=str(TLS / "ca.pem"))
                with open_client(tsim.url, ctx) as ws:
                    expect(auth(ws, TOKEN) == {"type": "auth_ok"}, "auth over TLS")
                    ws.send(json.dumps({"type": "subscribe", "channel": "signals"}))
                    recv_until(ws, "the subscribe ack over TLS", lambda m: m.get("type") == "subscribed")
                    m = recv_until(ws, "data over TLS", lambda m: m.get("type") == "data")
                    expect(m.get("n") == 1, f"first data over TLS {m!r}")
                    ws.close(code=1000)
                # Without the test CA (system store only) the chain must not verify.
                strict = ssl.create_default_context()
                try:
                    open_client(tsim.url, strict).close()
                except ssl.SSLCertVerificationError:
                    pass
                else:
                    raise AssertionError("a client without the test CA accepted the simulator's certificate")
            finally:
                tsim.stop()

        checks.run("close-on-send:1000 closes with 1000 after a client message", close_on_send)
        checks.run("wss:// with the test CA: auth, subscribe, data", tls_session)
        checks.run("reject-auth answers a good token with auth_failed and close 1008", reject_auth)
        checks.run("http:401 refuses the upgrade with HTTP 401", http_401)
    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
