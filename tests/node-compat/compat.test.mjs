// Compatibility test: the official, unmodified @authsignal/node SDK (pinned to 2.21.0 in
// package.json) driven against a running trusted-device server.
//
// The backend side goes through the SDK only. The device side is plain `fetch` + `node:crypto`,
// sending exactly what the iOS/Android SDKs send on the wire.
// Section numbers (§) refer to docs/wire-protocol.md (the project's wire contract).
//
// Environment (set by whoever starts the server):
//   TD_BASE_URL    e.g. http://127.0.0.1:8787/v1  (given to the SDK as `apiUrl`, §1.1)
//   TD_SECRET_KEY  the tenant's API secret key     (Server API Basic auth, §2.1)
//   TD_TENANT_ID   the tenant id                   (Client API tenant Basic auth, §3.1)
//   TD_WEBHOOK_PORT, TD_WEBHOOK_SECRET  the loopback port this test listens on for push.created,
//                  and the secret the server signs it with (the server is started with
//                  --push-webhook-url http://127.0.0.1:$TD_WEBHOOK_PORT/push-created, §2.11)
//
// Run: npm ci && npm test   (that is `node --test`)

import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { createServer } from "node:http";
import { Authsignal, AuthsignalError } from "@authsignal/node";

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`node-compat: environment variable ${name} is required but not set`);
  }
  return value;
}

const BASE_URL = requireEnv("TD_BASE_URL").replace(/\/+$/, "");
const SECRET_KEY = requireEnv("TD_SECRET_KEY");
const TENANT_ID = requireEnv("TD_TENANT_ID");
const WEBHOOK_PORT = Number(requireEnv("TD_WEBHOOK_PORT"));
const WEBHOOK_SECRET = requireEnv("TD_WEBHOOK_SECRET");

// The SDK client under test. `retries` is left at the SDK default (2): the SDK only retries
// connection errors and 5xx on GET (§1.3), so it hides nothing a test should see.
const authsignal = new Authsignal({ apiSecretKey: SECRET_KEY, apiUrl: BASE_URL });

// The exact 401 text the real API returns (§1.3); the SDK's own test suite asserts it.
const UNAUTHORIZED_DESCRIPTION =
  "The request is unauthorized. Check that your API key and region base URL are correctly configured.";

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/** A fresh user id per test, so the tests are independent of each other and of earlier runs. */
function newUserId() {
  return `node-compat-${randomUUID()}`;
}

/** Decode a JWT's payload without verifying it, as the client SDKs do (§5). */
function decodeJwtPayload(token) {
  assert.equal(typeof token, "string", "token must be a string");
  const segments = token.split(".");
  assert.equal(segments.length, 3, `token must be a JWT with 3 segments, got: ${token}`);
  return JSON.parse(Buffer.from(segments[1], "base64url").toString("utf8"));
}

/** Assert that a value is an ISO-8601 timestamp string (§1.2). */
function assertIsoTimestamp(value, what) {
  assert.equal(typeof value, "string", `${what} must be an ISO-8601 string`);
  assert.ok(!Number.isNaN(Date.parse(value)), `${what} must parse as a date, got ${value}`);
}

/**
 * A device key as the mobile SDKs make it (§4.1, §4.2): ECDSA P-256; the public key is the
 * standard base64 (with padding) of the X.509 SubjectPublicKeyInfo DER, 91 bytes → 124 chars.
 */
function newDeviceKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  assert.equal(spki.length, 91, "P-256 SPKI DER is 91 bytes");
  return { publicKey: spki.toString("base64"), privateKey };
}

/**
 * Sign a string as the mobile SDKs do (§4.4): ECDSA-SHA256 over its UTF-8 bytes, DER-encoded
 * signature (node's default for EC keys), standard base64.
 */
function deviceSign(privateKey, message) {
  return sign("sha256", Buffer.from(message, "utf8"), privateKey).toString("base64");
}

/** Tenant Basic auth, Android flavour: standard base64 with padding of "<tenantId>:" (§3.1). */
function tenantBasicAuth() {
  return `Basic ${Buffer.from(`${TENANT_ID}:`, "utf8").toString("base64")}`;
}

/**
 * POST a JSON body to a Client API path (relative to {base}/client) and return the parsed JSON.
 * Client API success is 200 with a JSON object (§3.6, §8 item 3); anything else fails the test
 * with the server's answer in the message.
 */
async function clientPost(path, authorization, body) {
  const url = `${BASE_URL}/client${path}`;
  const response = await fetch(url, {
    method: "POST",
    headers: {
      Authorization: authorization,
      "Content-Type": "application/json",
      "X-Authsignal-Tenant-ID": TENANT_ID, // §1.4: what the mobile SDKs add; harmless
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  assert.equal(response.status, 200, `POST ${url} → ${response.status}: ${text}`);
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`POST ${url} → 200 but the body is not JSON: ${text}`);
  }
  assert.ok(json !== null && typeof json === "object" && !Array.isArray(json), `POST ${url} must return a JSON object, got: ${text}`);
  return json;
}

/**
 * Register an in-app credential for the user the token belongs to (§3.3 #2, §3.4.1, §6.1):
 * POST /client/user-authenticators/in-app with Bearer <track token>.
 * Returns {userAuthenticatorId, userId, verifiedAt} (all three are required by iOS and Android).
 */
async function deviceRegister(token, key) {
  const credential = await clientPost("/user-authenticators/in-app", `Bearer ${token}`, {
    publicKey: key.publicKey,
    deviceName: "node test",
    devicePlatform: "android",
  });
  assert.equal(typeof credential.userAuthenticatorId, "string", "userAuthenticatorId is required");
  assert.ok(credential.userAuthenticatorId.length > 0, "userAuthenticatorId must not be empty");
  assert.equal(typeof credential.userId, "string", "userId is required");
  assertIsoTimestamp(credential.verifiedAt, "verifiedAt");
  return credential;
}

/**
 * In-app verify, as iOS/Android `inapp.verify()` does after `setToken(token)` (§3.4.4, §6.2):
 *   1. POST /client/challenge, tenant Basic, body {} → {challengeId}
 *   2. sign the UTF-8 bytes of challengeId with the device key (§4.4)
 *   3. POST /client/verify/in-app, Bearer <track token>, {challengeId, publicKey, signature}
 *      → {token, userId, userAuthenticatorId} (all three required by the SDKs)
 */
async function deviceVerify(trackToken, key) {
  const challenge = await clientPost("/challenge", tenantBasicAuth(), {});
  assert.equal(typeof challenge.challengeId, "string", "challengeId is required");
  assert.ok(challenge.challengeId.length > 0, "challengeId must not be empty");

  const signature = deviceSign(key.privateKey, challenge.challengeId);
  const verified = await clientPost("/verify/in-app", `Bearer ${trackToken}`, {
    challengeId: challenge.challengeId,
    publicKey: key.publicKey,
    signature,
  });
  assert.equal(typeof verified.token, "string", "token is required");
  assert.equal(typeof verified.userId, "string", "userId is required");
  assert.equal(typeof verified.userAuthenticatorId, "string", "userAuthenticatorId is required");
  return verified;
}

/** Track "addAuthenticator" for a user with no authenticator yet and register a device key. */
async function enrollNewDevice(userId) {
  // §3.4.1: the first authenticator needs no extra scope.
  const tracked = await authsignal.track({ userId, action: "addAuthenticator" });
  const key = newDeviceKey();
  const credential = await deviceRegister(tracked.token, key);
  return { key, credential };
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

test("track for a new user: ALLOW, not enrolled, JWT token tied to the action (§2.3, §5)", async () => {
  const userId = newUserId();
  const result = await authsignal.track({ userId, action: "signIn" });

  assert.equal(result.state, "ALLOW");
  assert.equal(result.isEnrolled, false);
  assert.equal(typeof result.idempotencyKey, "string");
  assert.ok(result.idempotencyKey.length > 0, "idempotencyKey must not be empty");

  const payload = decodeJwtPayload(result.token);
  assert.equal(payload.sub, userId);
  assert.equal(typeof payload.other, "object", "the token payload must have an `other` object");
  assert.equal(payload.other.actionCode, "signIn");
  assert.equal(payload.other.idempotencyKey, result.idempotencyKey);
});

test("full in-app flow: enroll, CHALLENGE_REQUIRED, device verify, validateChallenge succeeds (§6.1, §6.2)", async () => {
  const userId = newUserId();

  // 1. Enrollment with a track token (§6.1).
  const enrollTrack = await authsignal.track({ userId, action: "addAuthenticator" });
  const key = newDeviceKey();
  const credential = await deviceRegister(enrollTrack.token, key);
  assert.equal(credential.userId, userId, "the credential is bound to the token's user");

  // 2. The Server API sees exactly that authenticator (§2.7).
  const authenticators = await authsignal.getAuthenticators({ userId });
  assert.ok(Array.isArray(authenticators), "getAuthenticators returns an array");
  assert.equal(authenticators.length, 1);
  assert.equal(authenticators[0].userAuthenticatorId, credential.userAuthenticatorId);
  assert.equal(authenticators[0].userId, userId);
  assert.equal(authenticators[0].verificationMethod, "DEVICE");

  // 3. An enrolled user is challenged on signIn (§2.3).
  const signIn = await authsignal.track({ userId, action: "signIn" });
  assert.equal(signIn.state, "CHALLENGE_REQUIRED");
  assert.equal(signIn.isEnrolled, true);

  // 4. The untouched track token validates with 200 and isValid false (§2.4).
  const pending = await authsignal.validateChallenge({ token: signIn.token });
  assert.equal(pending.isValid, false);
  assert.equal(pending.state, "CHALLENGE_REQUIRED");
  assert.equal(pending.action, "signIn");
  assert.equal(pending.userId, userId);

  // 5. The device proves possession of its key (§3.4.4).
  const verified = await deviceVerify(signIn.token, key);
  assert.equal(verified.userId, userId);
  assert.equal(verified.userAuthenticatorId, credential.userAuthenticatorId);
  assert.equal(decodeJwtPayload(verified.token).sub, userId, "the verify token is a JWT for the user (§5)");

  // 6. The backend validates the token the device got back (§2.4, §6.2 step 3).
  const validated = await authsignal.validateChallenge({ token: verified.token });
  assert.equal(validated.isValid, true);
  assert.equal(validated.state, "CHALLENGE_SUCCEEDED");
  assert.equal(validated.action, "signIn");
  assert.equal(validated.userId, userId);
  assert.equal(validated.verificationMethod, "DEVICE");
  assert.equal(validated.idempotencyKey, signIn.idempotencyKey, "the verification completes the tracked action");

  // 7. The tracked action itself is now CHALLENGE_SUCCEEDED (§2.5).
  const action = await authsignal.getAction({ userId, action: "signIn", idempotencyKey: signIn.idempotencyKey });
  assert.equal(action.state, "CHALLENGE_SUCCEEDED");
});

test("updateAction sets REVIEW_REQUIRED and getAction reads it back (§2.5)", async () => {
  const userId = newUserId();
  await enrollNewDevice(userId);

  const signIn = await authsignal.track({ userId, action: "signIn" });
  assert.equal(signIn.state, "CHALLENGE_REQUIRED");
  const ref = { userId, action: "signIn", idempotencyKey: signIn.idempotencyKey };

  const before = await authsignal.getAction(ref);
  assert.equal(before.state, "CHALLENGE_REQUIRED");

  const updated = await authsignal.updateAction({ ...ref, attributes: { state: "REVIEW_REQUIRED" } });
  assert.equal(updated.state, "REVIEW_REQUIRED");

  const after = await authsignal.getAction(ref);
  assert.equal(after.state, "REVIEW_REQUIRED");
});

test("deleteAuthenticator removes the device and the user is no longer enrolled (§2.7)", async () => {
  const userId = newUserId();
  const { credential } = await enrollNewDevice(userId);

  const before = await authsignal.getAuthenticators({ userId });
  assert.deepEqual(
    before.map((a) => a.userAuthenticatorId),
    [credential.userAuthenticatorId],
  );
  const enrolled = await authsignal.track({ userId, action: "signIn" });
  assert.equal(enrolled.isEnrolled, true);

  const deleted = await authsignal.deleteAuthenticator({
    userId,
    userAuthenticatorId: credential.userAuthenticatorId,
  });
  assert.equal(deleted, undefined, "the SDK resolves deleteAuthenticator with nothing");

  const after = await authsignal.getAuthenticators({ userId });
  assert.deepEqual(after, []);

  const again = await authsignal.track({ userId, action: "signIn" });
  assert.equal(again.isEnrolled, false);
  assert.equal(again.state, "ALLOW");
});

test("a wrong secret key is rejected with AuthsignalError unauthorized / 401 (§1.3, §2.1)", async () => {
  const wrong = new Authsignal({ apiSecretKey: `wrong-${randomUUID()}`, apiUrl: BASE_URL });
  const userId = newUserId();

  const expectUnauthorized = (err) => {
    assert.ok(err instanceof AuthsignalError, `expected AuthsignalError, got ${err}`);
    assert.equal(err.statusCode, 401);
    assert.equal(err.errorCode, "unauthorized"); // the SDK reads the body's `error` key
    assert.equal(err.errorDescription, UNAUTHORIZED_DESCRIPTION);
    // §1.3: the body carries all three keys so every SDK finds the code; §1.2: exact content type.
    const response = err.axiosError?.response;
    assert.ok(response, "the SDK keeps the HTTP response on the error");
    assert.equal(response.data.error, "unauthorized");
    assert.equal(response.data.errorCode, "unauthorized");
    assert.equal(response.headers["content-type"], "application/json");
    return true;
  };

  await assert.rejects(wrong.track({ userId, action: "signIn" }), expectUnauthorized); // POST
  await assert.rejects(wrong.getUser({ userId }), expectUnauthorized); // GET
});

test("validateChallenge with the verify token but another userId is not valid (§2.4)", async () => {
  const userId = newUserId();
  const { key } = await enrollNewDevice(userId);

  const signIn = await authsignal.track({ userId, action: "signIn" });
  assert.equal(signIn.state, "CHALLENGE_REQUIRED");
  const verified = await deviceVerify(signIn.token, key);

  // The device verification really happened, so an isValid:false below can only come from the
  // userId mismatch.
  const action = await authsignal.getAction({ userId, action: "signIn", idempotencyKey: signIn.idempotencyKey });
  assert.equal(action.state, "CHALLENGE_SUCCEEDED");

  const result = await authsignal.validateChallenge({ token: verified.token, userId: newUserId() });
  assert.equal(result.isValid, false);
});

test("getUser / updateUser round trip, deleteUser, unknown user (§2.6)", async () => {
  const userId = newUserId();
  const unique = randomUUID().slice(0, 8);
  const attributes = {
    email: `compat-${unique}@example.com`,
    username: `compat-${unique}`,
    custom: { plan: "gold", seats: 3, beta: true },
  };

  // An unknown user reads back as 200 with isEnrolled false, not 404.
  const unknown = await authsignal.getUser({ userId: newUserId() });
  assert.equal(unknown.isEnrolled, false);

  const updated = await authsignal.updateUser({ userId, attributes });
  assert.equal(updated.email, attributes.email);
  assert.equal(updated.username, attributes.username);
  assert.deepEqual(updated.custom, attributes.custom);

  // Enroll a device so that deleteUser has something visible to undo.
  await enrollNewDevice(userId);

  const user = await authsignal.getUser({ userId });
  assert.equal(user.isEnrolled, true);
  assert.equal(user.email, attributes.email);
  assert.equal(user.username, attributes.username);
  assert.deepEqual(user.custom, attributes.custom);

  const deleted = await authsignal.deleteUser({ userId });
  assert.equal(deleted, undefined, "the SDK resolves deleteUser with nothing");

  const gone = await authsignal.getUser({ userId });
  assert.equal(gone.isEnrolled, false);
  assert.equal(gone.email ?? undefined, undefined, "a deleted user keeps no email");
  assert.equal(gone.username ?? undefined, undefined, "a deleted user keeps no username");
  assert.deepEqual(await authsignal.getAuthenticators({ userId }), []);
});

// ---------------------------------------------------------------------------------------------
// Push and QR-code approval (§3.4.5 to §3.4.7, §6.3, §6.4) and the push.created webhook (§2.11)
// ---------------------------------------------------------------------------------------------

/** Register a credential in a namespace (§3.4.1); a later one needs add:authenticators. */
async function registerIn(namespace, userId, extra = {}) {
  const tracked = await authsignal.track({ userId, action: "addAuthenticator", attributes: { scope: "add:authenticators" } });
  const key = newDeviceKey();
  const credential = await clientPost(`/user-authenticators/${namespace}`, `Bearer ${tracked.token}`, {
    publicKey: key.publicKey,
    deviceName: "node test",
    devicePlatform: "android",
    ...extra,
  });
  return { key, credential };
}

/** The double base64 of ?publicKey= as Android sends it (§4.3). */
function publicKeyQuery(key) {
  return encodeURIComponent(Buffer.from(key.publicKey, "utf8").toString("base64"));
}

test("push: push.created arrives signed and passes the official webhook verifier; approve; validateChallenge says PUSH (§2.11, §6.3)", async () => {
  const received = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      received.push({ path: request.url, body, signature: request.headers["x-signature-v2"] });
      response.writeHead(200, { "Content-Type": "application/json" }).end("{}");
    });
  });
  await new Promise((resolve) => server.listen(WEBHOOK_PORT, "127.0.0.1", resolve));
  try {
    const userId = newUserId();
    const { key, credential } = await registerIn("push", userId, { pushToken: "fcm-token-1" });

    // 1. The backend tracks the web sign-in; the browser starts the push (§3.4.6).
    const signIn = await authsignal.track({ userId, action: "signIn", attributes: { ipAddress: "198.51.100.4", custom: { amount: 42 } } });
    assert.equal(signIn.state, "CHALLENGE_REQUIRED");
    const started = await clientPost("/challenge/push", `Bearer ${signIn.token}`, { action: "signIn" });
    assert.match(started.challengeId, /^[0-9a-f]{96}$/);

    // 2. push.created was delivered before the start returned, and the official verifier,
    //    given the webhook secret, accepts its X-Signature-V2.
    assert.equal(received.length, 1, "one push.created per start");
    assert.equal(received[0].path, "/push-created");
    const verifier = new Authsignal({ apiSecretKey: WEBHOOK_SECRET, apiUrl: BASE_URL });
    const event = verifier.webhook.constructEvent(received[0].body, received[0].signature);
    assert.equal(event.type, "push.created");
    assert.equal(event.version, 1);
    assert.equal(event.tenantId, TENANT_ID);
    assert.equal(event.data.challengeId, started.challengeId);
    assert.equal(event.data.userId, userId);
    assert.equal(event.data.actionCode, "signIn");
    assert.equal(event.data.idempotencyKey, signIn.idempotencyKey);
    assert.equal(event.data.authenticators[0].pushToken, "fcm-token-1");
    // A tampered body fails the same verifier: the check is real.
    assert.throws(() => verifier.webhook.constructEvent(received[0].body.replace("signIn", "signOut"), received[0].signature));

    // 3. The app reads the challenge with a signed nonce (§3.4.5) and approves it.
    const auth = tenantBasicAuth();
    const nonce = await clientPost(`/user-authenticators/push/challenge/sign?publicKey=${publicKeyQuery(key)}`, auth, undefined);
    const pendingResponse = await fetch(`${BASE_URL}/client/user-authenticators/push/challenge?publicKey=${publicKeyQuery(key)}`, {
      headers: { Authorization: auth, "X-Authsignal-Signature": deviceSign(key.privateKey, nonce.message) },
    });
    assert.equal(pendingResponse.status, 200);
    const pending = await pendingResponse.json();
    assert.equal(pending.userAuthenticatorId, credential.userAuthenticatorId);
    assert.equal(pending.challengeId, started.challengeId);
    assert.equal(pending.ipAddress, "198.51.100.4");
    assert.deepEqual(pending.custom, { amount: 42 });
    const answered = await clientPost("/user-authenticators/push/challenge", auth, {
      challengeId: started.challengeId,
      publicKey: key.publicKey,
      signature: deviceSign(key.privateKey, started.challengeId),
      approved: true,
      verificationCode: null,
    });
    assert.equal(answered.isVerified, true);

    // 4. The browser's poll carries the token once; the backend validates it (§2.4).
    const polled = await clientPost("/verify/push", `Bearer ${signIn.token}`, { challengeId: started.challengeId });
    assert.deepEqual([polled.isConsumed, polled.isVerified], [true, true]);
    const validated = await authsignal.validateChallenge({ token: polled.accessToken });
    assert.equal(validated.isValid, true);
    assert.equal(validated.state, "CHALLENGE_SUCCEEDED");
    assert.equal(validated.verificationMethod, "PUSH");
    assert.equal(validated.userId, userId);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("QR code: an anonymous kiosk, a claim, an approval; validateChallenge names the claimer (§6.4)", async () => {
  const userId = newUserId();
  const { key } = await registerIn("qr-code", userId);
  const auth = tenantBasicAuth();

  const started = await clientPost("/challenge/qr-code", auth, { action: "kioskSignIn", custom: { kiosk: "lobby" } });
  assert.equal(typeof started.deviceCode, "string");
  assert.ok(Number.isInteger(started.expiresAt), "expiresAt is integer Unix seconds (§8 item 9)");

  const claimed = await clientPost("/user-authenticators/qr-code/challenge/claim", auth, {
    challengeId: started.challengeId,
    publicKey: key.publicKey,
    signature: deviceSign(key.privateKey, started.challengeId),
  });
  assert.equal(claimed.success, true);
  assert.equal(claimed.actionCode, "kioskSignIn");
  assert.deepEqual(claimed.custom, { kiosk: "lobby" });

  const poll = () => clientPost("/verify/qr-code", auth, { challengeId: started.challengeId, deviceCode: started.deviceCode });
  assert.deepEqual(await poll(), { isClaimed: true, isConsumed: false, isVerified: false });

  await clientPost("/user-authenticators/qr-code/challenge", auth, {
    challengeId: started.challengeId,
    publicKey: key.publicKey,
    signature: deviceSign(key.privateKey, started.challengeId),
    approved: true,
  });
  const approved = await poll();
  assert.equal(approved.isVerified, true);
  const validated = await authsignal.validateChallenge({ token: approved.accessToken, action: "kioskSignIn" });
  assert.equal(validated.isValid, true);
  assert.equal(validated.userId, userId);
  assert.equal(validated.verificationMethod, "DEVICE", ".NET-safe value for QR (§2.9, §8 item 8)");
  assert.equal((await poll()).accessToken, undefined, "the token is handed out once");
});

// ---------------------------------------------------------------------------------------------
// Adaptive rules (§7, §2.3, §2.5), configured through our extension route
// ---------------------------------------------------------------------------------------------

test("rules: a BLOCK rule decides track, getAction shows the rule and output, validate says no (§7, §2.5)", async () => {
  const action = `nodeRules${randomUUID().slice(0, 8)}`;
  const config = {
    defaultOutcome: "ALLOW",
    rules: [
      {
        ruleId: "big-amount",
        name: "Big amount",
        description: "Over 1,000 is blocked",
        type: "BLOCK",
        conditions: { ">": [{ var: "custom.amount" }, 1000] },
      },
    ],
  };
  const put = await fetch(`${BASE_URL}/action-configs/${action}`, {
    method: "PUT",
    headers: {
      Authorization: `Basic ${Buffer.from(`${SECRET_KEY}:`).toString("base64")}`,
      "Content-Type": "application/json",
    },
    body: JSON.stringify(config),
  });
  assert.equal(put.status, 200, await put.text());

  const userId = newUserId();
  const blocked = await authsignal.track({ userId, action, attributes: { custom: { amount: 5000 } } });
  assert.equal(blocked.state, "BLOCK");
  assert.deepEqual(blocked.ruleIds, ["big-amount"]);
  const allowed = await authsignal.track({ userId, action, attributes: { custom: { amount: 5 } } });
  assert.equal(allowed.state, "ALLOW");
  assert.deepEqual(allowed.ruleIds, []);

  const read = await authsignal.getAction({ userId, action, idempotencyKey: blocked.idempotencyKey });
  assert.equal(read.state, "BLOCK");
  assert.equal(read.rules.length, 1);
  assert.equal(read.rules[0].ruleId, "big-amount");
  assert.equal(read.rules[0].name, "Big amount");
  assert.deepEqual(read.output, { custom: { amount: 5000 } });

  const validated = await authsignal.validateChallenge({ token: blocked.token });
  assert.equal(validated.isValid, false);
  assert.equal(validated.state, "BLOCK");
});
