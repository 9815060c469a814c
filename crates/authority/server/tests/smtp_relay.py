"""A real SMTP relay for the authority's notification tests (aiosmtpd).

    python3 smtp_relay.py MODE PORT CERT KEY USER PASSWORD OUTDIR

MODE is `starttls` (STARTTLS and AUTH required before any mail), `tls`
(implicit TLS from the first byte, RFC 8314; AUTH required) or `plain`
(no TLS offered at all, no AUTH). Each accepted message is written to
OUTDIR/mail-N.json with whether it came over TLS and as which user; each
AUTH attempt appends "ok" or "fail" to OUTDIR/auth.log. Runs until killed.
"""

import json
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, cert, key, user, password, out = sys.argv[1:8]
port = int(port)
os.makedirs(out, exist_ok=True)
lock = threading.Lock()
count = [0]


def over_tls(server, session):
    if session.ssl is not None:
        return True
    transport = getattr(server, "transport", None)
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class Keep:
    async def handle_DATA(self, server, session, envelope):
        login = session.login_data
        if isinstance(login, bytes):
            login = login.decode()
        record = {
            "tls": over_tls(server, session),
            "login": login,
            "rcpt": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        with lock:
            count[0] += 1
            path = os.path.join(out, f"mail-{count[0]}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    with lock, open(os.path.join(out, "auth.log"), "a") as f:
        f.write("ok\n" if ok else "fail\n")
    return AuthResult(success=ok, auth_data=auth_data)


tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
if mode == "starttls":
    relay = Controller(
        Keep(), hostname="127.0.0.1", port=port, tls_context=tls,
        require_starttls=True, authenticator=authenticator,
        auth_required=True, auth_require_tls=True,
    )
elif mode == "tls":
    relay = Controller(
        Keep(), hostname="127.0.0.1", port=port, ssl_context=tls,
        authenticator=authenticator, auth_required=True, auth_require_tls=False,
    )
elif mode == "plain":
    relay = Controller(Keep(), hostname="127.0.0.1", port=port)
else:
    sys.exit(f"unknown mode {mode}")
relay.start()
print("ready", flush=True)
threading.Event().wait()
