"use strict";
// The device verification page: sign in through the identity provider (OpenID Connect authorization code
// flow with PKCE), look a user code up, approve or deny it; and "Your devices": the person's sessions,
// ended one by one or all at once.
//
// Everything shown is set with textContent or built from nodes: nothing from the API, the identity
// provider or the URL is parsed as HTML. The ID token lives in this closure only, in no web storage and
// no cookie; reloading the page signs out of it. Only the sign-in round trip (state, nonce, the PKCE
// verifier, and the code being entered) waits in sessionStorage, and is removed when the person is back.
(() => {
  const MESSAGES = /*MESSAGES*/ {};
  const $ = (id) => document.getElementById(id);
  const main = $("main");
  const config = {
    issuer: main.dataset.issuer || "",
    clientId: main.dataset.clientId || "",
    discoveryUrl: main.dataset.discoveryUrl || "",
    logoutUrl: main.dataset.logoutUrl || "",
    product: main.dataset.product || "",
  };
  // The page is /device or /device/sessions under the API's root (a custom domain may add a base path).
  const ROOT = location.origin + location.pathname.replace(/\/device(?:\/sessions)?\/?$/, "");
  const PAGES = { device: ROOT + "/device", sessions: ROOT + "/device/sessions" };
  const REDIRECT_URI = PAGES.device; // the one address registered with the identity provider
  const API = { verify: ROOT + "/oauth/device/verify", sessions: ROOT + "/auth/sessions" };
  const SIGN_IN_KEY = "device-page.sign-in";
  const SIGNED_OUT_KEY = "device-page.signed-out";
  const ROUND_TRIP_MS = 15 * 60 * 1000; // a sign-in that takes longer is started again
  const STEPS = ["signin", "code", "consent", "done"];
  const SECTIONS = [...STEPS, "sessions"];
  const OLD_REQUEST_SECONDS = 180;
  const KNOWN_SCOPES = ["openid", "profile", "email", "read", "write", "admin", "offline_access"];

  let lang = MESSAGES[main.dataset.lang] ? main.dataset.lang : "en";
  let view = main.dataset.view === "sessions" ? "sessions" : "device";
  let current = "signin"; // the section shown
  let provider = null; // the issuer's discovery document
  let idToken = null;
  let person = {}; // the ID token's claims
  let request = null; // what GET /oauth/device/verify answered for the code being reviewed
  let skew = 0; // the server's clock minus this browser's, from the API's Date header (ms)
  let countdown = null; // { deadline, timer, warned, expired }
  let outcome = null; // "approved" | "denied", on the done step
  let sessions = { items: [], next: null, loaded: false, failed: false };
  let busy = false;
  let shown = { status: null, alert: null }; // the messages on screen, re-rendered on a language change
  const fieldErrors = new Map(); // error element id -> message

  // ------------------------------------------------------------ messages, in the person's language

  function template(key) {
    const table = MESSAGES[lang] || MESSAGES.en;
    return key in table ? table[key] : MESSAGES.en[key] || key;
  }

  function t(key, params) {
    return template(key).replace(/\{(\w+)\}/g, (all, name) =>
      params && name in params ? String(params[name]) : all);
  }

  // A message whose parameters may be nodes (a name in <strong>): built, never parsed.
  function fill(element, key, params) {
    element.replaceChildren();
    for (const part of template(key).split(/(\{\w+\})/)) {
      const name = /^\{(\w+)\}$/.exec(part);
      if (name && params && name[1] in params) {
        const value = params[name[1]];
        element.append(value instanceof Node ? value : String(value));
      } else if (part) {
        element.append(part);
      }
    }
  }

  // The person's own locale for dates, numbers and names (en-GB: a 24-hour clock) when it is of the
  // page's language; else the language.
  function locale() {
    const preferred = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    return preferred.find((tag) => String(tag).toLowerCase().split("-")[0] === lang) || lang;
  }

  function plural(key, n) {
    return t(new Intl.PluralRules(locale()).select(n) === "one" ? key + "_one" : key + "_other", { n });
  }

  function message(m) {
    if (!m) return "";
    let text = m.key ? t(m.key, m.params) : "";
    if (m.minutes) text = t(m.key, { minutes: plural("minutes", m.minutes) });
    if (m.requestId) text += " (" + t("request_id", { id: m.requestId }) + ")";
    return text;
  }

  function say(key, params) {
    shown = { status: key ? { key, params } : null, alert: null };
    $("alert").textContent = "";
    $("status").textContent = message(shown.status);
  }

  function warn(m) {
    shown = { status: null, alert: m || null };
    $("status").textContent = "";
    $("alert").textContent = message(shown.alert);
  }

  function strong(text, className) {
    const element = document.createElement("strong");
    element.textContent = text;
    if (className) element.className = className;
    return element;
  }

  function roleName(role) {
    return MESSAGES.en["role_" + role] ? t("role_" + role) : String(role);
  }

  function countryName(code) {
    try {
      return new Intl.DisplayNames([locale()], { type: "region" }).of(String(code).toUpperCase()) || code;
    } catch {
      return code;
    }
  }

  function dateTime(iso) {
    const when = new Date(iso);
    const element = document.createElement("time");
    if (Number.isNaN(when.getTime())) {
      element.textContent = "—";
      return element;
    }
    element.dateTime = when.toISOString();
    element.textContent = new Intl.DateTimeFormat(locale(), {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
    }).format(when);
    return element;
  }

  function clock(ms) {
    return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit", timeZoneName: "short" })
      .format(new Date(ms));
  }

  function applyLanguage() {
    document.documentElement.lang = lang;
    for (const element of document.querySelectorAll("[data-t]")) {
      if (element.getAttribute("aria-busy") !== "true") element.textContent = t(element.dataset.t);
    }
    for (const element of document.querySelectorAll("[data-t-aria-label]")) {
      element.setAttribute("aria-label", t(element.dataset.tAriaLabel));
    }
    for (const link of document.querySelectorAll(".languages a[data-lang]")) {
      if (link.dataset.lang === lang) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
    if (!config.product) document.querySelector(".product").textContent = t("product_default");
    $("status").textContent = message(shown.status);
    $("alert").textContent = message(shown.alert);
    for (const [id, m] of fieldErrors) $(id).textContent = message(m);
    if (request) renderConsent(request);
    if (countdown) tick();
    if (outcome) renderDone();
    if (sessions.loaded || sessions.failed) renderSessions();
    setTitle();
  }

  // ------------------------------------------------------------ sections and states

  function setTitle() {
    const expired = current === "consent" && countdown && countdown.expired;
    const key = expired ? "title_expired" : "title_" + current;
    const product = config.product || t("product_default");
    document.title = t(key) + " – " + product;
  }

  function show(section, focus) {
    current = section;
    for (const name of SECTIONS) $("step-" + name).hidden = name !== section;
    $("steps").hidden = view === "sessions";
    for (const name of STEPS) {
      const item = $("progress-" + name);
      if (name === section) item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
      item.classList.toggle("done", STEPS.indexOf(name) < STEPS.indexOf(section));
    }
    if (section !== "consent") stopCountdown();
    setTitle();
    const target = focus || $(section + "-title");
    target.focus();
    if (target.select) target.select();
  }

  function setBusy(on, button, key) {
    busy = on;
    for (const b of document.querySelectorAll("main button")) b.disabled = on;
    if (button) {
      button.setAttribute("aria-busy", on ? "true" : "false");
      button.textContent = on && key ? t(key) : t(button.dataset.t);
    }
  }

  function describe(element, id, on) {
    const ids = (element.getAttribute("aria-describedby") || "").split(" ").filter((x) => x && x !== id);
    if (on) ids.push(id);
    if (ids.length) element.setAttribute("aria-describedby", ids.join(" "));
    else element.removeAttribute("aria-describedby");
  }

  // An error tied to its field: shown beside it, named by aria-errormessage and aria-describedby.
  function fieldError(field, errorId, m) {
    const error = $(errorId);
    fieldErrors.set(errorId, m);
    error.textContent = message(m);
    error.hidden = false;
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-errormessage", errorId);
    describe(field, errorId, true);
  }

  function clearFieldError(field, errorId) {
    const error = $(errorId);
    fieldErrors.delete(errorId);
    error.textContent = "";
    error.hidden = true;
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-errormessage");
    describe(field, errorId, false);
  }

  function setView(next, push) {
    view = next;
    main.classList.toggle("wide", view === "sessions");
    if (push) {
      const url = new URL(PAGES[view]);
      const chosen = new URL(location.href).searchParams.get("lang");
      if (chosen) url.searchParams.set("lang", chosen);
      history.pushState({ view }, "", url.href);
    }
    for (const [id, name] of [["nav-connect", "device"], ["nav-devices", "sessions"]]) {
      if (name === view) $(id).setAttribute("aria-current", "page");
      else $(id).removeAttribute("aria-current");
    }
    $("signin-title").dataset.t = view === "sessions" ? "signin_heading_sessions" : "signin_heading";
    $("signin-lead").dataset.t = view === "sessions" ? "signin_lead_sessions" : "signin_lead";
    $("signin-title").textContent = t($("signin-title").dataset.t);
    $("signin-lead").textContent = t($("signin-lead").dataset.t);
    if (!idToken) return show("signin", $("signin-button").disabled ? null : $("signin-button"));
    if (view === "sessions") {
      show("sessions");
      return loadSessions(false);
    }
    if (current === "sessions" || current === "signin") show("code", $("user-code"));
  }

  for (const [id, target] of [["nav-connect", "device"], ["nav-devices", "sessions"]]) {
    $(id).addEventListener("click", (event) => {
      event.preventDefault();
      if (!busy && (target !== view || current === "signin")) setView(target, target !== view);
    });
  }

  window.addEventListener("popstate", () => {
    setView(/\/device\/sessions\/?$/.test(location.pathname) ? "sessions" : "device", false);
  });

  for (const link of document.querySelectorAll(".languages a[data-lang]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      if (!MESSAGES[link.dataset.lang]) return;
      lang = link.dataset.lang;
      const url = new URL(location.href);
      url.searchParams.set("lang", lang);
      history.replaceState(history.state, "", url.href);
      applyLanguage();
    });
  }

  // ------------------------------------------------------------ sign-in (OpenID Connect, code + PKCE)

  function base64url(bytes) {
    let text = "";
    for (const byte of bytes) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomText(bytes) {
    return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
  }

  async function s256(text) {
    return base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));
  }

  function claimsOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims === "object" ? claims : {};
    } catch {
      return {};
    }
  }

  async function discover() {
    if (provider) return provider;
    const response = await fetch(config.discoveryUrl, {
      headers: { Accept: "application/json" }, credentials: "omit", cache: "no-store",
    });
    const document_ = response.ok ? await response.json() : {};
    // OpenID Connect Discovery §4.3: the document is the configured issuer's
    if (document_.issuer !== config.issuer || !document_.authorization_endpoint || !document_.token_endpoint) {
      throw new Error("not the configured issuer's discovery document");
    }
    provider = document_;
    return provider;
  }

  async function beginSignIn() {
    if (busy) return;
    setBusy(true, $("signin-button"), "signin_going");
    say("signin_going");
    let endpoint;
    let saved;
    try {
      endpoint = new URL((await discover()).authorization_endpoint);
      saved = {
        state: randomText(32), nonce: randomText(32), verifier: randomText(48),
        view, lang, userCode: $("user-code").value.trim().slice(0, 64), at: Date.now(),
      };
      sessionStorage.setItem(SIGN_IN_KEY, JSON.stringify(saved));
    } catch {
      setBusy(false, $("signin-button"));
      warn({ key: "signin_unreachable" });
      $("signin-button").focus();
      return;
    }
    const query = {
      response_type: "code", client_id: config.clientId, redirect_uri: REDIRECT_URI, scope: "openid email profile",
      state: saved.state, nonce: saved.nonce, code_challenge: await s256(saved.verifier),
      code_challenge_method: "S256", ui_locales: lang, lang,
    };
    for (const [name, value] of Object.entries(query)) endpoint.searchParams.set(name, value);
    location.assign(endpoint.href);
  }

  async function finishSignIn(params) {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(SIGN_IN_KEY) || "null");
      sessionStorage.removeItem(SIGN_IN_KEY);
    } catch {
      saved = null;
    }
    if (saved && typeof saved === "object") {
      if (MESSAGES[saved.lang]) lang = saved.lang;
      view = saved.view === "sessions" ? "sessions" : "device";
      if (typeof saved.userCode === "string" && saved.userCode) $("user-code").value = saved.userCode;
    }
    // the code and state leave the address bar (and the history) at once
    const clean = new URL(PAGES[view]);
    if (lang !== main.dataset.lang || new URL(location.href).searchParams.get("lang")) {
      clean.searchParams.set("lang", lang);
    }
    history.replaceState({ view }, "", clean.href);
    applyLanguage();
    const fresh = saved && typeof saved.state === "string" && Date.now() - Number(saved.at) < ROUND_TRIP_MS;
    if (!fresh || saved.state !== params.get("state")) {
      warn({ key: "signin_mismatch" });
      return setView(view, false);
    }
    if (params.get("error")) {
      warn({ key: params.get("error") === "access_denied" ? "signin_cancelled" : "signin_failed" });
      return setView(view, false);
    }
    setBusy(true, $("signin-button"), "signin_finishing");
    say("signin_finishing");
    let token = null;
    try {
      const response = await fetch((await discover()).token_endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
        body: new URLSearchParams({
          grant_type: "authorization_code", code: params.get("code") || "", redirect_uri: REDIRECT_URI,
          client_id: config.clientId, code_verifier: saved.verifier,
        }),
        credentials: "omit",
        cache: "no-store",
      });
      const data = await response.json().catch(() => ({}));
      token = response.ok && typeof data.id_token === "string" ? data.id_token : null;
    } catch {
      setBusy(false, $("signin-button"));
      warn({ key: "signin_unreachable" });
      return setView(view, false);
    }
    setBusy(false, $("signin-button"));
    const claims = token ? claimsOf(token) : {};
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    // OpenID Connect Core §3.1.3.7: the ID token is from the issuer, for this client, this sign-in's
    // (its nonce), and current. Its signature is checked by the service on every call.
    const valid = token && claims.iss === config.issuer && audiences.includes(config.clientId) &&
      (!claims.azp || claims.azp === config.clientId) && claims.nonce === saved.nonce &&
      Number(claims.exp) * 1000 > Date.now();
    if (!valid) {
      warn({ key: "signin_failed" });
      return setView(view, false);
    }
    idToken = token;
    person = claims;
    const who = String(claims.email || claims.name || claims["cognito:username"] || claims.sub || "");
    $("who-email").textContent = who;
    $("who-email").title = who;
    $("who").hidden = false;
    if (view === "device" && $("user-code").value.trim()) $("code-lead").dataset.t = "code_lead_prefilled";
    $("code-lead").textContent = t($("code-lead").dataset.t);
    say("signed_in");
    setView(view, false);
  }

  function forget() {
    idToken = null;
    person = {};
    request = null;
    outcome = null;
    sessions = { items: [], next: null, loaded: false, failed: false };
    stopCountdown();
    $("who").hidden = true;
    $("who-email").textContent = "";
  }

  $("signin-button").addEventListener("click", beginSignIn);

  $("sign-out").addEventListener("click", () => {
    const hint = idToken;
    forget();
    // End the identity provider's session too, where it says how: the next person at this browser
    // must sign in, not be let through by a remembered sign-in.
    let target = null;
    if (config.logoutUrl) {
      target = new URL(config.logoutUrl);
      target.searchParams.set("client_id", config.clientId);
      target.searchParams.set("logout_uri", REDIRECT_URI);
    } else if (provider && provider.end_session_endpoint) {
      target = new URL(provider.end_session_endpoint);
      target.searchParams.set("client_id", config.clientId);
      target.searchParams.set("id_token_hint", hint || "");
      target.searchParams.set("post_logout_redirect_uri", REDIRECT_URI);
    }
    if (target) {
      try {
        sessionStorage.setItem(SIGNED_OUT_KEY, "1");
      } catch {
        // the message after the round trip is a nicety
      }
      location.assign(target.href);
      return;
    }
    say("signed_out");
    setView(view, false);
  });

  function sessionEnded() {
    forget();
    warn({ key: "session_ended" });
    setView(view, false);
  }

  // ------------------------------------------------------------ the API

  async function api(method, url, body) {
    const init = {
      method,
      headers: { Authorization: "Bearer " + idToken, Accept: "application/json" },
      credentials: "omit",
      cache: "no-store",
    };
    if (body) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      return { status: 0, data: {} };
    }
    let data = {};
    try {
      data = await response.json();
    } catch {
      data = {};
    }
    const date = Date.parse(response.headers.get("date") || "");
    if (!Number.isNaN(date)) skew = date - Date.now();
    const retry = Number(response.headers.get("retry-after"));
    return {
      status: response.status,
      data: data && typeof data === "object" ? data : {},
      retryAfter: Number.isFinite(retry) && retry > 0 ? retry : 900,
    };
  }

  function problem(result) {
    const data = result.data || {};
    switch (result.status) {
      case 0:
        return { key: "unreachable" };
      case 404:
        return { key: "code_wrong" };
      case 409:
        return { key: "code_used" };
      case 429:
        return { key: "code_too_many", minutes: Math.max(1, Math.ceil(result.retryAfter / 60)) };
      case 403:
        return { key: "not_allowed" };
      case 400:
      case 422:
        return { key: "code_invalid" };
      default:
        return { key: "server_error", requestId: data.request_id ? String(data.request_id) : "" };
    }
  }

  // ------------------------------------------------------------ code entry

  $("code-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    const input = $("user-code");
    const code = input.value.trim().toUpperCase();
    clearFieldError(input, "code-error");
    warn(null);
    if (!code) {
      fieldError(input, "code-error", { key: "code_missing" });
      input.focus();
      return;
    }
    setBusy(true, $("code-button"), "checking");
    say("checking_code");
    const url = new URL(API.verify);
    url.searchParams.set("user_code", code);
    const result = await api("GET", url.href);
    setBusy(false, $("code-button"));
    if (result.status === 401) return sessionEnded();
    if (result.status === 200 && result.data.status !== "pending") result.status = 409;
    if (result.status !== 200) {
      const m = problem(result);
      if ([400, 404, 409, 422, 429].includes(result.status)) fieldError(input, "code-error", m);
      else warn(m);
      say(null);
      input.focus();
      input.select();
      return;
    }
    request = result.data;
    outcome = null;
    clearFieldError($("org-options"), "org-error");
    $("consent-body").hidden = false;
    $("consent-expired").hidden = true;
    renderConsent(request);
    startCountdown(request.expires_at);
    say(null);
    show("consent", $("consent-title"));
  });

  // ------------------------------------------------------------ consent

  function renderDevice(info, clientName) {
    const device = info.device || {};
    let age = null;
    let when = null;
    if (device.requested_at && !Number.isNaN(Date.parse(device.requested_at))) {
      age = Math.max(0, (Date.now() + skew - Date.parse(device.requested_at)) / 1000);
      when = age < 60
        ? t("just_now")
        : new Intl.RelativeTimeFormat(locale(), { numeric: "auto" }).format(-Math.round(age / 60), "minute");
    }
    const ip = device.ip
      ? (device.country ? t("device_ip_country", { ip: device.ip, country: countryName(device.country) }) : device.ip)
      : null;
    let what = clientName + (device.client_version ? " " + device.client_version : "");
    if (device.user_agent) what = t("device_agent", { client: what, agent: device.user_agent });
    const key = when && ip ? "device_when_ip" : when ? "device_when" : ip ? "device_ip" : "device_none";
    $("device-origin").textContent = t(key, { when, ip, what });
    const warnings = [];
    if (info.same_network === false) warnings.push(t("device_warning_network"));
    if (age !== null && age > OLD_REQUEST_SECONDS) warnings.push(t("device_warning_old"));
    const warning = $("device-warning");
    warning.textContent = warnings.length ? warnings.join(" ") + " " + t("device_warning_end") : "";
    warning.hidden = !warnings.length;
  }

  function renderConsent(info) {
    const clientName = (info.client && (info.client.name || info.client.id)) || t("client_unknown");
    fill($("consent-title"), "consent_heading", { client: strong(clientName, "client-name") });
    fill($("consent-lead"), "consent_lead", { code: strong(info.user_code, "code") });
    renderDevice(info, clientName);

    const list = $("scopes");
    list.replaceChildren();
    const scopes = String(info.scope || "").split(" ").filter(Boolean);
    if (!scopes.length) scopes.push("");
    for (const scope of scopes) {
      const item = document.createElement("li");
      const text = document.createElement("span");
      text.textContent = !scope ? t("scope_none")
        : KNOWN_SCOPES.includes(scope) ? t("scope_" + scope) : t("scope_other", { scope });
      item.append(text);
      if (scope) {
        const name = document.createElement("code");
        name.textContent = scope;
        item.append(" ", name);
      }
      list.append(item);
    }

    const orgs = Array.isArray(info.organizations) ? info.organizations : [];
    const single = $("org-single");
    const picker = $("org-picker");
    const options = $("org-options");
    const chosen = document.querySelector('input[name="organization"]:checked');
    const chosenId = chosen ? chosen.value : null;
    options.replaceChildren();
    single.hidden = orgs.length > 1;
    picker.hidden = orgs.length <= 1;
    if (orgs.length === 1) {
      fill(single, "org_single", { name: strong(orgs[0].name), role: roleName(orgs[0].role) });
    } else if (orgs.length === 0) {
      single.textContent = t("org_none");
    }
    if (orgs.length > 1) {
      orgs.forEach((org, index) => {
        const row = document.createElement("div");
        row.className = "option";
        const radio = document.createElement("input");
        radio.type = "radio";
        radio.name = "organization";
        radio.value = org.id;
        radio.id = "org-" + index;
        radio.checked = org.id === chosenId;
        const label = document.createElement("label");
        label.htmlFor = radio.id;
        label.textContent = t("org_option", { name: org.name, role: roleName(org.role) });
        row.append(radio, label);
        options.append(row);
      });
    }
    if (countdown && countdown.expired) renderExpired();
  }

  // The request's live countdown: the server's expires_at, on this browser's clock corrected by the
  // API's Date header. At zero the screen says the request expired; nothing is sent to the API.
  function startCountdown(expiresAt) {
    stopCountdown();
    const deadline = Date.parse(expiresAt) - skew;
    if (Number.isNaN(deadline)) return;
    countdown = { deadline, warned: false, expired: false, timer: setInterval(tick, 1000) };
    tick();
  }

  function stopCountdown() {
    if (countdown) clearInterval(countdown.timer);
    countdown = null;
    $("expiry").textContent = "";
  }

  function left() {
    return countdown ? Math.ceil((countdown.deadline - Date.now()) / 1000) : Infinity;
  }

  function tick() {
    if (!countdown || countdown.expired) return;
    const seconds = left();
    if (seconds <= 0) return expire();
    const minutes = Math.floor(seconds / 60);
    const time = minutes + ":" + String(seconds % 60).padStart(2, "0");
    $("expiry").textContent = t("expires_in", { time, clock: clock(countdown.deadline) });
    if (seconds <= 60 && !countdown.warned) {
      countdown.warned = true;
      say("expires_soon");
    }
  }

  function renderExpired() {
    fill($("expired-text"), "expired_text", { code: strong(request ? request.user_code : "", "code") });
  }

  function expire() {
    clearInterval(countdown.timer);
    countdown.expired = true;
    $("expiry").textContent = "";
    $("consent-body").hidden = true;
    $("consent-expired").hidden = false;
    renderExpired();
    say("expired_status");
    setTitle();
    if (current === "consent") $("expired-title").focus();
  }

  async function decide(decision, button) {
    if (busy || !request) return;
    if (left() <= 0) return expire();
    const body = { user_code: request.user_code, decision };
    const orgs = Array.isArray(request.organizations) ? request.organizations : [];
    const options = $("org-options");
    clearFieldError(options, "org-error");
    if (decision === "approve" && orgs.length > 1) {
      const chosen = document.querySelector('input[name="organization"]:checked');
      if (!chosen) {
        fieldError(options, "org-error", { key: "org_required" });
        $("org-0").focus();
        return;
      }
      body.organization_id = chosen.value;
    }
    setBusy(true, button, decision === "approve" ? "approving" : "denying");
    say(decision === "approve" ? "approving" : "denying");
    const result = await api("POST", API.verify, body);
    setBusy(false, button);
    if (result.status === 401) return sessionEnded();
    if (result.status !== 200) {
      const orgProblem = result.status === 422 &&
        JSON.stringify(result.data.details || []).includes("organization_id");
      if (orgProblem) {
        fieldError(options, "org-error", { key: "org_required" });
        say(null);
        button.focus();
        return;
      }
      const m = problem(result);
      if ([404, 409, 429].includes(result.status)) {
        request = null;
        show("code", $("user-code"));
        fieldError($("user-code"), "code-error", m);
        say(null);
        return;
      }
      warn(m);
      button.focus();
      return;
    }
    outcome = result.data.status === "approved" ? "approved" : "denied";
    request = null;
    $("user-code").value = "";
    renderDone();
    say(outcome === "approved" ? "approved_status" : "denied_status");
    show("done");
  }

  function renderDone() {
    const approved = outcome === "approved";
    $("done-mark").className = "mark " + (approved ? "ok" : "no");
    $("done-mark").textContent = approved ? "✓" : "✕";
    $("done-title").textContent = t(approved ? "approved_heading" : "denied_heading");
    $("done-text").textContent = t(approved ? "approved_text" : "denied_text");
  }

  $("org-options").addEventListener("change", () => clearFieldError($("org-options"), "org-error"));
  $("approve-button").addEventListener("click", (event) => decide("approve", event.currentTarget));
  $("deny-button").addEventListener("click", (event) => decide("deny", event.currentTarget));

  function backToCode() {
    request = null;
    outcome = null;
    say(null);
    $("code-lead").dataset.t = "code_lead";
    $("code-lead").textContent = t("code_lead");
    show("code", $("user-code"));
  }

  $("other-code").addEventListener("click", backToCode);
  $("another").addEventListener("click", backToCode);

  // ------------------------------------------------------------ your devices

  function deviceText(device) {
    const d = device || {};
    const parts = [];
    if (d.user_agent) parts.push(d.user_agent);
    if (d.client_version) parts.push(t("session_version", { version: d.client_version }));
    if (d.ip) parts.push(d.country ? t("device_ip_country", { ip: d.ip, country: countryName(d.country) }) : d.ip);
    return parts.length ? parts.join(" · ") : t("session_device_unknown");
  }

  function row(list, key, value) {
    const term = document.createElement("dt");
    term.textContent = t(key);
    const detail = document.createElement("dd");
    detail.append(value);
    list.append(term, detail);
  }

  function sessionItem(session, index) {
    const item = document.createElement("li");
    item.className = "session";
    item.dataset.id = session.id;
    const title = document.createElement("h2");
    title.id = "session-" + index + "-title";
    const client = (session.client && (session.client.name || session.client.id)) || t("client_unknown");
    const organization = (session.organization && (session.organization.name || session.organization.id)) || "";
    title.textContent = t("session_title", { client, organization });
    item.setAttribute("aria-labelledby", title.id);
    const details = document.createElement("dl");
    row(details, "session_device", deviceText(session.device));
    row(details, "session_created", dateTime(session.created_at));
    row(details, "session_last_used", dateTime(session.last_used_at));
    row(details, "session_expires", dateTime(session.expires_at));
    row(details, "session_access", String(session.scope || "—"));
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.dataset.t = "session_sign_out";
    button.textContent = t("session_sign_out");
    button.setAttribute("aria-describedby", title.id);
    button.addEventListener("click", () => endSession(session, button));
    item.append(title, details, button);
    return item;
  }

  function renderSessions() {
    const list = $("sessions-list");
    list.replaceChildren(...sessions.items.map(sessionItem));
    const count = sessions.items.length;
    $("sessions-summary").textContent = !sessions.loaded ? ""
      : count ? plural("sessions_count", count) + (sessions.next ? "…" : "") : t("sessions_none");
    $("sessions-zone").textContent = count
      ? t("time_zone", { zone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" })
      : "";
    $("sessions-problem").textContent = sessions.failed ? t("sessions_failed") : "";
    $("sessions-problem").hidden = !sessions.failed;
    $("sessions-retry").hidden = !sessions.failed;
    $("sessions-more").hidden = !sessions.next;
    $("sign-out-all-box").hidden = !count;
    const question = $("sign-out-all-question");
    question.textContent = t("sign_out_all_confirm", { n: count + (sessions.next ? "+" : "") });
  }

  async function loadSessions(more) {
    if (!more) {
      sessions = { items: [], next: null, loaded: false, failed: false };
      $("sign-out-all-confirm").hidden = true;
      $("sign-out-all").hidden = false;
      renderSessions();
      say("sessions_loading");
    }
    const url = new URL(API.sessions);
    if (more && sessions.next) url.searchParams.set("cursor", sessions.next);
    setBusy(true, more ? $("sessions-more") : null, more ? "sessions_loading" : null);
    const result = await api("GET", url.href);
    setBusy(false, more ? $("sessions-more") : null);
    if (result.status === 401) return sessionEnded();
    if (result.status !== 200 || !Array.isArray(result.data.sessions)) {
      sessions.failed = true;
      renderSessions();
      say(null);
      return;
    }
    const focusIndex = sessions.items.length;
    sessions.items.push(...result.data.sessions);
    sessions.next = typeof result.data.next === "string" && result.data.next ? result.data.next : null;
    sessions.loaded = true;
    sessions.failed = false;
    renderSessions();
    say(null);
    $("status").textContent = $("sessions-summary").textContent;
    if (more) {
      const first = $("sessions-list").children[focusIndex];
      if (first) first.querySelector("button").focus();
    }
  }

  async function endSession(session, button) {
    if (busy) return;
    setBusy(true, button, "session_signing_out");
    const result = await api("DELETE", API.sessions + "/" + encodeURIComponent(session.id));
    setBusy(false, button);
    if (result.status === 401) return sessionEnded();
    if (result.status !== 200 && result.status !== 404) {
      warn(problem(result));
      button.focus();
      return;
    }
    const index = sessions.items.findIndex((s) => s.id === session.id);
    if (index >= 0) sessions.items.splice(index, 1);
    renderSessions();
    const client = (session.client && (session.client.name || session.client.id)) || t("client_unknown");
    if (result.status === 404) say("session_gone");
    else say("session_signed_out", { client });
    const next = $("sessions-list").children[Math.min(index, sessions.items.length - 1)];
    (next ? next.querySelector("button") : $("sessions-title")).focus();
  }

  $("sessions-more").addEventListener("click", () => loadSessions(true));
  $("sessions-retry").addEventListener("click", () => loadSessions(false));

  $("sign-out-all").addEventListener("click", () => {
    $("sign-out-all-confirm").hidden = false;
    $("sign-out-all").hidden = true;
    $("sign-out-all-no").focus();
  });

  $("sign-out-all-no").addEventListener("click", () => {
    $("sign-out-all-confirm").hidden = true;
    $("sign-out-all").hidden = false;
    $("sign-out-all").focus();
  });

  $("sign-out-all-yes").addEventListener("click", async (event) => {
    if (busy) return;
    const button = event.currentTarget;
    setBusy(true, button, "session_signing_out");
    const result = await api("POST", API.sessions + "/revoke-all");
    setBusy(false, button);
    if (result.status === 401) return sessionEnded();
    if (result.status !== 200) {
      warn(problem(result));
      button.focus();
      return;
    }
    sessions = { items: [], next: null, loaded: true, failed: false };
    $("sign-out-all-confirm").hidden = true;
    $("sign-out-all").hidden = false;
    renderSessions();
    const count = Number(result.data.count) || 0;
    say("signed_out_all_" + (new Intl.PluralRules(locale()).select(count) === "one" ? "one" : "other"), { n: count });
    $("sessions-title").focus();
  });

  // ------------------------------------------------------------ start

  setView(view, false);
  if (!config.clientId || !config.discoveryUrl || !window.crypto || !crypto.subtle) {
    warn({ key: "signin_not_configured" });
    return;
  }
  // The script runs: the controls the page starts with disabled (for browsers without it) now work.
  $("signin-button").disabled = false;
  $("code-fields").disabled = false;
  let signedOut = false;
  try {
    signedOut = sessionStorage.getItem(SIGNED_OUT_KEY) === "1";
    sessionStorage.removeItem(SIGNED_OUT_KEY);
  } catch {
    signedOut = false;
  }
  const params = new URLSearchParams(location.search);
  if (params.has("state") && (params.has("code") || params.has("error"))) {
    finishSignIn(params);
    return;
  }
  if (signedOut) say("signed_out");
  $("signin-button").focus();
  discover().catch(() => {}); // early, so that Sign in goes at once (and a failure shows on the click)
})();
