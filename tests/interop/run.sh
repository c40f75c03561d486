#!/usr/bin/env bash
# Interop checks: brokerguard's simulators and agent against independent
# implementations from PyPI: the `websockets` library (the generic JSON
# WebSocket protocol, Kraken's WebSocket v2 books, and a Python bot that
# verifies the books the agent's Kraken feeds forward), `krakenex` (Kraken's
# REST signing), `ib_async` (the TWS API socket protocol: its client
# against the TWS simulator, its encoder against the agent's bytes) and
# `kiteconnect` (Kite's binary ticker parser and login REST client, and the
# agent's decoded ticks against that parser on the same frames), PyJWT and
# coinbase-advanced-py (the agent's Coinbase JWTs verified by PyJWT, the
# SDK's JWTs accepted by the Coinbase simulator) and alpaca-py (its
# StockDataStream and TradingStream against the Alpaca simulator, and a bot
# on the agent's fan-out seeing the trades alpaca-py saw) and
# `prometheus_client` (its text-format parser reads the agent's /metrics and
# metrics textfile). Creates (or
# reuses) a venv under target/interop-venv, installs
# tests/interop/requirements.txt, builds the binary if needed, runs each
# suite, and prints `N passed, N failed` as its last line.
# Exit 0 only when every check passed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/target/interop-venv"
python="${PYTHON:-python3}"
suites=(ws_client_vs_sim.py agent_vs_ws_server.py kraken_vs_sim.py kraken_agent.py ib_async_vs_sim.py agent_vs_tws_stub.py kite_vs_sim.py kite_agent_vs_kiteconnect.py coinbase_jwt.py alpaca_vs_sim.py metrics_vs_prometheus_client.py)
# A suite that hangs is killed after this many seconds and counted as failed.
suite_timeout=180

cd "$repo"
# Keep the source tree free of __pycache__.
export PYTHONDONTWRITEBYTECODE=1

if [[ ! -x "$venv/bin/python" ]]; then
    echo "interop: creating $venv"
    "$python" -m venv "$venv"
fi
# Reinstall only when the pinned requirements changed since the last install.
# requirements-nodeps.txt holds packages installed without their declared
# dependencies: coinbase-advanced-py pins websockets<14, which the other
# suites' websockets cannot meet; its JWT builder, all we use, needs only
# PyJWT and cryptography (pinned in requirements.txt).
stamp="$venv/.requirements.installed"
if ! cat "$here/requirements.txt" "$here/requirements-nodeps.txt" | cmp -s - "$stamp"; then
    echo "interop: installing $(cat "$here/requirements.txt" "$here/requirements-nodeps.txt" | tr '\n' ' ')"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$here/requirements-nodeps.txt"
    cat "$here/requirements.txt" "$here/requirements-nodeps.txt" >"$stamp"
fi
echo "interop: websockets $("$venv/bin/python" -c 'import websockets; print(websockets.__version__)'), krakenex $("$venv/bin/python" -c 'import krakenex.version; print(krakenex.version.__version__)')"
echo "interop: prometheus_client $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("prometheus_client"))')"
echo "interop: ib_async $("$venv/bin/python" -c 'import ib_async; print(ib_async.__version__)'), kiteconnect $("$venv/bin/python" -c 'from kiteconnect.__version__ import __version__; print(__version__)')"
echo "interop: coinbase-advanced-py $("$venv/bin/python" -c 'from coinbase.__version__ import __version__; print(__version__)'), PyJWT $("$venv/bin/python" -c 'import jwt; print(jwt.__version__)')"
echo "interop: alpaca-py $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("alpaca-py"))')"

if [[ -z "${BROKERGUARD_BIN:-}" ]]; then
    # cargo does nothing when the binary is up to date.
    cargo build --quiet --bin brokerguard
    export BROKERGUARD_BIN="$repo/target/debug/brokerguard"
fi

passed=0
failed=0
for suite in "${suites[@]}"; do
    echo "interop: running $suite"
    log="$(mktemp)"
    status=0
    timeout --kill-after=10 "$suite_timeout" "$venv/bin/python" "$here/$suite" | tee "$log" || status=$?
    tally="$(tail -n 1 "$log")"
    rm -f "$log"
    if [[ "$tally" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
        if [[ "$status" -ne 0 && "${BASH_REMATCH[2]}" -eq 0 ]]; then
            echo "interop: $suite exited $status with no failed check"
            failed=$((failed + 1))
        fi
    else
        echo "interop: $suite ended without a tally (exit $status)"
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
