// openid-client (v6) against the local stack: RFC 8414 discovery, RFC 8628 device flow, refresh
// rotation, and a replay of a rotated-out refresh token. Run by tests/e2e/test_interop_openid_client.py:
//
//   node device_flow.mjs API_URL CLIENT_ID [--provoke-slow-down]
//
// stdout, one JSON document per line:
//   {"event": "user_code", "user_code": "...", ...}   as soon as the device request exists (what a
//                                                     device shows the person)
//   {"event": "poll", "by": ..., "error": ...}        after each token endpoint poll: the test, as the
//                                                     signed-in person, approves the user code when it
//                                                     has seen what it waits for
//   {"event": "result", ...}                          at the end: what happened, for the test to assert
// Anything unexpected: a message on stderr and exit status 1.
//
// --provoke-slow-down: openid-client waits `interval` before every poll, so on its own it never polls
// too fast. To see it honour slow_down, its first poll is preceded by one extra, identical poll sent
// straight through fetch (as a second copy of the client would): the server accepts that one and
// answers openid-client's own poll, one instant later, with slow_down.

import * as client from 'openid-client'

const TIME_LIMIT_MS = 60_000

function emit(document) {
  process.stdout.write(`${JSON.stringify(document)}\n`)
}

function errorInfo(error) {
  return {
    name: error?.constructor?.name ?? typeof error,
    message: String(error?.message ?? error),
    error: error?.error ?? null,
    status: error?.status ?? null,
    code: error?.code ?? null,
  }
}

async function refused(promise) {
  try {
    await promise
  } catch (error) {
    return errorInfo(error)
  }
  throw new Error('a refresh that must be refused succeeded')
}

async function main() {
  const [apiUrl, clientId, ...flags] = process.argv.slice(2)
  if (!apiUrl || !clientId) {
    throw new Error('usage: node device_flow.mjs API_URL CLIENT_ID [--provoke-slow-down]')
  }
  const provokeSlowDown = flags.includes('--provoke-slow-down')
  const started = performance.now()
  const seconds = () => (performance.now() - started) / 1000

  // Every token endpoint request openid-client makes, with its outcome.
  const polls = []
  let ghostSent = false
  const tracingFetch = async (url, options) => {
    const body = options?.body === undefined ? '' : String(options.body)
    const isPoll = String(url).endsWith('/oauth/token') && body.includes('device_code=')
    if (isPoll && provokeSlowDown && !ghostSent) {
      ghostSent = true
      const ghost = await fetch(url, { ...options, signal: AbortSignal.timeout(10_000) })
      const answer = await ghost.json()
      polls.push({ t: seconds(), by: 'extra', status: ghost.status, error: answer.error ?? null })
      emit({ event: 'poll', ...polls.at(-1) })
    }
    const response = await fetch(url, options)
    if (isPoll) {
      const copy = await response.clone().json()
      polls.push({
        t: seconds(),
        by: 'openid-client',
        status: response.status,
        error: copy.error ?? null,
        interval: copy.interval ?? null,
        retry_after: response.headers.get('retry-after'),
      })
      emit({ event: 'poll', ...polls.at(-1) })
    }
    return response
  }

  // RFC 8414 metadata (/.well-known/oauth-authorization-server); the issuer must equal apiUrl.
  const config = await client.discovery(new URL(apiUrl), clientId, undefined, client.None(), {
    algorithm: 'oauth2',
    execute: [client.allowInsecureRequests],
    [client.customFetch]: tracingFetch,
    timeout: 10,
  })
  const metadata = config.serverMetadata()

  const device = await client.initiateDeviceAuthorization(config, { scope: 'read write' })
  emit({
    event: 'user_code',
    user_code: device.user_code,
    verification_uri: device.verification_uri,
    interval: device.interval,
    expires_in: device.expires_in,
  })

  const tokens = await client.pollDeviceAuthorizationGrant(config, device, undefined, {
    signal: AbortSignal.timeout(TIME_LIMIT_MS),
  })
  const granted = { ...tokens, expires_in: tokens.expiresIn() }

  // Two rotations: refresh0 -> refresh1 -> refresh2. refresh0 is then older than the immediately
  // previous token, which the rotation grace never covers: replaying it is reuse at once.
  const first = await client.refreshTokenGrant(config, tokens.refresh_token)
  const second = await client.refreshTokenGrant(config, first.refresh_token)
  const replay = await refused(client.refreshTokenGrant(config, tokens.refresh_token))
  // Reuse revokes the whole family: the newest token is dead as well.
  const afterReplay = await refused(client.refreshTokenGrant(config, second.refresh_token))

  emit({
    event: 'result',
    issuer: metadata.issuer,
    token_endpoint: metadata.token_endpoint,
    jwks_uri: metadata.jwks_uri,
    device: { interval: device.interval, expires_in: device.expires_in },
    polls,
    tokens: {
      access_token: granted.access_token,
      token_type: granted.token_type,
      expires_in: granted.expires_in,
      scope: granted.scope,
      refresh_token: granted.refresh_token,
    },
    refreshes: [first, second].map((t) => ({
      access_token: t.access_token,
      token_type: t.token_type,
      refresh_token: t.refresh_token,
    })),
    replay,
    after_replay: afterReplay,
    seconds: seconds(),
  })
}

const limit = setTimeout(() => {
  process.stderr.write(`device_flow.mjs: no result within ${TIME_LIMIT_MS / 1000} s\n`)
  process.exit(1)
}, TIME_LIMIT_MS + 5_000)

main()
  .then(() => clearTimeout(limit))
  .catch((error) => {
    process.stderr.write(`device_flow.mjs: ${JSON.stringify(errorInfo(error))}\n${error?.stack ?? ''}\n`)
    process.exit(1)
  })
