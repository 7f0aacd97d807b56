// The pre-built UI (issue #16): completes one tracked action with the user's push device, a QR
// code their app claims, or a passkey, through this service's own Client API (same origin),
// with the track token as the browser SDK does. No library, no inline code (the page's CSP).
//
// With track's `redirectToSettings` (carried in the signed token, read by the server), success
// shows the settings screen instead: the user's authenticators, add a passkey, remove one (only
// once a challenge here completed the action: the server checks it), then "Done" finishes as
// below. An action that needs no challenge (ALLOW) shows it at once, without removal.
//
// Protocol of @authsignal/browser's launch(url, {mode}):
// - redirect: on success, go to the redirectUrl the backend gave in track (read from the signed
//   token by the server, never from this page's URL) with `token` added;
// - popup (an iframe in the SDK's dialog) and window (window.open): the URL ends in `mode=popup`;
//   post JSON {event: "AUTHSIGNAL_READY"} once, raw {height} objects when the height changes,
//   and JSON {event: "AUTHSIGNAL_CLOSE_POPUP", token} at the end: only to the tenant's allowed
//   origins (a message to any other origin is dropped by the browser).
"use strict";

(function () {
  const main = document.getElementById("widget_container");
  const config = JSON.parse(main.dataset.config || "{}");
  const params = new URLSearchParams(window.location.search);
  const popup = params.get("mode") === "popup";
  // The token leaves the address bar at once (history, screenshots, copied links).
  let token = params.get("token") || "";
  // The token the backend tracked with: the settings screen's calls use it, because it alone
  // carries `redirectToSettings` (the tokens a challenge answers are plain).
  const trackToken = token;
  // Whether the settings screen offers removal: a challenge completed the action, before this
  // page loaded (config.mayRemove) or on it.
  let canRemove = !!config.mayRemove;
  window.history.replaceState(null, "", window.location.pathname + (popup ? "?mode=popup" : ""));
  const api = new URL(".", window.location.href).href; // …/v1/
  const allowedOrigins = Array.isArray(config.allowedOrigins) ? config.allowedOrigins : [];
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  let pollTimer = null;
  let generation = 0; // a newer flow makes an older one's late answers stale

  if (typeof config.colour === "string" && /^#[0-9a-fA-F]{6}$/.test(config.colour)) {
    document.documentElement.style.setProperty("--accent", config.colour);
  }

  // ------------------------------------------------------------------ popup and window modes

  function opener() {
    if (!popup) return null;
    if (window.opener && window.opener !== window) return window.opener;
    if (window.parent && window.parent !== window) return window.parent;
    return null;
  }

  function post(message) {
    const target = opener();
    if (!target) return;
    for (const origin of allowedOrigins) {
      try {
        target.postMessage(message, origin);
      } catch (_) {
        // An origin that is not the opener's: the browser drops it.
      }
    }
  }

  if (popup) {
    post(JSON.stringify({ event: "AUTHSIGNAL_READY" }));
    let lastHeight = 0;
    const report = () => {
      const height = Math.ceil(main.getBoundingClientRect().height + 32);
      if (height !== lastHeight) {
        lastHeight = height;
        post({ height });
      }
    };
    new ResizeObserver(report).observe(main);
    report();
  }

  // ------------------------------------------------------------------ screens

  function show(screen, message) {
    for (const section of document.querySelectorAll(".screen")) {
      section.hidden = section.id !== `screen-${screen}`;
    }
    status.textContent = message || "";
    const current = $(`screen-${screen}`);
    const focus = current && current.querySelector("button:not([hidden]), h2");
    if (focus) {
      if (focus.tagName === "H2") focus.setAttribute("tabindex", "-1");
      focus.focus();
    }
  }

  function stop() {
    generation += 1;
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function fail(message, retry, title) {
    stop();
    $("error-title").textContent = title || "Something went wrong";
    $("error-message").textContent = message;
    $("retry").hidden = !retry;
    // The message is announced by its own role="alert"; the status line is cleared.
    show("error", "");
  }

  const messages = {
    expired_token: "This link has expired. Go back to the app and try again.",
    invalid_token: "This link is not valid. Go back to the app and try again.",
    challenge_expired: "The request expired before it was confirmed.",
    too_many_requests: "Too many attempts. Wait a minute, then try again.",
  };

  function errorText(code, fallback) {
    return messages[code] || fallback || "Something went wrong. Try again.";
  }

  // `challenged`: the token came from a challenge the user completed with an authenticator
  // they had (push, QR code, passkey sign-in), not from registering a new passkey.
  function succeed(newToken, challenged) {
    stop();
    token = newToken;
    if (config.settings) {
      if (challenged) canRemove = true;
      settings();
      return;
    }
    finish();
  }

  // Back to the app with the newest token: popup message, redirect, or a success screen.
  function finish() {
    stop();
    if (popup && opener()) {
      show("done", "Verified.");
      post(JSON.stringify({ event: "AUTHSIGNAL_CLOSE_POPUP", token }));
      return;
    }
    if (config.redirectUrl) {
      show("done", "Verified. Returning to the app…");
      const target = new URL(config.redirectUrl);
      target.searchParams.set("token", token);
      window.location.assign(target.href);
      return;
    }
    show("done", "Verified.");
  }

  // ------------------------------------------------------------------ the Client API

  async function call(path, body, method, bearer) {
    const verb = method || "POST";
    const init = {
      method: verb,
      headers: { Authorization: `Bearer ${bearer || token}` },
      credentials: "omit",
      referrerPolicy: "no-referrer",
    };
    if (verb === "POST") {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body || {});
    }
    const response = await fetch(api + path, init);
    let json = {};
    try {
      json = await response.json();
    } catch (_) {
      // Not JSON: handled as an error below.
    }
    if (!response.ok) {
      const error = new Error(json.errorDescription || `HTTP ${response.status}`);
      error.code = json.errorCode || json.error || "";
      throw error;
    }
    return json;
  }

  function poll(mine, path, body, onStatus) {
    const tick = async () => {
      if (mine !== generation) return;
      try {
        const answer = await call(path, body);
        if (mine !== generation) return;
        if (onStatus(answer) === "done") return;
      } catch (error) {
        if (mine !== generation) return;
        fail(errorText(error.code, error.message), true);
        return;
      }
      pollTimer = setTimeout(tick, 1000);
    };
    pollTimer = setTimeout(tick, 500);
  }

  // ------------------------------------------------------------------ push

  async function startPush() {
    stop();
    const mine = generation;
    show("push", "Sending a request to your phone…");
    try {
      // Number matching always: the person must read the code here and pick it there.
      const started = await call("client/challenge/push", { numberMatching: true });
      if (mine !== generation) return;
      $("push-number").hidden = !started.verificationCode;
      $("push-code").textContent = started.verificationCode || "";
      status.textContent = "Waiting for your phone…";
      poll(mine, "client/verify/push", { challengeId: started.challengeId }, (answer) => {
        if (answer.isVerified && answer.accessToken) {
          succeed(answer.accessToken, true);
          return "done";
        }
        if (answer.isConsumed && !answer.isVerified) {
          fail("The request was declined on your phone.", true, "Not confirmed");
          return "done";
        }
        return "wait";
      });
    } catch (error) {
      if (mine === generation) fail(errorText(error.code, error.message), true);
    }
  }

  // ------------------------------------------------------------------ QR code

  async function startQr() {
    stop();
    const mine = generation;
    show("qr", "Creating a QR code…");
    try {
      const started = await call("client/challenge/qr-code", {});
      if (mine !== generation) return;
      $("qr-image").src = `${api}ui/qr-code.svg?text=${encodeURIComponent(started.challengeId)}`;
      status.textContent = "Waiting for your app to scan the code…";
      const body = { challengeId: started.challengeId, deviceCode: started.deviceCode };
      poll(mine, "client/verify/qr-code", body, (answer) => {
        if (answer.isVerified && answer.accessToken) {
          succeed(answer.accessToken, true);
          return "done";
        }
        if (answer.isConsumed && !answer.isVerified) {
          fail("The request was declined on your phone.", true, "Not confirmed");
          return "done";
        }
        if (answer.isClaimed) status.textContent = "Scanned. Confirm on your phone…";
        return "wait";
      });
    } catch (error) {
      if (mine === generation) fail(errorText(error.code, error.message), true);
    }
  }

  // ------------------------------------------------------------------ passkeys

  function toBuffer(base64url) {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  const descriptor = (d) => ({ ...d, id: toBuffer(d.id) });

  async function passkeySignIn(mine) {
    const started = await call("client/user-authenticators/passkey/authentication-options", {});
    const options = started.options;
    const publicKey = {
      ...options,
      challenge: toBuffer(options.challenge),
      allowCredentials: (options.allowCredentials || []).map(descriptor),
    };
    const credential = await navigator.credentials.get({ publicKey });
    if (mine !== generation) return null;
    const response = credential.response;
    const verified = await call("client/verify/passkey", {
      challengeId: started.challengeId,
      authenticationCredential: {
        id: credential.id,
        rawId: toBase64url(credential.rawId),
        response: {
          authenticatorData: toBase64url(response.authenticatorData),
          clientDataJSON: toBase64url(response.clientDataJSON),
          signature: toBase64url(response.signature),
          userHandle: response.userHandle ? toBase64url(response.userHandle) : undefined,
        },
        type: credential.type,
        clientExtensionResults: credential.getClientExtensionResults(),
      },
    });
    return verified.accessToken;
  }

  function passkeyFailure(error) {
    // The browser's own refusal (the person cancelled, or no passkey here).
    if (error && (error.name === "NotAllowedError" || error.name === "AbortError")) {
      return "The passkey prompt was cancelled or timed out.";
    }
    return errorText(error && error.code, error && error.message);
  }

  async function usePasskey() {
    stop();
    const mine = generation;
    show("passkey", "Waiting for your passkey…");
    try {
      const accessToken = await passkeySignIn(mine);
      if (accessToken && mine === generation) succeed(accessToken, true);
    } catch (error) {
      if (mine === generation) fail(passkeyFailure(error), true);
    }
  }

  // Registers a passkey with `bearer` and answers the registration (spec 3.5: its
  // `accessToken` completes the tracked action when nothing had completed it yet).
  async function registerPasskey(mine, bearer) {
    const started = await call(
      "client/user-authenticators/passkey/registration-options",
      {},
      "POST",
      bearer,
    );
    const options = started.options;
    const publicKey = {
      ...options,
      challenge: toBuffer(options.challenge),
      user: { ...options.user, id: toBuffer(options.user.id) },
      excludeCredentials: (options.excludeCredentials || []).map(descriptor),
    };
    const credential = await navigator.credentials.create({ publicKey });
    if (mine !== generation) return null;
    const response = credential.response;
    return call(
      "client/user-authenticators/passkey",
      {
        challengeId: started.challengeId,
        registrationCredential: {
          id: credential.id,
          rawId: toBase64url(credential.rawId),
          response: {
            attestationObject: toBase64url(response.attestationObject),
            clientDataJSON: toBase64url(response.clientDataJSON),
            transports: typeof response.getTransports === "function" ? response.getTransports() : undefined,
          },
          type: credential.type,
          clientExtensionResults: credential.getClientExtensionResults(),
        },
      },
      "POST",
      bearer,
    );
  }

  // A first passkey: one prompt. The registration's `accessToken` already validates as
  // CHALLENGE_SUCCEEDED by PASSKEY for the tracked action (spec 3.5), so no sign-in follows.
  async function addPasskey() {
    stop();
    const mine = generation;
    show("passkey", "Creating your passkey…");
    try {
      const added = await registerPasskey(mine, token);
      if (!added || mine !== generation) return;
      if (added.accessToken) {
        succeed(added.accessToken, false);
        return;
      }
      // An action something else completed already keeps its token (spec 3.5): sign in.
      status.textContent = "Passkey created. Confirm with it once to finish…";
      const accessToken = await passkeySignIn(mine);
      if (accessToken && mine === generation) succeed(accessToken, true);
    } catch (error) {
      if (mine === generation) fail(passkeyFailure(error), true);
    }
  }

  // ------------------------------------------------------------------ settings

  const methodNames = {
    PUSH: "Push approvals",
    QR_CODE: "QR-code approvals",
    DEVICE: "Trusted device",
    IN_APP: "In-app verification",
    PASSKEY: "Passkey",
  };

  // The authenticators' `devicePlatform` (IOS | ANDROID | WEB), as people write it.
  const platformNames = { IOS: "iOS", ANDROID: "Android", WEB: "Web" };
  function platformName(platform) {
    return platformNames[platform] || platform || "";
  }

  function addedOn(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    return `added ${date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" })}`;
  }

  // Every string from the server goes in as text (textContent), never as HTML.
  function authenticatorRow(authenticator) {
    const kind = methodNames[authenticator.verificationMethod] || "Sign-in method";
    const webauthn = authenticator.webauthnCredential;
    // A passkey's name defaults to the user id at registration: no name worth showing then.
    const given = authenticator.displayName || (webauthn && webauthn.name);
    const name = given && given !== authenticator.userId ? given : kind;
    const synced = webauthn ? (webauthn.credentialBackedUp ? "synced" : "on one device") : "";
    const row = document.createElement("li");
    row.className = "authenticator";
    row.dataset.id = authenticator.userAuthenticatorId;
    const about = document.createElement("span");
    about.className = "about";
    const title = document.createElement("span");
    title.className = "name";
    title.textContent = name;
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = [kind === name ? "" : kind, platformName(authenticator.devicePlatform) || synced, addedOn(authenticator.createdAt)]
      .filter(Boolean)
      .join(" · ");
    about.append(title, detail);
    row.append(about);
    if (canRemove) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary remove";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${name}`);
      remove.addEventListener("click", () => removeAuthenticator(authenticator.userAuthenticatorId, name, remove));
      row.append(remove);
    }
    return row;
  }

  let inSettings = false; // once on the settings screen, "back" returns there

  async function settings(message) {
    stop();
    inSettings = true;
    const mine = generation;
    $("settings-add-passkey").hidden = !(config.settingsAddPasskey && window.PublicKeyCredential);
    show("settings", "Loading your sign-in methods…");
    try {
      const list = await call("client/user-authenticators", undefined, "GET", trackToken);
      if (mine !== generation) return;
      const rows = (Array.isArray(list) ? list : []).map(authenticatorRow);
      $("authenticators").replaceChildren(...rows);
      $("authenticators-empty").hidden = rows.length > 0;
      status.textContent = message || "";
    } catch (error) {
      if (mine === generation) fail(errorText(error.code, error.message), false);
    }
  }

  async function removeAuthenticator(id, name, button) {
    button.disabled = true;
    status.textContent = `Removing ${name}…`;
    try {
      await call(`ui/authenticators/${encodeURIComponent(id)}`, undefined, "DELETE", trackToken);
      await settings(`Removed ${name}.`);
    } catch (error) {
      button.disabled = false;
      status.textContent = errorText(error.code, error.message);
    }
  }

  async function addPasskeyInSettings() {
    stop();
    const mine = generation;
    show("passkey", "Creating your passkey…");
    try {
      const added = await registerPasskey(mine, trackToken);
      if (!added || mine !== generation) return;
      // A token registers one passkey (spec 3.5); one that completed the action is the
      // token the app gets back.
      config.settingsAddPasskey = false;
      if (added.accessToken) token = added.accessToken;
      await settings("Passkey added.");
    } catch (error) {
      if (mine === generation) {
        await settings(passkeyFailure(error));
      }
    }
  }

  // ------------------------------------------------------------------ start

  function methods() {
    stop();
    const offered = {
      "method-push": config.push,
      "method-qr": config.qrCode,
      "method-passkey": config.passkey && !!window.PublicKeyCredential,
      "method-add-passkey": config.addPasskey && !!window.PublicKeyCredential,
    };
    let any = false;
    for (const [id, on] of Object.entries(offered)) {
      $(id).hidden = !on;
      any = any || !!on;
    }
    if (!any) {
      fail("There is no way to confirm this request here yet. Contact the app's support.", false);
      return;
    }
    show("methods", "");
  }

  $("method-push").addEventListener("click", startPush);
  $("method-qr").addEventListener("click", startQr);
  $("method-passkey").addEventListener("click", usePasskey);
  $("method-add-passkey").addEventListener("click", addPasskey);
  $("settings-add-passkey").addEventListener("click", addPasskeyInSettings);
  $("settings-done").addEventListener("click", finish);
  const back = () => (inSettings ? settings() : methods());
  for (const button of document.querySelectorAll("button.back")) button.addEventListener("click", back);
  $("retry").addEventListener("click", back);

  if (config.error) {
    fail(errorText(config.error), false, "This link can't be used");
  } else if (!token) {
    fail(messages.invalid_token, false, "This link can't be used");
  } else if (config.state === "BLOCK" || config.state === "CHALLENGE_FAILED" || config.state === "REVIEW_FAILED") {
    fail("This request was blocked. Contact the app's support if you think this is a mistake.", false, "Request blocked");
  } else if (config.state === "REVIEW_REQUIRED") {
    fail("This request is being reviewed. You'll hear from the app once it is decided.", false, "Under review");
  } else if (config.settings && (config.state === "ALLOW" || config.state === "CHALLENGE_SUCCEEDED")) {
    // Nothing to confirm first: an action the rules allowed, or one a challenge completed
    // already (the page reloaded). Removal is offered only in the second case.
    settings();
  } else {
    methods();
  }
})();
