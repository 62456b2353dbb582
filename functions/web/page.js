"use strict";
// The device verification page: sign in with the user pool, look a user code up, approve or deny it.
// Everything shown is set with textContent: nothing from the API or the URL is parsed as HTML. The ID
// token lives in this closure only, in no web storage and no cookie; reloading the page signs out.
(() => {
  const $ = (id) => document.getElementById(id);
  const main = $("main");
  const config = {
    endpoint: main.dataset.cognitoEndpoint || "",
    clientId: main.dataset.clientId || "",
  };
  const verifyUrl = new URL("oauth/device/verify", document.baseURI).href;
  const STEPS = ["signin", "code", "consent", "done"];
  const TITLES = { signin: "Sign in", code: "Enter code", consent: "Review request", done: "Done" };
  const SCOPES = {
    openid: "Confirm who you are",
    profile: "See your name",
    email: "See your email address",
    read: "Read your data",
    write: "Create and change your data",
    admin: "Administer your organization",
    offline_access: "Stay signed in until you sign out",
  };

  let idToken = null;
  let request = null; // what GET /oauth/device/verify answered for the code being reviewed
  let busy = false;

  // ------------------------------------------------------------ messages and steps

  function say(text) {
    $("alert").textContent = "";
    $("status").textContent = text || "";
  }

  function warn(text) {
    $("status").textContent = "";
    $("alert").textContent = text || "";
  }

  function show(step, focus) {
    for (const name of STEPS) {
      $("step-" + name).hidden = name !== step;
      const item = $("progress-" + name);
      if (name === step) item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
      item.classList.toggle("done", STEPS.indexOf(name) < STEPS.indexOf(step));
    }
    document.title = TITLES[step] + " – Connect a device";
    const target = focus || $(step + "-title");
    target.focus();
    if (target.select) target.select();
  }

  function setBusy(on, button, label) {
    busy = on;
    for (const b of document.querySelectorAll("main button")) b.disabled = on;
    if (button) {
      if (on) {
        button.dataset.label = button.textContent;
        button.textContent = label;
      } else if (button.dataset.label) {
        button.textContent = button.dataset.label;
      }
      button.setAttribute("aria-busy", on ? "true" : "false");
    }
  }

  function invalid(input, on) {
    if (on) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function minutes(seconds) {
    const n = Math.max(1, Math.ceil(seconds / 60));
    return n === 1 ? "a minute" : n + " minutes";
  }

  // ------------------------------------------------------------ sign-in (Cognito's JSON API)

  function claimsOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return {};
    }
  }

  function signInProblem(type, challenge) {
    if (challenge) {
      return "Your account needs a sign-in step this page cannot do (" + challenge + "). " +
        "Sign in to the app once to finish setting up your account, then try again.";
    }
    switch (type) {
      case "NotAuthorizedException":
      case "UserNotFoundException":
        return "Sign-in failed: the email or password is not right. Check them and try again.";
      case "UserNotConfirmedException":
        return "Sign-in failed: your account is not confirmed yet. Confirm your email address first.";
      case "PasswordResetRequiredException":
        return "Sign-in failed: you need to reset your password before you can sign in.";
      case "TooManyRequestsException":
      case "LimitExceededException":
        return "Sign-in failed: too many attempts. Wait a few minutes, then try again.";
      case "network":
        return "Sign-in failed: the sign-in service could not be reached. Check your connection and try again.";
      default:
        return "Sign-in failed. Try again in a moment.";
    }
  }

  async function signIn(email, password) {
    let response;
    try {
      response = await fetch(config.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        },
        body: JSON.stringify({
          AuthFlow: "USER_PASSWORD_AUTH",
          ClientId: config.clientId,
          AuthParameters: { USERNAME: email, PASSWORD: password },
        }),
        credentials: "omit",
        cache: "no-store",
      });
    } catch {
      return { problem: signInProblem("network") };
    }
    let data = {};
    try {
      data = await response.json();
    } catch {
      data = {};
    }
    if (!response.ok) {
      const type = String(data.__type || response.headers.get("x-amzn-errortype") || "");
      return { problem: signInProblem(type.split("#").pop().split(":")[0]) };
    }
    const token = data.AuthenticationResult && data.AuthenticationResult.IdToken;
    if (!token) return { problem: signInProblem("", data.ChallengeName || "unknown") };
    return { token };
  }

  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    const email = $("email");
    const password = $("password");
    invalid(email, false);
    invalid(password, false);
    if (!email.value.trim() || !password.value) {
      const missing = !email.value.trim() ? email : password;
      invalid(missing, true);
      warn(missing === email ? "Enter your email address." : "Enter your password.");
      missing.focus();
      return;
    }
    setBusy(true, $("signin-button"), "Signing in…");
    say("Signing in…");
    const result = await signIn(email.value.trim(), password.value);
    setBusy(false, $("signin-button"));
    if (result.problem) {
      invalid(password, true);
      warn(result.problem);
      password.select();
      password.focus();
      return;
    }
    idToken = result.token;
    password.value = "";
    const claims = claimsOf(idToken);
    $("who-email").textContent = claims.email || claims["cognito:username"] || email.value.trim();
    $("who").hidden = false;
    const code = $("user-code");
    if (code.value.trim()) {
      $("code-lead").textContent =
        "Check that this is the code your device shows, then choose Continue.";
    }
    say("Signed in.");
    show("code", code);
  });

  $("sign-out").addEventListener("click", () => {
    idToken = null;
    request = null;
    $("who").hidden = true;
    $("who-email").textContent = "";
    say("You are signed out.");
    show("signin", $("email"));
  });

  // ------------------------------------------------------------ the API

  async function api(method, body, query) {
    const url = new URL(verifyUrl);
    if (query) url.search = new URLSearchParams(query).toString();
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
      response = await fetch(url.href, init);
    } catch {
      return { status: 0, data: {} };
    }
    let data = {};
    try {
      data = await response.json();
    } catch {
      data = {};
    }
    const retry = Number(response.headers.get("retry-after"));
    return { status: response.status, data, retryAfter: Number.isFinite(retry) && retry > 0 ? retry : 900 };
  }

  function apiProblem(result) {
    const data = result.data || {};
    switch (result.status) {
      case 0:
        return "The service could not be reached. Check your connection and try again.";
      case 404:
        return "That code is wrong or has expired. Check the code on your device and try again. " +
          "If it has expired, start again on your device to get a new code.";
      case 409:
        return "This code has already been used: the request was approved or denied before. " +
          "Start again on your device to get a new code.";
      case 429:
        return "Too many wrong codes. Wait " + minutes(result.retryAfter) + ", then try again.";
      case 403:
        return data.message ? String(data.message) : "You are not allowed to approve this request.";
      case 400:
      case 422:
        return data.message ? String(data.message) : "The request was not accepted. Check the code and try again.";
      default:
        return "Something went wrong on our side. Try again in a moment." +
          (data.request_id ? " (Request ID: " + String(data.request_id) + ")" : "");
    }
  }

  function sessionEnded() {
    idToken = null;
    $("who").hidden = true;
    warn("Your session has ended. Sign in again to continue.");
    show("signin", $("email"));
  }

  // ------------------------------------------------------------ code entry

  $("code-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    const input = $("user-code");
    const code = input.value.trim().toUpperCase();
    invalid(input, false);
    if (!code) {
      invalid(input, true);
      warn("Enter the code your device shows.");
      input.focus();
      return;
    }
    setBusy(true, $("code-button"), "Checking…");
    say("Checking the code…");
    const result = await api("GET", null, { user_code: code });
    setBusy(false, $("code-button"));
    if (result.status === 401) return sessionEnded();
    if (result.status === 200 && result.data.status !== "pending") {
      result.status = 409;
    }
    if (result.status !== 200) {
      invalid(input, result.status === 404);
      warn(apiProblem(result));
      input.focus();
      input.select();
      return;
    }
    request = result.data;
    renderConsent(request);
    say("");
    show("consent");
  });

  // ------------------------------------------------------------ consent

  // Where the request came from (RFC 8628 §5.4): "Requested 2 minutes ago from 203.0.113.7 (NL), Demo CLI
  // 1.4.2 on Linux", and a warning when the device is on another network or the request is old.
  const OLD_REQUEST_SECONDS = 180;

  function ago(seconds) {
    if (seconds < 60) return "just now";
    const minutes = Math.round(seconds / 60);
    return minutes === 1 ? "1 minute ago" : minutes + " minutes ago";
  }

  function renderDevice(info, clientName) {
    const device = info.device || {};
    const parts = [];
    let age = null;
    if (device.requested_at) {
      age = Math.max(0, (Date.now() - Date.parse(device.requested_at)) / 1000);
      parts.push("Requested " + ago(age));
    } else {
      parts.push("Requested");
    }
    if (device.ip) parts.push("from " + device.ip + (device.country ? " (" + device.country + ")" : ""));
    let what = clientName + (device.client_version ? " " + device.client_version : "");
    if (device.user_agent) what += " — " + device.user_agent;
    $("device-origin").textContent = parts.join(" ") + ", " + what + ".";
    const warnings = [];
    if (info.same_network === false) {
      warnings.push("This request came from a different network than the one you are on now.");
    }
    if (age !== null && age > OLD_REQUEST_SECONDS) warnings.push("It was started more than 3 minutes ago.");
    const warning = $("device-warning");
    warning.textContent = warnings.length
      ? warnings.join(" ") + " If you did not start it yourself, deny it."
      : "";
    warning.hidden = !warnings.length;
  }

  function renderConsent(info) {
    const clientName = (info.client && (info.client.name || info.client.id)) || "A device";
    $("client-name").textContent = clientName;
    $("consent-code").textContent = info.user_code;
    renderDevice(info, clientName);

    const list = $("scopes");
    list.replaceChildren();
    const scopes = String(info.scope || "").split(" ").filter(Boolean);
    if (!scopes.length) scopes.push("");
    for (const scope of scopes) {
      const item = document.createElement("li");
      const text = document.createElement("span");
      text.textContent = scope ? SCOPES[scope] || "Use the permission “" + scope + "”" : "Sign in as you";
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
    options.replaceChildren();
    single.hidden = orgs.length > 1;
    picker.hidden = orgs.length <= 1;
    if (orgs.length === 1) {
      single.textContent = "";
      const name = document.createElement("strong");
      name.textContent = orgs[0].name;
      single.append("Organization: ", name, " (your role: " + orgs[0].role + ")");
    } else if (orgs.length === 0) {
      single.textContent = "You do not belong to an organization, so you cannot approve this request.";
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
        const label = document.createElement("label");
        label.htmlFor = radio.id;
        label.textContent = org.name + " (" + org.role + ")";
        row.append(radio, label);
        options.append(row);
      });
    }

    const expires = new Date(info.expires_at);
    $("expiry").textContent = Number.isNaN(expires.getTime())
      ? ""
      : "This request expires at " + expires.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ".";
  }

  async function decide(decision, button) {
    if (busy || !request) return;
    const body = { user_code: request.user_code, decision };
    const orgs = Array.isArray(request.organizations) ? request.organizations : [];
    if (decision === "approve" && orgs.length > 1) {
      const chosen = document.querySelector('input[name="organization"]:checked');
      if (!chosen) {
        warn("Choose the organization to sign in to, then choose Approve.");
        $("org-0").focus();
        return;
      }
      body.organization_id = chosen.value;
    }
    setBusy(true, button, decision === "approve" ? "Approving…" : "Denying…");
    say(decision === "approve" ? "Approving…" : "Denying…");
    const result = await api("POST", body);
    setBusy(false, button);
    if (result.status === 401) return sessionEnded();
    if (result.status !== 200) {
      const field = result.status === 422 && JSON.stringify(result.data.details || []).includes("organization_id");
      warn(field ? "Choose the organization to sign in to, then choose Approve." : apiProblem(result));
      if (result.status === 404 || result.status === 409 || result.status === 429) {
        request = null;
        show("code", $("user-code"));
        // show() moved the focus; keep the message visible (the alert region announces it)
        return;
      }
      button.focus();
      return;
    }
    const approved = result.data.status === "approved";
    $("done-mark").className = "mark " + (approved ? "ok" : "no");
    $("done-mark").textContent = approved ? "✓" : "✕";
    $("done-title").textContent = approved ? "Device connected" : "Request denied";
    $("done-text").textContent = approved
      ? "You can return to your device. It will finish signing in by itself in a few seconds."
      : "The device will not get access to your account. You can close this page.";
    say(approved ? "Approved. You can return to your device." : "Denied. The device will not get access.");
    request = null;
    $("user-code").value = "";
    show("done");
  }

  $("org-options").addEventListener("change", () => say(""));
  $("approve-button").addEventListener("click", (event) => decide("approve", event.currentTarget));
  $("deny-button").addEventListener("click", (event) => decide("deny", event.currentTarget));

  $("other-code").addEventListener("click", () => {
    request = null;
    say("");
    $("code-lead").textContent = "Your device shows a code of 8 letters, such as BCDF-GHJK.";
    show("code", $("user-code"));
  });

  $("another").addEventListener("click", () => {
    say("");
    $("code-lead").textContent = "Your device shows a code of 8 letters, such as BCDF-GHJK.";
    show("code", $("user-code"));
  });

  // ------------------------------------------------------------ start

  if (!config.endpoint || !config.clientId) {
    warn("Sign-in is not configured for this page. Contact the service's administrator.");
    for (const el of document.querySelectorAll("#signin-form input, #signin-form button")) el.disabled = true;
    return;
  }
  $("email").focus();
})();
