#!/usr/bin/env bash
# Regenerates the committed seed corpora (seeds/<target>/) and the fixtures
# the targets embed (fixtures/ocsp_issuer.der, fixtures/cms_content.txt)
# with the openssl CLI and python3. The output is not byte-for-byte
# reproducible (fresh keys); commit what it writes, seeds and fixtures
# together (the ocsp_response seeds are signed by fixtures/ocsp_issuer.der).
#
#   fuzz/gen-seeds.sh
set -euo pipefail
cd "$(dirname "$0")"
FUZZ=$PWD
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
S=$FUZZ/seeds
# jpki_cert's shomei-card-*.der seeds and fixtures/shomei_*_root.der come
# from a Shōmei authority (`shomei card read-cert`, DIR/ca/*.der) and are
# kept; the rest is regenerated.
rm -rf "$S"/{csr,ocsp_request,ocsp_response,cms,crl,apdu,basic_four_json,verified_crl}
rm -f "$S"/jpki_cert/seedcert-*.der
mkdir -p "$S"/{csr,ocsp_request,ocsp_response,cms,crl,apdu,basic_four_json,verified_crl,jpki_cert} "$FUZZ/fixtures"
q() { # quiet unless it fails
  local out
  out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; echo "gen-seeds: failed: $*" >&2; return 1; }
}

# ---------------------------------------------------------------- a test CA
cat > ext.cnf <<'CNF'
[ocsp]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
[ee]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 36500 -sha256 -set_serial 1 \
  -subj "/C=JP/O=Shomei Fuzz/CN=Shomei Fuzz CA" -addext "basicConstraints=critical,CA:true" \
  -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl x509 -in ca.pem -outform DER -out "$FUZZ/fixtures/ocsp_issuer.der"
issue() { # name keyalg-args extsection serial
  local name=$1 ext=$3 serial=$4
  # shellcheck disable=SC2086
  q openssl req -new -newkey $2 -nodes -keyout "$name.key" -out "$name.csr" -subj "/C=JP/CN=$name"
  q openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -set_serial "$serial" -days 36500 \
    -sha256 -extfile ext.cnf -extensions "$ext" -out "$name.pem"
}
issue ocsp rsa:2048 ocsp 2
issue signer rsa:2048 ee 3
issue signer-ec "ec -pkeyopt ec_paramgen_curve:P-256" ee 4

# ---------------------------------------------------------------- csr
q openssl req -new -newkey rsa:2048 -nodes -keyout k1.key -subj "/CN=ABC123" -sha256 -outform DER -out "$S/csr/rsa2048.der"
q openssl req -new -key k1.key -subj "/C=JP/O=Shomei/CN=holder" -sha256 \
  -addext "keyUsage=critical,digitalSignature" -addext "subjectAltName=DNS:example.jp" -outform DER -out "$S/csr/rsa2048-ext.der"
q openssl req -new -key signer-ec.key -subj "/CN=ec" -sha256 -outform DER -out "$S/csr/ec-p256.der"

# ---------------------------------------------------------------- ocsp_request / ocsp_response
q openssl ocsp -issuer ca.pem -serial 3 -reqout "$S/ocsp_request/nonce.der"
q openssl ocsp -issuer ca.pem -serial 3 -no_nonce -reqout "$S/ocsp_request/no-nonce.der"
q openssl ocsp -issuer ca.pem -sha256 -serial 3 -serial 4 -serial 0x1234567890 -reqout "$S/ocsp_request/multi-sha256.der"
q openssl ocsp -issuer ca.pem -cert signer.pem -signer signer.pem -signkey signer.key -reqout "$S/ocsp_request/signed.der"

# index: 3 good, 4 revoked (keyCompromise)
printf 'V\t21260101000000Z\t\t03\tunknown\t/C=JP/CN=signer\n' > index.txt
printf 'R\t21260101000000Z\t261120000000Z,keyCompromise\t04\tunknown\t/C=JP/CN=signer-ec\n' >> index.txt
respond() { # request out extra-args...
  local req=$1 out=$2; shift 2
  q openssl ocsp -index index.txt -CA ca.pem -reqin "$req" -respout "$out" -ndays 36500 "$@"
}
respond "$S/ocsp_request/nonce.der" "$S/ocsp_response/by-issuer.der" -rsigner ca.pem -rkey ca.key -resp_no_certs
respond "$S/ocsp_request/multi-sha256.der" "$S/ocsp_response/by-issuer-keyid.der" -rsigner ca.pem -rkey ca.key -resp_no_certs -resp_key_id
respond "$S/ocsp_request/no-nonce.der" "$S/ocsp_response/delegated.der" -rsigner ocsp.pem -rkey ocsp.key
respond "$S/ocsp_request/multi-sha256.der" "$S/ocsp_response/delegated-keyid.der" -rsigner ocsp.pem -rkey ocsp.key -resp_key_id
# tryLater (status 3) without responseBytes
printf '\x30\x03\x0a\x01\x03' > "$S/ocsp_response/try-later.der"

# ---------------------------------------------------------------- cms
printf 'Shomei fuzz content: 署名対象\n' > "$FUZZ/fixtures/cms_content.txt"
C=$FUZZ/fixtures/cms_content.txt
q openssl cms -sign -binary -in "$C" -signer signer.pem -inkey signer.key -md sha256 -outform DER -out "$S/cms/rsa-attrs.p7s"
q openssl cms -sign -binary -in "$C" -signer signer.pem -inkey signer.key -md sha256 -noattr -outform DER -out "$S/cms/rsa-noattr.p7s"
q openssl cms -sign -binary -in "$C" -signer signer-ec.pem -inkey signer-ec.key -md sha256 -keyid -nosmimecap -outform DER -out "$S/cms/ec-keyid.p7s"
q openssl cms -sign -binary -in "$C" -signer signer.pem -inkey signer.key -md sha384 -certfile ca.pem -outform DER -out "$S/cms/rsa-sha384-chain.p7s"

# ---------------------------------------------------------------- crl
mkdir -p ca/newcerts && cp index.txt ca/index.txt && echo 1000 > ca/crlnumber
cat > ca.cnf <<CNF
[ca]
default_ca = fz
[fz]
database = $W/ca/index.txt
crlnumber = $W/ca/crlnumber
new_certs_dir = $W/ca/newcerts
default_md = sha256
default_crl_days = 3650
crl_extensions = crlext
[crlext]
authorityKeyIdentifier = keyid:always
issuingDistributionPoint = critical,@idp
[idp]
fullname = URI:http://127.0.0.1:8700/crl/auth-0.crl
onlysomereasons = keyCompromise
CNF
q openssl ca -config ca.cnf -gencrl -cert ca.pem -keyfile ca.key -out crl.pem
openssl crl -in crl.pem -outform DER -out "$S/crl/idp.der"
sed -i '/issuingDistributionPoint/d' ca.cnf
: > ca/index.txt
q openssl ca -config ca.cnf -gencrl -cert ca.pem -keyfile ca.key -out crl2.pem
openssl crl -in crl2.pem -outform DER -out "$S/crl/empty.der"

# ---------------------------------------------------------------- basic_four_json
printf '%s' '{"name":"山田 太郎","address":"東京都千代田区千代田1-1","birth_date":"1990-04-01","sex":"2"}' > "$S/basic_four_json/valid.json"
printf '%s' '{"name":"Yamada　 Taro","address":"  Osaka ","birth_date":"2000-02-29","sex":1}' > "$S/basic_four_json/spaces-number-sex.json"
printf '%s' '{"name":"","address":"a","birth_date":"1990-4-1","sex":9,"extra":[1,2.5e3,null,true]}' > "$S/basic_four_json/invalid.json"

# ---------------------------------------------------------------- apdu
# The applet's byte, then length-prefixed APDU sequences (see
# fuzz_targets/apdu.rs); 00 = power cycle.
python3 - "$S/apdu" "$W/signer.pem" <<'PY'
import hashlib, os, subprocess, sys
out, pem = sys.argv[1], sys.argv[2]
AID = bytes.fromhex("D392F000260100000001")
def apdu(h, data=b"", le=None):
    b = bytes.fromhex(h)
    if data: b += bytes([len(data)]) + data
    if le is not None: b += bytes([le])
    return b
sel_ap = apdu("00A4040C", AID)
def sel(fid): return apdu("00A4020C", fid.to_bytes(2, "big"))
def read(off, le): return apdu("00B0" + off.to_bytes(2, "big").hex(), le=le)
def update(off, data): return apdu("00D6" + off.to_bytes(2, "big").hex(), data)
digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(b"fuzz").digest()
cert = subprocess.run(["openssl", "x509", "-in", pem, "-outform", "DER"], capture_output=True, check=True).stdout
def write_cert(fid, der):
    cmds = [sel(fid)]
    for off in range(0, len(der), 200):
        cmds.append(update(off, der[off:off + 200]))
    return cmds
def seq(name, cmds, image=0):
    # First byte: the applet (0 card, 1 card chip with the phone token,
    # 2 the phone's applet over the secure element).
    b = bytes([image])
    for c in cmds:
        assert len(c) < 256
        b += bytes([len(c)]) + c
    with open(os.path.join(out, name), "wb") as f: f.write(b)
seq("read-token-and-keys", [sel_ap, sel(0x0006), read(0, 0), sel(0x0017), apdu("00478100", le=0),
    apdu("00C00000", le=0), sel(0x001A), apdu("00478100", le=0x80), apdu("00C00000", le=0x80), apdu("00C00000", le=0)])
seq("verify-and-sign", [sel_ap, sel(0x0018), apdu("00200080"), apdu("00200080", b"1234"),
    sel(0x0017), apdu("802A0080", digest_info, le=0), sel(0x001B), apdu("00200080", b"ABC123"),
    sel(0x001A), apdu("802A0080", digest_info), apdu("00C00000", le=0)])
seq("personalise-activate", [sel_ap] + write_cert(0x000A, cert) + write_cert(0x000B, cert[:300])
    + [sel(0x000A), read(0, 0), read(0x0100, 0), apdu("000E0080"), update(0x80, b"\x30\x82"),
       apdu("00440000"), sel(0x000A), read(0, 0x40), sel(0x0001), read(0, 0)])
seq("wrong-pins-change-reset", [sel_ap, sel(0x0018), apdu("00200080", b"0000"), apdu("00200080", b"9999"),
    apdu("00200080", b"1234"), apdu("00240180", b"5678"), b"", sel_ap, sel(0x001B),
    apdu("00200080", b"WRONG1"), apdu("00200080", b"ABC123"), apdu("00240180", b"NEWPASS99"),
    sel(0x0001), read(0, 0), apdu("00200080", le=0)])
seq("junk", [b"\x00", apdu("00A4040C", b"\xA0\x00"), apdu("0012"), apdu("9020"), apdu("00B08000", le=1),
    apdu("00A4020C", b"\x00\x06"), apdu("00A4000C", b"\x3F\x00")])# The other APs (text, visual, manufacture-number): personalise a face,
# activate (PIN A/B derived), read with each PIN, wrong shapes.
TEXT = apdu("00A4040C", bytes.fromhex("D3921000310001010408"))
VISUAL = apdu("00A4040C", bytes.fromhex("D3921000310001010402"))
MFR = apdu("00A4040C", bytes.fromhex("D3921000310001010100"))
def tlv(tag, v):
    n = len(v)
    ln = bytes([n]) if n < 0x80 else (b"\x81" + bytes([n]) if n < 0x100 else b"\x82" + n.to_bytes(2, "big"))
    return tag.to_bytes(2, "big") + ln + v
my_number = tlv(0xDF10, b"123456789018") + b"\xFF\xFF"
attrs = tlv(0xFF20, tlv(0xDF21, b"h") + tlv(0xDF22, "鈴木".encode()) + tlv(0xDF23, b"x")
    + tlv(0xDF24, b"19850615") + tlv(0xDF25, b"1"))
face = tlv(0xFF40, b"".join(tlv(t, v) for t, v in [(0xDF41, b"h"), (0xDF42, b"19850615"), (0xDF43, b"1"),
    (0xDF44, b"k"), (0xDF45, b"n"), (0xDF46, b"a"), (0xDF47, b"p"), (0xDF48, b"s"), (0xDF49, b"20350615"), (0xDF4A, b"1234")]))
seq("other-aps-personalise-activate-read", [TEXT] + write_cert(0x0001, my_number) + write_cert(0x0002, attrs)
    + [VISUAL] + write_cert(0x0002, face) + [sel_ap] + write_cert(0x000A, cert[:200]) + write_cert(0x000B, cert[:200])
    + [apdu("00440000"), TEXT, sel(0x0011), apdu("00200080"), apdu("00200080", b"1234"), sel(0x0001), read(0, 17),
       sel(0x0002), read(0, 0), apdu("00240180", b"2468"), sel(0x0015), apdu("00200080", b"85061520351234"),
       VISUAL, sel(0x0013), apdu("00200080", b"123456789018"), sel(0x0002), read(0, 0), sel(0x0012),
       apdu("00200080", b"00000000000000"), MFR, apdu("00B2010C", le=0), b"", MFR, apdu("00B2010C", le=0)])
seq("other-aps-bad-shapes", [TEXT, read(0, 4), sel(0x0001), read(0, 4), read(0x7FFF, 1), apdu("00B08000", le=1),
    sel(0x0011), apdu("00200080", b"0000"), apdu("00200080", b"1"), apdu("00200080", b"9999"), apdu("00200080", le=0),
    apdu("00240180", b"12"), sel(0x0014), apdu("00200080"), VISUAL, sel(0x0001), sel(0x0003), read(0, 0),
    apdu("00CA0000"), apdu("00C00000", le=0), MFR, apdu("00B2020C", le=0), apdu("00B20114", le=0),
    apdu("00B20108", le=0), apdu("00B2010C", le=4), apdu("00B2010C"), sel(0x0001), apdu("00A4040C", b"\xD3\x92")])
# The phone token on the card chip, and the phone's applet over the secure
# element (PINs and keys in the element; the auth certificate behind the PIN).
phone_use = [sel_ap, sel(0x0006), read(0, 0), sel(0x000A), read(0, 0), sel(0x000B), read(0, 0), sel(0x0018),
    apdu("00200080"), apdu("00200080", b"0000"), apdu("00200080", b"ab"), apdu("00200080", b"1234"),
    sel(0x000A), read(0, 0), read(0x0100, 0), sel(0x0017), apdu("00478100", le=0), apdu("00C00000", le=0),
    apdu("802A0080", digest_info, le=0), sel(0x001B), apdu("00200080", b"ABC123"), sel(0x0001), read(0, 0),
    sel(0x001A), apdu("802A0080", digest_info), apdu("00C00000", le=0), b"", sel_ap, sel(0x0017),
    apdu("802A0080", digest_info, le=0)]
seq("phone-token-verify-read-sign", phone_use, image=1)
seq("phone-applet-verify-read-sign", phone_use, image=2)
seq("phone-applet-change-block-write", [sel_ap, sel(0x0018), apdu("00200080", b"1234"), apdu("00240180", b"5678"),
    apdu("00200080", b"1234"), apdu("00200080", b"9999"), apdu("00200080", b"0000"), apdu("00200080"),
    apdu("00200080", b"5678"), sel(0x0017), apdu("802A0080", digest_info, le=0), sel(0x000A),
    update(0, b"\x30\x82"), apdu("00440000"), apdu("000E0080"), sel(0x001B), apdu("00200080", b"WRONG1"),
    apdu("00240180", b"NEWPASS99"), apdu("00200080", le=0), apdu("00B08000", le=1)], image=2)
PY
# The empty "APDU" in wrong-pins-change-reset is written as length 0: a power cycle.

find "$S" "$FUZZ/fixtures" -type f -printf "%s\n" | awk '{n++; s+=$1} END {printf "wrote %d seed/fixture files, %d bytes\n", n, s}'

# ---------------------------------------------------------------- verifier
cp "$S"/crl/* "$S"/verified_crl/
for f in "$S"/cms/*.p7s; do
  n=$(basename "$f" .p7s)
  openssl pkcs7 -inform DER -in "$f" -print_certs 2>/dev/null |
    awk -v d="$W" -v n="$n" 'BEGIN{c=0;fn=""} /BEGIN CERT/{c++; fn=d "/seedcert-" n "-" c ".pem"} fn!=""{print > fn} /END CERT/{fn=""}'
done
for p in "$W"/seedcert-*.pem; do
  if [ -e "$p" ]; then openssl x509 -in "$p" -outform DER -out "$S/jpki_cert/$(basename "$p" .pem).der"; fi
done
