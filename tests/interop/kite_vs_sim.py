#!/usr/bin/env python3
"""pykiteconnect (the `kiteconnect` package on PyPI, Zerodha's own client)
against `brokerguard sim kite`:

- the ticker frames the simulator encodes, received with the PyPI
  `websockets` client, are decoded by pykiteconnect's own parser
  (`KiteTicker._parse_binary`) to exactly the values the simulator means
  (the formula documented in `src/sim/kite/encode.rs`, restated here, with
  literal anchor values); so the simulator's encoder is held to Kite's
  official client, and the Rust decoder (tested against the simulator in
  `tests/kite_sim.rs`) cannot share a mistake with it;
- 1-byte heartbeats, a 403 for a wrong token, a 429 under the `http:429`
  fault;
- `KiteConnect(api_key, root=<sim REST>)`: `generate_session` (checksum
  exchange, each request token once) and `profile()` work, and the errors
  come back as pykiteconnect's own `TokenException`s;
- how pykiteconnect itself copes with the simulator's lying frames (it
  checks no lengths), which is why the Rust decoder checks every one.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import json
import os
import re
import struct
from datetime import datetime
from pathlib import Path

from websockets.sync.client import ClientConnection, connect

from harness import Checks, SimProcess, expect, expect_http_refusal, main_guard, workdir

# Loopback only, whatever proxy the environment names.
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ.pop("HTTP_PROXY", None)
os.environ.pop("http_proxy", None)

from kiteconnect import KiteConnect, KiteTicker  # noqa: E402 - after the proxy settings
from kiteconnect import exceptions as kex  # noqa: E402

API_KEY = "interopkey000001"
API_SECRET = "interopsecret0000000000000000001"
ACCESS_TOKEN = "InteropAccessToken0123456789abcd"
REQUEST_TOKENS = ["interoprequest000000000000000001", "interoprequest000000000000000002"]
TIMEOUT = 5.0

NSE = 408065  # segment 1
NIFTY = 256265  # segment 9: an index (not tradable; 28/32-byte packets)
CDS = (1234 << 8) | 3  # 315907: prices ÷ 10 000 000
BCD = (77 << 8) | 6  # 19718: prices ÷ 10 000
TOKENS = [NSE, NIFTY, CDS, BCD]
SIM_EPOCH = 1_700_000_000


class KiteSim(SimProcess):
    """`brokerguard sim kite` on free ports; knows its two URLs."""

    def __init__(self, workdir: Path, tag: str, *extra: str) -> None:
        super().__init__(
            [
                "kite", "--ticker-port", "0", "--rest-port", "0",
                "--api-key", API_KEY, "--api-secret", API_SECRET, "--access-token", ACCESS_TOKEN,
                *[a for t in REQUEST_TOKENS for a in ("--request-token", t)],
                "--data-every", "100ms", "--heartbeat-every", "300ms", *extra,
            ],
            workdir / f"kite-sim-{tag}.stderr",
            r"kite simulator listening: ticker (ws://127\.0\.0\.1:\d+/) rest (http://127\.0\.0\.1:\d+)",
        )
        self.ticker = self.match.group(1)
        self.rest = self.match.group(2)

    def ticker_url(self, token: str = ACCESS_TOKEN, key: str = API_KEY) -> str:
        # pykiteconnect's own form: "{root}?api_key={api_key}&access_token={access_token}".
        return f"{self.ticker}?api_key={key}&access_token={token}"


def open_ticker(url: str) -> ClientConnection:
    return connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, ping_interval=None,
                   additional_headers={"X-Kite-Version": "3"})


def subscribe(ws: ClientConnection, tokens: list[int], mode: str) -> None:
    # What KiteTicker.subscribe and set_mode send.
    ws.send(json.dumps({"a": "subscribe", "v": tokens}))
    ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))


def next_binary(ws: ClientConnection, what: str, min_len: int = 5) -> bytes:
    """The next binary message of at least `min_len` bytes (pykiteconnect
    parses only `len(payload) > 4`), skipping heartbeats."""
    end = datetime.now().timestamp() + TIMEOUT
    while datetime.now().timestamp() < end:
        try:
            msg = ws.recv(timeout=TIMEOUT)
        except TimeoutError:
            break
        expect(isinstance(msg, bytes), f"{what}: market data must be binary, got {msg!r}")
        if len(msg) >= min_len:
            return msg
    raise AssertionError(f"{what}: no frame within {TIMEOUT}s")


TICKER = KiteTicker(API_KEY, ACCESS_TOKEN)  # only its parser is used; it never connects


def parse(frame: bytes) -> list[dict]:
    return TICKER._parse_binary(frame)


def divisor(token: int) -> float:
    return {3: 10_000_000.0, 6: 10_000.0}.get(token & 0xFF, 100.0)


def expected(token: int, n: int, mode: str) -> dict:
    """The simulator's documented values for `token` in data frame `n`, as
    pykiteconnect builds them (src/sim/kite/encode.rs)."""
    d = divisor(token)
    b = 100_000 + ((token >> 8) % 100) * 1_000
    lp = b + n
    opn, high, low, close = b - 1_000, b + 1_000 + n, b - 1_500, b - 500
    tick: dict = {"tradable": token & 0xFF != 9, "mode": mode, "instrument_token": token, "last_price": lp / d}
    if mode == "ltp":
        return tick
    if token & 0xFF == 9:
        tick["ohlc"] = {"high": high / d, "low": low / d, "open": opn / d, "close": close / d}
    else:
        tick.update({
            "last_traded_quantity": 10 + n % 90, "average_traded_price": (lp - 25) / d,
            "volume_traded": 1_000 * (n + 1), "total_buy_quantity": 50_000 + n, "total_sell_quantity": 60_000 + n,
            "ohlc": {"open": opn / d, "high": high / d, "low": low / d, "close": close / d},
        })
    tick["change"] = (tick["last_price"] - tick["ohlc"]["close"]) * 100 / tick["ohlc"]["close"]
    if mode == "full":
        if token & 0xFF != 9:
            tick["last_trade_time"] = datetime.fromtimestamp(SIM_EPOCH + n)
            tick.update({"oi": 20_000 + n, "oi_day_high": 25_000, "oi_day_low": 15_000})
        tick["exchange_timestamp"] = datetime.fromtimestamp(SIM_EPOCH + n + 1)
        if token & 0xFF != 9:
            tick["depth"] = {
                "buy": [{"quantity": 100 * (k + 1), "price": (lp - 5 * (k + 1)) / d, "orders": k + 1} for k in range(5)],
                "sell": [{"quantity": 150 * (k + 1), "price": (lp + 5 * (k + 1)) / d, "orders": 10 + k} for k in range(5)],
            }
    return tick


def run() -> int:
    checks = Checks("kite_vs_sim")
    with workdir("bg-interop-kite-") as work:
        sim = KiteSim(work, "main")
        try:
            def full_frames() -> None:
                with open_ticker(sim.ticker_url()) as ws:
                    subscribe(ws, TOKENS, "full")
                    for n in range(3):
                        frame = next_binary(ws, f"full frame {n}")
                        expect(struct.unpack(">H", frame[:2])[0] == 4, f"frame {n} must carry 4 packets")
                        ticks = parse(frame)
                        for tick, token in zip(ticks, TOKENS, strict=True):
                            want = expected(token, n, "full")
                            expect(tick == want, f"frame {n} token {token}:\n got  {tick!r}\n want {want!r}")
                    # Anchors, stated plainly, for frame 2.
                    nse, nifty, cds, bcd = ticks
                    expect(nse["last_price"] == 1940.02 and nse["volume_traded"] == 3000, f"NSE anchor {nse!r}")
                    expect(nse["depth"]["sell"][4] == {"quantity": 750, "price": 1940.27, "orders": 14}, f"{nse['depth']!r}")
                    expect(nifty["tradable"] is False and nifty["ohlc"]["high"] == 1020.02, f"index anchor {nifty!r}")
                    expect(cds["last_price"] == 0.0134002, f"CDS ÷10 000 000 anchor {cds['last_price']!r}")
                    expect(bcd["last_price"] == 17.7002, f"BCD ÷10 000 anchor {bcd['last_price']!r}")
                    expect(nse["exchange_timestamp"].timestamp() == SIM_EPOCH + 3, f"{nse['exchange_timestamp']!r}")

            def quote_and_ltp_frames() -> None:
                for mode, sizes in (("quote", [44, 28]), ("ltp", [8, 8])):
                    with open_ticker(sim.ticker_url()) as ws:
                        subscribe(ws, [NSE, NIFTY], mode)
                        frame = next_binary(ws, f"{mode} frame")
                        got_sizes = [struct.unpack(">H", frame[2:4])[0], struct.unpack(">H", frame[4 + sizes[0]:6 + sizes[0]])[0]]
                        expect(got_sizes == sizes, f"{mode} packet lengths {got_sizes}, want {sizes}")
                        ticks = parse(frame)
                        want = [expected(NSE, 0, mode), expected(NIFTY, 0, mode)]
                        expect(ticks == want, f"{mode}:\n got  {ticks!r}\n want {want!r}")

            def heartbeats() -> None:
                with open_ticker(sim.ticker_url()) as ws:
                    msg = ws.recv(timeout=TIMEOUT)
                    expect(msg == b"\x00", f"an idle ticker sends a 1-byte heartbeat, got {msg!r}")
                    # pykiteconnect hands on_ticks nothing for it (`len(payload) > 4`).
                    expect(not len(msg) > 4, "a heartbeat must be ignored by pykiteconnect")

            def wrong_token_403() -> None:
                for url in (sim.ticker_url(token="expired0000000000000000000000000"), sim.ticker_url(key="otherkey00000001")):
                    expect_http_refusal(403, lambda: open_ticker(url))

            def login_and_profile() -> None:
                kite = KiteConnect(API_KEY, root=sim.rest)
                data = kite.generate_session(REQUEST_TOKENS[0], api_secret=API_SECRET)
                token = data["access_token"]
                expect(re.fullmatch(r"[0-9a-f]{32}", token), f"a 32-character access token, got {token!r}")
                expect(kite.access_token == token, "generate_session sets the token")
                expect(isinstance(data["login_time"], datetime), f"login_time parsed by pykiteconnect: {data['login_time']!r}")
                profile = kite.profile()
                expect(profile["user_id"] == "SIM001" and profile["broker"] == "ZERODHA", f"profile {profile!r}")
                # The new token works on the ticker too.
                with open_ticker(sim.ticker_url(token=token)) as ws:
                    expect(ws.recv(timeout=TIMEOUT) is not None, "no message on the new token")
                # The same request token again: pykiteconnect's TokenException.
                try:
                    KiteConnect(API_KEY, root=sim.rest).generate_session(REQUEST_TOKENS[0], api_secret=API_SECRET)
                except kex.TokenException as e:
                    expect(e.code == 403 and str(e) == "Token is invalid or has expired.", f"{e.code} {e}")
                else:
                    raise AssertionError("a used request token must be refused")

            def bad_checksum_and_token() -> None:
                try:
                    KiteConnect(API_KEY, root=sim.rest).generate_session(REQUEST_TOKENS[1], api_secret="wrong")
                except kex.TokenException as e:
                    expect(e.code == 403 and str(e) == "Invalid `checksum`.", f"{e.code} {e}")
                else:
                    raise AssertionError("a wrong checksum must be refused")
                # A wrong checksum does not use the request token up.
                KiteConnect(API_KEY, root=sim.rest).generate_session(REQUEST_TOKENS[1], api_secret=API_SECRET)
                try:
                    KiteConnect(API_KEY, access_token="expired0000000000000000000000000", root=sim.rest).profile()
                except kex.TokenException as e:
                    expect(e.code == 403 and str(e) == "Incorrect `api_key` or `access_token`.", f"{e.code} {e}")
                else:
                    raise AssertionError("a dead access token must be refused by /user/profile")

            checks.run("pykiteconnect decodes full frames (NSE, index, CDS, BCD) to the simulator's values", full_frames)
            checks.run("quote and ltp frames: packet lengths and values", quote_and_ltp_frames)
            checks.run("idle ticker sends 1-byte heartbeats", heartbeats)
            checks.run("wrong access token or api_key is refused with HTTP 403", wrong_token_403)
            checks.run("KiteConnect.generate_session and profile against the simulator's REST", login_and_profile)
            checks.run("wrong checksum and dead access token give pykiteconnect's TokenException", bad_checksum_and_token)
        finally:
            code = sim.stop()
        checks.run("simulator exits 0 on SIGTERM", lambda: expect(code == 0, f"exit code {code}"))

        def limit_429() -> None:
            lsim = KiteSim(work, "429", "--fault", "http:429")
            try:
                expect_http_refusal(429, lambda: open_ticker(lsim.ticker_url()))
            finally:
                lsim.stop()

        def lying_frames() -> None:
            # pykiteconnect checks no lengths: what it does with each lie.
            outcomes = {}
            for lie in ("count", "length", "unknown", "trailing"):
                lsim = KiteSim(work, f"lie-{lie}", "--fault", f"lie-always:{lie}")
                try:
                    with open_ticker(lsim.ticker_url()) as ws:
                        subscribe(ws, [NSE], "full")
                        frame = next_binary(ws, f"lying frame ({lie})")
                    try:
                        outcomes[lie] = [t["mode"] for t in parse(frame)]
                    except struct.error:
                        outcomes[lie] = "struct.error"
                finally:
                    lsim.stop()
            want = {
                "count": "struct.error",  # reads a length past the end
                "length": ["full"],  # the slice is silently cut to the bytes present
                "unknown": ["full"],  # the 13-byte packet is skipped
                "trailing": ["full"],  # the stray byte is ignored
            }
            expect(outcomes == want, f"pykiteconnect on lying frames: {outcomes!r}, expected {want!r}")

        checks.run("http:429 fault refuses the upgrade with 429", limit_429)
        checks.run("pykiteconnect on the simulator's lying frames (it checks no lengths)", lying_frames)
    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
