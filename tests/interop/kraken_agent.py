#!/usr/bin/env python3
"""The brokerguard agent's Kraken feeds, seen by a bot written in Python:

- `brokerguard run` with a public book feed and a private feed against
  `brokerguard sim kraken`; a bot on the fan-out socket rebuilds every book
  from the lines the agent forwards and verifies each checksum with its own
  implementation of Kraken's algorithm (`zlib.crc32`, from
  kraken_vs_sim.py), so "books reach the bot verified and as Kraken sent
  them" is checked by code that shares nothing with brokerguard's;
- a feed whose first book message is corrupted (`--fault
  corrupt-checksum-once`): the bot gets the `resync` event, never the bad
  message, and then a snapshot that verifies;
- the private feed's balances reach the bot;
- **krakenex** signing with a key brokerguard has used gets `EAPI:Invalid
  nonce` (its millisecond nonces are below brokerguard's microseconds), the
  reason the README tells operators to give the bot its own key.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

import krakenex

from harness import Checks, Child, binary, expect, main_guard, wait_until
from kraken_vs_sim import KEY, SECRET, Book, loads

TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    """`brokerguard sim kraken` on ports chosen beforehand."""

    def __init__(self, work: Path, tag: str, ws_port: int, rest_port: int, *extra: str) -> None:
        argv = [
            str(binary()), "sim", "kraken", "--port", str(ws_port), "--rest-port", str(rest_port),
            "--key", f"{KEY}:{SECRET}", "--data-every", "50ms", "--heartbeat-every", "300ms", *extra,
        ]
        self.child = Child(argv, stderr_path=work / f"sim-{tag}.stderr")
        line = self.child.wait_line(15, lambda l: l.startswith("kraken simulator listening: "))
        if line is None:
            self.child.stop()
            raise RuntimeError(f"`{' '.join(argv)}` never said it was listening: {self.child.stderr_text()!r}")
        self.rest = f"http://127.0.0.1:{rest_port}"

    def stop(self) -> None:
        self.child.stop()


class Bot:
    """A fan-out subscriber keeping every line as text, numbers as text."""

    def __init__(self, path: Path, feeds: list[str]) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connected = wait_until(TIMEOUT, lambda: self._try(path))
        expect(connected, f"the fan-out socket {path} never accepted")
        self.sock.settimeout(0.2)
        self.buf = b""
        self.lines: list[dict] = []
        self.sock.sendall((json.dumps({"subscribe": feeds}) + "\n").encode())
        expect(self.wait(lambda l: "subscribed" in l), "no answer to the subscribe request")

    def _try(self, path: Path) -> bool:
        try:
            self.sock.connect(str(path))
            return True
        except OSError:
            return False

    def pump(self) -> None:
        try:
            chunk = self.sock.recv(1 << 16)
        except TimeoutError:
            return
        self.buf += chunk
        while b"\n" in self.buf:
            raw, self.buf = self.buf.split(b"\n", 1)
            self.lines.append(loads(raw.decode()))

    def wait(self, pred, limit: float = TIMEOUT):
        end = time.monotonic() + limit
        seen = 0
        while time.monotonic() < end:
            for line in self.lines[seen:]:
                if pred(line):
                    return line
            seen = len(self.lines)
            self.pump()
        return None

    def close(self) -> None:
        self.sock.close()


def verify(lines: list[dict], feed: str) -> dict:
    """Rebuilds `feed`'s books in order; returns counts, raises on a mismatch."""
    books: dict[str, Book] = {}
    tally = {"snapshot": 0, "update": 0, "resync": 0, "snapshot_after_resync": 0}
    resynced: set[str] = set()
    for line in lines:
        if line.get("feed") != feed:
            continue
        if line.get("event") == "resync":
            expect(line.get("reason") == "checksum", f"resync {line}")
            books.pop(line["symbol"], None)
            resynced.add(line["symbol"])
            tally["resync"] += 1
            continue
        data = line.get("data")
        if not isinstance(data, dict) or data.get("channel") != "book":
            continue
        for entry in data["data"]:
            symbol = entry["symbol"]
            if data["type"] == "snapshot":
                books[symbol] = Book(10)
                if symbol in resynced:
                    resynced.discard(symbol)
                    tally["snapshot_after_resync"] += 1
            expect(symbol in books, f"an update of {symbol} reached the bot before its snapshot")
            books[symbol].apply(entry, data["type"] == "snapshot")
            expect(
                books[symbol].checksum() == int(entry["checksum"]),
                f"{feed} {data['type']} {symbol}: checksum {entry['checksum']}, ours {books[symbol].checksum()}",
            )
            tally[data["type"]] += 1
    return tally


def run() -> int:
    checks = Checks("kraken_agent")
    with tempfile.TemporaryDirectory(prefix="bg-interop-kagent-") as tmp:
        work = Path(tmp)
        ports = {name: (free_port(), free_port()) for name in ("good", "corrupt")}
        creds = work / "credentials.env"
        creds.write_text(f"KRAKEN_MASTER_API_KEY={KEY}\nKRAKEN_MASTER_API_SECRET={SECRET}\n")
        os.chmod(creds, 0o600)
        (gws, grest), (cws, crest) = ports["good"], ports["corrupt"]
        timing = 'connect_timeout = "1s"\nhandshake_timeout = "2s"\nbackoff = { initial = "100ms", max = "500ms" }\n'
        config = work / "brokerguard.toml"
        config.write_text(
            f'[agent]\nruntime_dir = "{work}/run"\nstate_dir = "{work}/state"\n'
            f'credential_files = ["{creds}"]\npreflight = "off"\n'
            f'\n[[feed]]\nname = "kbook"\nbroker = "kraken"\nurl = "ws://127.0.0.1:{gws}/v2"\n'
            f'channels = ["book"]\nsymbols = ["BTC/USD", "ETH/USD", "XRP/USD"]\ndepth = 10\n{timing}'
            f'\n[[feed]]\nname = "kfix"\nbroker = "kraken"\nurl = "ws://127.0.0.1:{cws}/v2"\n'
            f'channels = ["book"]\nsymbols = ["BTC/USD"]\n{timing}'
            f'\n[[feed]]\nname = "kexec"\nbroker = "kraken"\naccount = "master"\n'
            f'url = "ws://127.0.0.1:{gws}/auth/v2"\nrest_url = "http://127.0.0.1:{grest}"\n'
            f'channels = ["balances"]\n{timing}'
        )
        agent = Child([str(binary()), "run", "--config", str(config)], stderr_path=work / "agent.stderr")
        sims: list[Sim] = []
        bot = None
        try:
            # The bot is subscribed before Kraken comes up, so it sees every
            # book from its first snapshot.
            bot = Bot(work / "run" / "feeds.sock", ["kbook", "kfix", "kexec"])
            sims.append(Sim(work, "good", gws, grest))
            sims.append(Sim(work, "corrupt", cws, crest, "--fault", "corrupt-checksum-once"))

            def books_reach_the_bot_verified() -> None:
                expect(
                    bot.wait(lambda _: verify(bot.lines, "kbook")["update"] >= 100),
                    f"too few book updates: {verify(bot.lines, 'kbook')}",
                )
                tally = verify(bot.lines, "kbook")
                expect(tally["snapshot"] == 3 and tally["resync"] == 0, f"kbook {tally}")

            def a_corrupted_book_is_resynced_never_forwarded() -> None:
                expect(
                    bot.wait(lambda _: verify(bot.lines, "kfix")["update"] >= 20),
                    f"kfix never recovered: {verify(bot.lines, 'kfix')}",
                )
                tally = verify(bot.lines, "kfix")
                expect(tally["resync"] == 1 and tally["snapshot_after_resync"] == 1, f"kfix {tally}")
                expect(tally["snapshot"] == 1, f"the corrupted snapshot was forwarded: {tally}")

            def private_balances_reach_the_bot() -> None:
                line = bot.wait(lambda l: l.get("feed") == "kexec" and isinstance(l.get("data"), dict)
                                and l["data"].get("channel") == "balances")
                expect(line is not None, "no balances from the private feed")

            def krakenex_on_a_key_brokerguard_used_gets_invalid_nonce() -> None:
                k = krakenex.API(KEY, SECRET)
                k.uri = sims[0].rest
                r = k.query_private("Balance")
                expect(r.get("error") == ["EAPI:Invalid nonce"], f"krakenex with millisecond nonces got {r}")

            checks.run("every book the agent forwards verifies with zlib.crc32", books_reach_the_bot_verified)
            checks.run("a corrupted book message: resync event, not forwarded, fresh snapshot",
                       a_corrupted_book_is_resynced_never_forwarded)
            checks.run("the private feed's balances reach the bot", private_balances_reach_the_bot)
            checks.run("krakenex on a key brokerguard has used gets EAPI:Invalid nonce",
                       krakenex_on_a_key_brokerguard_used_gets_invalid_nonce)
        finally:
            if bot is not None:
                bot.close()
            code = agent.stop()
            for s in sims:
                s.stop()
            checks.run("the agent stops cleanly", lambda: expect(code == 0, f"exit {code}: {agent.stderr_text()[-2000:]}"))
    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
