"""GET /.well-known/oauth-authorization-server (RFC 8414) and GET /.well-known/jwks.json.

The JWKS comes from the public key set published beside the signing keys (`runtime.public_jwks`):
this function cannot read the private set.
"""

from aws_lambda_powertools.event_handler import Response

from authcore import discovery, http, runtime

app = http.make_app()

# Cacheable (RFC 9111), unlike every other answer. The JWKS for less than the time a `next` key is
# published before it signs (a rotation every 30 days publishes the next one 30 days ahead) and no longer
# than the functions cache the key set; a verifier that meets an unknown `kid` fetches again anyway.
JWKS_MAX_AGE = 300
METADATA_MAX_AGE = 3600


@app.get("/.well-known/oauth-authorization-server")
def metadata() -> Response[str]:
    ctx = http.context(app)
    return http.public_document(app, discovery.metadata(ctx.issuer, ctx.verification_uri), METADATA_MAX_AGE)


@app.get("/.well-known/jwks.json")
def jwks() -> Response[str]:
    return http.public_document(app, runtime.public_jwks(), JWKS_MAX_AGE)


lambda_handler = http.entrypoint(app)
