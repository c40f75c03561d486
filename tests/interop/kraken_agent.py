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

import os
import socket
from pathlib import Path

import krakenex

from harness import Checks, Fanout, SimProcess, agent_section, expect, main_guard, start_agent, workdir
from kraken_vs_sim import KEY, SECRET, Book, loads, sim_args

TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim(SimProcess):
    """`brokerguard sim kraken` on ports chosen beforehand."""

    def __init__(self, work: Path, tag: str, ws_port: int, rest_port: int, *extra: str) -> None:
        super().__init__(sim_args(str(ws_port), str(rest_port), *extra), work / f"sim-{tag}.stderr",
                         "kraken simulator listening: ")
        self.rest = f"http://127.0.0.1:{rest_port}"


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
    with workdir("bg-interop-kagent-") as work:
        ports = {name: (free_port(), free_port()) for name in ("good", "corrupt")}
        creds = work / "credentials.env"
        creds.write_text(f"KRAKEN_MASTER_API_KEY={KEY}\nKRAKEN_MASTER_API_SECRET={SECRET}\n")
        os.chmod(creds, 0o600)
        (gws, grest), (cws, crest) = ports["good"], ports["corrupt"]
        timing = 'connect_timeout = "1s"\nhandshake_timeout = "2s"\nbackoff = { initial = "100ms", max = "500ms" }\n'
        config = work / "brokerguard.toml"
        config.write_text(
            agent_section(work, creds, 'preflight = "off"\n')
            + f'\n[[feed]]\nname = "kbook"\nbroker = "kraken"\nurl = "ws://127.0.0.1:{gws}/v2"\n'
            f'channels = ["book"]\nsymbols = ["BTC/USD", "ETH/USD", "XRP/USD"]\ndepth = 10\n{timing}'
            f'\n[[feed]]\nname = "kfix"\nbroker = "kraken"\nurl = "ws://127.0.0.1:{cws}/v2"\n'
            f'channels = ["book"]\nsymbols = ["BTC/USD"]\n{timing}'
            f'\n[[feed]]\nname = "kexec"\nbroker = "kraken"\naccount = "master"\n'
            f'url = "ws://127.0.0.1:{gws}/auth/v2"\nrest_url = "http://127.0.0.1:{grest}"\n'
            f'channels = ["balances"]\n{timing}'
        )
        agent = start_agent(config, work / "agent.stderr")
        sims: list[Sim] = []
        bot: Fanout | None = None
        try:
            # The bot is subscribed before Kraken comes up, so it sees every
            # book from its first snapshot.
            bot = Fanout(work / "run" / "feeds.sock", TIMEOUT, ["kbook", "kfix", "kexec"], loads=loads)
            sims.append(Sim(work, "good", gws, grest))
            sims.append(Sim(work, "corrupt", cws, crest, "--fault", "corrupt-checksum-once"))

            def tally_once(feed: str, updates: int) -> dict:
                """`feed`'s tally once `updates` book updates reached the bot, all verified."""
                expect(
                    bot.wait(lambda _: verify(bot.snapshot(), feed)["update"] >= updates, TIMEOUT),
                    f"{feed}: fewer than {updates} book updates: {verify(bot.snapshot(), feed)}",
                )
                return verify(bot.snapshot(), feed)

            def books_reach_the_bot_verified() -> None:
                tally = tally_once("kbook", 100)
                expect(tally["snapshot"] == 3 and tally["resync"] == 0, f"kbook {tally}")

            def a_corrupted_book_is_resynced_never_forwarded() -> None:
                tally = tally_once("kfix", 20)
                expect(tally["resync"] == 1 and tally["snapshot_after_resync"] == 1, f"kfix {tally}")
                expect(tally["snapshot"] == 1, f"the corrupted snapshot was forwarded: {tally}")

            def private_balances_reach_the_bot() -> None:
                line = bot.wait(lambda l: l.get("feed") == "kexec" and isinstance(l.get("data"), dict)
                                and l["data"].get("channel") == "balances", TIMEOUT)
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
