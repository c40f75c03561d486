#!/usr/bin/env python3
"""The PyPI `ib_async` client (an independent implementation of the TWS API
socket protocol) against `brokerguard sim tws`: the handshake and managed
accounts, reqCurrentTime, contract details, streaming and snapshot market
data, a client id already in use refused the way TWS refuses it, an
unknown contract answered with error 200, IB connectivity codes, and a mute
TWS. So the simulator's bytes are those a real client library accepts.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path

from ib_async import IB, Contract, Stock

from harness import Checks, SimProcess, expect, main_guard, workdir

TIMEOUT = 4.0  # ib_async's connect and request timeouts here

# ib_async's own log lines (its errors and warnings) help read a failure.
logging.basicConfig(level=logging.WARNING, format="  ib_async: %(message)s")


class TwsSim(SimProcess):
    """`brokerguard sim tws --port 0 ...` in a child process; knows its port."""

    def __init__(self, workdir: Path, tag: str, *extra: str) -> None:
        super().__init__(
            ["tws", "--port", "0", "--tick-every", "100ms", *extra],
            workdir / f"tws-{tag}.stderr",
            r"tws simulator listening on 127\.0\.0\.1:(\d+)",
        )
        self.port = int(self.match.group(1))


def connect(port: int, client_id: int, errors: list | None = None) -> IB:
    ib = IB()
    if errors is not None:
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code, msg))
    ib.connect("127.0.0.1", port, clientId=client_id, timeout=TIMEOUT)
    return ib


def refused(ib: IB, port: int, client_id: int, timeout_s: float) -> bool:
    """Whether `ib` fails to get an API session (it is disconnected either way)."""
    try:
        ib.connect("127.0.0.1", port, clientId=client_id, timeout=timeout_s)
    except (TimeoutError, ConnectionError):
        return True
    finally:
        ib.disconnect()
    return False


def wait_ticker(ib: IB, cond, deadline_s: float = 5.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if cond():
            return True
        ib.sleep(0.05)
    return cond()


def run() -> int:
    checks = Checks("ib_async_vs_sim")
    with workdir("bg-ibasync-") as work:
        sim = TwsSim(work, "main")
        try:
            ib = IB()

            def handshake() -> None:
                nonlocal ib
                errors: list = []
                start = time.monotonic()
                ib = connect(sim.port, 11, errors)
                took = time.monotonic() - start
                expect(ib.isConnected(), "ib_async must consider the API session ready")
                expect(took < 2.0, f"connect (with ib_async's start-up requests) took {took:.2f}s")
                expect(ib.client.serverVersion() == 176, f"server version {ib.client.serverVersion()}")
                expect(ib.managedAccounts() == ["DU1234567"], f"managed accounts {ib.managedAccounts()!r}")
                codes = sorted(code for _, code, _ in errors)
                expect(codes == [2104, 2106, 2158], f"the usual farm notices, got {errors!r}")

            def current_time() -> None:
                t = ib.reqCurrentTime()
                now = datetime.datetime.now(datetime.timezone.utc)
                expect(abs((now - t).total_seconds()) < 5, f"currentTime {t} vs now {now}")

            def market_data() -> None:
                aapl = Stock("AAPL", "SMART", "USD")
                q = ib.qualifyContracts(aapl)
                expect(q and q[0] is not None and aapl.conId == 265598, f"qualified {q!r}")
                expect(aapl.primaryExchange == "NASDAQ", f"primary exchange {aapl.primaryExchange!r}")
                ticker = ib.reqMktData(aapl)
                ok = wait_ticker(ib, lambda: ticker.bid > 0 and ticker.ask > 0 and ticker.last > 0 and ticker.volume > 0)
                expect(ok, f"no bid/ask/last/volume from the stream: {ticker!r}")
                expect(ticker.ask > ticker.bid, f"ask {ticker.ask} must be above bid {ticker.bid}")
                expect(ticker.bidSize == 300 and ticker.askSize == 200, f"sizes {ticker.bidSize} {ticker.askSize}")
                expect(ticker.minTick == 0.01, f"tickReqParams min tick {ticker.minTick}")
                expect(ticker.marketDataType == 1, f"market data type {ticker.marketDataType}")
                volume = ticker.volume
                later = wait_ticker(ib, lambda: ticker.volume > volume, 2.0)
                expect(later, f"the stream must keep ticking (volume stayed {volume})")
                expect(ib.cancelMktData(aapl), "cancelMktData must find the ticker")
                expect(sim.saw(r"cancelMktData \d+"), "the simulator must see the cancel")

            def snapshot() -> None:
                msft = Stock("MSFT", "SMART", "USD")
                ib.qualifyContracts(msft)
                [t] = ib.reqTickers(msft)
                expect(t.last > 0 and t.bid > 0, f"snapshot ticker {t!r}")

            def unknown_contract() -> None:
                errors: list = []
                ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code, msg))
                bad = Stock("ZZZZNOTREAL", "SMART", "USD")
                expect(ib.qualifyContracts(bad) == [None], "an unknown contract must not qualify")
                by_id = Contract(conId=12345, symbol="ZZZZNOTREAL", secType="STK", exchange="SMART", currency="USD")
                ib.reqMktData(by_id)
                got = wait_ticker(ib, lambda: sum(1 for e in errors if e[1] == 200) >= 2)
                expect(got, f"two errors 200 (contract details, market data), got {errors!r}")
                expect(all(e[0] >= 0 for e in errors if e[1] == 200), f"200 must name the request id: {errors!r}")

            def client_id_in_use() -> None:
                errors: list = []
                api_errors: list = []
                second = IB()
                second.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code, msg, time.monotonic()))
                second.client.apiError += lambda msg: api_errors.append((msg, time.monotonic()))
                expect(refused(second, sim.port, 11, 2), "a second connection with client id 11 must not get an API session")
                in_use = [e for e in errors if e[1] == 326]
                expect(in_use and in_use[0][0] == -1, f"error 326 with reqId -1, got {errors!r}")
                closed = [m for m in api_errors if "already in use" in m[0]]
                expect(closed, f"ib_async must see the peer close ('clientId 11 already in use?'), got {api_errors!r}")
                gap = closed[0][1] - in_use[0][3]
                expect(0.4 <= gap <= 1.5, f"TWS closes about 0.7 s after 326; the simulator took {gap:.2f}s")
                expect(ib.isConnected(), "the first session must be unaffected")

            def connectivity_codes() -> None:
                csim = TwsSim(
                    work, "codes",
                    "--script", "500ms=notify:1100,300ms=notify:1102,300ms=notify:2103,300ms=notify:2104",
                )
                try:
                    cerr: list = []
                    cib = connect(csim.port, 3, cerr)
                    try:
                        want = [2104, 2106, 2158, 1100, 1102, 2103, 2104]
                        ok = wait_ticker(cib, lambda: [c for _, c, _ in cerr] == want, 5.0)
                        expect(ok, f"ib_async must receive {want} in order, got {cerr!r}")
                        expect(cib.isConnected(), "the session survives the codes")
                    finally:
                        cib.disconnect()
                finally:
                    csim.stop()

            checks.run("connect: server version, managed accounts, farm notices", handshake)
            if not ib.isConnected():
                checks.skip_rest(
                    ["reqCurrentTime", "market data stream", "snapshot", "unknown contract", "client id in use", "codes"],
                    "ib_async could not connect",
                )
            else:
                checks.run("reqCurrentTime answers with the server's clock", current_time)
                checks.run("qualifyContracts and reqMktData stream bid/ask/last/volume", market_data)
                checks.run("reqTickers snapshot ends with tickSnapshotEnd", snapshot)
                checks.run("an unknown contract gets error 200", unknown_contract)
                checks.run("a client id already in use gets 326 and a close ~0.7 s later", client_id_in_use)
                checks.run("1100/1102/2103/2104 reach ib_async as errors, session kept", connectivity_codes)
            ib.disconnect()
        finally:
            sim.stop()

        def mute() -> None:
            msim = TwsSim(work, "mute", "--fault", "mute")
            try:
                start = time.monotonic()
                expect(refused(IB(), msim.port, 1, 1.5), "a mute TWS must not give an API session")
                expect(time.monotonic() - start >= 1.4, "ib_async waits for its timeout on a mute TWS")
                expect(msim.saw(r"greeting v157\.\.178 left unanswered"), "the simulator must read the greeting and not answer")
            finally:
                msim.stop()

        checks.run("mute: the greeting is read and never answered", mute)
    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
