#!/usr/bin/env python3
"""A real OpenID Connect relying party (authlib) logging in at
`shomei verifier serve`, with the phone answering through `shomei phone login`.

Driven by tests/relying_party.rs:

    python3 tests/oidc_client.py --issuer URL --client-id ID [--client-secret S]
        --redirect-uri URI --scope "openid name ..." --shomei BIN --phone DIR
        --pin NNNN [--password PW]

Runs the authorization code flow with PKCE S256, state and nonce, validates
the ID token with authlib.jose (ES256 key from the provider's JWKS; iss, aud,
nonce, exp, iat), reads /userinfo, replays the code (which must fail and
revoke the access token) and prints one JSON summary on stdout. Any failed
check exits non-zero with one line on stderr.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import urllib.parse
import warnings


def fail(msg):
    print(f"oidc_client: {msg}", file=sys.stderr)
    sys.exit(1)


try:
    import requests
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session, OAuthError

    with warnings.catch_warnings():
        # authlib.jose is deprecated in favour of joserfc but still supported
        # before authlib 2.0; it is what the brief's relying parties use.
        warnings.simplefilter("ignore")
        from authlib.jose import JsonWebKey, jwt
        from authlib.jose.errors import BadSignatureError, InvalidClaimError
except ImportError as e:  # installed by scripts/test.sh
    where = "CI" if os.environ.get("CI") else "this machine"
    print(
        f"oidc_client: authlib/requests missing on {where} ({e}); "
        "run: python3 -m pip install authlib requests",
        file=sys.stderr,
    )
    sys.exit(3)

# The provider and the callback are on loopback (RFC 8252): plain http.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret")
    ap.add_argument("--redirect-uri", required=True)
    ap.add_argument("--scope", default="openid")
    ap.add_argument("--shomei", required=True)
    ap.add_argument("--phone", required=True)
    ap.add_argument("--pin", required=True)
    ap.add_argument("--password")
    a = ap.parse_args()

    http = requests.Session()
    disc = http.get(f"{a.issuer}/.well-known/openid-configuration", timeout=10)
    disc.raise_for_status()
    meta = disc.json()
    if meta["issuer"] != a.issuer:
        fail(f"discovery issuer {meta['issuer']!r} != {a.issuer!r}")
    if "S256" not in meta.get("code_challenge_methods_supported", []):
        fail("the provider does not announce PKCE S256")
    if "ES256" not in meta.get("id_token_signing_alg_values_supported", []):
        fail("the provider does not announce ES256")

    auth_method = "client_secret_basic" if a.client_secret else "none"
    client = OAuth2Session(
        client_id=a.client_id,
        client_secret=a.client_secret,
        scope=a.scope,
        redirect_uri=a.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method=auth_method,
    )
    code_verifier = generate_token(64)
    nonce = generate_token(24)
    state = generate_token(24)
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"],
        state=state,
        nonce=nonce,
        code_verifier=code_verifier,
    )
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    if q.get("code_challenge_method") != ["S256"] or "code_challenge" not in q:
        fail(f"authlib did not add PKCE S256 to {url}")

    # The browser's step: the login page, asked for as JSON.
    page = http.get(
        url, headers={"Accept": "application/json"}, allow_redirects=False, timeout=10
    )
    if page.status_code != 200:
        fail(f"/authorize answered {page.status_code}: {page.text}")
    login = page.json()
    for k in ("login_url", "status_url", "continue_url"):
        if not login.get(k, "").startswith(a.issuer + "/login/"):
            fail(f"{k} is not on the issuer: {login}")
    if login["scopes"] != a.scope.split():
        fail(f"granted scopes {login['scopes']} != asked {a.scope}")
    before = http.get(login["status_url"], timeout=10).json()
    if before["state"] != "pending":
        fail(f"the new login is not pending: {before}")

    # The phone's step: the holder answers the login URL.
    cmd = [a.shomei, "phone", "login", "--phone", a.phone, "--pin", a.pin,
           "--url", login["login_url"], "--json"]
    if a.password:
        cmd += ["--password", a.password]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        fail(f"phone login failed ({out.returncode}): {out.stderr.strip()}")
    phone = json.loads(out.stdout)
    after = http.get(login["status_url"], timeout=10).json()
    if after["state"] != "done":
        fail(f"the answered login is not done: {after}")

    # Back in the browser: continue to the redirect URI (not followed).
    cont = http.get(login["continue_url"], allow_redirects=False, timeout=10)
    if cont.status_code not in (302, 303):
        fail(f"continue answered {cont.status_code}: {cont.text}")
    location = cont.headers["Location"]
    if not location.startswith(a.redirect_uri + "?"):
        fail(f"redirected to {location}, not to {a.redirect_uri}")
    back = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    if back.get("state") != [state]:
        fail(f"state {back.get('state')} != {state}")
    if back.get("iss") != [a.issuer]:
        fail(f"iss {back.get('iss')} != {a.issuer} (RFC 9207)")
    code = back["code"][0]

    token = client.fetch_token(
        meta["token_endpoint"],
        authorization_response=location,
        state=state,
        code_verifier=code_verifier,
    )
    id_token = token["id_token"]

    header = b64url_json(id_token.split(".")[0])
    jwks = http.get(meta["jwks_uri"], timeout=10).json()
    kids = [k.get("kid") for k in jwks["keys"]]
    if header.get("alg") != "ES256" or header.get("kid") not in kids:
        fail(f"ID token header {header} does not name an ES256 key of {kids}")
    keys = JsonWebKey.import_key_set(jwks)

    def decode(expect_nonce, expect_aud=a.client_id, tok=id_token):
        claims = jwt.decode(
            tok,
            keys,
            claims_options={
                "iss": {"essential": True, "value": a.issuer},
                "aud": {"essential": True, "value": expect_aud},
                "sub": {"essential": True},
                "exp": {"essential": True},
                "iat": {"essential": True},
                "nonce": {"essential": True, "value": expect_nonce},
            },
        )
        claims.validate(leeway=5)
        return claims

    claims = decode(nonce)

    # The same checks must refuse a wrong nonce, another audience and a
    # tampered token: they are real checks.
    def refused(fn, errors):
        try:
            fn()
        except errors:
            return True
        return False

    wrong_nonce_rejected = refused(lambda: decode(nonce + "x"), InvalidClaimError)
    wrong_aud_rejected = refused(lambda: decode(nonce, "someone-else"), InvalidClaimError)
    h, p, s = id_token.split(".")
    forged = dict(claims)
    forged["name"] = "偽 太郎"
    forged_part = base64.urlsafe_b64encode(
        json.dumps(forged).encode()).rstrip(b"=").decode()
    tampered_rejected = refused(
        lambda: decode(nonce, tok=f"{h}.{forged_part}.{s}"), BadSignatureError)

    userinfo = client.get(meta["userinfo_endpoint"], timeout=10)
    if userinfo.status_code != 200:
        fail(f"userinfo answered {userinfo.status_code}")
    userinfo = userinfo.json()

    # A replayed code: refused, and the access token it gave is revoked.
    replay_error = None
    try:
        client.fetch_token(
            meta["token_endpoint"],
            authorization_response=location,
            state=state,
            code_verifier=code_verifier,
        )
    except OAuthError as e:
        replay_error = e.error
    after_replay = http.get(
        meta["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    ).status_code

    print(json.dumps({
        "phone": phone,
        "code_len": len(code),
        "token_type": token["token_type"],
        "scope": token.get("scope"),
        "expires_in": token.get("expires_in"),
        "alg": header["alg"],
        "claims": dict(claims),
        "nonce_sent": nonce,
        "userinfo": userinfo,
        "wrong_nonce_rejected": wrong_nonce_rejected,
        "wrong_aud_rejected": wrong_aud_rejected,
        "tampered_rejected": tampered_rejected,
        "replay_error": replay_error,
        "userinfo_after_replay": after_replay,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
