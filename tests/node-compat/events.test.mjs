// Events to the tenant's backend (issue #19, docs/api.md "Events"), checked with the official
// @authsignal/node webhook verifier: a tenant whose events webhook is this test's receiver
// enrols a device, signs in, and removes the device; each event arrives signed with the events
// secret, passes `webhook.constructEvent`, and a tampered body does not.
//
// Environment (infra/scripts/test-all.sh sets it):
//   TD_BASE_URL                          the server's base URL
//   TD_EVENTS_TENANT_ID, TD_EVENTS_SECRET_KEY  a tenant configured with
//                                        --events-webhook-url http://127.0.0.1:$TD_EVENTS_PORT/events
//   TD_EVENTS_PORT, TD_EVENTS_WEBHOOK_SECRET   where this test listens, and the events secret

import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { Authsignal } from "@authsignal/node";

function requireEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (infra/scripts/test-all.sh sets it)`);
  return value;
}

const BASE_URL = requireEnv("TD_BASE_URL").replace(/\/+$/, "");
const TENANT_ID = requireEnv("TD_EVENTS_TENANT_ID");
const SECRET_KEY = requireEnv("TD_EVENTS_SECRET_KEY");
const PORT = Number(requireEnv("TD_EVENTS_PORT"));
const EVENTS_SECRET = requireEnv("TD_EVENTS_WEBHOOK_SECRET");

const authsignal = new Authsignal({ apiSecretKey: SECRET_KEY, apiUrl: BASE_URL });
const verifier = new Authsignal({ apiSecretKey: EVENTS_SECRET, apiUrl: BASE_URL });

test("events: authenticator.created, action.state_changed and authenticator.deleted pass the official webhook verifier", async () => {
  const arrivals = [];
  let notify = () => {};
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      arrivals.push({ body, signature: request.headers["x-signature-v2"] });
      response.writeHead(200, { "Content-Type": "application/json" }).end("{}");
      notify();
    });
  });
  await new Promise((resolve) => server.listen(PORT, "127.0.0.1", resolve));
  try {
    const userId = `events-${randomUUID()}`;
    const tracked = await authsignal.track({ userId, action: "addAuthenticator" });
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const response = await fetch(`${BASE_URL}/client/user-authenticators/in-app`, {
      method: "POST",
      headers: { Authorization: `Bearer ${tracked.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        publicKey: publicKey.export({ type: "spki", format: "der" }).toString("base64"),
        deviceName: "node test",
      }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const { userAuthenticatorId } = await response.json();
    await authsignal.deleteAuthenticator({ userId, userAuthenticatorId });

    // The worker delivers asynchronously: wait for the three events of this user, each verified.
    const wanted = ["action.state_changed", "authenticator.created", "authenticator.deleted"];
    const events = new Map();
    const deadline = Date.now() + 30_000;
    while (wanted.some((type) => !events.has(type))) {
      for (const { body, signature } of arrivals.splice(0)) {
        const event = verifier.webhook.constructEvent(body, signature);
        assert.throws(() => verifier.webhook.constructEvent(body.replace(TENANT_ID, "another"), signature));
        if (event.data.userId === userId) events.set(event.type, event);
      }
      if (wanted.every((type) => events.has(type))) break;
      assert.ok(Date.now() < deadline, `events missing; got ${[...events.keys()]}`);
      await new Promise((resolve) => {
        notify = resolve;
        setTimeout(resolve, 1000); // a bound on one wait, not the condition: the loop checks
      });
    }
    const created = events.get("authenticator.created");
    assert.equal(created.tenantId, TENANT_ID);
    assert.equal(created.data.userAuthenticatorId, userAuthenticatorId);
    assert.equal(created.data.verificationMethod, "DEVICE");
    assert.equal(events.get("authenticator.deleted").data.userAuthenticatorId, userAuthenticatorId);
    const action = events.get("action.state_changed");
    assert.equal(action.data.actionCode, "addAuthenticator");
    assert.equal(action.data.idempotencyKey, tracked.idempotencyKey);
    assert.equal(action.data.state, tracked.state);
    assert.match(created.id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  } finally {
    server.close();
  }
});
