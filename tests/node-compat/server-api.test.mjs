// Issue #20: the rest of the Server API, through the official, unmodified @authsignal/node SDK
// against the local server binary: sessions (create, validate, refresh with rotation and reuse
// detection, revoke, revoke a user's), the JWKS that verifies access tokens offline, queryUsers,
// claimChallenge, and the OTP methods answered as not supported.
//
// Environment (set by infra/scripts/test-all.sh, besides compat.test.mjs's):
//   TD_OTHER_SECRET_KEY  the secret key of a second tenant (sessions configured too)
//   TD_ACCESS_TOKEN_TTL  the access-token lifetime configured for both tenants (seconds, short)
//   TD_SESSION_CLIENT_ID the client id configured for both tenants

import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, randomUUID, sign, verify } from "node:crypto";
import { Authsignal, AuthsignalError } from "@authsignal/node";

function requireEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`node-compat: environment variable ${name} is required but not set`);
  return value;
}

const BASE_URL = requireEnv("TD_BASE_URL").replace(/\/+$/, "");
const TENANT_ID = requireEnv("TD_TENANT_ID");
const CLIENT_ID = requireEnv("TD_SESSION_CLIENT_ID");
const ACCESS_TTL = Number(requireEnv("TD_ACCESS_TOKEN_TTL"));
const authsignal = new Authsignal({ apiSecretKey: requireEnv("TD_SECRET_KEY"), apiUrl: BASE_URL });
const other = new Authsignal({ apiSecretKey: requireEnv("TD_OTHER_SECRET_KEY"), apiUrl: BASE_URL });

const newUserId = () => `node-server-${randomUUID()}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function tenantBasicAuth() {
  return `Basic ${Buffer.from(`${TENANT_ID}:`, "utf8").toString("base64")}`;
}

async function clientPost(path, authorization, body) {
  const response = await fetch(`${BASE_URL}/client${path}`, {
    method: "POST",
    headers: { Authorization: authorization, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  assert.equal(response.status, 200, `POST ${path} → ${response.status}: ${text}`);
  return JSON.parse(text);
}

function newDeviceKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { publicKey: publicKey.export({ type: "spki", format: "der" }).toString("base64"), privateKey };
}

const deviceSign = (key, message) => sign("sha256", Buffer.from(message, "utf8"), key.privateKey).toString("base64");

/** Enrols a device for a new user and completes a signIn: the token /validate accepts. */
async function succeededChallenge(userId = newUserId(), attributes = {}) {
  if (Object.keys(attributes).length > 0) await authsignal.updateUser({ userId, attributes });
  const enrol = await authsignal.track({ userId, action: "addAuthenticator" });
  const key = newDeviceKey();
  await clientPost("/user-authenticators/in-app", `Bearer ${enrol.token}`, { publicKey: key.publicKey });
  const signIn = await authsignal.track({ userId, action: "signIn" });
  assert.equal(signIn.state, "CHALLENGE_REQUIRED");
  const { challengeId } = await clientPost("/challenge", tenantBasicAuth(), {});
  const verified = await clientPost("/verify/in-app", `Bearer ${signIn.token}`, {
    challengeId,
    publicKey: key.publicKey,
    signature: deviceSign(key, challengeId),
  });
  return { userId, token: verified.token, key };
}

/** Another completed signIn with a user's enrolled device key. */
async function signInWith(userId, key) {
  const signIn = await authsignal.track({ userId, action: "signIn" });
  const { challengeId } = await clientPost("/challenge", tenantBasicAuth(), {});
  const verified = await clientPost("/verify/in-app", `Bearer ${signIn.token}`, {
    challengeId,
    publicKey: key.publicKey,
    signature: deviceSign(key, challengeId),
  });
  return verified.token;
}

/** The SDK's error for a call that must fail: its status and code. */
async function failure(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AuthsignalError, `an AuthsignalError, got ${error}`);
    return { status: error.statusCode, code: error.errorCode, description: error.errorDescription };
  }
  assert.fail("the call should have failed");
}

const decode = (jwt, part) => JSON.parse(Buffer.from(jwt.split(".")[part], "base64url").toString("utf8"));

test("createSession → validateSession; the access token verifies offline with the JWKS (ES256)", async () => {
  const { userId, token } = await succeededChallenge(newUserId(), { email: "Session@Example.com" });
  const session = await authsignal.createSession({ clientId: CLIENT_ID, token, action: "signIn" });
  assert.equal(typeof session.accessToken, "string");
  assert.ok(session.refreshToken.startsWith("rt1."));

  const header = decode(session.accessToken, 0);
  const claims = decode(session.accessToken, 1);
  assert.equal(header.alg, "ES256");
  assert.ok(header.kid.startsWith(`${TENANT_ID}.`));
  assert.equal(claims.sub, userId);
  assert.equal(claims.aud, CLIENT_ID);
  assert.equal(claims.iss, `urn:trusted-device:tenant:${TENANT_ID}`);
  assert.equal(claims.exp - claims.iat, ACCESS_TTL);
  assert.equal(typeof claims.jti, "string");

  // Offline verification with the published key, as another service would do it.
  const jwks = await (await fetch(`${BASE_URL}/tenants/${TENANT_ID}/.well-known/jwks.json`)).json();
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, "the token's kid is published");
  assert.equal(jwk.d, undefined, "no private part");
  const [h, p, s] = session.accessToken.split(".");
  const valid = verify(
    "sha256",
    Buffer.from(`${h}.${p}`),
    { key: createPublicKey({ key: jwk, format: "jwk" }), dsaEncoding: "ieee-p1363" },
    Buffer.from(s, "base64url"),
  );
  assert.equal(valid, true, "the ES256 signature verifies with the JWKS key");

  const validated = await authsignal.validateSession({ accessToken: session.accessToken, clientIds: [CLIENT_ID] });
  assert.equal(validated.user.userId, userId);
  assert.equal(validated.user.email, "Session@Example.com");
  assert.equal(validated.expiresAt, claims.exp);
  assert.equal(validated.verificationMethod, "DEVICE");

  // Another client id is refused; a challenge token is single use for sessions.
  assert.equal((await failure(authsignal.validateSession({ accessToken: session.accessToken, clientIds: ["other-app"] }))).code, "client_id_mismatch");
  const again = await failure(authsignal.createSession({ clientId: CLIENT_ID, token }));
  assert.deepEqual([again.status, again.code], [400, "token_already_used"]);
});

test("createSession refuses an unfinished challenge, an unknown client id and a wrong action", async () => {
  const { userId, token } = await succeededChallenge();
  // A new signIn, not yet verified: its token stands for a challenge still required.
  const pending = await authsignal.track({ userId, action: "signIn" });
  const notYet = await failure(authsignal.createSession({ clientId: CLIENT_ID, token: pending.token }));
  assert.deepEqual([notYet.status, notYet.code], [400, "challenge_not_succeeded"]);
  const unknown = await failure(authsignal.createSession({ clientId: "nope", token }));
  assert.deepEqual([unknown.status, unknown.code], [400, "invalid_client_id"]);
  assert.equal((await failure(authsignal.createSession({ clientId: CLIENT_ID, token, action: "pay" }))).code, "invalid_request");
  assert.equal((await failure(authsignal.createSession({ clientId: CLIENT_ID, token: "not-a-jwt" }))).code, "invalid_token");
});

test("refreshSession rotates the pair; reusing a refresh token revokes the whole family", async () => {
  const { token } = await succeededChallenge();
  const first = await authsignal.createSession({ clientId: CLIENT_ID, token });
  const second = await authsignal.refreshSession({ refreshToken: first.refreshToken });
  assert.notEqual(second.refreshToken, first.refreshToken);
  assert.equal(decode(second.accessToken, 1).sid, decode(first.accessToken, 1).sid, "same session");
  await authsignal.validateSession({ accessToken: second.accessToken });

  const reuse = await failure(authsignal.refreshSession({ refreshToken: first.refreshToken }));
  assert.deepEqual([reuse.status, reuse.code], [401, "refresh_token_reused"]);
  // The family is revoked: the newest refresh token and access tokens stop working too.
  assert.equal((await failure(authsignal.refreshSession({ refreshToken: second.refreshToken }))).code, "session_revoked");
  assert.equal((await failure(authsignal.validateSession({ accessToken: second.accessToken }))).code, "session_revoked");
  assert.equal((await failure(authsignal.refreshSession({ refreshToken: "rt1.unknown" }))).code, "invalid_refresh_token");
});

test("revokeSession and revokeUserSessions end sessions for validateSession", async () => {
  const { userId, token, key } = await succeededChallenge();
  const session = await authsignal.createSession({ clientId: CLIENT_ID, token });
  await authsignal.revokeSession({ accessToken: session.accessToken });
  const revoked = await failure(authsignal.validateSession({ accessToken: session.accessToken }));
  assert.deepEqual([revoked.status, revoked.code], [401, "session_revoked"]);
  assert.equal((await failure(authsignal.refreshSession({ refreshToken: session.refreshToken }))).code, "session_revoked");

  // Two more sessions of one user, both ended by revokeUserSessions.
  const a = await authsignal.createSession({ clientId: CLIENT_ID, token: await signInWith(userId, key) });
  const b = await authsignal.createSession({ clientId: CLIENT_ID, token: await signInWith(userId, key) });
  await authsignal.validateSession({ accessToken: a.accessToken });
  await authsignal.revokeUserSessions({ userId });
  for (const s of [a, b]) {
    assert.equal((await failure(authsignal.validateSession({ accessToken: s.accessToken }))).code, "session_revoked");
  }
});

test("an expired access token is refused; refresh still works (short TTL configured per tenant)", async () => {
  const { token } = await succeededChallenge();
  const session = await authsignal.createSession({ clientId: CLIENT_ID, token });
  await sleep((ACCESS_TTL + 1) * 1000);
  const expired = await failure(authsignal.validateSession({ accessToken: session.accessToken }));
  assert.deepEqual([expired.status, expired.code], [401, "expired_token"]);
  const fresh = await authsignal.refreshSession({ refreshToken: session.refreshToken });
  await authsignal.validateSession({ accessToken: fresh.accessToken });
});

test("another tenant's tokens unlock nothing here", async () => {
  const { token } = await succeededChallenge();
  assert.equal((await failure(other.createSession({ clientId: CLIENT_ID, token }))).code, "invalid_token");
  const session = await authsignal.createSession({ clientId: CLIENT_ID, token });
  assert.equal((await failure(other.validateSession({ accessToken: session.accessToken }))).code, "invalid_token");
  assert.equal((await failure(other.refreshSession({ refreshToken: session.refreshToken }))).code, "invalid_refresh_token");
  assert.equal((await failure(other.revokeSession({ accessToken: session.accessToken }))).code, "invalid_token");
  await authsignal.validateSession({ accessToken: session.accessToken });
});

test("queryUsers by email, phone number, username and token, paginated", async () => {
  const email = `${randomUUID()}@example.com`;
  const ids = [];
  const phones = {};
  for (let i = 0; i < 3; i++) {
    const userId = newUserId();
    ids.push(userId);
    phones[userId] = `+6421${Date.now() % 100000}${i}`;
    await authsignal.updateUser({ userId, attributes: { email, phoneNumber: phones[userId], username: `u-${userId}` } });
  }
  ids.sort();
  const page1 = await authsignal.queryUsers({ email: email.toUpperCase(), limit: 2 });
  assert.deepEqual(page1.users.map((u) => u.userId), ids.slice(0, 2));
  assert.equal(page1.users[0].email, email);
  assert.equal(page1.users[0].emailVerified, false);
  assert.equal(page1.lastEvaluatedUserId, ids[1]);
  const page2 = await authsignal.queryUsers({ email, limit: 2, lastEvaluatedUserId: page1.lastEvaluatedUserId });
  assert.deepEqual(page2.users.map((u) => u.userId), ids.slice(2));
  assert.equal(page2.lastEvaluatedUserId, undefined);

  const byPhone = await authsignal.queryUsers({ phoneNumber: phones[ids[1]] });
  assert.deepEqual(byPhone.users.map((u) => u.userId), [ids[1]]);
  assert.equal(byPhone.users[0].phoneNumber, phones[ids[1]]);
  const byUsername = await authsignal.queryUsers({ username: `u-${ids[2]}` });
  assert.deepEqual(byUsername.users.map((u) => u.userId), [ids[2]]);

  // A changed email leaves the old value's results.
  await authsignal.updateUser({ userId: ids[0], attributes: { email: `moved-${email}` } });
  assert.deepEqual((await authsignal.queryUsers({ email })).users.map((u) => u.userId), ids.slice(1));
  await authsignal.deleteUser({ userId: ids[1] });
  assert.deepEqual((await authsignal.queryUsers({ email })).users.map((u) => u.userId), ids.slice(2));

  const tracked = await authsignal.track({ userId: ids[2], action: "signIn" });
  const byToken = await authsignal.queryUsers({ token: tracked.token });
  assert.deepEqual(byToken.users.map((u) => u.userId), [ids[2]]);
  assert.equal(byToken.tokenPayload.sub, ids[2]);

  assert.equal((await failure(authsignal.queryUsers({}))).code, "invalid_request");
  assert.equal((await failure(authsignal.queryUsers({ email, limit: 1000 }))).code, "invalid_request");
  assert.equal((await failure(other.queryUsers({ token: tracked.token }))).code, "invalid_token");
  assert.deepEqual((await other.queryUsers({ email })).users, [], "another tenant's users are not found");
});

test("claimChallenge gives the token of an approved QR code once, to the approving user", async () => {
  const userId = newUserId();
  const enrol = await authsignal.track({ userId, action: "addAuthenticator" });
  const key = newDeviceKey();
  await clientPost("/user-authenticators/qr-code", `Bearer ${enrol.token}`, { publicKey: key.publicKey });
  const auth = tenantBasicAuth();
  const started = await clientPost("/challenge/qr-code", auth, { action: "kioskSignIn" });
  const body = { challengeId: started.challengeId, publicKey: key.publicKey, signature: deviceSign(key, started.challengeId) };
  await clientPost("/user-authenticators/qr-code/challenge/claim", auth, body);

  assert.equal((await failure(authsignal.claimChallenge({ challengeId: started.challengeId, userId }))).code, "challenge_not_succeeded");
  await clientPost("/user-authenticators/qr-code/challenge", auth, { ...body, approved: true });

  const challenge = await authsignal.getChallenge({ challengeId: started.challengeId });
  assert.equal(challenge.challengeId, started.challengeId);
  assert.equal(challenge.verificationMethod, "DEVICE");
  assert.equal(challenge.action, "kioskSignIn");

  assert.equal((await failure(authsignal.claimChallenge({ challengeId: started.challengeId, userId: newUserId() }))).code, "user_mismatch");
  const claimed = await authsignal.claimChallenge({ challengeId: started.challengeId, userId });
  assert.equal(claimed.verificationMethod, "DEVICE");
  const validated = await authsignal.validateChallenge({ token: claimed.token, userId });
  assert.equal(validated.isValid, true);
  const twice = await failure(authsignal.claimChallenge({ challengeId: started.challengeId, userId }));
  assert.deepEqual([twice.status, twice.code], [409, "challenge_already_used"]);
  // The kiosk's poll gets no second token either.
  const poll = await clientPost("/verify/qr-code", auth, { challengeId: started.challengeId, deviceCode: started.deviceCode });
  assert.equal(poll.accessToken, undefined);
});

test("OTP challenge and verify answer verification_method_not_supported (400), not a 404", async () => {
  for (const verificationMethod of ["SMS", "EMAIL_OTP", "WHATSAPP"]) {
    const refused = await failure(authsignal.challenge({ verificationMethod, action: "signIn", email: "a@example.com", phoneNumber: "+6421000000" }));
    assert.deepEqual([refused.status, refused.code], [400, "verification_method_not_supported"]);
    assert.match(refused.description, /not supported by trusted-device/);
  }
  const verify = await failure(authsignal.verify({ challengeId: randomUUID(), verificationCode: "123456" }));
  assert.deepEqual([verify.status, verify.code], [400, "verification_method_not_supported"]);
});
