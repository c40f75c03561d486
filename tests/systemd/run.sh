#!/usr/bin/env bash
# Runs the installed, hardened unit under a real systemd: boots a Debian
# bookworm tree (cached by rootfs.sh) with systemd-nspawn, installs the
# static binary there with install.sh, and checks start, STATUS=, the
# sandbox, what the bot's group may and may not read (as a real second
# user), reload (and a rejected one failing "systemctl reload"), the
# watchdog, journal priorities, TLS against the system CA store, a failed
# start naming the file under "journalctl -p err", stop, reinstall and
# uninstall. One PASS/FAIL/SKIP line per check;
# exits 1 if any check failed. Needs root, systemd-nspawn, nsenter,
# dbus-daemon, debootstrap (first run), openssl.
#
# Usage: tests/systemd/run.sh --binary PATH [--keep]
#   --binary PATH  the static brokerguard binary to install (required)
#   --keep         leave the container running and its tree in place (debugging)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly here
started=$SECONDS

binary=""
keep=false
while (($#)); do
    case "$1" in
    --binary)
        binary=${2:?--binary needs a path}
        shift 2
        ;;
    --binary=*)
        binary=${1#*=}
        shift
        ;;
    --keep)
        keep=true
        shift
        ;;
    *)
        echo "usage: $0 --binary PATH [--keep]" >&2
        exit 64
        ;;
    esac
done
[[ -x "$binary" ]] || {
    echo "systemd: --binary PATH (an executable static brokerguard) is required" >&2
    exit 64
}
binary=$(readlink -f "$binary")
((EUID == 0)) || {
    echo "systemd: must run as root (systemd-nspawn)" >&2
    exit 1
}
for tool in systemd-nspawn nsenter dbus-daemon openssl; do
    command -v "$tool" >/dev/null || {
        echo "systemd: $tool not found (apt-get install systemd-container util-linux dbus openssl)" >&2
        exit 1
    }
done

# ---------------------------------------------------------------- results

passed=0 failed=0 skipped=0
pass() {
    printf 'PASS %s\n' "$*"
    passed=$((passed + 1))
}
fail() {
    printf 'FAIL %s\n' "$*"
    failed=$((failed + 1))
}
skip() {
    printf 'SKIP %s\n' "$*"
    skipped=$((skipped + 1))
}
info() { printf 'INFO %s\n' "$*"; }

# ---------------------------------------------------------------- container

work=$(mktemp -d /var/tmp/brokerguard-systemd.XXXXXX)
root="$work/root"
nspawn_pid=""
cpid=""
sim_pid=""

# running PID: alive and not a zombie (an exited child stays a zombie until
# we wait for it, and kill -0 still succeeds on it).
running() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n "$state" && "$state" != Z ]]
}

teardown() {
    local rc=$?
    if [[ -n "$sim_pid" ]] && kill -0 "$sim_pid" 2>/dev/null; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    if $keep; then
        info "kept: container PID 1 is $cpid (nsenter -t $cpid -m -u -i -n -p -- bash), tree $root"
        exit "$rc"
    fi
    local down=$SECONDS
    if [[ -n "$nspawn_pid" ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # SIGRTMIN+4 asks the container's systemd to power off cleanly.
        [[ -z "$cpid" ]] || kill -s RTMIN+4 "$cpid" 2>/dev/null || true
        local deadline=$((SECONDS + 20))
        while running "$nspawn_pid" && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if running "$nspawn_pid"; then
            info "container did not power off within 20 s: killing systemd-nspawn $nspawn_pid"
            kill -KILL "$nspawn_pid" 2>/dev/null || true
        fi
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
    info "container powered off and removed in $((SECONDS - down)) s"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# Runs a command inside the container, with the container's environment
# rather than this shell's.
cin() {
    nsenter -t "$cpid" -m -u -i -n -p -- /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

show() { cin systemctl show -p "$1" --value brokerguard; }
# Every manual (re)start counts against the unit's StartLimitBurst; the
# checks restart often, so each starts from a clean slate.
restart_agent() {
    cin systemctl reset-failed brokerguard 2>/dev/null || true
    cin timeout 100 systemctl restart brokerguard 2>&1 || true
}

tree=$("$here/tests/systemd/rootfs.sh")
if [[ ! -S /run/dbus/system_bus_socket ]]; then
    mkdir -p /run/dbus
    dbus-daemon --system --fork
    info "started a system bus on the host (dbus-daemon --system --fork)"
fi

t0=$SECONDS
cp -a --reflink=auto "$tree" "$root"
info "copied $tree to $root in $((SECONDS - t0)) s"

systemd-nspawn -D "$root" --boot --register=no --keep-unit -M "bgci$$" \
    </dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!

container_pid1() {
    local child
    for child in $(pgrep -P "$nspawn_pid" || true); do
        if [[ "$(cat "/proc/$child/comm" 2>/dev/null)" == systemd ]]; then
            cpid=$child
            return 0
        fi
    done
    return 1
}
if ! wait_for 20 container_pid1; then
    fail "boot: no systemd process under systemd-nspawn ($nspawn_pid) within 20 s"
    cat "$work/console.log"
    exit 1
fi
booted() {
    local state
    state=$(cin systemctl is-system-running 2>/dev/null || true)
    [[ "$state" == running || "$state" == degraded ]]
}
if wait_for 60 booted; then
    pass "boot: container systemd is $(cin systemctl is-system-running || true) after $((SECONDS - t0)) s (PID 1 is host PID $cpid)"
else
    fail "boot: container not running/degraded within 60 s: $(cin systemctl is-system-running || true)"
    tail -n 40 "$work/console.log"
    exit 1
fi
if [[ "$(cin systemctl is-system-running || true)" == degraded ]]; then
    info "failed units in the container: $(cin systemctl --failed --plain --no-legend | tr '\n' ' ')"
fi

# Agent log lines (from the unit's processes, not systemd's lines about it).
agent_log() { cin journalctl -q --no-pager -o cat _SYSTEMD_UNIT=brokerguard.service "$@"; }
# Lines of the current main process only: "since this (re)start". (Not
# journal cursors: journalctl 252 returns nothing for -p with --after-cursor.)
main_log() { agent_log "_PID=$(show MainPID)" "$@"; }
dump_journal() {
    info "last journal lines of brokerguard:"
    cin journalctl -q --no-pager -u brokerguard -n 25 -o short-monotonic | sed 's/^/    /'
}

# ---------------------------------------------------------------- install

src=/root/brokerguard-src
mkdir -p "$root$src/systemd"
cp "$here/install.sh" "$root$src/"
cp -r "$here/etc" "$root$src/"
cp "$here/systemd/brokerguard.service" "$root$src/systemd/"
cp "$binary" "$root$src/brokerguard"

if out=$(cin "$src/install.sh" --binary "$src/brokerguard" 2>&1); then
    pass "install: install.sh --binary ran ($(grep -c . <<<"$out") actions)"
else
    fail "install: install.sh failed:"
    printf '%s\n' "$out" | sed 's/^/    /'
    exit 1
fi
printf '%s\n' "$out" | sed 's/^/    /'

layout=$(cin stat -c '%a %U:%G %n' /usr/local/bin/brokerguard /etc/brokerguard \
    /etc/brokerguard/brokerguard.toml /etc/brokerguard/credentials.env /var/lib/brokerguard \
    /usr/local/share/doc/brokerguard /usr/local/share/doc/brokerguard/brokerguard.toml.example \
    /etc/systemd/system/brokerguard.service 2>&1 || true)
expected_layout="755 root:root /usr/local/bin/brokerguard
750 root:brokerguard /etc/brokerguard
640 root:brokerguard /etc/brokerguard/brokerguard.toml
640 root:brokerguard /etc/brokerguard/credentials.env
700 brokerguard:brokerguard-clients /var/lib/brokerguard
755 root:root /usr/local/share/doc/brokerguard
644 root:root /usr/local/share/doc/brokerguard/brokerguard.toml.example
644 root:root /etc/systemd/system/brokerguard.service"
if [[ "$layout" == "$expected_layout" ]] &&
    cin getent passwd brokerguard | grep -q ':/var/lib/brokerguard:/usr/sbin/nologin$' &&
    cin getent group brokerguard-clients >/dev/null &&
    [[ "$(cin systemctl is-enabled brokerguard || true)" == enabled ]]; then
    pass "install-layout: modes, owners, system user (nologin), group brokerguard-clients and enabled unit as documented"
else
    fail "install-layout: got:"
    printf '%s\n' "$layout" "$(cin getent passwd brokerguard)" "$(cin getent group brokerguard-clients)" \
        "is-enabled: $(cin systemctl is-enabled brokerguard || true)" | sed 's/^/    /'
fi

if out=$(cin systemd-analyze verify /etc/systemd/system/brokerguard.service 2>&1) && [[ -z "$out" ]]; then
    pass "unit-verify: systemd-analyze verify of the installed unit is clean"
else
    fail "unit-verify: $out"
fi

if out=$(cin runuser -u brokerguard -- brokerguard config check --config /etc/brokerguard/brokerguard.toml 2>&1); then
    pass "shipped-config: the installed example passes 'config check' as user brokerguard"
else
    fail "shipped-config: 'brokerguard config check' of the installed example failed: $(tail -n 5 <<<"$out")"
fi

# The test's own configuration: no feeds (no internet here), short stop.
write_config() {
    cat >"$root/etc/brokerguard/brokerguard.toml" <<EOF
# written by tests/systemd/run.sh
[agent]
runtime_dir = "/run/brokerguard"
state_dir = "/var/lib/brokerguard"
credential_files = ["/etc/brokerguard/credentials.env"]
preflight = "off"
log_level = "info"
$1
EOF
}
write_config ""

# A short watchdog period so that "survives several periods" and "a frozen
# agent is killed" take seconds, not minutes. Everything else is the unit as
# shipped.
mkdir -p "$root/etc/systemd/system/brokerguard.service.d"
printf '[Service]\nWatchdogSec=3s\n' >"$root/etc/systemd/system/brokerguard.service.d/ci-watchdog.conf"
cin systemctl daemon-reload

# ---------------------------------------------------------------- start

t=$SECONDS
if cin timeout 100 systemctl start brokerguard 2>&1 &&
    [[ "$(cin systemctl is-active brokerguard || true)" == active ]]; then
    pass "start: systemctl start brokerguard is active (READY=1) after $((SECONDS - t)) s"
else
    fail "start: not active: $(show ActiveState)/$(show SubState), result $(show Result), exit $(show ExecMainStatus)"
    dump_journal
fi

status_text=$(show StatusText)
if [[ -n "$status_text" ]] && cin systemctl status --no-pager brokerguard 2>&1 | grep -qF "Status: \"$status_text\""; then
    pass "status-line: systemctl status shows Status: \"$status_text\""
else
    fail "status-line: no STATUS= text in systemctl status (StatusText='$status_text')"
fi

main_pid=$(show MainPID)
status_file_ok() { cin test -s /run/brokerguard/status.json && cin grep -q '"schema"' /run/brokerguard/status.json; }
if wait_for 10 status_file_ok; then
    pass "sandbox-status-file: /run/brokerguard/status.json written under ProtectSystem=strict"
else
    fail "sandbox-status-file: no /run/brokerguard/status.json within 10 s: $(cin ls -la /run/brokerguard 2>&1 | tr '\n' ' ')"
fi
if out=$(cin runuser -u brokerguard -- brokerguard status 2>&1); then
    pass "sandbox-status-cmd: brokerguard status exits 0"
    printf '%s\n' "$out" | sed 's/^/    /'
else
    fail "sandbox-status-cmd: brokerguard status exited $? : $out"
fi
if [[ "$main_pid" != 0 ]] && proc=$(cin cat "/proc/$main_pid/status" 2>/dev/null) &&
    grep -q '^Seccomp:[[:space:]]*2' <<<"$proc" && grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$proc" &&
    grep -q '^CapEff:[[:space:]]*0000000000000000' <<<"$proc" &&
    grep -q '^CapBnd:[[:space:]]*0000000000000000' <<<"$proc"; then
    pass "sandbox-applied: MainPID $main_pid runs with seccomp filter, NoNewPrivs, no capabilities, as $(cin ps -o user= -p "$main_pid" 2>/dev/null || cin stat -c %U "/proc/$main_pid")"
else
    fail "sandbox-applied: MainPID $main_pid lacks the expected seccomp/NoNewPrivs/capability state"
fi
if [[ "$main_pid" != 0 ]]; then
    rss=$(cin grep VmRSS "/proc/$main_pid/status" 2>/dev/null | awk '{print $2, $3}' || true)
    info "idle RSS of brokerguard run with no feeds under systemd: ${rss:-unknown}"
fi

# ---------------------------------------------------------------- the bot's group

# A real second user, as the trading bot's would be: in brokerguard-clients
# it reads status.json and connects to feeds.sock, and reads nothing under
# /etc/brokerguard. A third user in neither group gets nothing at all.
cin useradd --system --no-create-home --shell /usr/sbin/nologin bgbot
cin usermod -aG brokerguard-clients bgbot
cin useradd --system --no-create-home --shell /usr/sbin/nologin bgother
runtime=$(cin stat -c '%a %U:%G %n' /run/brokerguard /run/brokerguard/status.json /run/brokerguard/feeds.sock 2>&1 || true)
expected_runtime="750 brokerguard:brokerguard-clients /run/brokerguard
640 brokerguard:brokerguard-clients /run/brokerguard/status.json
660 brokerguard:brokerguard-clients /run/brokerguard/feeds.sock"
if [[ "$runtime" == "$expected_runtime" ]]; then
    pass "clients-runtime-modes: $(tr '\n' ';' <<<"$runtime")"
else
    fail "clients-runtime-modes: got: $(tr '\n' ';' <<<"$runtime")"
fi
if out=$(cin runuser -u bgbot -- brokerguard status 2>&1); then
    pass "clients-status: brokerguard status as bgbot (group brokerguard-clients, no sudo) exits 0"
else
    fail "clients-status: brokerguard status as bgbot exited non-zero: $out"
fi
# A subscriber's handshake: it sends a subscribe request and waits for the
# answer, which proves the agent accepted the connection.
cat >"$root/usr/local/share/bg-ci-subscribe.pl" <<'PERL'
use strict;
use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => "/run/brokerguard/feeds.sock")
    or die "connect: $!\n";
print $s "{\"subscribe\":[]}\n";
$SIG{ALRM} = sub { die "no answer within 5 s\n" };
alarm 5;
while (my $line = <$s>) {
    if ($line =~ /"subscribed"/) { print $line; exit 0; }
}
die "closed without an answer\n";
PERL
chmod 0644 "$root/usr/local/share/bg-ci-subscribe.pl"
if out=$(cin runuser -u bgbot -- perl /usr/local/share/bg-ci-subscribe.pl 2>&1); then
    pass "clients-socket: bgbot connected to feeds.sock and got $out"
else
    fail "clients-socket: bgbot could not subscribe on feeds.sock: $out"
fi
secrets_closed=true
for f in /etc/brokerguard/credentials.env /etc/brokerguard/brokerguard.toml; do
    if cin runuser -u bgbot -- cat "$f" >/dev/null 2>&1; then
        secrets_closed=false
        fail "clients-no-secrets: bgbot can read $f"
    fi
done
if $secrets_closed; then
    pass "clients-no-secrets: bgbot cannot read /etc/brokerguard/credentials.env nor brokerguard.toml ($(cin runuser -u bgbot -- cat /etc/brokerguard/credentials.env 2>&1 | head -n 1))"
fi
if ! cin runuser -u bgother -- cat /run/brokerguard/status.json >/dev/null 2>&1 &&
    ! cin runuser -u bgother -- perl /usr/local/share/bg-ci-subscribe.pl >/dev/null 2>&1; then
    pass "clients-others: bgother (in neither group) can neither read status.json nor connect to feeds.sock"
else
    fail "clients-others: bgother, in neither group, got at status.json or feeds.sock"
fi
if out=$(cin brokerguard doctor 2>&1); then
    info "doctor as root: exit 0"
else
    info "doctor as root: exit $? ($(grep -c . <<<"$out") lines)"
fi
cin usermod -aG brokerguard bgother
if grep -q 'has members besides the service user: bgother' <<<"$(cin brokerguard doctor 2>&1)"; then
    pass "doctor-service-group: doctor flags bgother in group brokerguard (it could read every secret)"
else
    fail "doctor-service-group: doctor did not flag bgother in group brokerguard: $(cin brokerguard doctor 2>&1 | tail -n 5 | tr '\n' '|')"
fi
cin gpasswd -d bgother brokerguard >/dev/null

# ---------------------------------------------------------------- reload

before=$(show MainPID)
reloads_before=$(main_log | grep -ci reload || true)
reload_logged() { (($(main_log | grep -ci reload || true) > reloads_before)); }
if cin systemctl reload brokerguard 2>&1 && wait_for 10 reload_logged &&
    [[ "$(cin systemctl is-active brokerguard || true)" == active && "$(show MainPID)" == "$before" ]]; then
    pass "reload: agent logged '$(main_log | grep -i reload | tail -n 1)', still active, same MainPID $before"
else
    fail "reload: after systemctl reload: $(cin systemctl is-active brokerguard || true), MainPID $before -> $(show MainPID), agent lines: $(main_log | tail -n 5 | tr '\n' '|')"
fi

# ---------------------------------------------------------------- watchdog

watchdog_usec=$(show WatchdogUSec)
restarts_before=$(show NRestarts)
ping_before=$(show WatchdogTimestampMonotonic)
pid_before=$(show MainPID)
# Three periods of time passing is the thing under test here.
sleep 10
ping_after=$(show WatchdogTimestampMonotonic)
if [[ "$(cin systemctl is-active brokerguard || true)" == active && "$(show MainPID)" == "$pid_before" &&
    "$(show NRestarts)" == "$restarts_before" && "$ping_after" != "$ping_before" && "$ping_after" != 0 ]]; then
    pass "watchdog-alive: survived 10 s with WatchdogSec=$watchdog_usec (pings seen, same MainPID, NRestarts $restarts_before)"
else
    fail "watchdog-alive: active=$(cin systemctl is-active brokerguard || true) MainPID $pid_before -> $(show MainPID) NRestarts $restarts_before -> $(show NRestarts) last ping $ping_before -> $ping_after"
fi

pid_before=$(show MainPID)
restarts_before=$(show NRestarts)
t=$SECONDS
restarted() {
    local pid
    pid=$(show MainPID)
    [[ "$pid" != 0 && "$pid" != "$pid_before" && "$(show NRestarts)" -gt "$restarts_before" &&
        "$(cin systemctl is-active brokerguard || true)" == active ]]
}
if [[ "$pid_before" != 0 ]] && cin /bin/sh -c "kill -STOP $pid_before" && wait_for 45 restarted; then
    pass "watchdog-kill: frozen MainPID $pid_before killed by the watchdog and restarted as $(show MainPID) in $((SECONDS - t)) s (NRestarts $restarts_before -> $(show NRestarts))"
else
    fail "watchdog-kill: after kill -STOP $pid_before: MainPID $(show MainPID), NRestarts $(show NRestarts), $(show ActiveState)/$(show SubState) result $(show Result)"
    dump_journal
fi
if cin journalctl -q -u brokerguard --no-pager -o cat | grep -q 'Watchdog timeout'; then
    info "systemd logged: $(cin journalctl -q -u brokerguard --no-pager -o cat | grep -m1 'Watchdog timeout')"
fi

# ---------------------------------------------------------------- alerts

# A port on the container's (= host's) loopback that nobody listens on.
closed_port=""
for port in 47611 47613 47617 47619 47623; do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        closed_port=$port
        break
    fi
done

# Is the feed engine in this binary? Then a configured feed shows up in status.json.
feed_listed() { cin grep -Eq "\"name\": ?\"$1\"" /run/brokerguard/status.json 2>/dev/null; }

write_config "alert_after = \"2s\"

[[feed]]
name = \"closed\"
broker = \"websocket\"
url = \"ws://127.0.0.1:$closed_port/\""
restart_agent
if ! wait_for 10 feed_listed closed; then
    skip "journal-alerts: status.json lists no feeds: this binary has no feed engine yet (the feed engine issue finishes this check)"
    feed_engine=false
else
    feed_engine=true
    alert_seen() { grep -q '^alert=feed_down' <<<"$(main_log -p err)"; }
    if wait_for 30 alert_seen; then
        pass "journal-alerts: journalctl -p err shows '$(main_log -p err | grep -m1 '^alert=feed_down')'"
    else
        fail "journal-alerts: no alert=feed_down at priority err within 30 s for a feed on closed port $closed_port"
        dump_journal
    fi
fi

# ---------------------------------------------------------------- TLS

# Proves that the static binary (vendored OpenSSL) verifies a server against
# the system CA store of a stock Debian, without SSL_CERT_FILE: the test CA
# goes into the container's store with update-ca-certificates (the host's
# store is never touched), the agent must reach "live"; with the CA removed
# it must fail with a certificate error.
if ! "$binary" sim --help >/dev/null 2>&1; then
    skip "tls-system-store: this binary has no 'brokerguard sim' (wss simulator) yet"
    skip "tls-untrusted: this binary has no 'brokerguard sim' yet"
elif ! $feed_engine; then
    skip "tls-system-store: needs the feed engine"
    skip "tls-untrusted: needs the feed engine"
else
    tls="$work/tls"
    mkdir -p "$tls"
    if [[ -f "$here/tests/fixtures/tls/ca.pem" && -f "$here/tests/fixtures/tls/server.pem" &&
        -f "$here/tests/fixtures/tls/server.key" ]]; then
        cp "$here/tests/fixtures/tls/"{ca.pem,server.pem,server.key} "$tls/"
        info "TLS: using tests/fixtures/tls"
    else
        "$here/tests/systemd/make-certs.sh" "$tls"
        info "TLS: generated a test CA and a localhost certificate in $tls"
    fi
    tls_port=""
    for port in 47631 47633 47637 47639 47641; do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            tls_port=$port
            break
        fi
    done
    # The simulator runs on the host; the container shares its network.
    env -u SSL_CERT_FILE -u SSL_CERT_DIR "$binary" sim --tls-cert "$tls/server.pem" \
        --tls-key "$tls/server.key" --port "$tls_port" --data-every 200ms >"$work/sim.log" 2>&1 &
    sim_pid=$!
    sim_up() { (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null; }
    if ! wait_for 15 sim_up; then
        fail "tls-system-store: the simulator did not listen on $tls_port within 15 s: $(tail -n 5 "$work/sim.log")"
    else
        cp "$tls/ca.pem" "$root/usr/local/share/ca-certificates/brokerguard-ci.crt"
        cin update-ca-certificates >/dev/null 2>&1
        # Live means data arrived: the feed subscribes and the simulator sends.
        write_config "[[feed]]
name = \"tls\"
broker = \"websocket\"
url = \"wss://localhost:$tls_port/\"
subscribe = ['{\"type\":\"subscribe\",\"channel\":\"signals\"}']
subscribe_ok = '\"type\":\"subscribed\"'"
        restart_agent
        status_live() { cin brokerguard status >/dev/null 2>&1; }
        env_has_cert=$(cin cat "/proc/$(show MainPID)/environ" 2>/dev/null | tr '\0' '\n' | grep -c '^SSL_CERT_' || true)
        if wait_for 30 status_live; then
            pass "tls-system-store: feed wss://localhost:$tls_port/ went live: certificate verified against /etc/ssl/certs (SSL_CERT_* in the unit's environment: $env_has_cert)"
        else
            fail "tls-system-store: feed not live within 30 s with the test CA in the system store: $(cin brokerguard status 2>&1 | tail -n 3 | tr '\n' '|')"
            dump_journal
        fi

        rm -f "$root/usr/local/share/ca-certificates/brokerguard-ci.crt"
        cin update-ca-certificates --fresh >/dev/null 2>&1
        restart_agent
        cert_error() { grep -qi 'certificate' <<<"$(main_log)"; }
        if wait_for 30 cert_error && ! cin brokerguard status >/dev/null 2>&1; then
            pass "tls-untrusted: without the CA the feed is not live and the journal says: $(main_log | grep -i -m1 certificate)"
        else
            fail "tls-untrusted: expected a certificate error and a non-live feed without the CA"
            dump_journal
        fi
    fi
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
    sim_pid=""
fi

# Over the whole run: every line the agent logged at err or above is an
# alert. journalctl -u also shows systemd's own lines about the unit; the
# only err-level one expected is the watchdog timeout this test provoked.
non_alert=$(agent_log -p err | grep -v '^alert=' || true)
err_count=$(agent_log -p err | grep -c . || true)
unit_other=$(cin journalctl -q --no-pager -o cat -u brokerguard -p err |
    grep -v -e '^alert=' -e '^brokerguard.service: Watchdog timeout (limit 3s)!$' || true)
if [[ -z "$non_alert" && -z "$unit_other" ]]; then
    if $feed_engine; then
        pass "journal-only-alerts: journalctl -u brokerguard -p err: all $err_count agent lines start with alert= (plus systemd's line for the provoked watchdog timeout)"
    else
        pass "journal-only-alerts: the agent logged $err_count lines at priority err (none that is not an alert)"
    fi
else
    fail "journal-only-alerts: lines at priority err that are not alerts:"
    printf '%s\n' "$non_alert" "$unit_other" | grep . | head -n 10 | sed 's/^/    /'
fi

# ---------------------------------------------------------------- rejected reload

write_config ""
restart_agent
before=$(show MainPID)
printf 'stal_after = "5s"\n' >>"$root/etc/brokerguard/brokerguard.toml"
bad_line=$(grep -n '^stal_after' "$root/etc/brokerguard/brokerguard.toml" | cut -d: -f1)
if out=$(cin timeout 60 systemctl reload brokerguard 2>&1); then
    fail "reload-rejected: systemctl reload succeeded with an invalid configuration"
else
    rc=$?
    # systemctl exits 1 for any failed job; what failed it is ExecReload='s
    # own status: brokerguard reload's 78, "rejected".
    reload_status=$(show ExecReload | sed -n 's/.*status=\([0-9]*\).*/\1/p')
    if [[ "$reload_status" == 78 && "$(cin systemctl is-active brokerguard || true)" == active &&
        "$(show MainPID)" == "$before" ]] &&
        grep -q "/etc/brokerguard/brokerguard.toml:$bad_line:1: .*stal_after" <<<"$(agent_log)"; then
        pass "reload-rejected: systemctl reload exited $rc (ExecReload= status $reload_status), the journal names /etc/brokerguard/brokerguard.toml:$bad_line:1, still active as MainPID $before"
    else
        fail "reload-rejected: systemctl exit $rc, ExecReload= status '$reload_status', $(cin systemctl is-active brokerguard || true), MainPID $before -> $(show MainPID): $(agent_log | tail -n 5 | tr '\n' '|')"
    fi
fi
write_config ""
if cin timeout 60 systemctl reload brokerguard 2>&1 && [[ "$(show MainPID)" == "$before" ]]; then
    pass "reload-applied: systemctl reload of the fixed file exits 0 ($(agent_log | grep -o 'reloaded .*applied.*' | tail -n 1))"
else
    fail "reload-applied: systemctl reload of a valid file failed: $(agent_log | tail -n 5 | tr '\n' '|')"
fi

# ---------------------------------------------------------------- failed start

# A bad configuration at start: exit 78, no restart loop, and the reason at
# error priority, so "journalctl -u brokerguard -p err" names file:line:col.
cin systemctl stop brokerguard
write_config 'bogus_key = 1'
bad_line=$(grep -n '^bogus_key' "$root/etc/brokerguard/brokerguard.toml" | cut -d: -f1)
cin systemctl reset-failed brokerguard 2>/dev/null || true
cin timeout 100 systemctl start brokerguard >/dev/null 2>&1 || true
# (grep reads a here-string, not a pipe: grep -q stops reading at the first
# match, and under pipefail the writer's SIGPIPE would fail the check.)
start_failed_seen() {
    grep -q "^alert=start_failed reason=config at=/etc/brokerguard/brokerguard.toml:$bad_line:1 key=agent.bogus_key" \
        <<<"$(cin journalctl -q --no-pager -o cat -u brokerguard -p err)"
}
if wait_for 20 start_failed_seen && [[ "$(show ExecMainStatus)" == 78 ]]; then
    pass "start-failed-journal: exit 78; journalctl -u brokerguard -p err: '$(cin journalctl -q --no-pager -o cat -u brokerguard -p err | grep -m1 "^alert=start_failed reason=config at=")'"
else
    fail "start-failed-journal: ExecMainStatus $(show ExecMainStatus); journalctl -p err: $(cin journalctl -q --no-pager -o cat -u brokerguard -p err | tail -n 5 | tr '\n' '|')"
    dump_journal
fi
non_alert=$(agent_log -p err | grep -v '^alert=' || true)
if [[ -z "$non_alert" ]]; then
    pass "start-failed-only-alerts: every agent line at priority err is still an alert= line"
else
    fail "start-failed-only-alerts: agent lines at err that are not alerts: $(head -n 3 <<<"$non_alert" | tr '\n' '|')"
fi

# ---------------------------------------------------------------- stop

write_config ""
restart_agent
t=$SECONDS
stopped_pid=$(show MainPID)
cin timeout 60 systemctl stop brokerguard 2>&1 || true
took=$((SECONDS - t))
state=$(show ActiveState)
exit_status=$(show ExecMainStatus)
if [[ "$stopped_pid" != 0 && "$state" == inactive && "$exit_status" == 0 && "$took" -lt 30 ]]; then
    pass "stop: MainPID $stopped_pid stopped cleanly in ${took} s (inactive, ExecMainStatus 0)"
else
    fail "stop: MainPID $stopped_pid took ${took} s, state $state, ExecMainStatus $exit_status, result $(show Result)"
    dump_journal
fi

# ---------------------------------------------------------------- reinstall

printf '# edited by the operator\n' >>"$root/etc/brokerguard/brokerguard.toml"
snapshot() {
    cin find /usr/local/bin/brokerguard /etc/brokerguard /etc/systemd/system/brokerguard.service \
        /var/lib/brokerguard -maxdepth 1 -printf '%p %m %u %g %s %T@\n' | sort
    cin sha256sum /usr/local/bin/brokerguard /etc/brokerguard/brokerguard.toml \
        /etc/brokerguard/credentials.env /etc/systemd/system/brokerguard.service
    cin systemctl is-enabled brokerguard || true
}
before=$(snapshot)
out=$(cin "$src/install.sh" --binary "$src/brokerguard" 2>&1) || fail "reinstall: install.sh failed: $out"
after=$(snapshot)
changes=$(grep -E '^install.sh: (installed|updated|created|fixed|enabled|ran)' <<<"$out" || true)
if [[ "$before" == "$after" && -z "$changes" ]] &&
    tail -n 1 "$root/etc/brokerguard/brokerguard.toml" | grep -q 'edited by the operator'; then
    pass "reinstall: second install.sh changed nothing and kept the edited config"
else
    fail "reinstall: changes: ${changes:-none reported}; tree differs: $([[ "$before" == "$after" ]] && echo no || echo yes)"
    diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed 's/^/    /' || true
fi

# An operator's own mode on /etc/brokerguard is kept, and reported with what
# it means: 0700 root:brokerguard shuts the service out.
cin chmod 0700 /etc/brokerguard
out=$(cin "$src/install.sh" --binary "$src/brokerguard" 2>&1) || fail "reinstall-kept-mode: install.sh failed: $out"
if [[ "$(cin stat -c %a /etc/brokerguard)" == 700 ]] &&
    grep -q '^install.sh: kept existing /etc/brokerguard/ as it is: 0700 root:brokerguard' <<<"$out" &&
    grep -q '^install.sh: warning: the service (group brokerguard) cannot read /etc/brokerguard/' <<<"$out"; then
    pass "reinstall-kept-mode: an operator's 0700 on /etc/brokerguard is kept, reported, and flagged as shutting the service out"
else
    fail "reinstall-kept-mode: mode $(cin stat -c %a /etc/brokerguard); install.sh said: $(grep /etc/brokerguard/ <<<"$out" | tr '\n' '|')"
fi
cin chmod 0750 /etc/brokerguard

# ---------------------------------------------------------------- uninstall

rm -rf "$root/etc/systemd/system/brokerguard.service.d"
restart_agent >/dev/null
out=$(cin "$src/install.sh" --uninstall 2>&1) || fail "uninstall: install.sh --uninstall failed: $out"
if [[ ! -e "$root/usr/local/bin/brokerguard" && ! -e "$root/etc/systemd/system/brokerguard.service" &&
    -f "$root/etc/brokerguard/credentials.env" ]] &&
    grep -q 'edited by the operator' "$root/etc/brokerguard/brokerguard.toml" &&
    [[ "$(cin systemctl is-active brokerguard || true)" != active ]] &&
    ! cin systemctl list-unit-files --no-legend brokerguard.service | grep -q brokerguard; then
    pass "uninstall: binary and unit removed, service stopped, /etc/brokerguard kept"
else
    fail "uninstall: $(printf '%s' "$out" | tr '\n' '|')"
fi

out=$(cin "$src/install.sh" --uninstall --purge 2>&1) || fail "purge: install.sh --uninstall --purge failed: $out"
if [[ ! -e "$root/etc/brokerguard" && ! -e "$root/var/lib/brokerguard" ]] &&
    cin getent passwd brokerguard >/dev/null && cin getent group brokerguard-clients >/dev/null &&
    grep -q 'kept system user brokerguard' <<<"$out"; then
    pass "purge: /etc/brokerguard and /var/lib/brokerguard removed; the system user and groups kept, as it says"
else
    fail "purge: $(printf '%s' "$out" | tr '\n' '|')"
fi

printf 'systemd: %d passed, %d failed, %d skipped in %d s\n' "$passed" "$failed" "$skipped" "$((SECONDS - started))"
((failed == 0))
