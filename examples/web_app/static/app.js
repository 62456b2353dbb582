// A web app signing in to the token service, end to end (examples/web_app/README.md):
//
// 1. sign in with the device flow: POST /oauth/device/code, show the code and a link to the verification
//    page (the person approves in another tab), poll POST /auth/device/exchange;
// 2. move the refresh token into the HttpOnly cookie at once: POST /auth/refresh with
//    {"refresh_token", "set_cookie": true} — the successor comes back only in Set-Cookie, and this page
//    forgets the token it had: from now on no script can read a refresh token;
// 3. refresh with the cookie (credentials: "include", no body), before the access token expires and when
//    the page loads (a reload stays signed in);
// 4. call an API with the access token, kept in memory only;
// 5. sign out: POST /auth/logout revokes the session and clears the cookie.
"use strict";

const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const CLIENT_ID = meta("client-id");
const API = meta("api-url"); // "" : the token service is this page's own origin
const RESOURCE = meta("resource-url") || "/demo/me";

let accessToken = null; // in memory only: never in localStorage, sessionStorage or a readable cookie
let refreshTimer = null;

const $ = (id) => document.getElementById(id);
const sleep = (seconds) => new Promise((done) => setTimeout(done, seconds * 1000));

function show(view) {
  for (const id of ["signed-out", "device", "signed-in"]) $(id).hidden = id !== view;
}

function fail(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

async function send(path, { form, json, cookie } = {}) {
  const init = { method: "POST", headers: {} };
  if (form) {
    init.headers["content-type"] = "application/x-www-form-urlencoded";
    init.body = new URLSearchParams(form);
  } else if (json) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  if (cookie) init.credentials = "include"; // the refresh cookie rides along (and may be set)
  const response = await fetch(`${API}${path}`, init);
  const body = await response.json().catch(() => ({}));
  return { status: response.status, body, retryAfter: Number(response.headers.get("retry-after")) };
}

// ------------------------------------------------------------------ 1. the device flow

async function signIn() {
  $("error").hidden = true;
  const started = await send("/oauth/device/code", { form: { client_id: CLIENT_ID, scope: "read write" } });
  if (started.status !== 200) return fail(`Could not start: ${started.body.error_description}`);
  const { device_code, user_code, verification_uri_complete, expires_in } = started.body;
  let interval = started.body.interval;
  $("user-code").textContent = user_code;
  $("verify-link").href = verification_uri_complete;
  $("device-status").textContent = "Waiting for your approval…";
  show("device");

  const deadline = Date.now() + expires_in * 1000;
  while (Date.now() < deadline) {
    const polled = await send("/auth/device/exchange", { json: { device_code, client_id: CLIENT_ID } });
    if (polled.status === 200) return keepInCookie(polled.body.refresh_token);
    if (polled.body.type === "slow_down") interval = polled.retryAfter || interval + 5; // RFC 8628 §3.5
    else if (polled.body.type !== "authorization_pending") {
      show("signed-out");
      return fail(polled.body.message); // denied, expired, ...
    }
    await sleep(interval);
  }
  show("signed-out");
  fail("The code expired; sign in again.");
}

// ------------------------------------------------------------------ 2. into the HttpOnly cookie

async function keepInCookie(refreshToken) {
  const moved = await send("/auth/refresh", {
    json: { refresh_token: refreshToken, set_cookie: true },
    cookie: true,
  });
  if (moved.status !== 200) return fail(`Could not keep the session: ${moved.body.message}`);
  if ("refresh_token" in moved.body) {
    // A server without set_cookie answered in the body: keep nothing rather than a readable token.
    return fail("This token service does not support set_cookie; the session was not kept.");
  }
  signedIn(moved.body);
}

// ------------------------------------------------------------------ 3. refresh with the cookie

async function refresh({ quiet = false } = {}) {
  const refreshed = await send("/auth/refresh", { cookie: true });
  if (refreshed.status === 200) return signedIn(refreshed.body);
  signedOut();
  if (!quiet) fail(`Signed out: ${refreshed.body.message}`); // invalid_grant: ended, expired, or reuse
}

function signedIn(answer) {
  accessToken = answer.access_token;
  $("who").textContent = answer.user.email || answer.user.name;
  $("org").textContent = answer.organization.name;
  $("expires-in").textContent = String(answer.expires_in);
  $("api-answer").textContent = "";
  show("signed-in");
  clearTimeout(refreshTimer); // refresh a minute before the access token expires
  refreshTimer = setTimeout(() => refresh(), Math.max(answer.expires_in - 60, 5) * 1000);
}

function signedOut() {
  accessToken = null;
  clearTimeout(refreshTimer);
  show("signed-out");
}

// ------------------------------------------------------------------ 4. call an API

async function callApi() {
  const response = await fetch(RESOURCE, { headers: { authorization: `Bearer ${accessToken}` } });
  const body = await response.json().catch(() => ({}));
  $("api-answer").textContent = `${response.status}\n${JSON.stringify(body, null, 2)}`;
}

// ------------------------------------------------------------------ 5. sign out

async function signOut() {
  await send("/auth/logout", { cookie: true });
  signedOut();
}

$("sign-in").addEventListener("click", signIn);
$("refresh").addEventListener("click", () => refresh());
$("call-api").addEventListener("click", callApi);
$("sign-out").addEventListener("click", signOut);
refresh({ quiet: true }); // a cookie from an earlier visit signs the page in again
