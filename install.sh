#!/usr/bin/env bash
# Installs brokerguard as a systemd service on this host (or into a staging
# tree with --root). Idempotent: a second run changes nothing, and files an
# operator may have edited (/etc/brokerguard/*) are never overwritten.
# Run ./install.sh --help for the options.
set -euo pipefail

readonly SERVICE_USER=brokerguard
readonly SERVICE_GROUP=brokerguard
# The trading bot's user joins this group: it reads status.json and connects
# to feeds.sock, and reads nothing under /etc/brokerguard.
readonly CLIENTS_GROUP=brokerguard-clients
readonly BIN_PATH=/usr/local/bin/brokerguard
readonly UNIT_PATH=/etc/systemd/system/brokerguard.service
readonly DROPIN_DIR=/etc/systemd/system/brokerguard.service.d
# SocketBindAllow= for the port of [http] listen (only while it is set).
readonly HTTP_DROPIN=$DROPIN_DIR/http.conf
readonly CONF_DIR=/etc/brokerguard
readonly CONF_DIR_MODE=0750
readonly STATE_DIR=/var/lib/brokerguard
readonly DOC_DIR=/usr/local/share/doc/brokerguard
readonly EXAMPLE_PATH=$DOC_DIR/brokerguard.toml.example
readonly NOLOGIN=/usr/sbin/nologin

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here

usage() {
    cat <<'EOF'
Usage: sudo ./install.sh [--binary PATH [--allow-dynamic]] [--root DIR]
       sudo ./install.sh --uninstall [--purge] [--root DIR]
       ./install.sh --build-only

Installs brokerguard:
  /usr/local/bin/brokerguard               0755 root:root
  /etc/brokerguard/                        0750 root:brokerguard  (only if missing)
  /etc/brokerguard/brokerguard.toml        0640 root:brokerguard  (only if missing)
  /etc/brokerguard/credentials.env         0640 root:brokerguard  (only if missing, empty)
  /var/lib/brokerguard/                    0700 brokerguard:brokerguard-clients
  /usr/local/share/doc/brokerguard/        0755 root:root
  /usr/local/share/doc/brokerguard/brokerguard.toml.example
                                           0644 root:root  (the commented example,
                                           replaced on upgrade: diff it against yours)
  /etc/systemd/system/brokerguard.service  0644 root:root
  /etc/systemd/system/brokerguard.service.d/http.conf
                                           0644 root:root  (only while the configuration
                                           sets [http] listen: SocketBindAllow= its port)
creates the system user and group "brokerguard" and the group
"brokerguard-clients" (for the trading bot's user: status.json and
feeds.sock, no secrets) if missing, then runs "systemctl daemon-reload" and
"systemctl enable brokerguard". It does not start the service. Existing
files under /etc/brokerguard are always kept, and so is the folder's mode
and owner when an operator changed them (the difference is reported).

Options:
  --binary PATH  install this binary instead of building one; it must be the
                 static build (./install.sh --build-only makes it): a
                 dynamically linked one needs the shared libraries of the
                 host it was built on (libc, libssl), which this server may
                 lack or upgrade under it, and the unit expects none
  --allow-dynamic
                 with --binary: install a dynamically linked binary anyway
                 (a test host that has its libraries), with a warning
  --build-only   build the static release binary, print its path, install nothing
  --root DIR     install into the staging tree DIR: no systemctl, no useradd;
                 the intended owners are recorded in DIR/.brokerguard-owners
                 ("mode owner:group path" per line) and applied only when the
                 user and group exist on this host (each line printed says
                 which: "recorded ..., not applied")
  --uninstall    stop and disable the service, remove the binary, the unit
                 and the reference example; keeps /etc/brokerguard,
                 /var/lib/brokerguard, the user and the groups
  --purge        with --uninstall: also remove /etc/brokerguard and
                 /var/lib/brokerguard. The system user and groups stay (as
                 Debian's policy has it: a deleted system user's UID could be
                 given to a new account, which would then own whatever the
                 old one left behind); userdel/groupdel remove them by hand
  -h, --help     this text

Without --binary, the binary is built with cargo: static (musl when the
x86_64-unknown-linux-musl target is installed, else glibc +crt-static) with
OpenSSL vendored, so it needs no system libraries.

Exit codes: 0 done, 1 failed, 64 the command line was wrong.
EOF
}

say() { printf 'install.sh: %s\n' "$*"; }
die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}
# usage_error MESSAGE: the command line was wrong (EX_USAGE, as brokerguard).
usage_error() {
    printf 'install.sh: error: %s (./install.sh --help lists the options)\n' "$*" >&2
    exit 64
}

binary=""
root=""
uninstall=false
purge=false
build_only=false
allow_dynamic=false
while (($#)); do
    case "$1" in
    --binary)
        (($# >= 2)) || usage_error "--binary needs a path"
        binary=$2
        shift 2
        ;;
    --binary=*)
        binary=${1#*=}
        shift
        ;;
    --root)
        (($# >= 2)) || usage_error "--root needs a folder"
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
    --allow-dynamic)
        allow_dynamic=true
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
        usage_error "unknown option: $1"
        ;;
    esac
done

if $purge && ! $uninstall; then
    usage_error "--purge only goes with --uninstall"
fi
if $allow_dynamic && [[ -z "$binary" ]]; then
    usage_error "--allow-dynamic only goes with --binary"
fi

# linkage PATH: "static", "dynamic" or "unknown", as tests/static/check.sh
# judges it: an ELF interpreter or a NEEDED library means dynamic.
linkage() {
    if command -v readelf >/dev/null; then
        if readelf -lW "$1" 2>/dev/null | grep -q 'Requesting program interpreter' ||
            readelf -dW "$1" 2>/dev/null | grep -q '(NEEDED)'; then
            echo dynamic
        else
            echo static
        fi
    elif command -v file >/dev/null; then
        case "$(file -b "$1")" in
        *"dynamically linked"*) echo dynamic ;;
        *"statically linked"* | *"static-pie linked"*) echo static ;;
        *) echo unknown ;;
        esac
    else
        echo unknown
    fi
}

# check_static PATH: the unit and the server expect the static build: a
# dynamic binary needs the build host's shared libraries (libc, libssl) at
# every start. Refused unless --allow-dynamic.
check_static() {
    local why
    case "$(linkage "$1")" in
    static) ;;
    dynamic)
        why="$1 is dynamically linked: it needs the shared libraries of the host it was built on (libc, libssl), which this server may lack (another release) or lose in an upgrade, and then the service does not start"
        $allow_dynamic || die "$why; install the static build: ./install.sh --build-only, then --binary with the path it prints (or pass --allow-dynamic to install this one anyway)"
        printf 'install.sh: WARNING: %s (--allow-dynamic)\n' "$why" >&2
        ;;
    *)
        say "warning: cannot tell whether $1 is static (neither readelf nor file is installed): the service expects the static build (./install.sh --build-only)"
        ;;
    esac
}

# A binary given is judged before anything is created.
if [[ -n "$binary" ]] && ! $uninstall && ! $build_only; then
    [[ -f "$binary" && -x "$binary" ]] || die "--binary $binary: not an executable file"
    check_static "$binary"
fi
if [[ -n "$root" ]]; then
    if [[ ! -d "$root" ]]; then
        mkdir -p -- "$root" || die "--root $root: cannot create it"
        say "created staging folder $root"
    fi
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
    elif ld --help 2>/dev/null | grep -q 'pack-relative-relocs'; then
        # A static PIE relocates itself at start: with classic RELA entries
        # it reads 700 kB of them, resident for good; packed (RELR, binutils
        # 2.38+, glibc 2.36+ at build time only, as the binary is static)
        # they take 10 kB. The binary stays position-independent (ASLR).
        rustflags="$rustflags -C link-arg=-Wl,-z,pack-relative-relocs"
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

# owner_applies OWNER:GROUP: whether set_owner would apply it here.
owner_applies() {
    staging || return 0
    getent passwd "${1%%:*}" >/dev/null && getent group "${1##*:}" >/dev/null
}

# shown_owner OWNER:GROUP: the owner as the lines printed say it: in a
# staging tree without those names it was only recorded, not applied.
shown_owner() {
    if owner_applies "$1"; then
        printf '%s' "$1"
    else
        printf '%s recorded in .brokerguard-owners, not applied' "$1"
    fi
}

# keep_dir MODE OWNER:GROUP PATH: like ensure_dir, but a folder that exists
# is the operator's: its mode and owner are reported, never changed.
keep_dir() {
    local mode=$1 owner=$2 path=$3 full="$root$3"
    record "$mode" "$owner" "$path"
    if [[ ! -d "$full" ]]; then
        mkdir -p "$full"
        chmod "$mode" "$full"
        set_owner "$owner" "$full"
        say "created $root$path/ ($mode $(shown_owner "$owner"))"
        return 0
    fi
    local have want=$mode
    have=$(stat -c '%04a' "$full")
    if owner_applies "$owner"; then
        have="$have $(stat -c '%U:%G' "$full")"
        want="$want $owner"
    fi
    if [[ "$have" == "$want" ]]; then
        say "kept existing $root$path/"
        return 0
    fi
    say "kept existing $root$path/ as it is: $have (install.sh creates $want; if that was not on purpose: sudo chmod $mode $root$path && sudo chown $owner $root$path)"
    local bits
    bits=$(stat -c '%a' "$full")
    if ((8#$bits & 8#007)); then
        say "warning: $root$path/ is open to every user on this host ($bits): the credentials in it are only as safe as their own modes"
    fi
    # The service enters as its group (or as anyone, through the other bits).
    if owner_applies "$owner" && (((8#$bits & 8#005) != 8#005)) &&
        { [[ "$(stat -c '%G' "$full")" != "$SERVICE_GROUP" ]] || (((8#$bits & 8#050) != 8#050)); }; then
        say "warning: the service (group $SERVICE_GROUP) cannot read $root$path/: it will not start"
    fi
}

# ensure_dir MODE OWNER:GROUP PATH
ensure_dir() {
    local mode=$1 owner=$2 path=$3 full="$root$3"
    record "$mode" "$owner" "$path"
    if [[ ! -d "$full" ]]; then
        mkdir -p "$full"
        chmod "$mode" "$full"
        set_owner "$owner" "$full"
        say "created $root$path/ ($mode $(shown_owner "$owner"))"
        return 0
    fi
    local had
    had=$(stat -c '%04a %U:%G' "$full")
    chmod "$mode" "$full"
    set_owner "$owner" "$full"
    if [[ "$(stat -c '%04a %U:%G' "$full")" == "$had" ]]; then
        say "kept existing $root$path/"
    else
        say "fixed $root$path/: $had -> $(stat -c '%04a %U:%G' "$full")"
    fi
}

# install_replacing MODE SRC DEST: install (atomically) unless identical.
# Returns 0 when it changed something, 1 when DEST was already identical.
install_replacing() {
    local mode=$1 src=$2 path=$3 full="$root$3"
    record "$mode" root:root "$path"
    if [[ -f "$full" ]] && cmp -s "$src" "$full"; then
        chmod "$mode" "$full"
        say "unchanged $root$path"
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
    say "$verb $root$path ($mode $(shown_owner root:root))"
    return 0
}

# install_if_missing MODE OWNER:GROUP SRC|"" DEST: never touches an existing file.
install_if_missing() {
    local mode=$1 owner=$2 src=$3 path=$4 full="$root$4"
    record "$mode" "$owner" "$path"
    if [[ -e "$full" ]]; then
        say "kept existing $root$path"
        return 0
    fi
    if [[ -n "$src" ]]; then
        install -m "$mode" "$src" "$full.new"
    else
        install -m "$mode" /dev/null "$full.new"
    fi
    set_owner "$owner" "$full.new"
    mv -f "$full.new" "$full"
    say "installed $root$path ($mode $(shown_owner "$owner"))"
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
    for path in "$UNIT_PATH" "$HTTP_DROPIN" "$BIN_PATH" "$EXAMPLE_PATH"; do
        if [[ -e "$root$path" ]]; then
            rm -f "$root$path"
            say "removed $root$path"
        else
            say "already absent $root$path"
        fi
        forget "$path"
    done
    if [[ -d "$root$DOC_DIR" ]]; then
        if rmdir "$root$DOC_DIR" 2>/dev/null; then
            say "removed $root$DOC_DIR/"
        else
            say "kept $root$DOC_DIR/ (it holds files install.sh did not put there)"
        fi
    fi
    forget "$DOC_DIR"
    if [[ -d "$root$DROPIN_DIR" ]] && rmdir "$root$DROPIN_DIR" 2>/dev/null; then
        say "removed $root$DROPIN_DIR/"
    fi
    forget "$DROPIN_DIR"
    if have_systemctl; then
        systemctl daemon-reload
        systemctl reset-failed brokerguard 2>/dev/null || true
        say "ran systemctl daemon-reload"
    fi
    if ! $purge; then
        say "kept $root$CONF_DIR/ (configuration and credentials) and $root$STATE_DIR/; --purge removes them"
        exit 0
    fi
    for path in "$CONF_DIR" "$STATE_DIR"; do
        if [[ -e "$root$path" ]]; then
            rm -rf -- "$root$path"
            say "removed $root$path/"
        else
            say "already absent $root$path/"
        fi
        forget "$path"
    done
    # Debian's rule for system users: never delete them. A freed UID/GID can
    # be handed to the next account created, which would then own any file
    # the old one left (a backup, a copy of the state folder).
    say "kept system user $SERVICE_USER and groups $SERVICE_GROUP, $CLIENTS_GROUP (a deleted system user's UID could be reused); to remove them by hand: sudo userdel $SERVICE_USER; sudo groupdel $CLIENTS_GROUP"
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
        say "created system user $SERVICE_USER (home $root$STATE_DIR, shell $NOLOGIN)"
    fi
    if getent group "$CLIENTS_GROUP" >/dev/null; then
        say "kept existing group $CLIENTS_GROUP"
    else
        groupadd --system "$CLIENTS_GROUP"
        say "created system group $CLIENTS_GROUP (for the trading bot's user: usermod -aG $CLIENTS_GROUP BOTUSER)"
    fi
    # Earlier instructions put the bot's user in the service's group, which
    # reads every secret.
    members=$(getent group "$SERVICE_GROUP" | cut -d: -f4 | tr ',' '\n' | grep -vx "$SERVICE_USER" | paste -sd, - || true)
    if [[ -n "$members" ]]; then
        say "warning: group $SERVICE_GROUP (reads the credentials) has other members: $members; move each to $CLIENTS_GROUP: sudo gpasswd -d USER $SERVICE_GROUP && sudo usermod -aG $CLIENTS_GROUP USER"
    fi
fi

# 2. The binary (replaced when it differs: that is how to upgrade).
binary_changed=false
if install_replacing 0755 "$binary" "$BIN_PATH"; then
    binary_changed=true
fi

# 3. Configuration and credentials: created once, then the operator's (the
#    folder's mode and owner included).
keep_dir "$CONF_DIR_MODE" "root:$SERVICE_GROUP" "$CONF_DIR"
install_if_missing 0640 "root:$SERVICE_GROUP" "$here/etc/brokerguard.toml" "$CONF_DIR/brokerguard.toml"
install_if_missing 0640 "root:$SERVICE_GROUP" "" "$CONF_DIR/credentials.env"

# 4. The commented example as a reference, replaced on every upgrade: the
#    operator's own file is never touched, so this is where new keys show.
ensure_dir 0755 root:root "$DOC_DIR"
if install_replacing 0644 "$here/etc/brokerguard.toml" "$EXAMPLE_PATH" && [[ -f "$root$CONF_DIR/brokerguard.toml" ]] &&
    ! cmp -s "$root$EXAMPLE_PATH" "$root$CONF_DIR/brokerguard.toml"; then
    say "the example may document keys your configuration lacks: diff -u $root$EXAMPLE_PATH $root$CONF_DIR/brokerguard.toml"
fi

# 5. State folder (systemd's StateDirectory= would create it too; having it
#    here makes the layout complete before the first start). Owner and mode
#    are the ones systemd gives it at every start (User=, Group=,
#    StateDirectoryMode=), so neither undoes the other.
ensure_dir 0700 "$SERVICE_USER:$CLIENTS_GROUP" "$STATE_DIR"

# 6. The unit.
unit_changed=false
if install_replacing 0644 "$here/systemd/brokerguard.service" "$UNIT_PATH"; then
    unit_changed=true
fi

# 7. The HTTP listener's port: the unit binds nothing (SocketBindDeny=any)
#    but the port [http] listen names, allowed by a drop-in that follows the
#    configuration (read through the installed binary's `config check`).
http_port=""
if [[ -f "$root$CONF_DIR/brokerguard.toml" ]]; then
    if effective=$("$root$BIN_PATH" config check --config "$root$CONF_DIR/brokerguard.toml" 2>/dev/null); then
        listen=$(awk '/^\[http\]$/ { h = 1; next } /^\[/ { h = 0 } h && $1 == "listen" { gsub(/"/, "", $3); print $3 }' <<<"$effective")
        [[ -n "$listen" ]] && http_port=${listen##*:}
    else
        say "warning: $root$CONF_DIR/brokerguard.toml does not pass config check; the HTTP listener's drop-in is left as it was"
        http_port=keep
    fi
fi
if [[ "$http_port" == keep ]]; then
    :
elif [[ -n "$http_port" ]]; then
    dropin=$(mktemp)
    printf '# Written by install.sh from [http] listen in %s: the port the\n# HTTP listener may bind (the unit denies every other).\n[Service]\nSocketBindAllow=tcp:%s\n' \
        "$CONF_DIR/brokerguard.toml" "$http_port" >"$dropin"
    ensure_dir 0755 root:root "$DROPIN_DIR"
    if install_replacing 0644 "$dropin" "$HTTP_DROPIN"; then
        unit_changed=true
        say "the HTTP listener may bind tcp port $http_port ($root$HTTP_DROPIN)"
    fi
    rm -f "$dropin"
elif [[ -e "$root$HTTP_DROPIN" ]]; then
    rm -f "$root$HTTP_DROPIN"
    rmdir "$root$DROPIN_DIR" 2>/dev/null || true
    forget "$DROPIN_DIR"
    unit_changed=true
    say "removed $root$HTTP_DROPIN ([http] is no longer configured)"
fi

if staging; then
    say "skipped systemctl daemon-reload and enable (--root)"
    say "owners: recorded in $owners_file (\"mode owner:group path\"); applied only where the user and group exist on this host"
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
  4. the bot:      sudo usermod -aG $CLIENTS_GROUP BOTUSER   (status.json and feeds.sock, no secrets)
  5. watch it:     systemctl status brokerguard; journalctl -u brokerguard -p err; brokerguard status
EOF
fi
