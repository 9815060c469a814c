//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Written as data here rather than generated: the surface is small and the
//! contract (`CONTRACT.md`) is the source of truth; a test checks that every
//! route in [`crate::api::router`] appears here.

use serde_json::{Value, json};

/// Paths documented (kept in step with the router by a test).
pub const PATHS: &[&str] = &[
    "/healthz",
    "/openapi.json",
    "/ca/{file}",
    "/ca/card-face.pem",
    "/crl/iaca.crl",
    "/crl/{class}/{file}",
    "/ocsp/{root}",
    "/ocsp/{root}/{request}",
    "/v1/cards",
    "/v1/challenges",
    "/v1/certificates/{serial}/renew",
    "/v1/certificates/{serial}",
    "/v1/certificates/{serial}/{action}",
    "/v1/holders/{id}",
    "/v1/holders/{id}/events",
    "/v1/holders/{id}/events/stream",
    "/v1/holders/{id}/contact",
    "/v1/phones",
    "/v1/devices/{id}",
    "/v1/devices/{id}/sync",
    "/v1/devices/{id}/mdoc",
    "/status/mdoc",
    "/v1/devices/{id}/wipe",
    "/v1/devices/{id}/wiped",
    "/v1/devices/{id}/retire",
    "/v1/relying-parties",
    "/v1/linkage/{serial}",
    "/v1/reader-certificates",
    "/v1/reader-certificates/{serial}/revoke",
    "/ca/reader-ca.crl",
];

/// The document.
pub fn document() -> Value {
    let problem = json!({"description": "Problem (RFC 9457) with a stable `code`", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let op = json!([{"operator": []}]);
    let device = json!([{"device": []}]);
    let serial_or_null =
        json!({"type": ["string", "null"], "description": "serial, upper-case hex"});
    let id_param =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let proof_schema = json!({"type": "object", "required": ["certificate", "challenge", "signature"], "properties": {
        "certificate": {"type": "string", "description": "base64 DER of a live card certificate of the holder"},
        "challenge": {"type": "string", "description": "base64, from POST /v1/challenges"},
        "signature": {"type": "string", "description": "base64 RSA PKCS#1 v1.5 SHA-256 signature by that certificate's key"}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Shōmei authority", "version": "1", "description": "Issues My Number Card style certificates (JPKI profile), keeps the registry, publishes sharded CRLs and answers OCSP."},
        "components": {
            "securitySchemes": {
                "operator": {"type": "http", "scheme": "bearer", "description": "contents of DIR/operator.token"},
                "device": {"type": "http", "scheme": "bearer", "description": "device_token from POST /v1/phones (sdt_…); the registry keeps only its SHA-256"},
                "relying_party": {"type": "http", "scheme": "bearer", "description": "token from POST /v1/relying-parties (srp_…); the registry keeps only its SHA-256"}},
            "schemas": {
                "Problem": {"type": "object", "required": ["code", "status", "detail"], "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "code": {"type": "string", "description": "stable machine-readable code, e.g. unauthorized, malformed_der, bad_signature, minor_cannot_sign, certificate_final, already_suspended, not_suspended, hold_is_not_revocation, unknown_reason, not_found, bad_request; phones: unknown_challenge, card_not_ours, card_not_registered, not_a_card_signing_certificate, card_suspended, card_revoked, card_expired, card_auth_missing, bad_card_signature, bad_card_face, card_face_mismatch, untrusted_manufacturer, attestation_key_mismatch, attestation_challenge_mismatch, bad_attestation, weak_key_policy, device_mismatch, same_key_twice, bad_key, concurrent_change, wrong_device, device_not_active, bad_device_proof, device_wiped, no_wipe_requested, device_state_changed, not_your_holder; relying parties: relying_party_exists, already_replaced"},
                    "detail": {"type": "string"}}},
                "Holder": {"type": "object", "required": ["name", "address", "birth_date", "sex"], "properties": {
                    "name": {"type": "string", "description": "surname and given name; joined by U+3000"},
                    "address": {"type": "string", "maxLength": 200},
                    "birth_date": {"type": "string", "format": "date"},
                    "sex": {"type": "string", "enum": ["1", "2", "3"]}}},
                "Certificate": {"type": "object", "properties": {
                    "serial": {"type": "string", "description": "hex as `openssl x509 -serial` prints"},
                    "class": {"type": "string", "enum": ["card-sign", "card-auth", "phone-sign", "phone-auth"]},
                    "status": {"type": "string", "enum": ["active", "suspended", "revoked", "expired"]},
                    "reason": {"type": ["string", "null"]}, "holder_id": {"type": "string"}, "card_id": {"type": ["string", "null"]},
                    "not_before": {"type": "string", "format": "date-time"}, "not_after": {"type": "string", "format": "date-time"},
                    "shard": {"type": "integer"}, "pair": {"type": ["string", "null"]}, "parent": {"type": ["string", "null"]},
                    "replaces": {"type": ["string", "null"]}, "certificate": {"type": "string", "description": "base64 DER"}}}
            }
        },
        "paths": {
            "/healthz": {"get": {"summary": "200 once ready", "responses": {"200": {"description": "ready"}}}},
            "/openapi.json": {"get": {"summary": "this document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/ca/{file}": {"get": {"summary": "trust anchors: sign.pem, auth.pem, iaca.pem (mobile ID), reader-ca.pem (mdoc reader authentication, ISO 18013-5 §9.1.4) and their .der forms", "parameters": [{"name": "file", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "certificate"}, "404": problem}}},
            "/crl/iaca.crl": {"get": {"summary": "CRL of the mobile-ID IACA (revoked document signers)", "responses": {"200": {"description": "DER CRL", "content": {"application/pkix-crl": {}}}}}},
            "/crl/{class}/{file}": {"get": {"summary": "CRL shard `{shard}.crl` of a certificate class (the URL in each certificate's CDP)",
                "parameters": [{"name": "class", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "file", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "DER CRL", "content": {"application/pkix-crl": {}}}, "404": problem}}},
            "/ocsp/{root}": {"post": {"summary": "OCSP (RFC 6960), root = sign | auth", "parameters": [{"name": "root", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/ocsp-request": {}}}, "responses": {"200": {"description": "OCSPResponse", "content": {"application/ocsp-response": {}}}}}},
            "/ocsp/{root}/{request}": {"get": {"summary": "OCSP GET: base64 of the DER request, URL-encoded (RFC 6960 A.1)",
                "parameters": [{"name": "root", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "request", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OCSPResponse", "content": {"application/ocsp-response": {}}}}}},
            "/ca/card-face.pem": {"get": {"summary": "the authority's card-face public key (P-256 SubjectPublicKeyInfo, PEM `PUBLIC KEY`; `/ca/card-face.der` is the DER form): it signs the 券面AP face written on every card",
                "responses": {"200": {"description": "PEM public key", "content": {"application/x-pem-file": {}}}}}},
            "/v1/cards": {"post": {"summary": "enrol a holder and issue the card's certificates and card face data", "security": op,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["holder", "auth_csr"], "properties": {
                    "holder": {"$ref": "#/components/schemas/Holder"},
                    "sign_csr": {"type": "string", "description": "base64 DER PKCS#10 (RSA-2048, sha256WithRSA); omit for holders under 15"},
                    "auth_csr": {"type": "string", "description": "base64 DER PKCS#10"},
                    "my_number": {"type": "string", "pattern": "^[0-9]{12}$", "description": "the holder's My Number (12 digits, valid check digit); omitted: the authority draws a valid one. Written to the card only, never stored, logged or echoed"},
                    "portrait": {"type": "string", "description": "base64 photo bytes for the 券面AP (real cards: greyscale JPEG 2000; at most 24 KiB); omitted: a placeholder PNG"}}}}}},
                "responses": {"201": {"description": "issued", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "card_id": {"type": "string"}, "holder_id": {"type": "string"}, "sign_cert": {"type": "string"}, "auth_cert": {"type": "string"},
                    "sign_serial": {"type": "string"}, "auth_serial": {"type": "string"},
                    "card_face": {"type": "object", "description": "what the card stores in its other APs (base64 EF contents), for personalisation", "properties": {
                        "text": {"type": "object", "properties": {"my_number": {"type": "string", "description": "券面事項入力補助AP EF 0001"}, "attributes": {"type": "string", "description": "EF 0002"}, "basic": {"type": "string", "description": "EF 0005"}}},
                        "visual": {"type": "object", "properties": {"face": {"type": "string", "description": "券面AP EF 0002, signed by the card-face key"}, "basic": {"type": "string", "description": "EF 0003"}}},
                        "expiry": {"type": "string", "format": "date"}, "security_code": {"type": "string", "description": "4 digits printed on the face (part of PIN B)"}}}}}}}},
                    "400": problem, "401": problem, "422": problem}}},
            "/v1/challenges": {"post": {"summary": "a single-use challenge (32 random bytes, 5 minutes) for a holder proof",
                "responses": {"201": {"description": "challenge", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "challenge": {"type": "string", "description": "base64"}, "expires_at": {"type": "string", "format": "date-time"}}}}}}}}},
            "/v1/certificates/{serial}/renew": {"post": {"summary": "renew: new certificate of the same class for the key in `csr`; the old one (and what derives from it) is revoked as superseded, atomically. A card signing certificate revoked as affiliationChanged (the basic four changed) may be renewed once: the new one, for the new basic four, records it in `replaces` (409 already_replaced after that)", "security": op,
                "parameters": [{"name": "serial", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["csr"], "properties": {"csr": {"type": "string", "description": "base64 DER PKCS#10"}}}}}},
                "responses": {"201": {"description": "renewed: serial, certificate, replaces, revoked[]"}, "400": problem, "401": problem, "404": problem, "409": problem}}},
            "/v1/certificates/{serial}": {"get": {"summary": "registry record of a certificate", "security": op,
                "parameters": [{"name": "serial", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "record", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Certificate"}}}}, "404": problem}}},
            "/v1/certificates/{serial}/{action}": {"post": {"summary": "suspend | resume | revoke (with cascades: revoking a card certificate revokes what was derived from it). Authorised by the operator's bearer token, or by the holder with `proof`: the card's certificate, a challenge from POST /v1/challenges, and the card's RSA PKCS#1 v1.5 SHA-256 signature over `shomei/holder-proof/v1` 0x00 action 0x00 SERIAL-HEX 0x00 challenge (action = suspend|resume|revoke, SERIAL-HEX = the target serial in upper-case hex). The proving certificate must be a live card certificate of the same holder.", "security": [{"operator": []}, {}],
                "parameters": [{"name": "serial", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "action", "in": "path", "required": true, "schema": {"type": "string", "enum": ["suspend", "resume", "revoke"]}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string",
                    "enum": ["unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded", "cessationOfOperation", "privilegeWithdrawn"]},
                    "proof": {"type": "object", "required": ["certificate", "challenge", "signature"], "properties": {
                        "certificate": {"type": "string", "description": "base64 DER of a card certificate of the holder"},
                        "challenge": {"type": "string", "description": "base64, from POST /v1/challenges"},
                        "signature": {"type": "string", "description": "base64"}}}}}}}},
                "responses": {"200": {"description": "changed; `changed` lists every certificate the plan touched"}, "400": problem, "401": problem, "403": problem, "404": problem, "409": problem}}},
            "/v1/holders/{id}": {
                "get": {"summary": "holder, basic four and certificates", "security": op, "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "holder"}, "404": problem}},
                "put": {"summary": "change the basic four: revokes every signing certificate (affiliationChanged), keeps authentication ones", "security": op,
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"holder": {"$ref": "#/components/schemas/Holder"}}}}}},
                    "responses": {"200": {"description": "changed"}, "400": problem, "404": problem}}},
            "/v1/holders/{id}/events": {"get": {"summary": "lifecycle history: who did what and when", "security": op,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "events"}, "404": problem}}},
            "/v1/holders/{id}/events/stream": {"get": {"summary": "the holder's events as server-sent events (text/event-stream): `id` = event id (the sync cursor), `event` = action, `data` = the event as JSON ({id, at, actor, action, serial, detail}). Starts after `Last-Event-ID` or `?after=`, else from the first event, then stays open and delivers new events as they are committed. Operator token, or the device token of the holder's active phone.",
                "security": [{"operator": []}, {"device": []}], "parameters": [id_param[0], {"name": "after", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "event stream", "content": {"text/event-stream": {}}}, "401": problem, "403": problem, "404": problem}}},
            "/v1/holders/{id}/contact": {"put": {"summary": "set the holder's notification contact: with notify_email true, every event about the holder is also e-mailed (what happened, when, which certificate class; never personal data). Operator token, or the device token of the holder's active phone.",
                "security": [{"operator": []}, {"device": []}], "parameters": id_param,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["notify_email"], "properties": {
                    "email": {"type": ["string", "null"]}, "notify_email": {"type": "boolean"}}}}}},
                "responses": {"200": {"description": "{holder_id, notify_email, email_set}"}, "400": problem, "401": problem, "403": problem, "404": problem}}},
            "/v1/phones": {"post": {"summary": "put the card holder's certificates on a phone (スマホ用電子証明書). No operator token: authorised by the card. The card's SIGNING key signs (RSA PKCS#1 v1.5, SHA-256) the provisioning message `shomei/phone-provision/v1` 0x00, then for each of challenge (raw bytes), device id (the secure element's attested id, lower-case hex, UTF-8), sign SPKI (DER), auth SPKI (DER): a 4-byte big-endian length and the bytes. Both keys come with attestation chains (leaf first) from the phone's secure element, binding the same challenge; the signing key must be gated by the signing password with no biometric, the authentication key by the 4-digit PIN (biometric allowed). The phone certificates end with their card certificates (sign: the card signing certificate's notAfter; auth: the card authentication certificate's). One phone per holder: in the same transaction every earlier phone certificate is revoked (superseded) and every earlier active phone gets a wipe queued.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
                    "required": ["device", "card_sign_cert", "challenge", "card_signature", "sign_csr", "auth_csr", "sign_attestation", "auth_attestation"], "properties": {
                    "device": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string", "description": "android | ios | …"}, "id": {"type": "string", "description": "the secure element's device id (hex); optional, must be the attested one"}}},
                    "card_sign_cert": {"type": "string", "description": "base64 DER of the card's signing certificate"},
                    "challenge": {"type": "string", "description": "base64, from POST /v1/challenges (single use, spent even on failure)"},
                    "card_signature": {"type": "string", "description": "base64 signature by the card signing key over the provisioning message"},
                    "sign_csr": {"type": "string", "description": "base64 DER PKCS#10 (RSA-2048) of the phone signing key"},
                    "auth_csr": {"type": "string", "description": "base64 DER PKCS#10 (RSA-2048) of the phone authentication key"},
                    "sign_attestation": {"type": "array", "items": {"type": "string"}, "description": "base64 DER certificates, leaf first (key, device, manufacturer root)"},
                    "auth_attestation": {"type": "array", "items": {"type": "string"}},
                    "notify_email": {"type": "string", "description": "opt in to e-mail notifications at this address"},
                    "mdoc_device_key": {"type": "string", "description": "optional: base64 DER SPKI of a P-256 key in the same secure element (auth-PIN policy, biometric allowed); the answer then carries the mobile ID bound to it"},
                    "mdoc_attestation": {"type": "array", "items": {"type": "string"}, "description": "with mdoc_device_key: its attestation chain for the same challenge, leaf first"},
                    "card_face": {"type": "string", "description": "optional, with mdoc_device_key: base64 of the card's face EF (券面AP EF 0002) as the phone read it (PIN B or the text AP's PIN), to put the card's photo in the mobile ID as `portrait` (org.iso.23220.1.jp). It must verify under the authority's card-face key (/ca/card-face.pem; else 403 bad_card_face) and be this holder's: birth date, sex, name and address equal the card certificates' basic four (else 403 card_face_mismatch); a refusal changes nothing. The photo is kept with the phone's mobile ID (refreshes carry it) and nowhere else; without card_face the mobile ID has no portrait."}}}}}},
                "responses": {"201": {"description": "provisioned", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "device_id": {"type": "string"}, "device_token": {"type": "string", "description": "bearer token for the device calls; shown once"},
                    "holder_id": {"type": "string"}, "se_device_id": {"type": "string"},
                    "sign_cert": {"type": "string"}, "auth_cert": {"type": "string"}, "sign_serial": {"type": "string"}, "auth_serial": {"type": "string"},
                    "not_after": {"type": "object"}, "superseded_devices": {"type": "array", "items": {"type": "string"}}, "revoked": {"type": "array", "items": {"type": "string"}}}}}}},
                    "400": problem, "403": problem, "409": problem, "422": problem}}},
            "/v1/devices/{id}": {"get": {"summary": "a phone (status: active | superseded | lost | wipe_pending | wiped) and its certificates", "security": op, "parameters": id_param,
                "responses": {"200": {"description": "device"}, "401": problem, "404": problem}}},
            "/v1/devices/{id}/sync": {"get": {"summary": "what the phone must know: its status, whether to wipe, its certificates' statuses, and (active phone only) the holder's events after `after` (at most 100; `cursor` is the id to pass next, `more` says whether more are waiting). Works after the phone's certificates are revoked.",
                "security": device, "parameters": [id_param[0], {"name": "after", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "{device_id, holder_id, status, wipe, wipe_requested_at, certificates: [{serial, class, status, reason}], events: [{id, at, actor, action, serial, detail}], cursor, more}"}, "401": problem, "403": problem}}},
            "/v1/devices/{id}/mdoc": {"post": {"summary": "a freshly signed mobile ID (ISO 18013-5 IssuerSigned, docType org.iso.23220.1.jp.mnc) for the phone's attested device key, same status index; valid at most 30 days, never past the next birthday nor the phone certificates. Active phone with live certificates only (409 device_not_active / device_suspended otherwise).",
                "security": device, "parameters": id_param,
                "responses": {"200": {"description": "{doc_type, issuer_signed (base64 CBOR), valid_until, status_idx}"}, "401": problem, "403": problem, "404": problem, "409": problem}}},
            "/status/mdoc": {"get": {"summary": "the mobile IDs' Token Status List (CWT, COSE_Sign1 by the document signer, x5chain under /ca/iaca.pem; 2 bits: 0 valid, 1 invalid (phone superseded, lost, wiped or revoked), 2 suspended). The URI in every MSO's status reference.",
                "responses": {"200": {"description": "Status List Token", "content": {"application/statuslist+cwt": {}}}}}},
            "/v1/devices/{id}/wipe": {"post": {"summary": "queue a remote wipe of a phone and revoke its live certificates (keyCompromise if `lost`, else cessationOfOperation). Operator token, or the holder with `proof`: the card's RSA signature over `shomei/holder-proof/v1` 0x00 `wipe` 0x00 `device:` DEVICE-ID 0x00 challenge. An unknown id answers a holder as another holder's phone would (401 without proof, 403 not_your_certificate with one), so ids cannot be probed; only the operator gets 404.",
                "security": [{"operator": []}, {}], "parameters": id_param,
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"lost": {"type": "boolean"}, "proof": proof_schema}}}}},
                "responses": {"200": {"description": "{device_id, status, wipe, revoked[]}"}, "401": problem, "403": problem, "404": problem, "409": problem}}},
            "/v1/devices/{id}/wiped": {"post": {"summary": "the phone confirms it erased its credentials (status becomes wiped; idempotent). Without a wipe order: 409 no_wipe_requested, unless a cause is given: \"tampered\" (the secure element wiped itself; certificates revoked keyCompromise) or \"provisioning_failed\" (the phone could not keep what a 201 from POST /v1/phones gave it and wiped the new keys; certificates revoked cessationOfOperation); the wipe is then recorded", "security": device, "parameters": id_param,
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "cause": {"type": "string", "enum": ["tampered", "provisioning_failed"]}}}}}},
                "responses": {"200": {"description": "device"}, "400": problem, "401": problem, "403": problem, "409": problem}}},
            "/v1/relying-parties": {"post": {"summary": "register a relying party (operator). Its bearer token is returned once (srp_ + base64url of 32 random bytes); the authority keeps only its SHA-256.", "security": op,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$", "description": "unique"}}}}}},
                "responses": {"201": {"description": "registered", "content": {"application/json": {"schema": {"type": "object", "required": ["id", "name", "token"], "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"}, "token": {"type": "string", "description": "bearer token for GET /v1/linkage; shown once"}}}}}},
                    "400": problem, "401": problem, "409": {"description": "relying_party_exists: the name is taken", "content": problem["content"]}}}},
            "/v1/reader-certificates": {"post": {"summary": "a reader authentication certificate (ISO/IEC 18013-5 §9.1.4) for a registered relying party's mdoc reader: the relying party generates a P-256 key and sends its public key; the answer is a certificate from the reader CA (/ca/reader-ca.pem) with subject C=JP, CN = the relying party's registered name, critical keyUsage digitalSignature, critical EKU id-mdl-kp-mdlReaderAuth 1.0.18013.5.1.6, valid 90 days. Holders show the CN as the authenticated reader. Stateless apart from a `reader_certificate_issued` event (actor: the relying party); refused input stores nothing. Relying-party token only.",
                "security": [{"relying_party": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["public_key"], "additionalProperties": false, "properties": {
                    "public_key": {"type": "string", "description": "the reader's P-256 SubjectPublicKeyInfo: PEM `PUBLIC KEY`, or base64 of the DER"}}}}}},
                "responses": {"201": {"description": "issued", "content": {"application/json": {"schema": {"type": "object",
                    "required": ["certificate", "certificate_der", "serial", "subject", "not_before", "not_after", "reader_ca"], "properties": {
                    "certificate": {"type": "string", "description": "PEM"},
                    "certificate_der": {"type": "string", "description": "base64 DER"},
                    "serial": {"type": "string", "description": "upper-case hex"},
                    "subject": {"type": "object", "properties": {"common_name": {"type": "string"}}},
                    "not_before": {"type": "string", "format": "date-time"},
                    "not_after": {"type": "string", "format": "date-time"},
                    "reader_ca": {"type": "string", "description": "PEM of the issuing reader CA"}}}}}},
                    "400": {"description": "bad_request (not JSON, unknown field, public_key neither PEM nor base64, not DER)", "content": {"application/problem+json": {}}},
                    "401": {"description": "unauthorized: missing or unknown relying-party token", "content": {"application/problem+json": {}}},
                    "422": {"description": "unsupported_key (not a P-256 SubjectPublicKeyInfo) or bad_key (not a point on the curve, or the CA's own key)", "content": {"application/problem+json": {}}}}}},
            "/v1/reader-certificates/{serial}/revoke": {"post": {"summary": "revoke a reader authentication certificate (e.g. its key was stolen): recorded durably (reader_revocations, and a `reader_certificate_revoked` event) and listed on the reader CA's CRL (/ca/reader-ca.crl, signed again at once) until the certificate expires. Holders fetch that CRL at `phone sync` and refuse a request signed by a revoked reader. The operator token, or the relying party's own token for a certificate issued to it. Refusals change nothing.",
                "security": [{"operator": []}, {"relying_party": []}],
                "parameters": [{"name": "serial", "in": "path", "required": true, "schema": {"type": "string"}, "description": "hex, as the issuing answer or `openssl x509 -serial` gives it (any case)"}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["reason"], "additionalProperties": false, "properties": {
                    "reason": {"enum": ["unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded", "cessationOfOperation", "privilegeWithdrawn"], "description": "RFC 5280 CRLReason (certificateHold is refused: reader certificates are not suspended)"}}}}}},
                "responses": {"200": {"description": "revoked", "content": {"application/json": {"schema": {"type": "object", "required": ["serial", "status", "reason", "revoked_at", "crl"], "properties": {
                    "serial": {"type": "string"}, "status": {"enum": ["revoked"]}, "reason": {"type": "string"},
                    "revoked_at": {"type": "string", "format": "date-time"}, "crl": {"type": "string", "description": "URL of the reader CA's CRL"}}}}}},
                    "400": {"description": "bad_request (serial not hex, not JSON), unknown_reason, hold_is_not_revocation", "content": {"application/problem+json": {}}},
                    "401": {"description": "unauthorized: neither the operator's nor a relying party's token", "content": {"application/problem+json": {}}},
                    "403": {"description": "not_your_reader_certificate: issued to another relying party", "content": {"application/problem+json": {}}},
                    "404": {"description": "not_found: no reader certificate with this serial was issued", "content": {"application/problem+json": {}}},
                    "409": {"description": "already_revoked, or reader_certificate_expired", "content": {"application/problem+json": {}}}}}},
            "/ca/reader-ca.crl": {"get": {"summary": "CRL of the mdoc reader CA (revoked reader certificates), DER, signed by the reader CA (ECDSA P-256 with SHA-256), valid 24 hours; signed again after each revocation and when past half its life. Check with `openssl crl -inform DER -CAfile reader-ca.pem -noout`.", "responses": {"200": {"description": "DER CRL", "content": {"application/pkix-crl": {}}}}}},
            "/v1/linkage/{serial}": {"get": {"summary": "linkage (証明書紐付け情報 / 新旧紐付け): what a relying party may know about a certificate it was shown: status, the newest certificate that replaced it (following renewals and re-issues after a basic-four change), the holder's current good certificates on the same medium (card or phone), and a pseudonym of the holder that is the same for all the holder's certificates (card and phone, across renewal and address change) for this relying party and different for every other one: base64url-no-pad(HMAC-SHA256(authority linkage key, relying-party id 0x00 holder id)). A lookup about a phone certificate is recorded as a `used` event of the holder (actor: the relying party). Relying-party token, or the operator token.",
                "security": [{"relying_party": []}, {"operator": []}],
                "parameters": [{"name": "serial", "in": "path", "required": true, "schema": {"type": "string"}, "description": "hex as `openssl x509 -serial` prints it (any case)"}],
                "responses": {"200": {"description": "linkage", "content": {"application/json": {"schema": {"type": "object",
                    "required": ["serial", "class", "medium", "status", "revocation_reason", "successor", "current", "holder"], "properties": {
                    "serial": {"type": "string"},
                    "class": {"enum": ["card_sign", "card_auth", "phone_sign", "phone_auth"]},
                    "medium": {"enum": ["card", "phone"]},
                    "status": {"enum": ["good", "revoked", "suspended", "expired"]},
                    "revocation_reason": {"type": ["string", "null"], "description": "RFC 5280 name (superseded, affiliationChanged, keyCompromise…) when revoked"},
                    "successor": serial_or_null,
                    "current": {"type": "object", "required": ["sign", "auth"], "properties": {"sign": serial_or_null, "auth": serial_or_null}},
                    "holder": {"type": "string", "description": "pseudonym of the holder for this relying party (43 characters)"}}}}}},
                    "400": problem, "401": problem, "404": problem}}},
            "/v1/devices/{id}/retire": {"post": {"summary": "the phone ends its own certificates before sale or repair (cessationOfOperation) and is marked wipe_pending; it then wipes and calls /wiped. Device token plus possession of the phone authentication key: RSA PKCS#1 v1.5 SHA-256 over `shomei/holder-proof/v1` 0x00 `retire` 0x00 `device:` DEVICE-ID 0x00 challenge.",
                "security": device, "parameters": id_param,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["challenge", "signature"], "properties": {
                    "challenge": {"type": "string", "description": "base64, from POST /v1/challenges"}, "signature": {"type": "string", "description": "base64"}}}}}},
                "responses": {"200": {"description": "{device_id, status, wipe, revoked[]}"}, "401": problem, "403": problem, "409": problem}}}
        }
    })
}
