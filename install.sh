#!/usr/bin/env bash
# Installs brokerguard as a systemd service on this host (or into a staging
# tree with --root). Idempotent: a second run changes nothing, and files an
# operator may have edited (/etc/brokerguard/*) are never overwritten.
# Run ./install.sh --help for the options.
set -euo pipefail

readonly SERVICE_USER=brokerguard
readonly SERVICE_GROUP=brokerguard
readonly BIN_PATH=/usr/local/bin/brokerguard
readonly UNIT_PATH=/etc/systemd/system/brokerguard.service
readonly CONF_DIR=/etc/brokerguard
readonly STATE_DIR=/var/lib/brokerguard
readonly NOLOGIN=/usr/sbin/nologin

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here

usage() {
    cat <<'EOF'
Usage: sudo ./install.sh [--binary PATH] [--root DIR]
       sudo ./install.sh --uninstall [--purge] [--root DIR]
       ./install.sh --build-only

Installs brokerguard:
  /usr/local/bin/brokerguard               0755 root:root
  /etc/brokerguard/                        0750 root:brokerguard
  /etc/brokerguard/brokerguard.toml        0640 root:brokerguard  (only if missing)
  /etc/brokerguard/credentials.env         0640 root:brokerguard  (only if missing, empty)
  /var/lib/brokerguard/                    0750 brokerguard:brokerguard
  /etc/systemd/system/brokerguard.service  0644 root:root
creates the system user and group "brokerguard" if missing, then runs
"systemctl daemon-reload" and "systemctl enable brokerguard". It does not
start the service. Existing files under /etc/brokerguard are always kept.

Options:
  --binary PATH  install this binary instead of building one
  --build-only   build the static release binary, print its path, install nothing
  --root DIR     install into the staging tree DIR: no systemctl, no useradd;
                 owners are applied only when the user/group exist on this
                 host, and the intended ones are recorded in
                 DIR/.brokerguard-owners ("mode owner:group path" per line)
  --uninstall    stop and disable the service, remove the binary and unit;
                 keeps /etc/brokerguard, /var/lib/brokerguard and the user
  --purge        with --uninstall: also remove /etc/brokerguard,
                 /var/lib/brokerguard and the brokerguard user and group
  -h, --help     this text

Without --binary, the binary is built with cargo: static (musl when the
x86_64-unknown-linux-musl target is installed, else glibc +crt-static) with
OpenSSL vendored, so it needs no system libraries.
EOF
}

say() { printf 'install.sh: %s\n' "$*"; }
die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

binary=""
root=""
uninstall=false
purge=false
build_only=false
while (($#)); do
    case "$1" in
    --binary)
        (($# >= 2)) || die "--binary needs a path"
        binary=$2
        shift 2
        ;;
    --binary=*)
        binary=${1#*=}
        shift
        ;;
    --root)
        (($# >= 2)) || die "--root needs a folder"
        root=$2
        shift 2
        ;;
    --root=*)
        root=${1#*=}
        shift
        ;;
    --uninstall)
        uninstall=true
        shift
        ;;
    --purge)
        purge=true
        shift
        ;;
    --build-only)
        build_only=true
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        die "unknown option: $1 (./install.sh --help lists them)"
        ;;
    esac
done

if $purge && ! $uninstall; then
    die "--purge only goes with --uninstall"
fi
if [[ -n "$root" ]]; then
    [[ -d "$root" ]] || die "--root $root: no such folder (create it first)"
    root=$(cd "$root" && pwd)
    [[ "$root" != / ]] || root=""
fi
staging() { [[ -n "$root" ]]; }

# ---------------------------------------------------------------- build

# Prints the path of a freshly built static release binary.
build_static() {
    command -v cargo >/dev/null ||
        die "cargo not found: build as your user with './install.sh --build-only', then 'sudo ./install.sh --binary PATH'"
    local target=x86_64-unknown-linux-gnu rustflags="-C target-feature=+crt-static"
    if command -v rustup >/dev/null &&
        rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        target=x86_64-unknown-linux-musl
        rustflags=""
    fi
    # --target keeps build scripts and proc macros dynamic (crt-static only
    # applies to the target), vendored-openssl builds OpenSSL from source.
    say "building static release binary for $target (cargo build --release --locked --features vendored-openssl)" >&2
    (cd "$here" && RUSTFLAGS="${RUSTFLAGS:-} $rustflags" cargo build --release --locked \
        --features vendored-openssl --target "$target" >&2) || die "cargo build failed"
    local out
    out=$(cd "$here" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    [[ -n "$out" ]] || out="$here/target"
    printf '%s\n' "$out/$target/release/brokerguard"
}

if $build_only; then
    built=$(build_static)
    say "built $built"
    printf '%s\n' "$built"
    exit 0
fi

if ! staging && ((EUID != 0)); then
    die "run as root (sudo ./install.sh ...), or use --root DIR for a staging tree"
fi

# ---------------------------------------------------------------- helpers

# Intended owners of every installed path, for --root (CI checks them).
owners_file=""
if staging; then
    owners_file="$root/.brokerguard-owners"
fi

# record MODE OWNER:GROUP PATH: remember the intended owner (staging only).
record() {
    staging || return 0
    if [[ -f "$owners_file" ]]; then
        awk -v p="$3" '$3 != p' "$owners_file" >"$owners_file.tmp"
        mv -f "$owners_file.tmp" "$owners_file"
    fi
    printf '%s %s %s\n' "$1" "$2" "$3" >>"$owners_file"
    sort -k3 -o "$owners_file" "$owners_file"
}

# forget PATH: drop PATH and everything under it from the owners record.
forget() {
    staging && [[ -f "$owners_file" ]] || return 0
    awk -v p="$1" '$3 != p && index($3, p "/") != 1' "$owners_file" >"$owners_file.tmp"
    mv -f "$owners_file.tmp" "$owners_file"
}

# set_owner OWNER:GROUP PATH: chown; in a staging tree only when the names
# exist on this host (useradd is never run there), else leave it to record.
set_owner() {
    local user=${1%%:*} group=${1##*:}
    if staging; then
        getent passwd "$user" >/dev/null && getent group "$group" >/dev/null || return 0
    fi
    chown "$1" "$2"
}

# ensure_dir MODE OWNER:GROUP PATH
ensure_dir() {
    local mode=$1 owner=$2 path=$3 full="$root$3"
    record "$mode" "$owner" "$path"
    if [[ ! -d "$full" ]]; then
        mkdir -p "$full"
        chmod "$mode" "$full"
        set_owner "$owner" "$full"
        say "created $path/ ($mode $owner)"
        return 0
    fi
    local had
    had=$(stat -c '%04a %U:%G' "$full")
    chmod "$mode" "$full"
    set_owner "$owner" "$full"
    if [[ "$(stat -c '%04a %U:%G' "$full")" == "$had" ]]; then
        say "kept existing $path/"
    else
        say "fixed $path/: $had -> $(stat -c '%04a %U:%G' "$full")"
    fi
}

# install_replacing MODE SRC DEST: install (atomically) unless identical.
# Returns 0 when it changed something, 1 when DEST was already identical.
install_replacing() {
    local mode=$1 src=$2 path=$3 full="$root$3"
    record "$mode" root:root "$path"
    if [[ -f "$full" ]] && cmp -s "$src" "$full"; then
        chmod "$mode" "$full"
        say "unchanged $path"
        return 1
    fi
    local verb=installed
    [[ -e "$full" ]] && verb=updated
    mkdir -p "$(dirname "$full")"
    # A new file beside the old one, then rename: a running binary is never
    # rewritten in place ("text file busy") and a crash never leaves half a file.
    install -m "$mode" "$src" "$full.new"
    set_owner root:root "$full.new"
    mv -f "$full.new" "$full"
    say "$verb $path ($mode root:root)"
    return 0
}

# install_if_missing MODE OWNER:GROUP SRC|"" DEST: never touches an existing file.
install_if_missing() {
    local mode=$1 owner=$2 src=$3 path=$4 full="$root$4"
    record "$mode" "$owner" "$path"
    if [[ -e "$full" ]]; then
        say "kept existing $path"
        return 0
    fi
    if [[ -n "$src" ]]; then
        install -m "$mode" "$src" "$full.new"
    else
        install -m "$mode" /dev/null "$full.new"
    fi
    set_owner "$owner" "$full.new"
    mv -f "$full.new" "$full"
    say "installed $path ($mode $owner)"
}

have_systemctl() { ! staging && command -v systemctl >/dev/null; }

# ---------------------------------------------------------------- uninstall

if $uninstall; then
    if have_systemctl; then
        if systemctl is-active --quiet brokerguard; then
            systemctl stop brokerguard
            say "stopped brokerguard"
        fi
        if systemctl is-enabled --quiet brokerguard 2>/dev/null; then
            systemctl disable --quiet brokerguard
            say "disabled brokerguard"
        fi
    fi
    for path in "$UNIT_PATH" "$BIN_PATH"; do
        if [[ -e "$root$path" ]]; then
            rm -f "$root$path"
            say "removed $path"
        else
            say "already absent $path"
        fi
        forget "$path"
    done
    if have_systemctl; then
        systemctl daemon-reload
        systemctl reset-failed brokerguard 2>/dev/null || true
        say "ran systemctl daemon-reload"
    fi
    if ! $purge; then
        say "kept $CONF_DIR/ (configuration and credentials) and $STATE_DIR/; --purge removes them"
        exit 0
    fi
    for path in "$CONF_DIR" "$STATE_DIR"; do
        if [[ -e "$root$path" ]]; then
            rm -rf -- "$root$path"
            say "removed $path/"
        else
            say "already absent $path/"
        fi
        forget "$path"
    done
    if staging; then
        say "skipped removing user and group $SERVICE_USER (--root)"
    else
        if getent passwd "$SERVICE_USER" >/dev/null; then
            userdel "$SERVICE_USER"
            say "removed user $SERVICE_USER"
        fi
        if getent group "$SERVICE_GROUP" >/dev/null; then
            groupdel "$SERVICE_GROUP"
            say "removed group $SERVICE_GROUP"
        fi
    fi
    exit 0
fi

# ---------------------------------------------------------------- install

[[ -f "$here/etc/brokerguard.toml" ]] || die "$here/etc/brokerguard.toml is missing (run from a brokerguard checkout)"
[[ -f "$here/systemd/brokerguard.service" ]] || die "$here/systemd/brokerguard.service is missing (run from a brokerguard checkout)"

if [[ -z "$binary" ]]; then
    binary=$(build_static)
fi
[[ -f "$binary" && -x "$binary" ]] || die "--binary $binary: not an executable file"

# 1. The service user: a system account without a login shell, whose home
#    is the state folder. Created only if missing.
if staging; then
    say "skipped creating user and group $SERVICE_USER (--root; owners recorded in .brokerguard-owners)"
else
    if getent group "$SERVICE_GROUP" >/dev/null; then
        say "kept existing group $SERVICE_GROUP"
    else
        groupadd --system "$SERVICE_GROUP"
        say "created system group $SERVICE_GROUP"
    fi
    if getent passwd "$SERVICE_USER" >/dev/null; then
        say "kept existing user $SERVICE_USER"
    else
        useradd --system --gid "$SERVICE_GROUP" --home-dir "$STATE_DIR" --no-create-home \
            --shell "$NOLOGIN" --comment "brokerguard agent" "$SERVICE_USER"
        say "created system user $SERVICE_USER (home $STATE_DIR, shell $NOLOGIN)"
    fi
fi

# 2. The binary (replaced when it differs: that is how to upgrade).
binary_changed=false
if install_replacing 0755 "$binary" "$BIN_PATH"; then
    binary_changed=true
fi

# 3. Configuration and credentials: created once, then the operator's.
ensure_dir 0750 "root:$SERVICE_GROUP" "$CONF_DIR"
install_if_missing 0640 "root:$SERVICE_GROUP" "$here/etc/brokerguard.toml" "$CONF_DIR/brokerguard.toml"
install_if_missing 0640 "root:$SERVICE_GROUP" "" "$CONF_DIR/credentials.env"

# 4. State folder (systemd's StateDirectory= would create it too; having it
#    here makes the layout complete before the first start).
ensure_dir 0750 "$SERVICE_USER:$SERVICE_GROUP" "$STATE_DIR"

# 5. The unit.
unit_changed=false
if install_replacing 0644 "$here/systemd/brokerguard.service" "$UNIT_PATH"; then
    unit_changed=true
fi

if staging; then
    say "skipped systemctl daemon-reload and enable (--root)"
    exit 0
fi

if ! command -v systemctl >/dev/null; then
    say "systemctl not found: enable the service with your init system"
elif $unit_changed; then
    systemctl daemon-reload
    say "ran systemctl daemon-reload"
fi
if command -v systemctl >/dev/null; then
    if systemctl is-enabled --quiet brokerguard 2>/dev/null; then
        say "kept brokerguard enabled"
    else
        systemctl enable --quiet brokerguard
        say "enabled brokerguard (starts at boot)"
    fi
fi

if systemctl is-active --quiet brokerguard 2>/dev/null; then
    if $binary_changed || $unit_changed; then
        say "brokerguard is running the old version: sudo systemctl restart brokerguard"
    fi
else
    cat <<EOF
install.sh: next steps:
  1. edit $CONF_DIR/brokerguard.toml (feeds) and check it:
       sudo -u $SERVICE_USER $BIN_PATH config check --config $CONF_DIR/brokerguard.toml
  2. add secrets:  sudo $BIN_PATH set-credential NAME   (or edit $CONF_DIR/credentials.env)
  3. start it:     sudo systemctl start brokerguard
  4. watch it:     systemctl status brokerguard; journalctl -u brokerguard -p err; brokerguard status
EOF
fi
