// The unmodified @authsignal/browser SDK in headless Chromium, on a page of another origin than
// the API, against the trusted-device server: CORS as a real browser enforces it, the push and
// QR-code flows approved by an emulated phone and validated by @authsignal/node.
// Run from the repository root: bash infra/scripts/test-all.sh (or see README.md here).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { startAll, inPage, qrChallengeInPage, waitFor, Device, QR_TRANSPORTS, addVirtualAuthenticator } from "./harness.mjs";

let env;
before(async () => {
  env = await startAll();
});
after(async () => {
  await env?.close();
});

const newUser = () => `browser-${randomUUID()}`;

/** Log lines of the server matching all the given fragments. */
const logLines = (...fragments) =>
  env.server
    .log()
    .split("\n")
    .filter((line) => fragments.every((f) => line.includes(f)));

test("push from an allowed origin: challenge and poll in the browser, approved by the phone, CHALLENGE_SUCCEEDED", async () => {
  const userId = newUser();
  const phone = new Device(env.server);
  await phone.enroll(userId, "push");
  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  assert.equal(tracked.state, "CHALLENGE_REQUIRED");

  const page = await env.open(env.allowed);
  const started = await inPage(
    page,
    async (client, token) => {
      client.setToken(token);
      return client.push.challenge({ action: "signIn" });
    },
    tracked.token,
  );
  assert.ok(started.data?.challengeId, `push.challenge: ${JSON.stringify(started)}`);

  const pending = await phone.pendingPush();
  assert.equal(pending.challengeId, started.data.challengeId);
  const first = await inPage(page, (client, challengeId) => client.push.verify({ challengeId }), started.data.challengeId);
  assert.deepEqual([first.data.isConsumed, first.data.isVerified], [false, false]);
  assert.equal((await phone.answer(pending.challengeId, true)).isVerified, true);

  // The page polls as an app does, and gets the token once.
  const verified = await waitFor(
    async () => {
      const polled = await inPage(page, (client, challengeId) => client.push.verify({ challengeId }), started.data.challengeId);
      return polled.data?.isVerified ? polled : null;
    },
    { what: "the push poll to say verified" },
  );
  assert.equal(typeof verified.data.token, "string");
  const validated = await env.server.backend.validateChallenge({ token: verified.data.token });
  assert.equal(validated.isValid, true);
  assert.equal(validated.state, "CHALLENGE_SUCCEEDED");
  assert.equal(validated.userId, userId);
  assert.equal(validated.verificationMethod, "PUSH");
  assert.deepEqual(page.problems, []);
  await page.close();
});

for (const transport of QR_TRANSPORTS) {
  test(`QR code (${transport}) from an allowed origin: claimed and approved by the phone, CHALLENGE_SUCCEEDED`, async () => {
    const userId = newUser();
    const phone = new Device(env.server);
    await phone.enroll(userId, "qr-code");
    const page = await env.open(env.allowed);
    const started = await qrChallengeInPage(page, { action: "kioskSignIn", transport });
    assert.ok(started.data?.challengeId, `qrCode.challenge: ${JSON.stringify(started)}`);
    const states = () => page.evaluate(() => window.qrStates.map((s) => s.state));

    const claimed = await phone.claim(started.data.challengeId);
    assert.equal(claimed.success, true);
    await waitFor(async () => (await states()).includes("claimed"), { what: "the claimed state" });
    await phone.answer(started.data.challengeId, true);
    const approved = await waitFor(
      () => page.evaluate(() => window.qrStates.find((s) => s.state === "approved")),
      { what: "the approved state" },
    );
    assert.equal(typeof approved.accessToken, "string");
    await inPage(page, (client) => client.qrCode.disconnect());

    const validated = await env.server.backend.validateChallenge({ token: approved.accessToken, action: "kioskSignIn" });
    assert.equal(validated.isValid, true);
    assert.equal(validated.state, "CHALLENGE_SUCCEEDED");
    assert.equal(validated.userId, userId);
    assert.deepEqual(page.problems, []);
    await page.close();
  });
}

test("from an origin the tenant does not allow: the browser blocks the SDK's calls and the server refused them, the QR-code WebSocket's handshake too", async () => {
  const userId = newUser();
  const phone = new Device(env.server);
  await phone.enroll(userId, "push");
  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  const refusedBefore = logLines("status=403", 'error="origin_not_allowed"').length;

  const page = await env.open(env.disallowed);
  const push = await inPage(
    page,
    async (client, token) => {
      client.setToken(token);
      return client.push.challenge({ action: "signIn" });
    },
    tracked.token,
  );
  assert.match(push.thrown ?? "", /Failed to fetch/, `push.challenge: ${JSON.stringify(push)}`);
  const qr = await qrChallengeInPage(page, { action: "kioskSignIn", transport: "polling" });
  assert.match(qr.thrown ?? "", /Failed to fetch/, `qrCode.challenge: ${JSON.stringify(qr)}`);
  assert.ok(page.problems.some((p) => p.includes("CORS") || p.includes("Access-Control-Allow-Origin")), page.problems.join("\n"));
  // Browsers apply no CORS to WebSockets: the server refuses the handshake itself (403).
  const socketsBefore = logLines("QR-code WebSocket from an origin the tenant does not allow", env.disallowed.origin).length;
  const qrSocket = await qrChallengeInPage(page, { action: "kioskSignIn", transport: "websocket" });
  assert.equal(qrSocket?.data?.challengeId, undefined, `qrCode.challenge over the socket: ${JSON.stringify(qrSocket)}`);

  // The server refused all three before they did anything, and said why in its log.
  await waitFor(() => logLines("status=403", 'error="origin_not_allowed"').length >= refusedBefore + 2, { what: "two refusals in the log" });
  assert.ok(logLines("does not allow", env.disallowed.origin).length >= 2, env.server.log());
  await waitFor(
    () => logLines("QR-code WebSocket from an origin the tenant does not allow", env.disallowed.origin).length > socketsBefore,
    { what: "the socket's refusal in the log" },
  );
  assert.equal((await phone.pendingPush()).challengeId, undefined, "the refused push start created no challenge");
  await page.close();
});

test("the Server API is not callable from a page, even from an allowed origin", async () => {
  const before = logLines("route=/v1/validate", "method=POST").length;
  const page = await env.open(env.allowed);
  const result = await inPage(
    page,
    async (_client, { baseUrl, secretKey }) => {
      const response = await fetch(`${baseUrl}/validate`, {
        method: "POST",
        headers: { Authorization: `Basic ${btoa(`${secretKey}:`)}`, "Content-Type": "application/json" },
        body: JSON.stringify({ token: "x" }),
      });
      return { status: response.status };
    },
    { baseUrl: env.server.baseUrl, secretKey: env.server.secretKey },
  );
  assert.match(result.thrown ?? "", /Failed to fetch/, JSON.stringify(result));
  await waitFor(() => logLines("method=OPTIONS", "route=/v1/validate", "status=403", 'error="cors_not_allowed"').length >= 1, {
    what: "the refused preflight in the log",
  });
  assert.equal(logLines("route=/v1/validate", "method=POST").length, before, "the request itself was never sent");
  await page.close();
});

test("the virtual WebAuthn authenticator (for the passkey tests) makes a passkey for RP id localhost", async () => {
  const page = await env.open(env.allowed);
  const authenticator = await addVirtualAuthenticator(page);
  const created = await page.evaluate(async () => {
    const credential = await navigator.credentials.create({
      publicKey: {
        rp: { id: "localhost", name: "trusted-device test" },
        user: { id: crypto.getRandomValues(new Uint8Array(16)), name: "alice", displayName: "Alice" },
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        pubKeyCredParams: [{ type: "public-key", alg: -7 }],
        authenticatorSelection: { residentKey: "required", userVerification: "required", authenticatorAttachment: "platform" },
      },
    });
    return { type: credential.type, id: credential.id };
  });
  assert.equal(created.type, "public-key");
  const stored = await authenticator.credentials();
  assert.equal(stored.length, 1);
  assert.equal(stored[0].isResidentCredential, true);
  assert.equal(stored[0].rpId, "localhost");
  await authenticator.remove();
  await page.close();
});
