"""An identity provider for the tests: an RSA key, its JWKS served on 127.0.0.1, and ID tokens for any
claims. The verify routes check these exactly as they check Cognito's (authcore.identity): the tests
sign a person in with a real, signed token, never by writing claims into the event."""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://idp.example.test/tests"
AUDIENCE = "tests-app-client"
KID = "tests-key-1"


class TestIdp:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}
        document = json.dumps(self.jwks).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="test-idp", daemon=True).start()
        self.jwks_uri = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    @property
    def env(self) -> dict[str, str]:
        """What the verify function is configured with (template.yaml: AUTH_*)."""
        return {"AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE, "AUTH_JWKS_URI": self.jwks_uri}

    def token(self, claims: dict[str, Any], *, now: int | None = None, ttl: int = 3600) -> str:
        """An ID token for these claims (`sub`, `email`, ...); iss, aud, iat, exp and token_use filled in
        unless the claims set them (None removes one)."""
        at = int(time.time()) if now is None else now
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": at, "exp": at + ttl, "token_use": "id", **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": KID})

    def bearer(self, claims: dict[str, Any], **kw: Any) -> str:
        return f"Bearer {self.token(claims, **kw)}"


IDP = TestIdp()
