#!/usr/bin/env python3
"""Independent clients against `brokerguard sim kraken`:

- **krakenex** (PyPI; its own signer, `uri` pointed at the simulator)
  calls `Balance` and `GetWebSocketsToken` and is accepted by the
  simulator's verifier; a reused or lower nonce, and a wrong secret, are
  refused as Kraken refuses them;
- the PyPI **websockets** client subscribes to books and verifies every
  snapshot's and update's checksum with its own implementation of Kraken's
  documented algorithm (`zlib.crc32`), so the simulator's books are
  checked independently of brokerguard's code; it also checks status,
  ping/pong, per-symbol acks, a refused symbol, private channels with a
  token krakenex fetched, heartbeats, and that the corrupt-checksum fault
  really corrupts.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import base64
import json
import re
import time
import zlib
from decimal import Decimal
from pathlib import Path

import krakenex
from websockets.sync.client import ClientConnection, connect

from harness import Checks, SimProcess, expect, main_guard, recv_text, workdir

TIMEOUT = 5.0
KEY = "interop-kraken-key"
SECRET = base64.b64encode(bytes(range(64))).decode()
DOC_SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
DOC_SIGN = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="


class KrakenSim(SimProcess):
    """`brokerguard sim kraken --port 0 --rest-port 0 ...` in a child process."""

    def __init__(self, workdir: Path, tag: str, *extra: str) -> None:
        super().__init__(sim_args("0", "0", *extra), workdir / f"ksim-{tag}.stderr",
                         r"kraken simulator listening: rest (\S+) ws (\S+) ws-auth (\S+) ")
        self.rest, self.ws, self.ws_auth = self.match.group(1), self.match.group(2), self.match.group(3)


def sim_args(ws_port: str, rest_port: str, *extra: str) -> list[str]:
    """`brokerguard sim kraken`'s arguments for these ports, with the suite's key."""
    return [
        "kraken", "--port", ws_port, "--rest-port", rest_port,
        "--key", f"{KEY}:{SECRET}", "--data-every", "50ms", "--heartbeat-every", "300ms", *extra,
    ]


def api(sim: KrakenSim, secret: str = SECRET) -> krakenex.API:
    k = krakenex.API(KEY, secret)
    k.uri = sim.rest
    return k


# --- Kraken's book checksum, written from the docs (PROTOCOLS.md §1.8) ---


class Book:
    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}

    def apply(self, entry: dict, snapshot: bool) -> None:
        if snapshot:
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, entry.get("bids", [])), (self.asks, entry.get("asks", []))):
            for level in levels:
                price, qty = level["price"], level["qty"]
                if Decimal(qty) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = (price, qty)
        for key in sorted(self.bids, reverse=True)[self.depth:]:
            del self.bids[key]
        for key in sorted(self.asks)[self.depth:]:
            del self.asks[key]

    def checksum(self) -> int:
        def text(s: str) -> str:
            return s.replace(".", "").lstrip("0")

        asks = [self.asks[k] for k in sorted(self.asks)[:10]]
        bids = [self.bids[k] for k in sorted(self.bids, reverse=True)[:10]]
        joined = "".join(text(p) + text(q) for p, q in asks + bids)
        return zlib.crc32(joined.encode()) & 0xFFFFFFFF


def loads(raw: str) -> dict:
    # Numbers as their text: a float would lose the trailing zeros the checksum needs.
    return json.loads(raw, parse_float=str, parse_int=str)


def recv(ws: ClientConnection, what: str) -> dict:
    return loads(recv_text(ws, what, TIMEOUT))


def recv_until(ws: ClientConnection, what: str, pred, limit: float = TIMEOUT) -> dict:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        msg = recv(ws, what)
        if pred(msg):
            return msg
    raise AssertionError(f"{what}: nothing matching within {limit}s")


def open_ws(url: str) -> ClientConnection:
    return connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, ping_interval=None)


def run() -> int:
    checks = Checks("kraken_vs_sim")

    def published_checksum_example() -> None:
        # The v1 guide's worked example, to validate this file's own algorithm first.
        book = Book(10)
        asks = [f"0.{5005 + 5 * i:05d}" for i in range(10)]
        bids = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965", "0.04960", "0.04955", "0.04950"]
        book.apply({"asks": [{"price": p, "qty": "0.00000500"} for p in asks],
                    "bids": [{"price": p, "qty": "0.00000500"} for p in bids]}, True)
        expect(book.checksum() == 974947235, f"published example gives {book.checksum()}")

    def krakenex_signs_the_published_vector() -> None:
        k = krakenex.API("doc-key", DOC_SECRET)
        data = {"nonce": 1616492376594, "ordertype": "limit", "pair": "XBTUSD", "price": 37500, "type": "buy", "volume": 1.25}
        sign = k._sign(data, "/0/private/AddOrder")
        expect(sign == DOC_SIGN, f"krakenex signs the published example as {sign}")

    checks.run("our checksum implementation gives the published 974947235", published_checksum_example)
    checks.run("krakenex reproduces the published API-Sign", krakenex_signs_the_published_vector)

    with workdir("bg-interop-kraken-") as work:
        sim = KrakenSim(work, "main")
        try:
            token_holder: dict[str, str] = {}

            def krakenex_balance() -> None:
                r = api(sim).query_private("Balance")
                expect(r.get("error") == [], f"Balance answered errors {r.get('error')}")
                expect(r["result"].get("ZUSD") == "171288.6158", f"Balance result {r['result']}")

            def krakenex_ws_token() -> None:
                r = api(sim).query_private("GetWebSocketsToken")
                expect(r.get("error") == [], f"GetWebSocketsToken answered errors {r.get('error')}")
                token = r["result"].get("token")
                expect(isinstance(token, str) and len(token) >= 20, f"token {token!r}")
                expect(r["result"].get("expires") == 900, f"expires {r['result'].get('expires')}")
                token_holder["token"] = token

            def reused_and_lower_nonces_are_refused() -> None:
                k = api(sim)
                fixed = int(time.time() * 1000) + 60_000
                k._nonce = lambda: fixed
                first = k.query_private("Balance")
                expect(first.get("error") == [], f"a fresh nonce was refused: {first}")
                again = k.query_private("Balance")
                expect(again.get("error") == ["EAPI:Invalid nonce"], f"a reused nonce got {again}")
                k._nonce = lambda: fixed - 1
                lower = k.query_private("Balance")
                expect(lower.get("error") == ["EAPI:Invalid nonce"], f"a lower nonce got {lower}")
                k._nonce = lambda: fixed + 1
                expect(k.query_private("Balance").get("error") == [], "the next nonce was refused")

            def a_wrong_secret_is_an_invalid_signature() -> None:
                wrong = base64.b64encode(bytes(64)).decode()
                k = api(sim, wrong)
                k._nonce = lambda: int(time.time() * 1000) + 120_000
                r = k.query_private("Balance")
                expect(r.get("error") == ["EAPI:Invalid signature"], f"got {r}")

            def response_has_a_date_header() -> None:
                k = api(sim)
                k.query_private("Balance")
                date = k.response.headers.get("Date", "")
                expect(re.match(r"^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$", date), f"Date {date!r}")

            checks.run("krakenex Balance is accepted by the simulator's verifier", krakenex_balance)
            checks.run("krakenex GetWebSocketsToken is accepted and returns a token", krakenex_ws_token)
            checks.run("a reused or lower nonce is refused with EAPI:Invalid nonce", reused_and_lower_nonces_are_refused)
            checks.run("a wrong secret is refused with EAPI:Invalid signature", a_wrong_secret_is_an_invalid_signature)
            checks.run("REST answers carry a Date header", response_has_a_date_header)

            def books_verify_independently() -> None:
                with open_ws(sim.ws) as ws:
                    status = recv(ws, "the status message")
                    expect(status.get("channel") == "status", f"first message {status}")
                    expect(status["data"][0].get("system") == "online", f"status {status}")
                    symbols = ["BTC/USD", "ETH/USD", "XRP/USD"]
                    ws.send(json.dumps({"method": "subscribe", "params": {"channel": "book", "symbol": symbols, "depth": 10}, "req_id": 42}))
                    books = {s: Book(10) for s in symbols}
                    acked: set[str] = set()
                    verified = {"snapshot": 0, "update": 0}
                    end = time.monotonic() + 20
                    while (verified["update"] < 150 or len(acked) < len(symbols)) and time.monotonic() < end:
                        msg = recv(ws, "book messages")
                        if msg.get("method") == "subscribe":
                            expect(msg.get("success") is True and msg.get("req_id") == "42", f"ack {msg}")
                            acked.add(msg["result"]["symbol"])
                            continue
                        if msg.get("channel") != "book":
                            continue
                        for entry in msg["data"]:
                            book = books[entry["symbol"]]
                            book.apply(entry, msg["type"] == "snapshot")
                            expect(
                                book.checksum() == int(entry["checksum"]),
                                f"{msg['type']} for {entry['symbol']}: checksum {entry['checksum']}, "
                                f"ours {book.checksum()} (book {book.asks} / {book.bids})",
                            )
                            verified[msg["type"]] += 1
                    expect(acked == set(symbols), f"acks for {acked}")
                    expect(verified["snapshot"] == len(symbols), f"snapshots verified {verified}")
                    expect(verified["update"] >= 150, f"updates verified {verified}")

            def ping_pong_and_a_refused_symbol() -> None:
                with open_ws(sim.ws) as ws:
                    recv(ws, "the status message")
                    ws.send(json.dumps({"method": "ping", "req_id": 7}))
                    pong = recv_until(ws, "the pong", lambda m: m.get("method") == "pong")
                    expect(pong.get("req_id") == "7" and "time_in" in pong and "time_out" in pong, f"pong {pong}")
                    ws.send(json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["XDG/USD"]}, "req_id": 8}))
                    ack = recv_until(ws, "the refusal", lambda m: m.get("method") == "subscribe")
                    expect(ack.get("success") is False and ack.get("symbol") == "XDG/USD", f"refusal {ack}")
                    expect("XDG/USD" in ack.get("error", ""), f"refusal {ack}")

            def private_channel_with_a_krakenex_token_and_heartbeats() -> None:
                expect("token" in token_holder, "no token from the GetWebSocketsToken check")
                with open_ws(sim.ws_auth) as ws:
                    recv(ws, "the status message")
                    ws.send(json.dumps({"method": "subscribe", "params": {"channel": "executions", "token": "made-up"}, "req_id": 1}))
                    refused = recv_until(ws, "the token refusal", lambda m: m.get("method") == "subscribe")
                    expect(refused.get("success") is False, f"a made-up token got {refused}")
                    ws.send(json.dumps({"method": "subscribe", "params": {"channel": "executions", "token": token_holder["token"]}, "req_id": 2}))
                    ok = recv_until(ws, "the ack", lambda m: m.get("method") == "subscribe")
                    expect(ok.get("success") is True, f"the krakenex token got {ok}")
                    recv_until(ws, "the executions snapshot", lambda m: m.get("channel") == "executions")
                    start = time.monotonic()
                    recv_until(ws, "a heartbeat", lambda m: m.get("channel") == "heartbeat")
                    recv_until(ws, "a second heartbeat", lambda m: m.get("channel") == "heartbeat")
                    expect(time.monotonic() - start < 3, "heartbeats are too slow")

            checks.run("every book snapshot and update verifies with zlib.crc32", books_verify_independently)
            checks.run("ping/pong with req_id and a refused symbol", ping_pong_and_a_refused_symbol)
            checks.run("a private channel takes krakenex's token and then heartbeats", private_channel_with_a_krakenex_token_and_heartbeats)
        finally:
            sim.stop()

        corrupt = KrakenSim(work, "corrupt", "--fault", "corrupt-checksum")
        try:
            def corrupt_fault_really_corrupts() -> None:
                with open_ws(corrupt.ws) as ws:
                    recv(ws, "the status message")
                    ws.send(json.dumps({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}}))
                    book = Book(10)
                    mismatches = 0
                    for _ in range(10):
                        msg = recv_until(ws, "book messages", lambda m: m.get("channel") == "book")
                        for entry in msg["data"]:
                            book.apply(entry, msg["type"] == "snapshot")
                            mismatches += book.checksum() != int(entry["checksum"])
                    expect(mismatches == 10, f"only {mismatches} of 10 book messages were corrupted")

            checks.run("the corrupt-checksum fault is caught by an independent verifier", corrupt_fault_really_corrupts)
        finally:
            corrupt.stop()

    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
