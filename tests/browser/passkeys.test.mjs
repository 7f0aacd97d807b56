// Passkeys in a real browser (issue #15): the unmodified @authsignal/browser SDK in headless
// Chromium with a DevTools virtual WebAuthn authenticator, on a page of another origin than the
// API, against the trusted-device server; the backend validates with @authsignal/node.
// Run from the repository root: bash infra/scripts/test-all.sh (or see README.md here).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { startAll, inPage, addVirtualAuthenticator } from "./harness.mjs";

let env;
before(async () => {
  env = await startAll();
});
after(async () => {
  await env?.close();
});

const newUser = () => `passkey-${randomUUID()}`;

/** Validates `token` with the official Node SDK and checks it is a passkey success for `userId`. */
async function assertPasskeySuccess(token, userId) {
  assert.equal(typeof token, "string", "a token for the backend");
  const validated = await env.server.backend.validateChallenge({ token });
  assert.equal(validated.isValid, true, JSON.stringify(validated));
  assert.equal(validated.state, "CHALLENGE_SUCCEEDED");
  assert.equal(validated.verificationMethod, "PASSKEY");
  assert.equal(validated.userId, userId);
  return validated;
}

/** Signs up a passkey for a new user on a page of the allowed origin; returns {page, userId, authenticator}. */
async function signedUpUser() {
  const userId = newUser();
  const page = await env.open(env.allowed);
  const authenticator = await addVirtualAuthenticator(page);
  const enrolment = await env.server.backend.track({
    userId,
    action: "addPasskey",
    attributes: { scope: "add:authenticators" },
  });
  const signedUp = await inPage(
    page,
    (client, token) => client.passkey.signUp({ token, username: "alice@example.com", displayName: "Alice" }),
    enrolment.token,
  );
  // The new passkey, as the SDK reports it, and the token the registration completed the
  // enrolment action with (spec 3.5): the backend validates it as a passkey success.
  assert.equal(signedUp.data?.userAuthenticator?.verificationMethod, "PASSKEY", `passkey.signUp: ${JSON.stringify(signedUp)}`);
  assert.equal(signedUp.data.userAuthenticator.userId, userId);
  const validated = await assertPasskeySuccess(signedUp.data.token, userId);
  assert.equal(validated.action, "addPasskey");
  assert.equal(validated.idempotencyKey, enrolment.idempotencyKey);
  const stored = await authenticator.credentials();
  assert.equal(stored.length, 1, "the authenticator holds the new passkey");
  assert.equal(stored[0].rpId, "localhost");
  assert.equal(stored[0].isResidentCredential, true);
  return { page, userId, authenticator };
}

test("passkey.signUp with an enrolment token, then passkey.signIn with a signIn token: CHALLENGE_SUCCEEDED as PASSKEY", async () => {
  const { page, userId, authenticator } = await signedUpUser();

  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  assert.equal(tracked.state, "CHALLENGE_REQUIRED");
  assert.deepEqual(tracked.enrolledVerificationMethods, ["PASSKEY"]);
  const signedIn = await inPage(page, (client, token) => client.passkey.signIn({ token }), tracked.token);
  assert.equal(signedIn.data?.isVerified, true, `passkey.signIn: ${JSON.stringify(signedIn)}`);
  await assertPasskeySuccess(signedIn.data.token, userId);
  assert.deepEqual(page.problems, []);
  await authenticator.remove();
  await page.close();
});

test("usernameless passkey.signIn (a discoverable credential, no token): the user is found by the passkey", async () => {
  const { page, userId, authenticator } = await signedUpUser();

  const signedIn = await inPage(page, (client) => client.passkey.signIn());
  assert.equal(signedIn.data?.isVerified, true, `passkey.signIn: ${JSON.stringify(signedIn)}`);
  assert.equal(signedIn.data.userId, userId);
  await assertPasskeySuccess(signedIn.data.token, userId);
  await authenticator.remove();
  await page.close();
});

test("a replayed passkey assertion is refused, and gives no token", async () => {
  const { page, userId, authenticator } = await signedUpUser();
  // Record the SDK's verify request as the browser sent it: body and headers.
  let verifyRequest;
  page.on("request", (request) => {
    if (request.method() === "POST" && request.url().endsWith("/client/verify/passkey")) {
      verifyRequest = { url: request.url(), body: request.postData(), headers: request.headers() };
    }
  });
  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  const signedIn = await inPage(page, (client, token) => client.passkey.signIn({ token }), tracked.token);
  assert.equal(signedIn.data?.isVerified, true, `passkey.signIn: ${JSON.stringify(signedIn)}`);
  assert.ok(verifyRequest, "the page sent /client/verify/passkey");

  // The same request again, byte for byte (an attacker who captured it).
  const replay = await fetch(verifyRequest.url, {
    method: "POST",
    headers: {
      authorization: verifyRequest.headers.authorization,
      "content-type": "application/json",
    },
    body: verifyRequest.body,
  });
  const answer = await replay.json();
  assert.ok(replay.status >= 400 && replay.status < 500, `replay answered ${replay.status}: ${JSON.stringify(answer)}`);
  assert.equal(typeof answer.errorCode, "string");
  assert.equal(answer.accessToken, undefined);
  await authenticator.remove();
  await page.close();
});

test("from an origin the tenant does not allow: passkey sign-in fails in the browser and the server refused it", async () => {
  const page = await env.open(env.disallowed);
  const authenticator = await addVirtualAuthenticator(page);
  const refusedBefore = env.server.log().split("\n").filter((line) => line.includes('error="origin_not_allowed"')).length;

  const signedIn = await inPage(page, (client) => client.passkey.signIn());
  assert.notEqual(signedIn.data?.isVerified, true, JSON.stringify(signedIn));
  assert.equal(signedIn.data?.token, undefined);
  const refusedAfter = env.server.log().split("\n").filter((line) => line.includes('error="origin_not_allowed"')).length;
  assert.ok(refusedAfter > refusedBefore, "the server logged the refusal");
  assert.equal((await authenticator.credentials()).length, 0);
  await authenticator.remove();
  await page.close();
});

test("passkey.isAvailableOnDevice: true for the user who signed up on this browser, false for another user and once the passkey is removed", async () => {
  const { page, userId, authenticator } = await signedUpUser();
  const available = (id) => inPage(page, (client, userId) => client.passkey.isAvailableOnDevice({ userId }), id);
  // The SDK looks up the credential ids it stored for the user (GET …/passkey?credentialIds=).
  assert.equal(await available(userId), true);
  assert.equal(await available(newUser()), false);

  // Removed by the backend through the Server API (@authsignal/node).
  const authenticators = await env.server.backend.getAuthenticators({ userId });
  assert.equal(authenticators.length, 1, JSON.stringify(authenticators));
  await env.server.backend.deleteAuthenticator({ userId, userAuthenticatorId: authenticators[0].userAuthenticatorId });
  assert.equal(await available(userId), false);
  assert.deepEqual(page.problems.filter((p) => !p.includes("400")), []);
  await authenticator.remove();
  await page.close();
});

test("passkey.signIn({autofill: true}): conditional mediation from an input with autocomplete=webauthn, no token; the user is found by the passkey", async () => {
  const { page, userId, authenticator } = await signedUpUser();
  let optionsRequest;
  page.on("request", (request) => {
    if (request.method() === "POST" && request.url().endsWith("/client/user-authenticators/passkey/authentication-options")) {
      optionsRequest = { authorization: request.headers().authorization };
    }
  });
  const signedIn = await inPage(page, async (client) => {
    // The sign-in form of a web app: the browser offers passkeys in the field's autofill.
    document.body.insertAdjacentHTML("beforeend", '<input id="username" autocomplete="username webauthn">');
    const pending = client.passkey.signIn({ autofill: true });
    document.getElementById("username").focus();
    return pending;
  });
  assert.equal(signedIn.data?.isVerified, true, `passkey.signIn({autofill}): ${JSON.stringify(signedIn)}`);
  assert.equal(signedIn.data.userId, userId);
  assert.ok(optionsRequest, "the SDK asked for sign-in options");
  assert.match(optionsRequest.authorization, /^Basic /, "autofill options are asked with tenant Basic, no token");
  const validated = await assertPasskeySuccess(signedIn.data.token, userId);
  assert.equal(validated.action, "signInWithPasskey");
  await authenticator.remove();
  await page.close();
});

test("passkey.signUp({useAutoRegister: true}): the SDK sees conditional create and asks for options; Chromium completes no conditional create headless (see README)", async () => {
  const userId = newUser();
  const page = await env.open(env.allowed);
  const authenticator = await addVirtualAuthenticator(page);
  const enrolment = await env.server.backend.track({ userId, action: "addPasskey" });
  const optionsAnswer = page.waitForResponse(
    (response) => response.request().method() === "POST" && response.url().endsWith("/client/user-authenticators/passkey/registration-options"),
  );
  // Not awaited: the conditional create waits for a password-manager sign-in that never comes.
  await page.evaluate((token) => {
    window.autoRegister = window.client.passkey.signUp({ token, useAutoRegister: true });
  }, enrolment.token);
  const answered = await optionsAnswer;
  assert.equal(answered.status(), 200);
  const options = await answered.json();
  assert.equal(typeof options.challengeId, "string");
  assert.equal(options.options.rp.id, "localhost");
  // Options alone register nothing.
  assert.deepEqual(await env.server.backend.getAuthenticators({ userId }), []);
  await authenticator.remove();
  await page.close();
});
