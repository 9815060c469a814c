#!/usr/bin/env bash
# opensc-check.sh — checks with real PC/SC software (pcscd + vsmartcard's vpcd
# driver, OpenSC's jpki driver, pkcs15-tool, pkcs11-tool, openssl) that the
# emulated card served by `shomei card serve-vpcd` is seen as a My Number Card.
#
# Usage:
#   scripts/opensc-check.sh                       end to end: install what is
#       missing, start an authority, issue a card with `shomei card issue`, run
#       a private pcscd, serve the card with `shomei card serve-vpcd`, check it
#       with the outside tools, stop everything. Uses $SHOMEI if set, else
#       target/debug/shomei (built if missing). If this shomei has no
#       `card serve-vpcd` yet, runs `cargo test -p shomei-card --test opensc`,
#       which does the same checks with the library's serve_vpcd.
#   scripts/opensc-check.sh --install-only        installs the Debian packages
#       (pcscd opensc vsmartcard-vpcd pcsc-tools libpcsclite-dev, plus openssl
#       and perl; libpcsclite-dev builds shomei's own PC/SC client).
#   scripts/opensc-check.sh --start-pcscd PORT DIR
#       starts a private pcscd (its own socket DIR/pcscd.comm, handed over by
#       systemd-style socket activation, and its own DIR/reader.conf with the
#       vpcd reader on PORT and PORT+1) in the background, waits until vpcd
#       listens, and prints PCSCD_PID=<pid> and PCSCLITE_CSOCK_NAME=<socket>
#       (export the latter for every PC/SC client). Log: DIR/pcscd.log,
#       without APDUs: with SHOMEI_PCSCD_APDU_LOG=1 in the environment pcscd
#       also logs every APDU (--apdu), which puts PINs and passwords (VERIFY)
#       and personal data (My Number and the basic four from the text AP) in
#       that log; use it only to debug with test cards.
#   scripts/opensc-check.sh --stop-pcscd DIR      stops that pcscd.
#   scripts/opensc-check.sh --check AUTH_CERT.der PIN [SIGN_CERT.der PASSWORD]
#       runs the tool checks against a card already in the first reader of the
#       pcscd at $PCSCLITE_CSOCK_NAME (or the system one).
#
# Needs root (or sudo) to install packages, and root for pcscd, which always
# writes /run/pcscd/pcscd.pid. The system pcscd, if any, is left alone.

set -euo pipefail

PACKAGES=(pcscd opensc vsmartcard-vpcd pcsc-tools libpcsclite-dev openssl perl)
VPCD_DRIVER=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
PKCS11_MODULE=${PKCS11_MODULE:-/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'opensc-check: %s\n' "$*" >&2; exit 1; }
usage() { printf 'opensc-check: %s (see --help)\n' "$*" >&2; exit 2; }

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "packages present: ${PACKAGES[*]}"
        return
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists first when they lack a candidate (fresh container).
    if ! apt-cache policy "${missing[@]}" 2>/dev/null | grep -q 'Candidate: [0-9]' \
        || apt-cache policy "${missing[@]}" 2>/dev/null | grep -q 'Candidate: (none)'; then
        as_root apt-get update -q
    fi
    if ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        as_root apt-get update -q
        as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# Is something listening on TCP port $1 (IPv4 or IPv6)?
listening() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 }
                      END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

start_pcscd() {
    local port=$1 dir=$2
    [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65535)) || die "bad port: $port"
    command -v pcscd >/dev/null || die "pcscd not installed (run $0 --install-only)"
    [[ -e $VPCD_DRIVER ]] || die "$VPCD_DRIVER missing (run $0 --install-only)"
    command -v perl >/dev/null || die "perl missing"
    if listening "$port" || listening "$((port + 1))"; then
        die "port $port or $((port + 1)) already in use"
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ -e $dir/pcscd.pid ]]; then
        stop_pcscd "$dir"
    fi
    # The vpcd reader (two slots: PORT and PORT+1). "/dev/null:PORT" makes
    # vpcd listen for the virtual card; "HOST:PORT" would make it connect out.
    cat >"$dir/reader.conf" <<EOF
FRIENDLYNAME "Shomei vpcd"
DEVICENAME   /dev/null:$port
LIBPATH      $VPCD_DRIVER
CHANNELID    $port
EOF
    local sock=$dir/pcscd.comm
    rm -f "$sock"
    # APDUs carry PINs and personal data: logged only on request.
    local apdu_log=()
    if [[ ${SHOMEI_PCSCD_APDU_LOG:-} == 1 ]]; then
        apdu_log=(--apdu)
        log "SHOMEI_PCSCD_APDU_LOG=1: pcscd logs APDUs (PINs, personal data) to $dir/pcscd.log"
    fi
    # pcscd 1.9 always listens on /run/pcscd/pcscd.comm unless it is handed a
    # listening socket the systemd way (LISTEN_FDS=1, LISTEN_PID, fd 3): perl
    # (always in Debian) creates ours and execs pcscd in the same process.
    # -c: only our reader.conf (not /etc/reader.conf.d). -f: foreground.
    perl -MIO::Socket::UNIX -MPOSIX -MFcntl -e '
        my $path = shift @ARGV;
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $path, Listen => 64)
            or die "cannot listen on $path: $!\n";
        chmod 0666, $path;
        if (fileno($s) != 3) { POSIX::dup2(fileno($s), 3) or die "dup2: $!\n"; }
        open(my $fd3, "<&=", 3) or die "fd 3: $!\n";
        my $flags = fcntl($fd3, F_GETFD, 0) or die "fcntl: $!\n";
        fcntl($fd3, F_SETFD, $flags & ~FD_CLOEXEC) or die "fcntl: $!\n";
        $ENV{LISTEN_FDS} = 1;
        $ENV{LISTEN_PID} = $$;
        delete $ENV{LISTEN_FDNAMES};
        exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n";
    ' "$sock" pcscd --foreground --debug "${apdu_log[@]}" --config "$dir/reader.conf" \
        >"$dir/pcscd.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/pcscd.pid"
    local i
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/pcscd.log" >&2
            rm -f "$dir/pcscd.pid"
            die "pcscd exited at start (log above)"
        fi
        if listening "$port" && [[ -S $sock ]]; then
            echo "PCSCD_PID=$pid"
            echo "PCSCLITE_CSOCK_NAME=$sock"
            return
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    cat "$dir/pcscd.log" >&2
    die "vpcd did not listen on port $port within 10 s"
}

stop_pcscd() {
    local dir=$1 pid
    [[ -e $dir/pcscd.pid ]] || return 0
    pid=$(<"$dir/pcscd.pid")
    rm -f "$dir/pcscd.pid"
    # Only our pcscd: the pid must still be a pcscd.
    if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == pcscd ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pcscd.comm"
}

# run_checks AUTH_DER PIN [SIGN_DER PASSWORD] — the outside-tool checks.
run_checks() {
    local auth_der=$1 pin=$2 sign_der=${3:-} password=${4:-}
    local work
    work=$(mktemp -d)
    # No OpenSC file cache shared with other runs (every JPKI card has the
    # same dummy serial number).
    local HOME=$work XDG_CACHE_HOME=$work/cache
    export HOME XDG_CACHE_HOME
    local i out
    for ((i = 0; i < 100; i++)); do
        out=$(opensc-tool --list-readers)
        awk '$2 == "Yes" { found = 1 } END { exit !found }' <<<"$out" && break
        sleep 0.3
    done
    echo "$out"
    awk '$2 == "Yes" { found = 1 } END { exit !found }' <<<"$out" || die "no card in any reader"

    log "opensc-tool --atr / --name"
    opensc-tool --reader 0 --atr | tee "$work/atr"
    grep -q '3b:e0:00:ff:81:31:fe:45:14' "$work/atr" || die "unexpected ATR"
    opensc-tool --reader 0 --name | tee "$work/name"
    grep -qi jpki "$work/name" || die "OpenSC did not pick its jpki driver"

    log "pkcs15-tool --list-certificates"
    pkcs15-tool --list-certificates | tee "$work/certs"
    grep -q 'User Authentication Certificate' "$work/certs" || die "auth certificate not listed"

    log "pkcs15-tool --read-certificate 01 (auth, no PIN)"
    pkcs15-tool --read-certificate 01 >"$work/auth.pem"
    openssl x509 -in "$work/auth.pem" -noout -subject -serial
    openssl x509 -in "$work/auth.pem" -outform DER -out "$work/auth.der"
    cmp "$work/auth.der" "$auth_der" || die "OpenSC read a different auth certificate"
    echo "auth certificate read by OpenSC == the card's ($(wc -c <"$auth_der") bytes)"

    log "pkcs15-tool --read-certificate 02 without the password (must fail)"
    if pkcs15-tool --read-certificate 02 2>&1 | grep -q 'BEGIN CERTIFICATE'; then
        die "sign certificate readable without the password"
    fi

    log "pkcs15-tool --list-pins / --verify-pin"
    pkcs15-tool --list-pins
    pkcs15-tool --verify-pin --auth-id 01 --pin "$pin" | tee "$work/verify"
    grep -qi 'incorrect' "$work/verify" && die "PIN rejected"

    log "pkcs11-tool: sign with the auth key (SHA256-RSA-PKCS), verify with openssl"
    pkcs11-tool --module "$PKCS11_MODULE" --list-slots | tee "$work/slots"
    local slot
    slot=$(awk '/^Slot [0-9]+ \(0x[0-9a-f]+\)/ { s = $3; gsub(/[():]/, "", s) }
                /token label/ && /User Authentication PIN/ { print s; exit }' "$work/slots")
    [[ -n $slot ]] || die "no PKCS#11 slot for the User Authentication PIN"
    printf 'Shomei: signed through PC/SC by OpenSC\n' >"$work/data"
    pkcs11-tool --module "$PKCS11_MODULE" --slot "$slot" --login --pin "$pin" \
        --sign --mechanism SHA256-RSA-PKCS --id 01 \
        --input-file "$work/data" --output-file "$work/sig"
    openssl x509 -in "$work/auth.pem" -noout -pubkey >"$work/auth.pub"
    openssl dgst -sha256 -verify "$work/auth.pub" -signature "$work/sig" "$work/data"

    if [[ -n $sign_der ]]; then
        log "pkcs15-tool: sign certificate after the signing password"
        pkcs15-tool --verify-pin --auth-id 02 --pin "$password" --read-certificate 02 \
            | sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' >"$work/sign.pem"
        openssl x509 -in "$work/sign.pem" -outform DER -out "$work/sign.der"
        cmp "$work/sign.der" "$sign_der" || die "OpenSC read a different sign certificate"
        log "pkcs11-tool: sign with the signing key, verify with openssl"
        slot=$(awk '/^Slot [0-9]+ \(0x[0-9a-f]+\)/ { s = $3; gsub(/[():]/, "", s) }
                    /token label/ && /Digital Signature PIN/ { print s; exit }' "$work/slots")
        [[ -n $slot ]] || die "no PKCS#11 slot for the Digital Signature PIN"
        pkcs11-tool --module "$PKCS11_MODULE" --slot "$slot" --login --pin "$password" \
            --sign --mechanism SHA256-RSA-PKCS --id 02 \
            --input-file "$work/data" --output-file "$work/sig2"
        openssl x509 -in "$work/sign.pem" -noout -pubkey >"$work/sign.pub"
        openssl dgst -sha256 -verify "$work/sign.pub" -signature "$work/sig2" "$work/data"
    fi
    rm -rf "$work"
    log "all OpenSC checks passed"
}

# A free TCP port P with P+1 free too (vpcd's second slot).
free_port_pair() {
    local p
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! listening "$p" && ! listening "$((p + 1))"; then
            echo "$p"
            return
        fi
    done
    die "no free port"
}

end_to_end() {
    install_packages
    local shomei=${SHOMEI:-$ROOT/target/debug/shomei}
    if [[ ! -x $shomei ]]; then
        log "building shomei"
        (cd "$ROOT" && cargo build --bin shomei)
    fi
    if ! "$shomei" card serve-vpcd --help >/dev/null 2>&1; then
        log "$shomei has no 'card serve-vpcd' yet: running the library integration test instead"
        cd "$ROOT"
        exec cargo test -p shomei-card --test opensc -- --nocapture
    fi

    # Globals: the EXIT trap runs after this function has returned.
    WORK=$(mktemp -d)
    PIDS=()
    cleanup() {
        local p
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
        stop_pcscd "$WORK/pcscd"
        rm -rf "$WORK"
    }
    trap cleanup EXIT
    local work=$WORK

    log "authority"
    local http
    http=$(free_port_pair)
    "$shomei" authority init --data "$work/authority" >/dev/null
    "$shomei" authority serve --data "$work/authority" --listen "127.0.0.1:$http" \
        >"$work/authority.log" 2>&1 &
    PIDS+=($!)
    local i
    for ((i = 0; i < 150; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$http") 2>/dev/null; then break; fi
        sleep 0.2
    done

    log "issuing a card"
    "$shomei" card issue --authority "http://127.0.0.1:$http" \
        --operator-token-file "$work/authority/operator.token" \
        --name "YAMADA TARO" --address "Tokyo" --birth 1990-04-01 --sex 1 \
        --sign-password ABC123 --auth-pin 1234 --out "$work/card.json" >/dev/null
    "$shomei" card read-cert --card "$work/card.json" --kind auth --out "$work/auth.der" >/dev/null
    "$shomei" card read-cert --card "$work/card.json" --kind sign --password ABC123 \
        --out "$work/sign.der" >/dev/null

    log "pcscd with vpcd"
    local port out
    port=$(free_port_pair)
    out=$(start_pcscd "$port" "$work/pcscd")
    echo "$out"
    PCSCLITE_CSOCK_NAME=$(sed -n 's/^PCSCLITE_CSOCK_NAME=//p' <<<"$out")
    export PCSCLITE_CSOCK_NAME

    log "shomei card serve-vpcd --port $port"
    "$shomei" card serve-vpcd --card "$work/card.json" --host 127.0.0.1 --port "$port" \
        >"$work/serve.log" 2>&1 &
    PIDS+=($!)

    run_checks "$work/auth.der" 1234 "$work/sign.der" ABC123
}

case ${1:-} in
    --install-only) install_packages ;;
    --start-pcscd)
        (($# == 3)) || usage "usage: $0 --start-pcscd PORT DIR"
        start_pcscd "$2" "$3"
        ;;
    --stop-pcscd)
        (($# == 2)) || usage "usage: $0 --stop-pcscd DIR"
        stop_pcscd "$2"
        ;;
    --check)
        (($# == 3 || $# == 5)) || usage "usage: $0 --check AUTH_CERT.der PIN [SIGN_CERT.der PASSWORD]"
        run_checks "$2" "$3" "${4:-}" "${5:-}"
        ;;
    "") end_to_end ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0" ;;
    *) usage "unknown option $1" ;;
esac
