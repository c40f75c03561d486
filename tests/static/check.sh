#!/usr/bin/env bash
# Checks that the release binary is fully static: it needs no shared library
# on the host (not even libc or libssl), so one file runs on any x86_64
# Linux. TLS against the system CA store is proven separately, on a stock
# Debian under systemd (tests/systemd/run.sh, check "tls").
#
# Usage: tests/static/check.sh [--binary PATH]   (default: ./install.sh --build-only)
# Prints the binary's path on the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
binary=""
case "${1:-}" in
--binary) binary=${2:?--binary needs a path} ;;
--binary=*) binary=${1#*=} ;;
"") ;;
*)
    echo "usage: $0 [--binary PATH]" >&2
    exit 64
    ;;
esac

failures=0
pass() { printf 'PASS %s\n' "$*" >&2; }
fail() {
    printf 'FAIL %s\n' "$*" >&2
    failures=$((failures + 1))
}

if [[ -z "$binary" ]]; then
    binary=$("$here/install.sh" --build-only | tail -n 1)
fi
[[ -x "$binary" ]] || {
    echo "FAIL static: $binary is not an executable file" >&2
    exit 1
}

# ldd exits non-zero for a static binary; its words are what matter. glibc's
# ldd says "not a dynamic executable" (static) or "statically linked"
# (static-pie, what +crt-static produces); a dynamic one lists libraries.
ldd_out=$(ldd "$binary" 2>&1 || true)
if grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
    pass "static-ldd: ldd: $(head -n 1 <<<"$ldd_out" | sed 's/^[[:space:]]*//')"
else
    fail "static-ldd: ldd lists shared libraries:"
    printf '%s\n' "$ldd_out" >&2
fi

# file says "statically linked" or, for a static PIE, "static-pie linked".
file_out=$(file -b "$binary")
if grep -qE 'statically linked|static-pie linked' <<<"$file_out" &&
    ! grep -q 'dynamically linked' <<<"$file_out"; then
    pass "static-file: file: $file_out"
else
    fail "static-file: file does not say statically linked: $file_out"
fi

# No ELF interpreter and no DT_NEEDED entries: the loader is never involved.
if command -v readelf >/dev/null; then
    needed=$(readelf -d "$binary" 2>/dev/null | grep -c '(NEEDED)' || true)
    interp=$(readelf -l "$binary" 2>/dev/null | grep -c 'Requesting program interpreter' || true)
    if [[ "$needed" == 0 && "$interp" == 0 ]]; then
        pass "static-elf: no NEEDED libraries, no program interpreter"
    else
        fail "static-elf: $needed NEEDED entries, $interp program interpreter(s)"
    fi
fi

# It runs with an empty environment and no library path.
if version=$(env -i "$binary" --version 2>&1); then
    pass "static-runs: env -i $binary --version: $version"
else
    fail "static-runs: $binary --version failed: $version"
fi

# The test-only fault injection (cargo feature `fault-injection`, which only
# `cargo test` enables) is not in the shipped binary: its trigger variable's
# name, which its code must spell to read it, is nowhere in it.
if grep -qaF BROKERGUARD_FAULT_INJECT_DIR "$binary"; then
    fail "static-no-fault-injection: the binary holds the test-only fault injection (built with --features fault-injection?)"
else
    pass "static-no-fault-injection: no test-only fault injection in the binary"
fi

# It does its work, not only --version: a static glibc binary that reached
# NSS (getpwnam and friends) loaded the host's libnss_systemd and died with
# SIGSEGV on the first look-up that /etc/passwd did not answer. The agent,
# status and doctor run here on a host where brokerguard is not installed
# (no brokerguard user or group), as on a fresh droplet before install.sh.
work=$(mktemp -d /tmp/bg-static.XXXXXX)
agent_pid=""
cleanup_static() {
    if [[ -n "$agent_pid" ]]; then
        kill -KILL "$agent_pid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
}
trap cleanup_static EXIT
printf '[agent]\nruntime_dir = "%s/run"\nstate_dir = "%s/state"\ncredential_files = ["%s/credentials.env"]\n' \
    "$work" "$work" "$work" >"$work/brokerguard.toml"
: >"$work/credentials.env"
chmod 600 "$work/credentials.env"
# Exit codes below 128 are answers (status says nothing runs: 3); 128 and
# above are deaths by a signal.
for cmd in "config check" "status" "doctor --json"; do
    rc=0
    # shellcheck disable=SC2086 # the command's words are meant to split
    env -i "$binary" $cmd --config "$work/brokerguard.toml" >/dev/null 2>"$work/err" || rc=$?
    if ((rc < 128)); then
        pass "static-works: $cmd exits $rc"
    else
        fail "static-works: $cmd died (exit $rc): $(tail -n 3 "$work/err")"
    fi
done
env -i "$binary" run --config "$work/brokerguard.toml" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 1 200); do
    [[ -S "$work/run/feeds.sock" ]] && break
    kill -0 "$agent_pid" 2>/dev/null || break
    sleep 0.1
done
rc=0
if [[ -S "$work/run/feeds.sock" ]]; then
    kill -TERM "$agent_pid"
    wait "$agent_pid" || rc=$?
    agent_pid=""
    if ((rc == 0)); then
        pass "static-agent: run came up (fan-out socket) and stopped on SIGTERM with 0"
    else
        fail "static-agent: run exited $rc on SIGTERM: $(tail -n 3 "$work/agent.log")"
    fi
else
    wait "$agent_pid" || rc=$?
    agent_pid=""
    fail "static-agent: run never opened its fan-out socket (exit $rc): $(tail -n 3 "$work/agent.log")"
fi

size=$(stat -c %s "$binary")
printf 'INFO static-size: %s bytes (%s MiB) %s\n' "$size" \
    "$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }')" "$binary" >&2

if ((failures)); then
    echo "static: $failures check(s) failed" >&2
    exit 1
fi
printf '%s\n' "$binary"
