// QR codes over the WebSocket (wire spec §3.8, issue #14): the official, unmodified
// @authsignal/browser (pinned in package.json) with its default `qrCode.challenge` path — a
// WebSocket to the URL it derives from its base URL — against a running trusted-device server.
// A device emulator (plain fetch + node:crypto, sending what the iOS/Android SDKs send) claims
// and approves or rejects through the Client API; the backend validates the access token with
// the official @authsignal/node.
//
// Needs a global WebSocket: Node 20 has it only with --experimental-websocket (package.json's
// `npm test` passes it; so does infra/scripts/test-all.sh). The SDK reads `document.cookie` and
// `document.location` when it is constructed (its anonymous-id cookie) and a dialog library it
// bundles looks for dialogs in the page at import time; a few-line stand-in for `document`
// below gives it what a page would. Nothing of the SDK is changed or stubbed.
//
// Environment: TD_BASE_URL, TD_SECRET_KEY, TD_TENANT_ID, as for compat.test.mjs.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { Authsignal as Backend } from "@authsignal/node";

if (typeof globalThis.WebSocket !== "function") {
  throw new Error("qr-websocket: no global WebSocket; run node with --experimental-websocket (Node 20)");
}

// What the SDK touches of a page (see the header).
globalThis.document ??= {
  cookie: "",
  readyState: "complete",
  location: { protocol: "http:", hostname: "127.0.0.1" },
  querySelectorAll: () => [],
  addEventListener() {},
};
const { Authsignal } = await import("@authsignal/browser");

function requireEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`qr-websocket: environment variable ${name} is required but not set`);
  return value;
}

const BASE_URL = requireEnv("TD_BASE_URL").replace(/\/+$/, "");
const SECRET_KEY = requireEnv("TD_SECRET_KEY");
const TENANT_ID = requireEnv("TD_TENANT_ID");
const backend = new Backend({ apiSecretKey: SECRET_KEY, apiUrl: BASE_URL });

/** The URL the SDK derives (§3.8): what the server must serve on the same host and port. */
const WS_URL = BASE_URL.replace("https://", "wss://").replace("http://", "ws://").replace("v1", "ws-v1-challenge").replace("api", "api-ws");

const browsers = [];
after(() => {
  for (const browser of browsers) browser.qrCode.disconnect();
});

function newBrowser(tenantId = TENANT_ID) {
  const browser = new Authsignal({ tenantId, baseUrl: BASE_URL });
  browsers.push(browser);
  return browser;
}

/** onStateChange as a queue the test can wait on. */
function stateRecorder() {
  const seen = [];
  const waiters = [];
  return {
    seen,
    onStateChange(state, accessToken) {
      seen.push({ state, accessToken });
      for (const waiter of waiters.splice(0)) waiter();
    },
    async next(timeoutMs = 5000) {
      const index = this.consumed ?? 0;
      const deadline = Date.now() + timeoutMs;
      while (seen.length <= index) {
        const left = deadline - Date.now();
        assert.ok(left > 0, `no state change after ${JSON.stringify(seen)}`);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      this.consumed = index + 1;
      return seen[index];
    },
  };
}

// ------------------------------------------------------------------------ the device emulator

function tenantBasicAuth() {
  return `Basic ${Buffer.from(`${TENANT_ID}:`, "utf8").toString("base64")}`;
}

async function clientCall(path, authorization, body) {
  const response = await fetch(`${BASE_URL}/client${path}`, {
    method: "POST",
    headers: { Authorization: authorization, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

async function clientPost(path, authorization, body) {
  const { status, json } = await clientCall(path, authorization, body);
  assert.equal(status, 200, `POST ${path} → ${status}: ${JSON.stringify(json)}`);
  return json;
}

/** A phone with a QR-code credential for `userId` (§3.4.1), signing as the SDKs do (§4.4). */
async function newPhone(userId) {
  const tracked = await backend.track({ userId, action: "addAuthenticator", attributes: { scope: "add:authenticators" } });
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const key = publicKey.export({ type: "spki", format: "der" }).toString("base64");
  await clientPost("/user-authenticators/qr-code", `Bearer ${tracked.token}`, {
    publicKey: key,
    deviceName: "node ws test",
    devicePlatform: "android",
  });
  const signed = (challengeId) => ({
    challengeId,
    publicKey: key,
    signature: sign("sha256", Buffer.from(challengeId, "utf8"), privateKey).toString("base64"),
  });
  return {
    claim: (challengeId) => clientCall("/user-authenticators/qr-code/challenge/claim", tenantBasicAuth(), signed(challengeId)),
    answer: (challengeId, approved) =>
      clientPost("/user-authenticators/qr-code/challenge", tenantBasicAuth(), { ...signed(challengeId), approved }),
  };
}

function newUserId() {
  return `node-ws-${randomUUID()}`;
}

// ------------------------------------------------------------------------ tests

test("the SDK's default QR path is a WebSocket on the server's own port (§3.8)", () => {
  assert.match(WS_URL, /^ws:\/\/127\.0\.0\.1:\d+\/ws-v1-challenge$/);
});

test("anonymous kiosk: CHALLENGE_CREATED, then claimed and approved pushed; the token validates (§3.8, §6.4)", async () => {
  const browser = newBrowser();
  const states = stateRecorder();
  const response = await browser.qrCode.challenge({ action: "kioskSignIn", onStateChange: (s, t) => states.onStateChange(s, t) });
  const { challengeId, expiresAt } = response.data;
  assert.equal(typeof challengeId, "string");
  assert.ok(!Number.isNaN(Date.parse(expiresAt)), `expiresAt is a date string: ${expiresAt}`);
  assert.ok(Date.parse(expiresAt) > Date.now());

  const userId = newUserId();
  const phone = await newPhone(userId);
  const claimed = await phone.claim(challengeId);
  assert.equal(claimed.status, 200, JSON.stringify(claimed.json));
  assert.equal(claimed.json.actionCode, "kioskSignIn");
  assert.deepEqual(await states.next(), { state: "claimed", accessToken: undefined });

  const answered = await phone.answer(challengeId, true);
  assert.equal(answered.isVerified, true);
  const approved = await states.next();
  assert.equal(approved.state, "approved");
  assert.equal(typeof approved.accessToken, "string");

  const validated = await backend.validateChallenge({ token: approved.accessToken, action: "kioskSignIn" });
  assert.equal(validated.isValid, true);
  assert.equal(validated.state, "CHALLENGE_SUCCEEDED");
  assert.equal(validated.userId, userId, "the claimer signs in");
  browser.qrCode.disconnect();
});

test("a rejection is pushed as rejected, with no token (§3.8)", async () => {
  const browser = newBrowser();
  const states = stateRecorder();
  const { data } = await browser.qrCode.challenge({ action: "kioskSignIn", onStateChange: (s, t) => states.onStateChange(s, t) });
  const phone = await newPhone(newUserId());
  assert.equal((await phone.claim(data.challengeId)).status, 200);
  assert.equal((await states.next()).state, "claimed");
  assert.equal((await phone.answer(data.challengeId, false)).isVerified, false);
  assert.deepEqual(await states.next(), { state: "rejected", accessToken: undefined });
  browser.qrCode.disconnect();
});

test("a known user (setToken): only that user's device may claim; the token is for the tracked action (§3.8)", async () => {
  const userId = newUserId();
  const phone = await newPhone(userId);
  const stranger = await newPhone(newUserId());
  const tracked = await backend.track({ userId, action: "signIn" });
  assert.equal(tracked.state, "CHALLENGE_REQUIRED");

  const browser = newBrowser();
  browser.setToken(tracked.token);
  try {
    const states = stateRecorder();
    const { data } = await browser.qrCode.challenge({ action: "signIn", onStateChange: (s, t) => states.onStateChange(s, t) });
    const refused = await stranger.claim(data.challengeId);
    assert.notEqual(refused.status, 200, "another user's device may not claim");
    assert.equal(typeof refused.json.errorCode, "string");
    assert.equal((await phone.claim(data.challengeId)).status, 200);
    assert.equal((await states.next()).state, "claimed");
    await phone.answer(data.challengeId, true);
    const approved = await states.next();
    assert.equal(approved.state, "approved");
    const validated = await backend.validateChallenge({ token: approved.accessToken, userId });
    assert.equal(validated.isValid, true);
    assert.equal(validated.idempotencyKey, tracked.idempotencyKey, "the tracked action itself succeeded");
    browser.qrCode.disconnect();
  } finally {
    browser.setToken(null);
  }
});

test("the SDK's refresh creates a new code on the same socket; states follow the new one (§3.8)", async () => {
  const browser = newBrowser();
  const states = stateRecorder();
  const refreshed = [];
  const { data } = await browser.qrCode.challenge({
    action: "kioskSignIn",
    onStateChange: (s, t) => states.onStateChange(s, t),
    onRefresh: (challengeId, expiresAt) => refreshed.push({ challengeId, expiresAt }),
  });
  await browser.qrCode.refresh();
  assert.equal(refreshed.length, 1);
  const fresh = refreshed[0].challengeId;
  assert.notEqual(fresh, data.challengeId);
  const phone = await newPhone(newUserId());
  assert.equal((await phone.claim(fresh)).status, 200);
  assert.equal((await states.next()).state, "claimed");
  browser.qrCode.disconnect();
});

test("a bad credential is refused at the handshake: no socket opens (§3.8)", async () => {
  const browser = newBrowser("no-such-tenant");
  await assert.rejects(
    browser.qrCode.challenge({ action: "kioskSignIn", onStateChange() {} }),
    /WebSocket connection error/,
  );
  for (const protocols of [["authsignal-ws"], ["authsignal-ws", "x.authsignal.token.not-a-token"], [`x.authsignal.tenant.${TENANT_ID}`]]) {
    const outcome = await new Promise((resolve) => {
      const socket = new WebSocket(WS_URL, protocols);
      socket.onopen = () => {
        socket.close();
        resolve("open");
      };
      socket.onerror = () => resolve("refused");
    });
    assert.equal(outcome, "refused", JSON.stringify(protocols));
  }
});

test("bad messages get ERROR messages and the socket stays usable; the server echoes authsignal-ws (§3.8)", async () => {
  const socket = new WebSocket(WS_URL, ["authsignal-ws", `x.authsignal.tenant.${TENANT_ID}`]);
  const inbox = [];
  let wake = () => {};
  socket.onmessage = (event) => {
    inbox.push(JSON.parse(event.data));
    wake();
  };
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  assert.equal(socket.protocol, "authsignal-ws");
  const receive = async () => {
    const deadline = Date.now() + 5000;
    while (inbox.length === 0) {
      assert.ok(Date.now() < deadline, "no answer");
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 100);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return inbox.shift();
  };
  for (const text of ["not json", JSON.stringify({ type: "HELLO" }), JSON.stringify({ type: "CREATE_CHALLENGE", data: {} })]) {
    socket.send(text);
    const answer = await receive();
    assert.equal(answer.type, "ERROR", text);
    assert.equal(answer.data.errorCode, "invalid_request");
  }
  socket.send(JSON.stringify({ type: "CREATE_CHALLENGE", data: { challengeType: "QR_CODE", actionCode: "kioskSignIn" } }));
  const created = await receive();
  assert.equal(created.type, "CHALLENGE_CREATED");
  assert.equal(created.data.state, "unclaimed");
  socket.close();
});
