"""The user pool's managed login, locally: an OpenID provider that the verification page signs in with.

On AWS the page signs people in through Cognito's managed login (the user pool's domain): the OpenID
Connect authorization code flow with PKCE, whose ID tokens name the user pool as their issuer. The local
stack's user pool lives in moto, which has no managed login. This module is that login, for the
stack's own pool:

- the OpenID provider itself is Authlib's (authorization endpoint, token endpoint, PKCE (S256 only),
  the ID token with the `nonce`), served by Flask on 127.0.0.1;
- its `issuer` is the user pool's (`https://cognito-idp.<region>.amazonaws.com/<pool>`), exactly as
  the template configures the functions (AUTH_ISSUER), so the ID tokens it signs and the ones moto's
  Cognito API hands out (InitiateAuth, which the e2e tests and `make invoke` use) are the same issuer's;
- its JWKS (`jwks_uri`) holds its own signing key and the user pool's keys (fetched from moto): the
  local stack points the functions' AUTH_JWKS_URI here, so they trust both;
- people are the user pool's: the login form checks the email and password with the pool
  (InitiateAuth USER_PASSWORD_AUTH on moto) and takes the person's claims from it (AdminGetUser), so
  `sub` is the pool's, the one organization memberships name;
- one client: the pool's app client (public: no secret, PKCE), with the page's URLs as its redirect
  and logout URLs; a remembered sign-in (a cookie, until `/logout`) skips the form, as Cognito's does;
- `/logout?client_id=...&logout_uri=...` is Cognito's logout endpoint (the page's Sign out).

The discovery document is at `discovery_url` (on AWS: `<issuer>/.well-known/openid-configuration`;
locally the page is told where, as the functions are told where the JWKS is).
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import flask
from authlib.integrations.flask_oauth2 import AuthorizationServer  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import grants  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.errors import OAuth2Error  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oidc.core import OpenIDCode, UserInfo  # type: ignore[import-untyped]
from botocore.exceptions import ClientError
from joserfc.jwk import RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

SCOPES = ("openid", "email", "profile")
CODE_SECONDS = 300  # an authorization code's lifetime
ID_TOKEN_SECONDS = 3600  # Cognito's default ID token lifetime
KID = "local-managed-login-1"
SESSION_USER = "user"


@dataclass
class _Client:
    """The user pool's app client, as the authorization server sees it: public, PKCE, the page's URLs."""

    client_id: str
    redirect_uris: tuple[str, ...]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # a public client has none

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: dict[str, Any]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    expires_at: float = field(default_factory=lambda: time.time() + CODE_SECONDS)

    # AuthorizationCodeMixin and the OpenID Connect additions
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at


class _Challenge(CodeChallenge):  # type: ignore[misc]
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - Authlib's own attribute


class _QuietHandler(WSGIRequestHandler):
    """No line per request: its query strings (state, nonce) are nobody's business; errors still show."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class LocalManagedLogin:
    """The local stand-in for the user pool's managed login. `start()` serves it on 127.0.0.1 (a free
    port) in a thread; `stop()` ends it."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        redirect_uris: Iterable[str],
        cognito: Any,
        pool_id: str,
        upstream_jwks_url: str,
        host: str = "127.0.0.1",
    ) -> None:
        self.issuer = issuer
        self.client = _Client(client_id, tuple(dict.fromkeys(redirect_uris)))
        self.cognito = cognito
        self.pool_id = pool_id
        self.upstream_jwks_url = upstream_jwks_url
        self.host = host
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "alg": "RS256", "use": "sig"})
        self.url = ""
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()
        self._upstream_keys: list[dict[str, Any]] = []
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ where it is

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.url}/oauth2/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/oauth2/token"

    @property
    def logout_endpoint(self) -> str:
        return f"{self.url}/logout"

    def page_environment(self) -> dict[str, str]:
        """The page's sign-in settings (WebFunction's SIGN_IN_*) for this login: its discovery document,
        its origin (the token endpoint), its logout endpoint; no managed-login domain on AWS."""
        return {
            "SIGN_IN_DISCOVERY_URL": self.discovery_url,
            "SIGN_IN_CONNECT_ORIGINS": self.url,
            "SIGN_IN_LOGOUT_URL": self.logout_endpoint,
            "COGNITO_DOMAIN": "",
        }

    # ------------------------------------------------------------ life cycle

    def start(self) -> str:
        with urllib.request.urlopen(self.upstream_jwks_url, timeout=10) as response:  # noqa: S310 - loopback
            self._upstream_keys = list(json.loads(response.read()).get("keys", []))
        self._server = make_server(self.host, 0, self._app(), threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{self.host}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="local-login", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ------------------------------------------------------------ people (the user pool's)

    def authenticate(self, username: str, password: str) -> dict[str, Any] | None:
        """The person's claims when the user pool accepts this email and password; None otherwise."""
        if not username or not password:
            return None
        try:
            self.cognito.initiate_auth(
                ClientId=self.client.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": password},
            )
            user = self.cognito.admin_get_user(UserPoolId=self.pool_id, Username=username)
        except ClientError:
            return None
        attributes = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])}
        claims: dict[str, Any] = {
            "sub": attributes["sub"],
            "cognito:username": str(user.get("Username") or attributes["sub"]),
            "email": attributes.get("email", username),
            "email_verified": attributes.get("email_verified", "false") == "true",
            "token_use": "id",
        }
        if attributes.get("name"):
            claims["name"] = attributes["name"]
        return claims

    # ------------------------------------------------------------ the application

    def _app(self) -> flask.Flask:
        login = self
        app = flask.Flask("local-managed-login")
        app.secret_key = secrets.token_bytes(32)
        app.config.update(
            # cookies ignore ports: a name of its own, so that two stacks' logins on 127.0.0.1 keep theirs
            SESSION_COOKIE_NAME=f"local_login_{secrets.token_hex(4)}",
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_HTTPONLY=True,
            OAUTH2_REFRESH_TOKEN_GENERATOR=False,
            OAUTH2_TOKEN_EXPIRES_IN={"authorization_code": ID_TOKEN_SECONDS},
        )

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 - Authlib's own attribute

            def save_authorization_code(self, code: str, request: Any) -> None:
                data = request.payload.data
                with login._lock:
                    login._codes[code] = _Code(
                        code=code,
                        client_id=request.client.get_client_id(),
                        redirect_uri=request.payload.redirect_uri,
                        scope=request.scope,
                        user=dict(request.user),
                        nonce=data.get("nonce"),
                        code_challenge=data.get("code_challenge"),
                        code_challenge_method=data.get("code_challenge_method"),
                        auth_time=int(request.user.get("auth_time", time.time())),
                    )

            def query_authorization_code(self, code: str, client: Any) -> _Code | None:
                with login._lock:
                    found = login._codes.get(code)
                if found is None or found.client_id != client.get_client_id() or found.is_expired():
                    return None
                return found

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                with login._lock:
                    login._codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
                return authorization_code.user

        class IdToken(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, request: Any) -> bool:
                with login._lock:
                    return any(c.nonce == nonce for c in login._codes.values())

            def resolve_client_private_key(self, client: Any) -> RSAKey:
                return login.key

            def get_client_algorithm(self, client: Any) -> str:
                return "RS256"

            def get_encode_header(self, client: Any) -> dict[str, str]:
                return {"alg": "RS256", "kid": KID, "typ": "JWT"}

            def get_client_claims(self, client: Any) -> dict[str, Any]:
                # `aud` a string, as Cognito's
                return {
                    "iss": login.issuer,
                    "aud": client.get_client_id(),
                    "exp": int(time.time()) + ID_TOKEN_SECONDS,
                }

            def generate_user_info(self, user: dict[str, Any], scope: str) -> Any:
                claims = {k: v for k, v in user.items() if k != "auth_time"}
                if "email" not in scope.split():
                    claims.pop("email", None)
                    claims.pop("email_verified", None)
                if "profile" not in scope.split():
                    claims.pop("name", None)
                return UserInfo(claims)

        server = AuthorizationServer(
            app,
            query_client=lambda client_id: login.client if client_id == login.client.client_id else None,
            save_token=lambda token, request: None,  # nothing to remember: no userinfo, no refresh
        )
        server.register_grant(CodeGrant, [_Challenge(required=True), IdToken(require_nonce=True)])

        @app.after_request
        def headers(response: flask.Response) -> flask.Response:
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Frame-Options"] = "DENY"
            if flask.request.path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
                response.headers["Access-Control-Allow-Origin"] = "*"
            elif flask.request.path == "/oauth2/token":  # the page exchanges its code from the browser
                origin = flask.request.headers.get("Origin", "")
                if origin and origin in login._origins():
                    response.headers["Access-Control-Allow-Origin"] = origin
                    response.headers["Vary"] = "Origin"
            return response

        @app.get("/.well-known/openid-configuration")
        def discovery() -> flask.Response:
            return flask.jsonify(
                issuer=login.issuer,
                authorization_endpoint=login.authorization_endpoint,
                token_endpoint=login.token_endpoint,
                jwks_uri=login.jwks_uri,
                response_types_supported=["code"],
                grant_types_supported=["authorization_code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=list(SCOPES),
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["none"],
            )

        @app.get("/.well-known/jwks.json")
        def jwks() -> flask.Response:
            own = login.key.as_dict(private=False)
            return flask.jsonify(keys=[own, *login._upstream_keys])

        @app.route("/oauth2/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            try:
                grant = server.get_consent_grant(end_user=None)
            except OAuth2Error as error:
                if getattr(error, "redirect_uri", None):  # a valid client and redirect URI: tell it
                    return server.handle_error_response(None, error)
                return login._page(
                    "error",
                    flask.request.args.get("ui_locales") or flask.request.args.get("lang") or "",
                    problem=f"{error.error}: {error.description or ''}",
                ), 400
            language = flask.request.args.get("ui_locales") or flask.request.args.get("lang") or ""
            remembered = flask.session.get(SESSION_USER)
            force = "login" in (flask.request.args.get("prompt") or "").split()
            if flask.request.method == "GET":
                if remembered and not force:
                    return server.create_authorization_response(grant=grant, grant_user=remembered)
                return login._page("form", language)
            username = (flask.request.form.get("username") or "").strip()
            user = login.authenticate(username, flask.request.form.get("password") or "")
            if user is None:
                return login._page("form", language, username=username, failed=True), 200
            user["auth_time"] = int(time.time())
            flask.session[SESSION_USER] = user
            return server.create_authorization_response(grant=grant, grant_user=user)

        @app.post("/oauth2/token")
        def token() -> Any:
            return server.create_token_response()

        @app.get("/logout")
        def logout() -> Any:
            flask.session.clear()
            target = flask.request.args.get("logout_uri") or ""
            if (
                flask.request.args.get("client_id") != login.client.client_id
                or target not in login.client.redirect_uris
            ):
                return login._page("error", "", problem="The logout_uri is not one of the app client's."), 400
            return flask.redirect(target, code=302)

        return app

    def _origins(self) -> set[str]:
        return {f"{p.scheme}://{p.netloc}" for p in (urlsplit(u) for u in self.client.redirect_uris)}

    # ------------------------------------------------------------ its pages

    _TEXT = {  # noqa: RUF012 - read-only
        "en": {
            "title": "Sign in",
            "lead": "Sign in with your email address and password.",
            "username": "Email address",
            "password": "Password",
            "submit": "Sign in",
            "failed": "Incorrect username or password.",
            "note": "Local stand-in for the user pool's managed login (make serve).",
            "error": "This sign-in request cannot be served",
        },
        "de": {
            "title": "Anmelden",
            "lead": "Melden Sie sich mit Ihrer E-Mail-Adresse und Ihrem Passwort an.",
            "username": "E-Mail-Adresse",
            "password": "Passwort",
            "submit": "Anmelden",
            "failed": "Benutzername oder Passwort ist falsch.",
            "note": "Lokaler Ersatz für die Anmeldeseite des User Pools (make serve).",
            "error": "Diese Anmeldeanfrage kann nicht bearbeitet werden",
        },
    }

    def _page(
        self, kind: str, language: str, *, username: str = "", failed: bool = False, problem: str = ""
    ) -> str:
        lang = next((t.split("-")[0] for t in language.split() if t.split("-")[0] in self._TEXT), "en")
        text = {k: html.escape(v) for k, v in self._TEXT[lang].items()}
        style = (
            "body{font:1rem/1.5 system-ui,sans-serif;background:#eef2f7;margin:0;color:#111827}"
            "main{max-width:24rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:.75rem;"
            "border:1px solid #d1d5db}label{display:block;font-weight:600;margin:.75rem 0 .25rem}"
            "input{width:100%;box-sizing:border-box;padding:.6rem;font:inherit;border:1px solid #6b7280;"
            "border-radius:.5rem}button{margin-top:1.25rem;width:100%;padding:.65rem;font:inherit;"
            "font-weight:600;color:#fff;background:#374151;border:0;border-radius:.5rem}"
            ".error{color:#991b1b;background:#fef2f2;padding:.5rem .75rem;border-left:4px solid #991b1b}"
            ".note{color:#4b5563;font-size:.875rem;margin-top:1.5rem}"
        )
        if kind == "error":
            body = f"<h1>{text['error']}</h1><p class='error'>{html.escape(problem)}</p>"
        else:
            error = f"<p id='failed' class='error' role='alert'>{text['failed']}</p>" if failed else ""
            described = " aria-describedby='failed' aria-invalid='true'" if failed else ""
            body = (
                f"<h1>{text['title']}</h1><p>{text['lead']}</p>{error}"
                f"<form method='post' action='{html.escape(flask.request.full_path, quote=True)}'>"
                f"<label for='username'>{text['username']}</label>"
                f"<input id='username' name='username' type='email' autocomplete='username' required autofocus"
                f" value='{html.escape(username, quote=True)}'{described}>"
                f"<label for='password'>{text['password']}</label>"
                f"<input id='password' name='password' type='password' autocomplete='current-password'"
                f" required{described}>"
                f"<button type='submit'>{text['submit']}</button></form>"
                f"<p class='note'>{text['note']}</p>"
            )
        return (
            f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{text['title']}</title><style>{style}</style></head><body><main>{body}</main></body></html>"
        )
