#!/usr/bin/env python3
"""The agent's Kite decoder against pykiteconnect's own parser, on the same
frames.

`brokerguard run` streams three Kite feeds (full, quote and ltp mode, with
NSE, index, CDS and BCD instruments) through a small WebSocket proxy
written here with the PyPI `websockets` library, to `brokerguard sim kite`.
The proxy forwards every frame both ways and parses each binary frame the
simulator sends with `KiteTicker._parse_binary` (the `kiteconnect`
package, Zerodha's own client), the way `KiteTicker` does (only frames of
more than 4 bytes; heartbeats are not ticks). The agent's fan-out data
lines (`feeds.sock`) must then be exactly pykiteconnect's ticks, frame by
frame and in order: the same field names in the same order, the same
values (prices, the CDS ÷10 000 000 and BCD ÷10 000 divisors, `change`,
market depth), timestamps the same instants (the agent writes RFC 3339 UTC
where pykiteconnect makes naive local datetimes).

A second run injects lying frames (`lie-once:count`, which pykiteconnect
cannot parse): the agent must drop exactly those frames, keep the
connection, count each in `feeds[].info.frames_dropped`, and still equal
pykiteconnect on every other frame.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from datetime import datetime, timezone
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

from harness import Checks, Fanout, agent_section, expect, main_guard, start_agent, wait_until, workdir

os.environ["NO_PROXY"] = "127.0.0.1,localhost"
# pykiteconnect makes naive local datetimes: pin the zone they are made in.
os.environ["TZ"] = "UTC"

from kite_vs_sim import API_KEY, API_SECRET, ACCESS_TOKEN, BCD, CDS, NIFTY, NSE, KiteSim  # noqa: E402
from kiteconnect import KiteTicker  # noqa: E402

TICKER = KiteTicker(API_KEY, ACCESS_TOKEN)  # only its parser is used
FEEDS = {
    "kfull": ("full", [NSE, NIFTY, CDS, BCD]),
    "kquote": ("quote", [NSE, NIFTY, BCD]),
    "kltp": ("ltp", [NSE, CDS]),
}
TIMESTAMPS = ("last_trade_time", "exchange_timestamp")


class Proxy:
    """ws://127.0.0.1:PORT/<feed>?… → the simulator's ticker, recording
    pykiteconnect's parse of each binary frame per feed, in order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        # feed → list of ("ticks", [dict]) or ("error", str), in order.
        self.frames: dict[str, list[tuple[str, object]]] = {f: [] for f in FEEDS}
        self.connections: dict[str, int] = {f: 0 for f in FEEDS}
        self.server = serve(self.handle, "127.0.0.1", 0, ping_interval=None)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def base(self, feed: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{feed}"

    def handle(self, down: ServerConnection) -> None:
        path = down.request.path
        feed = path.split("?", 1)[0].strip("/")
        query = path.split("?", 1)[1] if "?" in path else ""
        headers = {"X-Kite-Version": down.request.headers.get("X-Kite-Version", "")}
        with self.lock:
            self.connections[feed] = self.connections.get(feed, 0) + 1
        try:
            with connect(f"{self.upstream}/?{query}", additional_headers=headers, ping_interval=None, open_timeout=5) as up:
                self.relay(feed, down, up)
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - the agent sees the close and retries
            down.close(1011, "upstream refused")

    def relay(self, feed: str, down: ServerConnection, up) -> None:  # noqa: ANN001 - a ClientConnection
        def client_to_upstream() -> None:
            try:
                for msg in down:
                    up.send(msg)
            except ConnectionClosed:
                pass
            finally:
                up.close()

        t = threading.Thread(target=client_to_upstream, daemon=True)
        t.start()
        try:
            for msg in up:
                if isinstance(msg, bytes) and len(msg) > 4:
                    try:
                        entry: tuple[str, object] = ("ticks", TICKER._parse_binary(msg))
                    except struct.error as e:
                        entry = ("error", str(e))
                    with self.lock:
                        self.frames.setdefault(feed, []).append(entry)
                down.send(msg)
        except ConnectionClosed:
            pass
        finally:
            down.close()
            t.join(timeout=5)

    def parsed(self, feed: str) -> list[tuple[str, object]]:
        with self.lock:
            return list(self.frames.get(feed, []))

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


def epoch(v: object) -> object:
    """A timestamp as Unix seconds: the agent's RFC 3339 UTC string or
    pykiteconnect's naive datetime (made in TZ=UTC)."""
    if isinstance(v, str):
        return int(datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())
    if isinstance(v, datetime):
        return int(v.replace(tzinfo=timezone.utc).timestamp())
    return v


def normalized(tick: dict) -> dict:
    return {k: (epoch(v) if k in TIMESTAMPS else v) for k, v in tick.items()}


def same(agent: list[dict], ours: list[dict]) -> str | None:
    """Why the agent's ticks differ from pykiteconnect's, or None."""
    if len(agent) != len(ours):
        return f"{len(agent)} ticks, pykiteconnect {len(ours)}"
    for a, p in zip(agent, ours):
        if list(a.keys()) != list(p.keys()):
            return f"keys {list(a.keys())} vs pykiteconnect {list(p.keys())}"
        na, np_ = normalized(a), normalized(p)
        if na != np_:
            diff = {k: (na.get(k), np_.get(k)) for k in p if na.get(k) != np_.get(k)}
            return f"values differ (agent, pykiteconnect): {diff!r}"
    return None


def agent_config(work: Path, proxy: Proxy, sim: KiteSim) -> Path:
    creds = work / "credentials.env"
    creds.write_text(f"KITE_MAIN_API_KEY={API_KEY}\nKITE_MAIN_API_SECRET={API_SECRET}\nKITE_MAIN_ACCESS_TOKEN={ACCESS_TOKEN}\n")
    creds.chmod(0o600)
    (work / "state").mkdir(exist_ok=True)
    text = agent_section(work, creds, 'preflight = "off"\n')
    for name, (mode, tokens) in FEEDS.items():
        text += (
            f'\n[[feed]]\nname = "{name}"\nbroker = "kite"\naccount = "main"\n'
            f"instruments = [{', '.join(map(str, tokens))}]\nmode = \"{mode}\"\n"
            f'url = "{proxy.base(name)}"\nrest_url = "{sim.rest}"\nvalidate_every = "0s"\n'
        )
    path = work / "brokerguard.toml"
    path.write_text(text)
    return path


def compare(checks: Checks, tag: str, proxy: Proxy, bot: Fanout, want_lines: int, lies: bool) -> None:
    for feed, (mode, tokens) in FEEDS.items():
        def check(feed: str = feed, mode: str = mode, tokens: list[int] = tokens) -> None:
            got = wait_until(20, lambda: len(bot.of(feed, "data")) >= want_lines)
            expect(got, f"{feed}: {len(bot.of(feed, 'data'))} data lines, wanted {want_lines}")
            lines = bot.of(feed, "data")
            parsed = proxy.parsed(feed)
            errors = [p for p in parsed if p[0] == "error"]
            good = [p[1] for p in parsed if p[0] == "ticks"]
            if lies:
                expect(errors, f"{feed}: no lying frame reached pykiteconnect")
            else:
                expect(not errors, f"{feed}: pykiteconnect failed on {errors!r}")
            # Line seq k (from 1) is pykiteconnect's parse of the k-th good
            # frame: the agent published one line per frame pykiteconnect
            # parses, in order (lines before this subscriber connected are
            # skipped by their seq; the proxy may hold a few more frames).
            first = lines[0]["seq"] - 1
            expect(len(good) >= first + len(lines), f"{feed}: {len(lines)} lines but only {len(good)} frames parsed")
            for line, ticks in zip(lines, good[first:]):
                why = same(line["data"], ticks)
                expect(why is None, f"{feed} line seq {line['seq']}: {why}\n agent  {line['data']!r}\n pykite {ticks!r}")
            seqs = [l["seq"] for l in lines]
            expect(seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{feed}: seq has gaps {seqs}")
            modes = {t["mode"] for t in lines[-1]["data"]}
            expect(modes == {mode}, f"{feed}: last line in modes {modes}")
            expect([t["instrument_token"] for t in lines[-1]["data"]] == tokens, f"{feed}: instruments")
            expect(proxy.connections[feed] == 1, f"{feed}: {proxy.connections[feed]} connections (lies must not cost one)")

        checks.run(f"{tag}: {feed} ({mode}) fan-out lines equal pykiteconnect's parse, frame by frame", check)


def run() -> int:
    checks = Checks("kite_agent_vs_kiteconnect")
    for tag, extra, lies in (
        ("clean", [], False),
        ("lying frames", ["--script", "1500ms=lie-once:count,500ms=clear,1s=lie-once:count,500ms=clear"], True),
    ):
        with workdir("bg-interop-kite-agent-") as work:
            sim = KiteSim(work, tag.replace(" ", "-"), *extra)
            proxy = Proxy(sim.ticker)
            agent = start_agent(agent_config(work, proxy, sim), work / "agent.stderr",
                                env={**os.environ, "RUST_LOG": "warn"})
            bot = None
            try:
                bot = Fanout(work / "run" / "feeds.sock", 15)
                compare(checks, tag, proxy, bot, want_lines=25, lies=lies)
                if lies:
                    def dropped() -> None:
                        def counts() -> dict | None:
                            doc = json.loads((work / "run" / "status.json").read_text())
                            got = {f["name"]: f.get("info", {}).get("frames_dropped") for f in doc["feeds"]}
                            want = {f: str(sum(1 for p in proxy.parsed(f) if p[0] == "error")) for f in FEEDS}
                            return got if got == want else None
                        got = wait_until(10, counts)
                        expect(got, f"frames_dropped in status.json does not match the lies pykiteconnect failed on")
                        log = (work / "agent.stderr").read_text(errors="replace")
                        expect("dropped a ticker frame" in log, f"no warning for the dropped frames:\n{log}")
                    checks.run("lying frames: each is counted in feeds[].info.frames_dropped and logged", dropped)
            finally:
                if bot:
                    bot.close()
                code = agent.stop()
                proxy.stop()
                sim.stop()
            checks.run(f"{tag}: the agent stops cleanly", lambda code=code: expect(code == 0, f"exit code {code}"))
    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
