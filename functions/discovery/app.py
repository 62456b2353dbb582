"""GET /.well-known/oauth-authorization-server (RFC 8414) and GET /.well-known/jwks.json.

The JWKS comes from the public key set published beside the signing keys (`runtime.public_jwks`):
this function cannot read the private set.
"""

from aws_lambda_powertools.event_handler import Response

from authcore import discovery, http, runtime

app = http.make_app()


@app.get("/.well-known/oauth-authorization-server")
def metadata() -> Response[str]:
    ctx = http.context(app)
    return http.json_response(discovery.metadata(ctx.issuer, ctx.verification_uri))


@app.get("/.well-known/jwks.json")
def jwks() -> Response[str]:
    return http.json_response(runtime.public_jwks())


lambda_handler = http.entrypoint(app)
