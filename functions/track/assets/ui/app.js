// The pre-built UI (issue #16): completes one tracked action with the user's push device, a QR
// code their app claims, or a passkey, through this service's own Client API (same origin),
// with the track token as the browser SDK does. No library, no inline code (the page's CSP).
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

  function succeed(newToken) {
    stop();
    token = newToken;
    if (popup && opener()) {
      show("done", "Verified.");
      post(JSON.stringify({ event: "AUTHSIGNAL_CLOSE_POPUP", token: newToken }));
      return;
    }
    if (config.redirectUrl) {
      show("done", "Verified. Returning to the app…");
      const target = new URL(config.redirectUrl);
      target.searchParams.set("token", newToken);
      window.location.assign(target.href);
      return;
    }
    show("done", "Verified.");
  }

  // ------------------------------------------------------------------ the Client API

  async function call(path, body) {
    const response = await fetch(api + path, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
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
          succeed(answer.accessToken);
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
          succeed(answer.accessToken);
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
      if (accessToken && mine === generation) succeed(accessToken);
    } catch (error) {
      if (mine === generation) fail(passkeyFailure(error), true);
    }
  }

  async function addPasskey() {
    stop();
    const mine = generation;
    show("passkey", "Creating your passkey…");
    try {
      const started = await call("client/user-authenticators/passkey/registration-options", {});
      const options = started.options;
      const publicKey = {
        ...options,
        challenge: toBuffer(options.challenge),
        user: { ...options.user, id: toBuffer(options.user.id) },
        excludeCredentials: (options.excludeCredentials || []).map(descriptor),
      };
      const credential = await navigator.credentials.create({ publicKey });
      if (mine !== generation) return;
      const response = credential.response;
      await call("client/user-authenticators/passkey", {
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
      });
      // The new passkey then confirms the action, as any sign-in does.
      status.textContent = "Passkey created. Confirm with it once to finish…";
      const accessToken = await passkeySignIn(mine);
      if (accessToken && mine === generation) succeed(accessToken);
    } catch (error) {
      if (mine === generation) fail(passkeyFailure(error), true);
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
  for (const back of document.querySelectorAll("button.back")) back.addEventListener("click", methods);
  $("retry").addEventListener("click", methods);

  if (config.error) {
    fail(errorText(config.error), false, "This link can't be used");
  } else if (!token) {
    fail(messages.invalid_token, false, "This link can't be used");
  } else if (config.state === "BLOCK" || config.state === "CHALLENGE_FAILED" || config.state === "REVIEW_FAILED") {
    fail("This request was blocked. Contact the app's support if you think this is a mistake.", false, "Request blocked");
  } else if (config.state === "REVIEW_REQUIRED") {
    fail("This request is being reviewed. You'll hear from the app once it is decided.", false, "Under review");
  } else {
    methods();
  }
})();
