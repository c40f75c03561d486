#!/usr/bin/env python3
"""alpaca-py, Alpaca's official Python SDK from PyPI, against `brokerguard
sim alpaca`, and a Python bot on the agent's fan-out beside it:

- alpaca-py's **StockDataStream** (`url_override` pointed at the
  simulator's `v2/test`) connects, authenticates and subscribes exactly as
  it does at Alpaca: it asks for MessagePack on the handshake, so the
  simulator answers in MessagePack with timestamps as the timestamp
  extension, and the SDK turns each message into its own `Trade`, `Quote`
  and `Bar` models: the simulator's bytes are what the official SDK
  accepts;
- a second StockDataStream on the same key is refused with 406
  "connection limit exceeded", as Alpaca refuses it;
- alpaca-py's **TradingStream** (paper) authenticates, listens and
  receives trade updates in the binary frames the paper endpoint sends;
- `brokerguard run` holds another key's `v2/test` stream and a bot
  written in Python reads it from `feeds.sock`: every trade the bot sees
  that alpaca-py also saw (same tick id) has the same price and size, one
  JSON line per message.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from alpaca.data.live import StockDataStream
from alpaca.trading.stream import TradingStream

from harness import Checks, Fanout, SimProcess, agent_section, expect, main_guard, start_agent, wait_until, workdir

TIMEOUT = 20.0
KEY = "AKINTEROPKEY00000001"
SECRET = "interop-live-secret-00000000000000000001"
AGENT_KEY = "AKINTEROPAGENT000002"
AGENT_SECRET = "interop-agent-secret-0000000000000000002"
PAPER_KEY = "PKINTEROPPAPER000003"
PAPER_SECRET = "interop-paper-secret-0000000000000000003"


class AlpacaSim(SimProcess):
    """`brokerguard sim alpaca --port 0 --rest-port 0 ...` in a child process."""

    def __init__(self, work: Path) -> None:
        super().__init__(
            [
                "alpaca", "--port", "0", "--rest-port", "0", "--data-every", "100ms",
                "--key", f"{KEY}:{SECRET}", "--key", f"{AGENT_KEY}:{AGENT_SECRET}",
                "--paper-key", f"{PAPER_KEY}:{PAPER_SECRET}",
            ],
            work / "asim.stderr",
            r"alpaca simulator listening: ws ws://127\.0\.0\.1:(\d+)/\S+ \S+ \(trading \S+ / \S+\), "
            r"rest http://127\.0\.0\.1:(\d+)/",
        )
        self.ws = f"ws://127.0.0.1:{self.match.group(1)}"
        self.rest = f"http://127.0.0.1:{self.match.group(2)}"


class Running:
    """An alpaca-py stream's `run()` in a thread, stopped on exit."""

    def __init__(self, stream) -> None:  # noqa: ANN001 - StockDataStream or TradingStream
        self.stream = stream
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None
        self.thread.start()

    def _run(self) -> None:
        try:
            self.stream.run()
        except BaseException as e:  # noqa: BLE001 - reported by the check
            self.error = e

    def stop(self) -> None:
        try:
            self.stream.stop()
        except Exception:  # noqa: BLE001 - a stream that never started has nothing to stop
            pass
        self.thread.join(timeout=10)


def main() -> int:
    checks = Checks("alpaca_vs_sim")
    with workdir("bg-alpaca-") as work:
        sim = AlpacaSim(work)
        try:
            run_all(checks, sim, work)
        finally:
            sim.stop()
    return checks.finish()


def run_all(checks: Checks, sim: AlpacaSim, work: Path) -> None:
    trades: list = []
    quotes: list = []
    bars: list = []

    async def on_trade(t) -> None:  # noqa: ANN001
        trades.append(t)

    async def on_quote(q) -> None:  # noqa: ANN001
        quotes.append(q)

    async def on_bar(b) -> None:  # noqa: ANN001
        bars.append(b)

    sdk = StockDataStream(KEY, SECRET, url_override=f"{sim.ws}/v2/test")
    sdk.subscribe_trades(on_trade, "FAKEPACA")
    sdk.subscribe_quotes(on_quote, "FAKEPACA")
    sdk.subscribe_bars(on_bar, "FAKEPACA")
    running = Running(sdk)
    try:
        def sdk_models() -> None:
            got = wait_until(TIMEOUT, lambda: len(trades) >= 5 and quotes and bars)
            expect(got, f"alpaca-py got {len(trades)} trades, {len(quotes)} quotes, {len(bars)} bars; "
                        f"sim said:\n{sim.events()}")
            t = trades[0]
            expect(type(t).__name__ == "Trade" and t.symbol == "FAKEPACA", f"{t!r}")
            expect(isinstance(t.price, float) and t.price > 0, f"price {t.price!r}")
            expect(t.timestamp.year >= 2024, f"timestamp {t.timestamp!r}")
            expect(type(quotes[0]).__name__ == "Quote" and quotes[0].bid_price < quotes[0].ask_price,
                   f"{quotes[0]!r}")
            expect(type(bars[0]).__name__ == "Bar" and bars[0].high >= bars[0].low, f"{bars[0]!r}")
            expect(sim.saw(r"open /v2/test \(msgpack\)"), "alpaca-py did not ask for MessagePack")

        checks.run("StockDataStream reads trades, quotes and bars as its own models", sdk_models)

        def second_connection_406() -> None:
            # alpaca-py logs the refusal with a traceback and retries; the
            # simulator's own line is the check.
            logging.getLogger("alpaca").setLevel(logging.CRITICAL)
            second = StockDataStream(KEY, SECRET, url_override=f"{sim.ws}/v2/test")

            async def ignore(_t) -> None:  # noqa: ANN001
                return None

            second.subscribe_trades(ignore, "FAKEPACA")
            other = Running(second)
            try:
                expect(sim.saw(r"error 406 connection limit exceeded", TIMEOUT),
                       f"no 406 for a second connection on the key:\n{sim.events()}")
            finally:
                other.stop()

        checks.run("a second StockDataStream on the key gets 406", second_connection_406)

        def trading_stream_binary() -> None:
            updates: list = []

            async def on_update(u) -> None:  # noqa: ANN001
                updates.append(u)

            ts = TradingStream(PAPER_KEY, PAPER_SECRET, paper=True, raw_data=True,
                               url_override=f"{sim.ws}/paper/stream")
            ts.subscribe_trade_updates(on_update)
            r = Running(ts)
            try:
                got = wait_until(TIMEOUT, lambda: len(updates) >= 3)
                expect(got, f"TradingStream got {len(updates)} updates; sim said:\n{sim.events()}")
                expect(all(u.get("stream") == "trade_updates" for u in updates), f"{updates[:2]!r}")
                events = {u["data"]["event"] for u in updates}
                expect(events <= {"new", "fill"} and "order" in updates[0]["data"], f"{updates[:2]!r}")
                expect(sim.saw(r"open /paper/stream"), "TradingStream did not open the paper stream")
            finally:
                r.stop()

        checks.run("TradingStream (paper) reads trade updates in binary frames", trading_stream_binary)

        checks.guard("the agent's fan-out", lambda: agent_checks(checks, sim, work, trades))
    finally:
        running.stop()


def agent_checks(checks: Checks, sim: AlpacaSim, work: Path, sdk_trades: list) -> None:
    creds = work / "credentials.env"
    creds.write_text(f"ALPACA_BOT_API_KEY_ID={AGENT_KEY}\nALPACA_BOT_API_SECRET_KEY={AGENT_SECRET}\n")
    creds.chmod(0o600)
    config = work / "brokerguard.toml"
    config.write_text(
        agent_section(work, creds)
        + f'\n[[feed]]\nname = "fake"\nbroker = "alpaca"\naccount = "bot"\nstream = "test"\n'
        f'channels = ["trades", "quotes"]\nsymbols = ["FAKEPACA"]\nurl = "{sim.ws}/v2/test"\n'
        f'rest_url = "{sim.rest}/live"\n'
    )
    agent = start_agent(config, work / "agent.stderr")
    try:
        bot = Fanout(work / "run" / "feeds.sock", TIMEOUT, feeds=["fake"])
        try:
            def same_trades() -> None:
                start = len(sdk_trades)

                def enough():
                    bot_ids = {d["i"] for d in bot_trades(bot)}
                    sdk_ids = {t.id for t in sdk_trades[start:]}
                    return len(bot_ids & sdk_ids) >= 10

                expect(wait_until(TIMEOUT, enough),
                       f"the bot and alpaca-py share too few trades; agent log:\n{(work / 'agent.stderr').read_text()}")
                by_id = {t.id: t for t in sdk_trades}
                shared = [d for d in bot_trades(bot) if d["i"] in by_id]
                for d in shared:
                    t = by_id[d["i"]]
                    expect(abs(t.price - d["p"]) < 1e-9 and t.size == d["s"],
                           f"trade {d['i']}: alpaca-py {t.price} x {t.size}, bot {d['p']} x {d['s']}")
                lines = bot.raw
                expect(all(line.count("\n") == 1 for line in lines), "a fan-out line spans lines")
                quotes = [v["data"] for v in bot.of("fake", "data") if v["data"].get("T") == "q"]
                expect(quotes, "no quote reached the bot")
                expect(not any(v["data"].get("T") in ("success", "subscription") for v in bot.of("fake", "data")),
                       "an acknowledgement reached the bot as data")

            checks.run("a bot on feeds.sock sees the trades alpaca-py saw", same_trades)

            def no_secret() -> None:
                seen = "".join(bot.raw) + (work / "agent.stderr").read_text()
                status = work / "run" / "status.json"
                seen += status.read_text() if status.exists() else ""
                expect(AGENT_SECRET not in seen, "the agent's secret reached the fan-out, log or status")

            checks.run("the key's secret reaches neither the bot nor the log", no_secret)
        finally:
            bot.close()
    finally:
        agent.stop()


def bot_trades(bot: Fanout) -> list[dict]:
    return [v["data"] for v in bot.of("fake", "data") if v["data"].get("T") == "t"]


if __name__ == "__main__":
    main_guard(main)
