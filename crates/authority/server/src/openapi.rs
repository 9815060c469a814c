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
];

/// The document.
pub fn document() -> Value {
    let problem = json!({"description": "Problem (RFC 9457) with a stable `code`", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let op = json!([{"operator": []}]);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Shōmei authority", "version": "1", "description": "Issues My Number Card style certificates (JPKI profile), keeps the registry, publishes sharded CRLs and answers OCSP."},
        "components": {
            "securitySchemes": {"operator": {"type": "http", "scheme": "bearer", "description": "contents of DIR/operator.token"}},
            "schemas": {
                "Problem": {"type": "object", "required": ["code", "status", "detail"], "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "code": {"type": "string", "description": "stable machine-readable code, e.g. unauthorized, malformed_der, bad_signature, minor_cannot_sign, certificate_final, already_suspended, not_suspended, hold_is_not_revocation, unknown_reason, not_found, bad_request"},
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
            "/ca/{file}": {"get": {"summary": "trust anchors: sign.pem, auth.pem, iaca.pem (mobile ID) and their .der forms", "parameters": [{"name": "file", "in": "path", "required": true, "schema": {"type": "string"}}],
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
            "/v1/cards": {"post": {"summary": "enrol a holder and issue the card's certificates", "security": op,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["holder", "auth_csr"], "properties": {
                    "holder": {"$ref": "#/components/schemas/Holder"},
                    "sign_csr": {"type": "string", "description": "base64 DER PKCS#10 (RSA-2048, sha256WithRSA); omit for holders under 15"},
                    "auth_csr": {"type": "string", "description": "base64 DER PKCS#10"}}}}}},
                "responses": {"201": {"description": "issued", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "card_id": {"type": "string"}, "holder_id": {"type": "string"}, "sign_cert": {"type": "string"}, "auth_cert": {"type": "string"},
                    "sign_serial": {"type": "string"}, "auth_serial": {"type": "string"}}}}}},
                    "400": problem, "401": problem, "422": problem}}},
            "/v1/challenges": {"post": {"summary": "a single-use challenge (32 random bytes, 5 minutes) for a holder proof",
                "responses": {"201": {"description": "challenge", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "challenge": {"type": "string", "description": "base64"}, "expires_at": {"type": "string", "format": "date-time"}}}}}}}}},
            "/v1/certificates/{serial}/renew": {"post": {"summary": "renew: new certificate of the same class for the key in `csr`; the old one (and what derives from it) is revoked as superseded, atomically", "security": op,
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
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "events"}, "404": problem}}}
        }
    })
}
