#!/usr/bin/env python3
"""The agent's `/metrics` and its `[metrics] textfile` read by Prometheus'
own parser (`prometheus_client.parser`, the PyPI client library), not by
our tests' string matching:

- `brokerguard run` with the HTTP listener, one WebSocket feed live on a
  `brokerguard sim` (its token a canary) and one waiting for a credential
  that is not set;
- every expected family is there with its type, its samples carry the
  contract's labels (`feed`, `broker`, `state`, `credential`, `alert`),
  `brokerguard_feed_state` is one-hot per feed, counters end in `_total`;
- the same text is in the textfile, which the same parser accepts;
- the canary secret is nowhere in either.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

from harness import Checks, SimProcess, agent_section, expect, main_guard, start_agent, wait_until, workdir

os.environ["NO_PROXY"] = "127.0.0.1,localhost"

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

CANARY = "CanaryPromToken_5e8c1a4f0b"

# Family name (as the parser reports it: counters without `_total`) → type.
EXPECTED = {
    "brokerguard_build_info": "gauge",
    "brokerguard_ready": "gauge",
    "brokerguard_feed_up": "gauge",
    "brokerguard_feed_ready": "gauge",
    "brokerguard_feed_state": "gauge",
    "brokerguard_feed_messages": "counter",
    "brokerguard_feed_reconnects": "counter",
    "brokerguard_feed_restarts": "counter",
    "brokerguard_feed_last_message_age_seconds": "gauge",
    "brokerguard_feed_flapping": "gauge",
    "brokerguard_market_open": "gauge",
    "brokerguard_credential_present": "gauge",
    "brokerguard_credential_valid": "gauge",
    "brokerguard_fanout_subscribers": "gauge",
    "brokerguard_fanout_dropped": "counter",
    "brokerguard_fanout_refused": "counter",
    "brokerguard_alert_deliveries_failed": "counter",
    "brokerguard_alerts": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
    "process_open_fds": "gauge",
    "process_start_time_seconds": "gauge",
}
LABELS = {"feed", "broker", "state", "credential", "alert", "version"}


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def run() -> int:
    checks = Checks("metrics_vs_prometheus_client")
    with workdir("bg-prom-") as work:
        sim = SimProcess(
            ["--port", "0", "--token", CANARY, "--data-every", "100ms"],
            work / "sim.stderr",
            r"simulator listening on (ws://127\.0\.0\.1:\d+)",
        )
        creds = work / "credentials.env"
        creds.write_text(f"SIG_TOKEN={CANARY}\n")
        creds.chmod(0o600)
        prom = work / "bg.prom"
        feed = (
            '[[feed]]\nname = "{name}"\nbroker = "websocket"\nurl = "' + sim.match.group(1) + '"\n'
            "auth = '{{\"type\":\"auth\",\"token\":\"${{{var}}}\"}}'\nauth_ok = \"auth_ok\"\n"
            "subscribe = ['{{\"type\":\"subscribe\",\"channel\":\"signals\"}}']\n"
        )
        config = work / "brokerguard.toml"
        config.write_text(
            agent_section(work, creds)
            + '\n[http]\nlisten = "127.0.0.1:0"\n'
            + f'\n[metrics]\ntextfile = "{prom}"\n\n'
            + feed.format(name="signals", var="SIG_TOKEN")
            + feed.format(name="lacking", var="LACKING_TOKEN")
        )
        stderr = work / "agent.stderr"
        agent = start_agent(config, stderr)
        try:
            def address() -> str | None:
                m = re.search(r"http: listening on (http://127\.0\.0\.1:\d+)/", stderr.read_text(errors="replace") if stderr.exists() else "")
                return m.group(1) if m else None

            base = wait_until(15, address, poll_s=0.05)
            if base is None:
                checks.skip_rest(["families", "labels", "textfile", "no secret"], f"no listener: {stderr.read_text(errors='replace')}")
                return checks.finish()

            def live() -> str | None:
                code, _, text = fetch(base + "/metrics")
                return text if code == 200 and 'brokerguard_feed_up{feed="signals",broker="websocket"} 1' in text else None

            text = wait_until(15, live, poll_s=0.1) or fetch(base + "/metrics")[2]

            def check_families() -> None:
                code, ctype, _ = fetch(base + "/metrics")
                expect(code == 200, f"/metrics answered {code}")
                expect(ctype.startswith("text/plain; version=0.0.4"), f"Content-Type {ctype!r}")
                fams = families(text)
                for name, kind in EXPECTED.items():
                    expect(name in fams, f"family {name} missing; got {sorted(fams)}")
                    expect(fams[name].type == kind, f"{name} is {fams[name].type}, want {kind}")
                for fam in fams.values():
                    if fam.type == "counter":
                        expect(all(s.name.endswith("_total") for s in fam.samples if not s.name.endswith("_created")), f"{fam.name}: counter sample without _total")
                up = {s.labels["feed"]: s.value for s in fams["brokerguard_feed_up"].samples}
                expect(up == {"signals": 1.0, "lacking": 0.0}, f"feed_up {up}")
                present = {s.labels["credential"]: s.value for s in fams["brokerguard_credential_present"].samples}
                expect(present == {"SIG_TOKEN": 1.0, "LACKING_TOKEN": 0.0}, f"credential_present {present}")

            def check_labels() -> None:
                fams = families(text)
                for fam in fams.values():
                    for s in fam.samples:
                        extra = set(s.labels) - LABELS
                        expect(not extra, f"{s.name} has labels outside the contract: {extra}")
                states: dict[str, list[tuple[str, float]]] = {}
                for s in fams["brokerguard_feed_state"].samples:
                    states.setdefault(s.labels["feed"], []).append((s.labels["state"], s.value))
                for feed_name, values in states.items():
                    on = [st for st, v in values if v == 1.0]
                    expect(len(on) == 1, f"{feed_name}: feed_state must be one-hot, got {values}")
                    expect(len(values) >= 10, f"{feed_name}: one series per state, got {len(values)}")
                expect([st for st, v in states["lacking"] if v == 1.0] == ["waiting"], f"lacking: {states['lacking']}")
                alerts = {s.labels["alert"] for s in fams["brokerguard_alerts"].samples}
                expect({"feed_down", "credential_lost", "feed_flapping"} <= alerts, f"alerts {alerts}")

            def check_textfile() -> None:
                ok = wait_until(15, lambda: prom.exists() and "brokerguard_feed_up" in prom.read_text())
                expect(ok, f"{prom} never had the metrics")
                fams = families(prom.read_text())
                for name in EXPECTED:
                    expect(name in fams, f"textfile lacks {name}")
                expect(not any(p.name.startswith(".bg.prom") for p in work.iterdir()), "a temp file was left behind")

            def check_no_secret() -> None:
                for where, body in [("/metrics", text), ("textfile", prom.read_text() if prom.exists() else ""),
                                    ("/status", fetch(base + "/status")[2]), ("/", fetch(base + "/")[2])]:
                    expect(CANARY not in body, f"the canary secret is in {where}")

            checks.run("every expected family, with its type", check_families)
            checks.run("labels from the contract; feed_state one-hot", check_labels)
            checks.run("the textfile parses the same", check_textfile)
            checks.run("no secret in any of it", check_no_secret)
        finally:
            agent.stop()
            sim.stop()
    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
