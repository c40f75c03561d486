#!/usr/bin/env bash
# Every figure of the footprint-and-proof issue, side by side with the
# baselines, into bench/RESULTS.md: the static release binary
# (install.sh --build-only), the Python stack (bench/baseline.py in a venv
# with bench/requirements.txt, made here), websocat (cargo install, if the
# registry and the build work here), then the benches: footprint (10 feeds
# side by side, the scale line, idle, the lock race), fanout (throughput,
# latency at 10 k msg/s), recovery (agent and Python), and the fault soak.
# Everything is built before anything is measured, so no compile shares the
# machine with a measurement. Loopback only.
#
# Usage: bench/run.sh [--soak DURATION] [--out FILE]
#        (defaults: --soak 10m --out bench/RESULTS.md)
# Env:   PYTHON   the interpreter the venv is made from (default python3)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
soak=10m
out=bench/RESULTS.md
while (($#)); do
    case "$1" in
    --soak)
        soak=${2:?--soak needs a duration, e.g. 60s}
        shift 2
        ;;
    --out)
        out=${2:?--out needs a file}
        shift 2
        ;;
    -h | --help)
        sed -n '2,16p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *)
        echo "bench/run.sh: unknown option $1 (--help lists them)" >&2
        exit 64
        ;;
    esac
done

results=$(mktemp -d /tmp/brokerguard-bench.XXXXXX)
trap 'rm -rf -- "$results"' EXIT
export BROKERGUARD_RESULTS_DIR=$results
export CARGO_TERM_COLOR=never
log() { printf '\n==== %s ====\n' "$*"; }
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

log "static release binary (install.sh --build-only)"
static=$(./install.sh --build-only | tail -n 1)
export BROKERGUARD_STATIC_BIN=$static
static_size=$(stat -c %s "$static")

log "Python baseline venv (target/bench-venv)"
venv=$repo/target/bench-venv
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! cmp -s bench/requirements.txt "$venv/.requirements.installed"; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
    cp bench/requirements.txt "$venv/.requirements.installed"
fi
export BROKERGUARD_BASELINE_PYTHON=$venv/bin/python
python_version=$("$venv/bin/python" -c 'import sys, websockets; print(f"Python {sys.version.split()[0]}, websockets {websockets.__version__}")')

log "websocat (cargo install websocat --locked)"
tools=$repo/target/bench-tools
websocat_note=""
if [[ ! -x "$tools/bin/websocat" ]]; then
    if ! cargo install websocat --locked --root "$tools" >"$results/websocat-install.log" 2>&1; then
        websocat_note="cargo install websocat failed here: $(grep -m1 -E '^error' "$results/websocat-install.log" || tail -n 1 "$results/websocat-install.log")"
        echo "$websocat_note"
    fi
fi
if [[ -x "$tools/bin/websocat" ]]; then
    export BROKERGUARD_WEBSOCAT=$tools/bin/websocat
    websocat_note="$("$tools/bin/websocat" --version), installed with cargo install websocat --locked"
else
    export BROKERGUARD_WEBSOCAT_NOTE=$websocat_note
fi

# Each broker's and each operator path's own bench prints its figures; their
# summary lines go into RESULTS.md as printed (per-run detail lines dropped).
brokers=(nonce kite_decode alpaca_decode ibkr_recovery stop rotation)
log "build the benches"
cargo bench --locked --no-run --bench footprint --bench fanout --bench recovery --bench soak \
    "${brokers[@]/#/--bench=}"

log "footprint"
cargo bench --locked --bench footprint
log "fanout"
cargo bench --locked --bench fanout
log "recovery"
cargo bench --locked --bench recovery
log "soak ($soak)"
soak_rc=0
cargo bench --locked --bench soak -- --duration "$soak" || soak_rc=$?
for bench in "${brokers[@]}"; do
    log "$bench"
    cargo bench --locked --bench "$bench" 2>"$results/$bench.err" | tee "$results/$bench.out"
done

finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "# brokerguard: footprint and proof"
    echo
    echo "Written by \`bench/run.sh --soak $soak\` from $started to $finished (UTC),"
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench Cargo.toml install.sh 2>/dev/null || echo ' with local changes')."
    echo
    echo "- Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -m | awk '/^Mem:/ {printf "%.1f GiB", $2 / 1024}') memory, Linux $(uname -r); load average $load_start at the start, $load_end at the end (the machine is shared: CPU figures are on-CPU time per thread, not wall time)."
    echo "- Toolchain: $(rustc --version), $(cargo --version)."
    echo "- brokerguard: the static release binary from \`install.sh --build-only\` ($static_size bytes; glibc static PIE, OpenSSL vendored), and the bench build (\`cargo bench\`, system OpenSSL, dynamic)."
    echo "- Baselines: $python_version (bench/baseline.py); ${websocat_note:-websocat not run}."
    echo "- Every figure is median / worst over the runs stated; ratios are brokerguard's median over the baseline's."
    echo
    echo "## Targets"
    echo
    echo "| target | brokerguard | baseline | ratio | verdict |"
    echo "| --- | --- | --- | --- | --- |"
    for part in footprint fanout recovery soak; do
        [[ -f "$results/$part.targets" ]] && cat "$results/$part.targets"
    done
    echo
    echo "## Figures"
    echo
    for part in footprint fanout recovery soak; do
        if [[ -f "$results/$part.md" ]]; then
            cat "$results/$part.md"
        else
            echo "($part: no figures; see the run's output)"
            echo
        fi
    done
    echo "## Each broker's and each operator path's own benches"
    echo
    echo "Printed by the bench named (per-run lines left out); the Kraken nonce store, the Kite decoder, IBKR's recovery from a mute TWS, stop and token rotation."
    echo
    for bench in "${brokers[@]}"; do
        echo "### \`cargo bench --bench $bench\`"
        echo
        echo '```'
        grep -Ev '^ +([0-9]+ processes )?run +[0-9]|^ +rotation +auth_ms|^[0-9]+ live feeds:$|^ *[0-9]+ +[0-9.]+ +[0-9.]+ *$|^$' "$results/$bench.out" || true
        echo '```'
        echo
    done
    if [[ -f bench/NOTES.md ]]; then
        cat bench/NOTES.md
    fi
} >"$out"
echo
echo "wrote $out"
exit "$soak_rc"
