// Independent ISO 18013-5 check of a Shōmei DeviceResponse with @auth0/mdl
// (pinned in package.json / package-lock.json; `npm install` in this directory).
//
//   node check_auth0.mjs --response R.cbor --transcript ST.cbor --iaca IACA.pem \
//        [--reader-key-hex HEX] [--now 2026-11-21T04:00:00Z]
//
// --response     the DeviceResponse bytes (as decrypted by the reader)
// --transcript   SessionTranscriptBytes: #6.24(bstr .cbor SessionTranscript)
// --iaca         the trusted IACA certificate(s), PEM
// --reader-key-hex  the reader's ephemeral private scalar (64 hex digits);
//                needed only to check a deviceMac (EMacKey = ECDH(EReaderKey.priv,
//                SDeviceKey.pub))
// --now          the verification time (default: the real clock)
//
// Prints exactly one JSON line on stdout. It never prints element values
// (personal data): only namespaces, identifiers and CBOR value types.
import crypto from 'node:crypto';
import fs from 'node:fs';

function args(argv) {
  const out = {};
  for (let i = 2; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`bad argument ${argv[i]}`);
    }
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

// @auth0/mdl reads the clock itself (`new Date()` for the MSO validity
// window, and pkijs' chain engine for the certificates) and has no option
// for the verification time. Our tests are deterministic (their certificates
// and MSO are made for a fixed instant), so we pin the clock of this process.
// Only this script does that; the library's checks are unchanged.
function pinClock(iso) {
  const fixed = Date.parse(iso);
  if (Number.isNaN(fixed)) throw new Error(`bad --now ${iso}`);
  const RealDate = Date;
  class PinnedDate extends RealDate {
    constructor(...a) {
      if (a.length === 0) super(fixed);
      else super(...a);
    }
    static now() {
      return fixed;
    }
  }
  globalThis.Date = PinnedDate;
}

function typeOf(v) {
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof Map) return 'map';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  if (v === null) return 'null';
  if (typeof v === 'object' && v.constructor && v.constructor.name) return v.constructor.name;
  return typeof v; // boolean, number, string, bigint
}

// COSE_Key (RFC 9053) of the reader's ephemeral key, with its private part,
// the form @auth0/mdl's calculateEphemeralMacKey expects.
function readerCoseKey(hex) {
  const d = Buffer.from(hex, 'hex');
  if (d.length !== 32) throw new Error('--reader-key-hex must be 32 bytes');
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.setPrivateKey(d);
  const pub = ecdh.getPublicKey(); // 04 || x || y
  const bstr32 = (b) => Buffer.concat([Buffer.from([0x58, 0x20]), b]);
  // {1: 2 (EC2), -1: 1 (P-256), -2: x, -3: y, -4: d}
  return Buffer.concat([
    Buffer.from([0xa5, 0x01, 0x02, 0x20, 0x01, 0x21]), bstr32(pub.subarray(1, 33)),
    Buffer.from([0x22]), bstr32(pub.subarray(33, 65)),
    Buffer.from([0x23]), bstr32(d),
  ]);
}

async function main() {
  const a = args(process.argv);
  if (a.now) pinClock(a.now);
  const { Verifier } = await import('@auth0/mdl');
  const response = fs.readFileSync(a.response);
  const transcript = fs.readFileSync(a.transcript);
  const iacaPem = fs.readFileSync(a.iaca, 'utf8');
  const options = { encodedSessionTranscript: transcript };
  if (a['reader-key-hex']) options.ephemeralReaderKey = readerCoseKey(a['reader-key-hex']);

  const out = { checker: '@auth0/mdl 3.0.1', valid: false };

  // 1. The library's own verdict: verify() throws on the first failed check.
  let parsed;
  try {
    parsed = await new Verifier([iacaPem]).verify(response, options);
    out.valid = true;
  } catch (e) {
    out.error = `${e.name}: ${e.message}`;
  }

  // 2. Every check it runs, passed or failed (with a callback verify()
  // records instead of throwing), and what it decoded (its diagnostics).
  const checks = [];
  try {
    await new Verifier([iacaPem]).verify(response, { ...options, onCheck: (c) => checks.push(c) });
  } catch (e) {
    out.checks_error = `${e.name}: ${e.message}`;
  }
  try {
    const diag = await new Verifier([iacaPem]).getDiagnosticInformation(response, options);
    const doc = parsed ? parsed.documents[0] : undefined;
    out.doc_type = doc ? doc.docType : undefined;
    out.documents = diag.general.documents;
    out.issuer_auth_valid = diag.issuerSignature.isValid;
    out.device_auth_valid = diag.deviceSignature ? diag.deviceSignature.isValid : false;
    out.data_integrity_valid = diag.dataIntegrity.isValid;
    out.disclosed_count = diag.dataIntegrity.disclosedAttributes;
    out.issuer_alg = diag.issuerSignature.alg;
    out.device_alg = diag.deviceSignature ? diag.deviceSignature.alg : undefined;
    out.disclosed = {};
    out.types = {};
    for (const attr of diag.attributes) {
      (out.disclosed[attr.ns] ||= []).push(attr.id);
      out.types[`${attr.ns}/${attr.id}`] = typeOf(attr.value);
      if (!attr.isValid) (out.digest_mismatch ||= []).push(`${attr.ns}/${attr.id}`);
    }
    for (const ids of Object.values(out.disclosed)) ids.sort();
  } catch (e) {
    out.diagnostic_error = `${e.name}: ${e.message}`;
  }
  out.passed = checks.filter((c) => c.status === 'PASSED').map((c) => c.id);
  out.failed = checks.filter((c) => c.status === 'FAILED').map((c) => c.id);
  out.passed = [...new Set(out.passed)].sort();
  out.failed = [...new Set(out.failed)].sort();

  // Which device authentication the response carries (parsed by the library).
  try {
    const { parse } = await import('@auth0/mdl');
    const doc = parse(response).documents[0];
    const da = doc && doc.deviceSigned ? doc.deviceSigned.deviceAuth : undefined;
    out.device_auth = da && da.deviceSignature ? 'signature' : da && da.deviceMac ? 'mac' : null;
    out.doc_type ||= doc ? doc.docType : undefined;
  } catch (e) {
    out.parse_error = `${e.name}: ${e.message}`;
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((e) => {
  process.stdout.write(`${JSON.stringify({ checker: '@auth0/mdl 3.0.1', valid: false, error: String(e && e.message) })}\n`);
  process.exit(1);
});
