#!/usr/bin/env python3
"""The agent's own TWS API bytes, held against ib_async's encoder: the
brokerguard binary connects to a tiny TWS stub written here (independently
of the agent and of its simulator), and every request it sends — the
`API\\0` greeting with its version range, START_API, reqMktData for two
contracts, reqCurrentTime, cancelMktData at shutdown — must be byte for
byte what ib_async 2.0.1's `Client` sends for the same request. The stub's
ticks must then reach a bot on the fan-out socket with each contract's
symbol and price.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

from ib_async import IB, Contract, Stock
from ib_async.client import Client

from harness import Checks, Fanout, agent_env, agent_section, expect, main_guard, start_agent, wait_until, workdir

FEED = "tws"
CLIENT_ID = 7
SERVER_VERSION = 176
AAPL_REQ, MSFT_REQ = 1000, 1001
PRICES = {AAPL_REQ: "123.45", MSFT_REQ: "67.89"}


# ---- what ib_async sends ----


def ib_async_frames() -> dict[str, bytes]:
    """ib_async's bytes for each request, with its Client's own serializer
    (`send`) and request methods; only the socket is replaced."""
    ib = IB()
    client = ib.client
    sent: list[bytes] = []
    client.connState = Client.CONNECTED
    client._serverVersion = SERVER_VERSION
    client.clientId = CLIENT_ID
    client.sendMsg = lambda msg: sent.append(client._prefix(msg.encode()))

    def one(call) -> bytes:
        sent.clear()
        call()
        assert len(sent) == 1, sent
        return sent[0]

    msft = Contract(
        conId=272093, symbol="MSFT", secType="STK", exchange="SMART", primaryExchange="NASDAQ", currency="USD"
    )
    frames = {
        # As Client.connectAsync builds it.
        "greeting": b"API\0"
        + client._prefix(b"v%d..%d" % (Client.MinClientVersion, Client.MaxClientVersion)),
        "startApi": one(client.startApi),
        "reqMktData AAPL": one(lambda: client.reqMktData(AAPL_REQ, Stock("AAPL", "SMART", "USD"), "", False, False, [])),
        "reqMktData MSFT": one(lambda: client.reqMktData(MSFT_REQ, msft, "233", False, False, [])),
        "reqCurrentTime": one(client.reqCurrentTime),
        "cancelMktData AAPL": one(lambda: client.cancelMktData(AAPL_REQ)),
        "cancelMktData MSFT": one(lambda: client.cancelMktData(MSFT_REQ)),
    }
    # Never connected: nothing for IB's destructor to disconnect.
    client.connState = Client.DISCONNECTED
    return frames


# ---- a TWS stub, written from PROTOCOLS.md §4 ----


def frame(*fields: str) -> bytes:
    payload = b"".join(f.encode() + b"\0" for f in fields)
    return struct.pack(">I", len(payload)) + payload


class TwsStub:
    """Accepts connections on 127.0.0.1; answers the greeting with version
    176, START_API with managedAccounts and nextValidId, reqCurrentTime with
    currentTime, and each reqMktData with a tickPrice every 100 ms. Keeps
    every client message as the raw bytes it arrived as (prefix included)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.greetings: list[bytes] = []
        self.frames: list[bytes] = []
        self.connections = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def snapshot(self) -> list[bytes]:
        with self.lock:
            return list(self.frames)

    def first(self, prefix: bytes) -> bytes | None:
        """The first client frame whose payload starts with `prefix`."""
        return next((f for f in self.snapshot() if f[4:].startswith(prefix)), None)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_exact(conn: socket.socket, n: int, buf: bytearray) -> bytes | None:
        while len(buf) < n:
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                return b""
            if not chunk:
                return None
            buf.extend(chunk)
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buf = bytearray()
        subs: list[int] = []
        next_tick = time.monotonic()

        def read(n: int) -> bytes | None:
            # Waits (across timeouts) for exactly n bytes; None at EOF or stop.
            while not self.stopping.is_set():
                got = self._read_exact(conn, n, buf)
                if got is None:
                    return None
                if got:
                    return got
            return None

        try:
            api = read(4)
            if api is None:
                return
            n = read(4)
            if n is None:
                return
            version = read(struct.unpack(">I", n)[0])
            if version is None:
                return
            with self.lock:
                self.greetings.append(api + n + version)
            conn.sendall(frame(str(SERVER_VERSION), "20260105 10:00:00 EST"))
            while not self.stopping.is_set():
                if subs and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + 0.1
                    for req in subs:
                        # tickPrice: version 6, reqId, tickType 1 (bid), price, size, attrMask.
                        conn.sendall(frame("1", "6", str(req), "1", PRICES.get(req, "1.0"), "100", "1"))
                got = self._read_exact(conn, 4, buf)
                if got is None:
                    return
                if not got:
                    continue
                body = read(struct.unpack(">I", got)[0])
                if body is None:
                    return
                with self.lock:
                    self.frames.append(got + body)
                fields = body.split(b"\0")[:-1]
                mid = fields[0] if fields else b""
                if mid == b"71":
                    conn.sendall(frame("15", "1", "DU7654321") + frame("9", "1", "1"))
                elif mid == b"49":
                    conn.sendall(frame("49", "1", str(int(time.time()))))
                elif mid == b"1" and len(fields) > 2:
                    subs.append(int(fields[2]))
                elif mid == b"2" and len(fields) > 2:
                    subs = [s for s in subs if s != int(fields[2])]
        except OSError:
            return
        finally:
            conn.close()


# ---- the agent ----


def write_config(work: Path, port: int) -> Path:
    (work / "credentials.env").write_text("")
    cfg = work / "brokerguard.toml"
    cfg.write_text(
        agent_section(work, work / "credentials.env", 'preflight = "off"\n')
        + f"""
[[feed]]
name = "{FEED}"
broker = "ibkr"
port = {port}
client_id = {CLIENT_ID}
calendar = "always"
ping_every = "300ms"
pong_timeout = "2s"
handshake_timeout = "2s"
contracts = [
{{ symbol = "AAPL", sec_type = "STK", exchange = "SMART", currency = "USD" }},
{{ symbol = "MSFT", sec_type = "STK", exchange = "SMART", currency = "USD", primary_exchange = "NASDAQ", con_id = 272093, generic_ticks = "233" }},
]
"""
    )
    return cfg


def run() -> int:
    checks = Checks("agent_vs_tws_stub")
    want = ib_async_frames()
    with workdir("bg-interop-tws-") as work:
        stub = TwsStub()
        agent = start_agent(write_config(work, stub.port), work / "agent.stderr", env=agent_env())
        bot: Fanout | None = None

        def data() -> list[dict]:
            assert bot is not None
            return [v["data"] for v in bot.of(FEED, "data")]

        def log() -> str:
            return agent.stderr_text()[-3000:]

        def same(name: str, got: bytes | None) -> None:
            expect(got is not None, f"the agent never sent {name}; stub saw {stub.snapshot()!r}; stderr:\n{log()}")
            expect(got == want[name], f"{name}: agent sent {got!r}, ib_async sends {want[name]!r}")

        try:
            def greeting() -> None:
                got = wait_until(10, lambda: stub.greetings and stub.greetings[0])
                same("greeting", got or None)

            def start_api() -> None:
                same("startApi", wait_until(10, lambda: stub.first(b"71\0")))

            def req_mkt_data() -> None:
                for name, req in (("reqMktData AAPL", AAPL_REQ), ("reqMktData MSFT", MSFT_REQ)):
                    same(name, wait_until(10, lambda: stub.first(b"1\x0011\x00%d\x00" % req)))

            def req_current_time() -> None:
                same("reqCurrentTime", wait_until(10, lambda: stub.first(b"49\0")))

            def ticks_reach_the_bot() -> None:
                nonlocal bot
                bot = Fanout(work / "run" / "feeds.sock", 10)
                seen = wait_until(10, lambda: {d.get("symbol"): d.get("price") for d in data()
                                               if d.get("type") == "tick_price"}.keys() >= {"AAPL", "MSFT"}
                                  and data())
                expect(seen, f"no ticks for both contracts on feeds.sock: {data()[:5]!r}; stderr:\n{log()}")
                prices = {(d["symbol"], d["price"], d["tick"]) for d in data() if d.get("type") == "tick_price"}
                expect(("AAPL", 123.45, "bid") in prices and ("MSFT", 67.89, "bid") in prices, f"{prices!r}")

            def one_connection() -> None:
                # Answered keepalives: the session is never restarted.
                expect(stub.connections == 1, f"{stub.connections} connections; stderr:\n{log()}")

            def cancels_on_stop() -> None:
                code = agent.stop()
                expect(code == 0, f"agent exited {code}; stderr:\n{log()}")
                for name, req in (("cancelMktData AAPL", AAPL_REQ), ("cancelMktData MSFT", MSFT_REQ)):
                    same(name, wait_until(5, lambda: stub.first(b"2\x002\x00%d\x00" % req)))

            checks.run("the API\\0 greeting and version range are ib_async's", greeting)
            checks.run("START_API is ib_async's (client id, empty capabilities)", start_api)
            checks.run("reqMktData is ib_async's for a plain and a fully specified stock", req_mkt_data)
            checks.run("reqCurrentTime (the keepalive) is ib_async's", req_current_time)
            checks.run("the stub's ticks reach the bot with symbol and price", ticks_reach_the_bot)
            checks.run("answered keepalives keep one connection", one_connection)
            checks.run("a clean stop cancels market data as ib_async does", cancels_on_stop)
        finally:
            if bot is not None:
                bot.close()
            agent.stop()
            stub.stop()
    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
