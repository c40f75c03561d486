#!/usr/bin/env bash
# The operator page in headless Chromium (Debian's `chromium`) against a
# running agent with simulated feeds, read through the rows' data-feed and
# data-state attributes after the page's own script ran (--dump-dom):
#
#   signals  a WebSocket feed live on `brokerguard sim`          → live
#   lacking  a WebSocket feed whose credential is not set        → waiting
#   stocks   NYSE closed (holidays around today), nothing listens → ready (market closed)
#   kmain    a Kite feed on `brokerguard sim kite`, no token yet  → waiting
#
# then the morning login: the page's "Log in with Kite" link names the
# account, the browser comes back to /kite/callback with a request token
# the simulator issued (as Kite's redirect would), the outcome page says it
# worked, and the page shows kmain live on the new token. No secret (the
# api_secret, the request token, the access token) is on any page.
#
# Usage: tests/http/page.sh [--screenshot FILE]
# Env:   BROKERGUARD_BIN (default: target/debug/brokerguard, built if needed)
#        CHROMIUM        (default: chromium)
# Prints one line per check and `N passed, N failed` last; exit 0 when all pass.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
screenshot=""
while (($#)); do
    case "$1" in
    --screenshot)
        screenshot=${2:?--screenshot needs a file}
        shift 2
        ;;
    *)
        echo "tests/http/page.sh: unknown option $1" >&2
        exit 64
        ;;
    esac
done
chromium=${CHROMIUM:-chromium}
command -v "$chromium" >/dev/null || {
    echo "tests/http/page.sh: $chromium not found (apt-get install -y chromium)" >&2
    exit 69
}
if [[ -z "${BROKERGUARD_BIN:-}" ]]; then
    (cd "$repo" && cargo build --quiet --bin brokerguard)
    BROKERGUARD_BIN="$repo/target/debug/brokerguard"
fi
bin=$BROKERGUARD_BIN

work=$(mktemp -d /tmp/bg-page.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf -- "$work"
}
trap cleanup EXIT

passed=0
failed=0
check() { # check NAME CONDITION-COMMAND...
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok   page: $name"
    else
        failed=$((failed + 1))
        echo "FAIL page: $name"
    fi
}

# Waits up to $1 seconds for a line matching $3 in file $2; prints the match.
wait_line() {
    local deadline=$((SECONDS + $1)) line
    while ((SECONDS < deadline)); do
        if line=$(grep -m1 -oE "$3" "$2" 2>/dev/null); then
            printf '%s\n' "$line"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

api_key=pagekey00000000a
api_secret=CanaryPageSecret0000000000000001
request=CanaryPageRequest000000000000001
sig_token=CanaryPageSigToken0000000001

"$bin" sim --port 0 --token "$sig_token" --data-every 200ms >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
"$bin" sim kite --ticker-port 0 --rest-port 0 --api-key "$api_key" --api-secret "$api_secret" \
    --request-token "$request" --data-every 200ms --heartbeat-every 500ms >"$work/kite.out" 2>"$work/kite.err" &
pids+=($!)
ws=$(wait_line 15 "$work/sim.out" 'ws://127\.0\.0\.1:[0-9]+') || {
    echo "the simulator never listened: $(cat "$work/sim.err")"
    exit 1
}
kite=$(wait_line 15 "$work/kite.out" 'ticker ws://127\.0\.0\.1:[0-9]+/ rest http://127\.0\.0\.1:[0-9]+') || {
    echo "the Kite simulator never listened: $(cat "$work/kite.err")"
    exit 1
}
ticker=$(awk '{print $2}' <<<"$kite")
rest=$(awk '{print $4}' <<<"$kite")

today=$(date -u +%F)
holidays="\"$(date -u -d "$today -1 day" +%F)\", \"$today\", \"$(date -u -d "$today +1 day" +%F)\""
printf 'SIG_TOKEN=%s\nKITE_MAIN_API_KEY=%s\nKITE_MAIN_API_SECRET=%s\n' "$sig_token" "$api_key" "$api_secret" >"$work/credentials.env"
chmod 600 "$work/credentials.env"
ws_feed() { # name url token-variable [extra]
    cat <<EOF
[[feed]]
name = "$1"
broker = "websocket"
url = "$2"
auth = '{"type":"auth","token":"\${$3}"}'
auth_ok = "auth_ok"
subscribe = ['{"type":"subscribe","channel":"signals"}']
connect_timeout = "1s"
backoff = { initial = "200ms", max = "2s" }
${4:-}
EOF
}
{
    printf '[agent]\nruntime_dir = "%s/run"\nstate_dir = "%s/state"\ncredential_files = ["%s/credentials.env"]\n' "$work" "$work" "$work"
    printf '\n[http]\nlisten = "127.0.0.1:0"\n\n[calendar.nyse]\nholidays = [%s]\n\n' "$holidays"
    ws_feed signals "$ws" SIG_TOKEN
    ws_feed lacking "$ws" LACKING_TOKEN
    ws_feed stocks "ws://127.0.0.1:9/" SIG_TOKEN 'calendar = "nyse"'
    cat <<EOF
[[feed]]
name = "kmain"
broker = "kite"
account = "main"
instruments = [408065]
url = "$ticker"
rest_url = "$rest"
calendar = "always"
connect_timeout = "1s"
handshake_timeout = "2s"
EOF
} >"$work/brokerguard.toml"
mkdir -p "$work/state"

"$bin" run --config "$work/brokerguard.toml" </dev/null >/dev/null 2>"$work/agent.err" &
pids+=($!)
addr=$(wait_line 15 "$work/agent.err" 'http: listening on http://127\.0\.0\.1:[0-9]+' | sed 's/.*http:\/\///') || {
    echo "the agent never listened: $(cat "$work/agent.err")"
    exit 1
}
base="http://$addr"

# The state of feed $1 in /status, read with Python (no curl needed).
state_of() {
    python3 - "$base" "$1" <<'EOF'
import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1] + "/status", timeout=5))
print(next((f["state"] for f in doc["feeds"] if f["name"] == sys.argv[2]), ""))
EOF
}
wait_state() { # feed state seconds
    local deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        [[ "$(state_of "$1")" == "$2" ]] && return 0
        sleep 0.2
    done
    return 1
}

browse() { # url → the DOM after the page's script ran
    "$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --user-data-dir="$work/chromium-$RANDOM" \
        --virtual-time-budget=4000 --dump-dom "$1" 2>>"$work/chromium.err"
}
row() { # dom feed state
    grep -qE "<tr data-feed=\"$2\" data-state=\"$3\"" <<<"$1"
}

check "signals goes live (status)" wait_state signals live 20
check "kmain waits for its token (status)" wait_state kmain waiting 20
dom=$(browse "$base/")
check "the table shows signals live" row "$dom" signals live
check "the table shows lacking waiting" row "$dom" lacking waiting
check "the table shows kmain waiting" row "$dom" kmain waiting
check "stocks (market closed) counts as ready" grep -qE '<tr data-feed="stocks" data-state="[a-z]+" data-flapping="false" data-ready="true"' <<<"$dom"
timelines() { [[ $(grep -o 'data-timeline=' <<<"$1" | wc -l) -eq 4 ]]; }
check "a timeline per feed is drawn" timelines "$dom"
check "a single agent shows no failover line" grep -qE '<p id="ha"[^>]*hidden' <<<"$dom"
check "a Log in with Kite button names the account" grep -qE 'data-login="kite" data-account="main"' <<<"$dom"
link=$(grep -oE 'href="https://kite\.zerodha\.com/connect/login[^"]*"' <<<"$dom" | head -1)
check "its link carries the api_key and the account back" grep -q "api_key=$api_key&amp;redirect_params=account%3Dmain" <<<"$link"

if [[ -n "$screenshot" ]]; then
    "$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --user-data-dir="$work/chromium-shot" \
        --virtual-time-budget=4000 --window-size=1200,1100 --screenshot="$screenshot" "$base/" 2>>"$work/chromium.err" >/dev/null
    echo "page: screenshot in $screenshot"
fi

# Kite's redirect back after the login, as the browser would follow it.
outcome=$(browse "$base/kite/callback?action=login&type=login&status=success&request_token=$request&account=main")
check "the callback says the login worked" grep -q 'data-outcome="ok"' <<<"$outcome"
check "the callback names the token by fingerprint" grep -qE 'KITE_MAIN_ACCESS_TOKEN written to .* \(fingerprint hmac:[0-9a-f]{8}' <<<"$outcome"
check "kmain goes live on the new token (status)" wait_state kmain live 20
dom2=$(browse "$base/")
check "the table then shows kmain live" row "$dom2" kmain live
token=$(sed -n 's/^KITE_MAIN_ACCESS_TOKEN=//p' "$work/credentials.env")
check "the access token was written" test -n "$token"
no_secret() {
    local text
    for text in "$dom" "$outcome" "$dom2"; do
        if grep -qF -e "$api_secret" -e "$sig_token" <<<"$text"; then return 1; fi
        if [[ -n "$token" ]] && grep -qF "$token" <<<"$text"; then return 1; fi
    done
    ! grep -qF "$request" <<<"$dom2$outcome"
}
check "no secret on any page" no_secret

echo "$passed passed, $failed failed"
((failed == 0))
