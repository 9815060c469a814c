#!/usr/bin/env python3
"""Independent ISO 18013-5 check of a Shōmei DeviceResponse with pymdoccbor.

    python3 check_pymdoccbor.py --response R.cbor --iaca IACA.pem [--now 2026-11-21T04:00:00Z]

pymdoccbor (PyPI, pinned by scripts/test.sh) verifies, per document, the
issuer signature (the MSO's COSE_Sign1 with the DS certificate from the
x5chain header), that the DS certificate is signed by a trusted IACA and
valid now, and the SHA-256 value digest of every disclosed IssuerSignedItem
against the MSO's valueDigests.

What pymdoccbor does not check (limitations of the library, not of the
response; we do not fill them in here, the other checker covers them):
device authentication (deviceSignature / deviceMac), the MSO validityInfo
window, the IACA's own validity.

Prints exactly one JSON line on stdout. It never prints element values
(personal data): only namespaces, identifiers and CBOR value types.
"""

import argparse
import datetime as _dt
import json
import logging
import sys

import cbor2
from cryptography import x509

import pymdoccbor.mso.verifier as mso_verifier
from pymdoccbor.mdoc.verifier import MdocCbor

CHECKER = "pymdoccbor 1.4.0"


def pin_clock(iso):
    """pymdoccbor reads the clock (datetime.now) for the DS certificate's
    validity and has no parameter for the verification time. Our tests are
    deterministic (certificates made for a fixed instant), so we pin the
    clock that module sees; its checks are unchanged."""
    fixed = _dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))

    class PinnedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return fixed if tz is None else fixed.astimezone(tz)

    mso_verifier.datetime = PinnedDatetime


def type_of(v):
    if isinstance(v, cbor2.CBORTag):
        return f"tag{v.tag}"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (bytes, bytearray)):
        return "bytes"
    if isinstance(v, str):
        return "string"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, (list, tuple)):
        return "array"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--response", required=True)
    p.add_argument("--iaca", required=True)
    p.add_argument("--now")
    a = p.parse_args()
    if a.now:
        pin_clock(a.now)
    # pymdoccbor reports why a document failed only in its log (messages
    # name elements and certificates, never values); keep them for the JSON.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    log_errors = []

    class Keep(logging.Handler):
        def emit(self, record):
            log_errors.append(record.getMessage())

    logging.getLogger("pymdoccbor").addHandler(Keep(level=logging.ERROR))

    with open(a.iaca, "rb") as f:
        roots = x509.load_pem_x509_certificates(f.read())
    with open(a.response, "rb") as f:
        response = f.read()

    out = {"checker": CHECKER, "valid": False}
    try:
        mdoc = MdocCbor()
        mdoc.loads(response)
        ok = mdoc.verify(trusted_root_certs=roots, verify_hashes=True)
        docs = mdoc.documents
        out["documents"] = len(docs)
        out["documents_invalid"] = len(mdoc.documents_invalid)
        out["status"] = mdoc.status
        # pymdoccbor reports success for a response with no documents at
        # all; that is no proof of anything, so we require one.
        ok = ok and len(docs) > 0
        disclosed, types, failed = {}, {}, []
        verified = total = 0
        for doc in docs + [
            d for d in mdoc.documents_invalid if hasattr(d, "issuersigned")
        ]:
            out.setdefault("doc_type", doc.doctype)
            digests = doc.issuersigned.issuer_auth.payload_as_dict.get(
                "valueDigests", {}
            )
            for ns, items in doc.issuersigned.namespaces.items():
                # pymdoccbor only logs a warning (and counts nothing) for a
                # disclosed namespace that has no valueDigests in the MSO;
                # such items are unauthenticated, so we fail them here.
                if ns not in digests:
                    ok = False
                    failed.append(f"{ns}: no valueDigests in the MSO")
                for item in items:
                    raw = item.value if isinstance(item, cbor2.CBORTag) else item
                    decoded = cbor2.loads(raw)
                    ident = decoded["elementIdentifier"]
                    disclosed.setdefault(ns, []).append(ident)
                    types[f"{ns}/{ident}"] = type_of(decoded["elementValue"])
            # MobileDocument.verify checks hashes only after the signature
            # passed: no hash results on a failed document = bad signature.
            if not doc.is_valid and doc.hash_verification is None:
                out["issuer_signature_failed"] = True
            hv = doc.hash_verification or {}
            verified += hv.get("verified", 0)
            total += hv.get("total", 0)
            for fail in hv.get("failed", []):
                failed.append(
                    f"{fail.get('namespace')}/{fail.get('elementIdentifier')}: "
                    f"{fail.get('reason')}"
                )
        for ids in disclosed.values():
            ids.sort()
        out["disclosed"] = disclosed
        out["types"] = types
        out["digests_verified"] = verified
        out["digests_total"] = total
        out["failed"] = failed
        out["valid"] = bool(ok)
    except Exception as e:  # the verdict is the JSON, not a traceback
        out["error"] = f"{type(e).__name__}: {e}"
    out["log_errors"] = log_errors
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
