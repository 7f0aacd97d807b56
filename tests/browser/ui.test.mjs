// The pre-built UI (issue #16) in a real browser: track's `url` opened with the official
// @authsignal/browser `launch` (redirect and popup modes) from a page of the tenant's allowed
// origin, each method completed as a user does (a phone emulator approves the push with the
// number shown, claims and approves the QR code; a virtual authenticator creates and uses a
// passkey), ending in @authsignal/node `validateChallenge`; and `redirectToSettings`: the settings
// screen after the challenge (list, add a passkey, remove a device, Done). With TD_UI_SCREENSHOTS=1 each
// screen's screenshot is written to docs/ui/ (shown in the README); otherwise the screen is still
// rendered and shot, but not written, so a test run leaves the working tree as it was.
// Run from the repository root: bash infra/scripts/test-all.sh (or see README.md here).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startAll, inPage, addVirtualAuthenticator, Device, waitFor } from "./harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const SCREENSHOTS = path.resolve(here, "../../docs/ui");
const WRITE_SCREENSHOTS = process.env.TD_UI_SCREENSHOTS === "1";
// A name with markup: the page must show it as text (escaped), never run it.
const TENANT_NAME = `Acme <b>Bank</b> & "Co" <img src=x onerror=window.pwned=1>`;

let env;
before(async () => {
  if (WRITE_SCREENSHOTS) mkdirSync(SCREENSHOTS, { recursive: true });
  env = await startAll({ ui: { name: TENANT_NAME, colour: "#0b6e4f" } });
});
after(async () => {
  await env?.close();
});

const newUser = (what) => `ui-${what}-${randomUUID()}`;

/** A phone screen for the screenshots (small PNGs), then the shot of the UI's card. */
async function screenshot(target, name) {
  const page = target.page ? target.page() : target;
  await page.setViewport({ width: 420, height: 640 });
  const card = await target.$("#widget_container");
  const png = await card.screenshot(
    WRITE_SCREENSHOTS ? { path: path.join(SCREENSHOTS, `${name}.png`) } : {},
  );
  assert.ok(png.length > 0, `the ${name} screen rendered`);
}

/** The UI page as a frame: the popup's iframe, or the page itself after a redirect. */
async function uiFrame(page) {
  return waitFor(
    () => page.frames().find((frame) => frame.url().startsWith(`${env.server.publicOrigin}/v1/ui`)),
    { what: "the pre-built UI's frame" },
  );
}

async function visible(frame, selector) {
  await frame.waitForSelector(`${selector}:not([hidden])`, { visible: true });
}

async function text(frame, selector) {
  return frame.$eval(selector, (element) => element.textContent);
}

/**
 * Picks push on the UI's methods screen and answers the push on `device` (approve or decline)
 * with the number the UI shows, as a user reading it off the screen does.
 */
async function answerPush(ui, device, approve) {
  await visible(ui, "#method-push");
  await ui.click("#method-push");
  await visible(ui, "#push-number");
  const pending = await waitFor(async () => (await device.pendingPush()).challengeId && (await device.pendingPush()), { what: "the push" });
  await device.answer(pending.challengeId, approve, (await text(ui, "#push-code")).trim());
}

async function assertSucceeded(token, userId, method) {
  assert.equal(typeof token, "string", "a token for the backend");
  const validated = await env.server.backend.validateChallenge({ token });
  assert.equal(validated.isValid, true, JSON.stringify(validated));
  assert.equal(validated.state, "CHALLENGE_SUCCEEDED");
  assert.equal(validated.userId, userId);
  if (method) assert.equal(validated.verificationMethod, method);
}

/** `launch(url)` (redirect mode, the SDK's default) from the app page, as an app's button does. */
async function launchRedirect(page, url) {
  await page.evaluate(
    ({ url, tenantId, baseUrl }) => {
      // After a redirect back, the app page is new: it makes its client again.
      window.client ??= new window.authsignal.Authsignal({ tenantId, baseUrl });
      window.client.launch(url);
    },
    { url, tenantId: env.server.tenantId, baseUrl: env.server.baseUrl },
  );
}

/** Starts `launch(url, {mode: "popup"})` in the app page; the result lands on window.launched. */
async function launchPopup(page, url) {
  await inPage(
    page,
    (client, url) => {
      window.launched = null;
      client.launch(url, { mode: "popup" }).then((result) => (window.launched = result));
      return true;
    },
    url,
  );
}

test("track returns the UI's url; its headers: strict CSP, frame-ancestors = allowed origins, no Referer, no cache; the tenant name is escaped, its colour applied", async () => {
  const userId = newUser("headers");
  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  assert.ok(tracked.url.startsWith(`${env.server.publicOrigin}/v1/ui?token=`), tracked.url);
  const page = await env.browser.newPage();
  const response = await page.goto(tracked.url, { waitUntil: "load" });
  const headers = response.headers();
  assert.equal(response.status(), 200);
  assert.equal(headers["referrer-policy"], "no-referrer");
  assert.equal(headers["cache-control"], "no-store");
  const csp = headers["content-security-policy"];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self';/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, new RegExp(`frame-ancestors ${env.allowed.origin}$`));
  // The name shows as text; its markup neither rendered nor ran.
  assert.equal(await text(page, "#heading"), TENANT_NAME);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await page.$("#heading b"), null);
  // The token left the address bar as the page loaded.
  assert.equal(new URL(page.url()).search, "");
  // A new user with no authenticator and no passkey: nothing to offer but... a passkey.
  await visible(page, "#method-add-passkey");
  // The tenant's colour (`tenant configure --ui-colour #0b6e4f`) is the buttons' accent.
  const background = await page.$eval("#method-add-passkey", (button) => getComputedStyle(button).backgroundColor);
  assert.equal(background, "rgb(11, 110, 79)");
  await page.close();
});

test("push with number matching, redirect mode: the phone picks the number shown; back at redirectUrl (not the one tampered into the page URL) with a token → CHALLENGE_SUCCEEDED", async () => {
  const userId = newUser("push");
  const device = new Device(env.server);
  await device.enroll(userId, "push");
  const tracked = await env.server.backend.track({
    userId,
    action: "signIn",
    attributes: { redirectUrl: `${env.allowed.origin}/?back=push` },
  });
  assert.equal(tracked.state, "CHALLENGE_REQUIRED");
  const page = await env.open(env.allowed);
  // An attacker's redirectUrl in the page's own URL is ignored.
  const tampered = `${tracked.url}&redirectUrl=${encodeURIComponent("https://evil.example/")}`;
  await launchRedirect(page, tampered);
  const ui = await uiFrame(page);
  await visible(ui, "#method-push");
  await screenshot(ui, "methods");
  await ui.click("#method-push");
  await visible(ui, "#push-number");
  const shown = (await text(ui, "#push-code")).trim();
  assert.match(shown, /^\d+$/);
  await screenshot(ui, "push");
  const pending = await waitFor(async () => (await device.pendingPush()).challengeId && (await device.pendingPush()), { what: "the push" });
  assert.equal(pending.verificationCodeRequired, true);
  await device.answer(pending.challengeId, true, shown);
  await page.waitForFunction((origin) => window.location.href.startsWith(`${origin}/?back=push`), {}, env.allowed.origin);
  const back = new URL(page.url());
  assert.equal(back.origin, env.allowed.origin);
  await assertSucceeded(back.searchParams.get("token"), userId);
  await page.close();
});

test("push declined on the phone: a clear message and a retry", async () => {
  const userId = newUser("reject");
  const device = new Device(env.server);
  await device.enroll(userId, "push");
  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  const page = await env.browser.newPage();
  await page.goto(tracked.url, { waitUntil: "load" });
  await answerPush(page, device, false);
  await visible(page, "#screen-error");
  assert.match(await text(page, "#error-message"), /declined/);
  await visible(page, "#retry");
  await screenshot(page, "declined");
  const validated = await env.server.backend.validateChallenge({ token: tracked.token });
  assert.notEqual(validated.state, "CHALLENGE_SUCCEEDED");
  // Retry offers the methods again.
  await page.click("#retry");
  await visible(page, "#method-push");
  await page.close();
});

test("QR code, popup mode: the user's own phone claims and approves it; the SDK's launch resolves with the token → CHALLENGE_SUCCEEDED", async () => {
  const userId = newUser("qr");
  const device = new Device(env.server);
  await device.enroll(userId, "qr-code");
  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  const page = await env.open(env.allowed);
  await launchPopup(page, tracked.url);
  const ui = await uiFrame(page);
  await visible(ui, "#method-qr");
  // The token left the frame's address at load; only the SDK's mode stays.
  assert.equal(new URL(ui.url()).search, "?mode=popup");
  await ui.click("#method-qr");
  await ui.waitForFunction(() => document.getElementById("qr-image").complete && document.getElementById("qr-image").naturalWidth > 0);
  const src = await ui.$eval("#qr-image", (image) => image.src);
  const challengeId = new URL(src).searchParams.get("text");
  await screenshot(ui, "qr-code");
  // Another user's phone may not claim this user's code.
  const stranger = new Device(env.server);
  await stranger.enroll(newUser("stranger"), "qr-code");
  await assert.rejects(stranger.claim(challengeId), /403|user/i);
  await device.claim(challengeId);
  await device.answer(challengeId, true);
  const launched = await waitFor(() => page.evaluate(() => window.launched), { what: "launch to resolve" });
  await assertSucceeded(launched.token, userId);
  await page.close();
});

test("push, popup mode: the dialog closes with the token → CHALLENGE_SUCCEEDED", async () => {
  const userId = newUser("popup-push");
  const device = new Device(env.server);
  await device.enroll(userId, "push");
  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  const page = await env.open(env.allowed);
  await launchPopup(page, tracked.url);
  const ui = await uiFrame(page);
  await answerPush(ui, device, true);
  const launched = await waitFor(() => page.evaluate(() => window.launched), { what: "launch to resolve" });
  await assertSucceeded(launched.token, userId);
  await page.close();
});

test("first passkey, redirect mode: one prompt creates it and completes the action (the registration's accessToken) → CHALLENGE_SUCCEEDED; a later sign-in uses it", async () => {
  const userId = newUser("passkey");
  const enrolment = await env.server.backend.track({
    userId,
    action: "signIn",
    attributes: { redirectUrl: `${env.allowed.origin}/?back=enrol` },
  });
  // No authenticator yet: the rules allow, and the page offers to create a passkey.
  assert.equal(enrolment.state, "ALLOW");
  const page = await env.open(env.allowed);
  const authenticator = await addVirtualAuthenticator(page);
  await launchRedirect(page, enrolment.url);
  const ui = await uiFrame(page);
  await visible(ui, "#method-add-passkey");
  await screenshot(ui, "enrol");
  await ui.click("#method-add-passkey");
  await page.waitForFunction((origin) => window.location.href.startsWith(`${origin}/?back=enrol`), {}, env.allowed.origin);
  await assertSucceeded(new URL(page.url()).searchParams.get("token"), userId, "PASSKEY");
  assert.equal((await authenticator.credentials()).length, 1);
  // One prompt: the passkey was created and never used to sign in (no second prompt).
  const [created] = await env.server.backend.getAuthenticators({ userId });
  assert.equal(created.verificationMethod, "PASSKEY");
  assert.equal(created.lastVerifiedAt, undefined, JSON.stringify(created));

  const signIn = await env.server.backend.track({
    userId,
    action: "signIn",
    attributes: { redirectUrl: `${env.allowed.origin}/?back=passkey` },
  });
  assert.equal(signIn.state, "CHALLENGE_REQUIRED");
  await launchRedirect(page, signIn.url);
  const again = await uiFrame(page);
  await visible(again, "#method-passkey");
  await again.click("#method-passkey");
  await page.waitForFunction((origin) => window.location.href.startsWith(`${origin}/?back=passkey`), {}, env.allowed.origin);
  await assertSucceeded(new URL(page.url()).searchParams.get("token"), userId, "PASSKEY");
  await page.close();
});

test("a BLOCK action: the page says so, offers nothing, and the action never succeeds", async () => {
  const response = await fetch(`${env.server.baseUrl}/action-configs/wire`, {
    method: "PUT",
    headers: {
      Authorization: `Basic ${Buffer.from(`${env.server.secretKey}:`).toString("base64")}`,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ defaultOutcome: "BLOCK" }),
  });
  assert.equal(response.status, 200, await response.text());
  const userId = newUser("block");
  const device = new Device(env.server);
  await device.enroll(userId, "push");
  const tracked = await env.server.backend.track({ userId, action: "wire" });
  assert.equal(tracked.state, "BLOCK");
  const page = await env.browser.newPage();
  await page.goto(tracked.url, { waitUntil: "load" });
  await visible(page, "#screen-error");
  assert.match(await text(page, "#error-message"), /blocked/);
  assert.equal(await page.$eval("#retry", (b) => b.hidden), true);
  assert.equal(await page.$eval("#screen-methods", (s) => s.hidden), true);
  await screenshot(page, "blocked");
  // Even the Client API refuses a push for it.
  const push = await fetch(`${env.server.baseUrl}/client/challenge/push`, {
    method: "POST",
    headers: { Authorization: `Bearer ${tracked.token}`, "Content-Type": "application/json" },
    body: "{}",
  });
  assert.equal(push.status >= 400 && push.status < 500, true);
  const validated = await env.server.backend.validateChallenge({ token: tracked.token });
  assert.equal(validated.state, "BLOCK");
  await page.close();
});

test("a link with a bad token: a clear message, nothing else", async () => {
  const page = await env.browser.newPage();
  await page.goto(`${env.server.publicOrigin}/v1/ui?token=not-a-token`, { waitUntil: "load" });
  await visible(page, "#screen-error");
  assert.match(await text(page, "#error-message"), /not valid/);
  await screenshot(page, "invalid-link");
  await page.close();
});

test("window mode: launch opens the page in a window, which posts the token back and closes → CHALLENGE_SUCCEEDED", async () => {
  const userId = newUser("window");
  const device = new Device(env.server);
  await device.enroll(userId, "push");
  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  const page = await env.open(env.allowed);
  await inPage(
    page,
    (client, url) => {
      window.launched = null;
      client.launch(url, { mode: "window" }).then((result) => (window.launched = result));
      return true;
    },
    tracked.url,
  );
  const target = await env.browser.waitForTarget((t) => t.url().startsWith(`${env.server.publicOrigin}/v1/ui`));
  const ui = await target.page();
  await answerPush(ui, device, true);
  const launched = await waitFor(() => page.evaluate(() => window.launched), { what: "launch to resolve" });
  await assertSucceeded(launched.token, userId);
  await page.close();
});

test("window mode from an origin the tenant does not allow: the page posts it nothing, not even the token, though the push succeeds", async () => {
  const userId = newUser("window-disallowed");
  const device = new Device(env.server);
  await device.enroll(userId, "push");
  const tracked = await env.server.backend.track({ userId, action: "signIn" });
  const page = await env.open(env.disallowed);
  await inPage(
    page,
    (client, url) => {
      window.launched = null;
      window.received = [];
      addEventListener("message", (event) => window.received.push(String(event.data)));
      client.launch(url, { mode: "window" }).then((result) => (window.launched = result));
      return true;
    },
    tracked.url,
  );
  const target = await env.browser.waitForTarget((t) => t.url().startsWith(`${env.server.publicOrigin}/v1/ui`));
  const ui = await target.page();
  await answerPush(ui, device, true);
  // The action succeeded (the backend sees it) ...
  await waitFor(async () => (await env.server.backend.validateChallenge({ token: tracked.token })).state === "CHALLENGE_SUCCEEDED", {
    what: "the action to succeed",
  });
  // ... and the page's messages (AUTHSIGNAL_READY at load, long before; the token at the end)
  // went to the allowed origins only: none reached this one.
  const received = await page.evaluate(() => window.received);
  assert.deepEqual(received.filter((m) => m.includes("AUTHSIGNAL")), [], JSON.stringify(received));
  assert.equal(await page.evaluate(() => window.launched), null);
  await page.close();
});

test("popup mode from an origin the tenant does not allow: the browser refuses to frame the page (frame-ancestors)", async () => {
  const tracked = await env.server.backend.track({ userId: newUser("framed"), action: "signIn" });
  const page = await env.open(env.disallowed);
  const refused = page.waitForResponse((response) => response.url().startsWith(`${env.server.publicOrigin}/v1/ui?`));
  await launchPopup(page, tracked.url);
  const response = await refused;
  assert.match(response.headers()["content-security-policy"], new RegExp(`frame-ancestors ${env.allowed.origin}$`));
  // Chromium replaces the refused frame with its error page: the UI never renders there.
  await waitFor(() => page.frames().some((frame) => frame.url().startsWith("chrome-error://")), { what: "the refused frame" });
  assert.equal(page.frames().some((frame) => frame.url().startsWith(`${env.server.publicOrigin}/v1/ui`)), false);
  await page.close();
});

test("redirectToSettings after a push, redirect mode: the settings screen lists the methods → add a passkey → remove a device → Done → back at redirectUrl → CHALLENGE_SUCCEEDED; getAuthenticators shows the change", async () => {
  const userId = newUser("settings");
  const phone = new Device(env.server);
  await phone.enroll(userId, "push", { deviceName: "Pixel 9", devicePlatform: "android" });
  const tablet = new Device(env.server);
  const old = await tablet.enroll(userId, "qr-code", { deviceName: "Old <i>tablet</i>", devicePlatform: "ios" });
  const tracked = await env.server.backend.track({
    userId,
    action: "manageDevices",
    attributes: { redirectToSettings: true, redirectUrl: `${env.allowed.origin}/?back=settings` },
  });
  assert.equal(tracked.state, "CHALLENGE_REQUIRED");
  const page = await env.open(env.allowed);
  const authenticator = await addVirtualAuthenticator(page);
  await launchRedirect(page, tracked.url);
  const ui = await uiFrame(page);
  await answerPush(ui, phone, true);

  // The settings screen, not the redirect: both devices, their names as text.
  await visible(ui, "#screen-settings");
  await ui.waitForFunction(() => document.querySelectorAll("#authenticators li").length === 2);
  const names = await ui.$$eval("#authenticators .name", (items) => items.map((item) => item.textContent).sort());
  assert.deepEqual(names, ["Old <i>tablet</i>", "Pixel 9"]);
  assert.equal(await ui.$("#authenticators i"), null, "a device name is text, never markup");
  assert.match(await text(ui, `li[data-id="${old.userAuthenticatorId}"] .detail`), /iOS · added /);
  assert.equal(new URL(page.url()).searchParams.get("back"), null, "still on the UI");

  // Add a passkey (the virtual authenticator answers the browser's prompt).
  await ui.click("#settings-add-passkey");
  await ui.waitForFunction(() => document.querySelectorAll("#authenticators li").length === 3);
  assert.match(await text(ui, "#status"), /Passkey added/);
  assert.equal((await authenticator.credentials()).length, 1);
  await visible(ui, "#settings-done");
  assert.equal(await ui.$eval("#settings-add-passkey", (button) => button.hidden), true, "one passkey per token");
  await screenshot(ui, "settings");

  // Remove the old tablet: its row goes, the server no longer has it.
  await ui.click(`li[data-id="${old.userAuthenticatorId}"] button.remove`);
  await ui.waitForFunction(() => document.querySelectorAll("#authenticators li").length === 2);
  assert.match(await text(ui, "#status"), /Removed Old <i>tablet<\/i>/);

  // Done: back at the app with a token the backend validates.
  await ui.click("#settings-done");
  await page.waitForFunction((origin) => window.location.href.startsWith(`${origin}/?back=settings`), {}, env.allowed.origin);
  await assertSucceeded(new URL(page.url()).searchParams.get("token"), userId, "PUSH");
  const authenticators = await env.server.backend.getAuthenticators({ userId });
  assert.deepEqual(authenticators.map((a) => a.verificationMethod).sort(), ["PASSKEY", "PUSH"]);
  assert.equal(authenticators.some((a) => a.userAuthenticatorId === old.userAuthenticatorId), false);
  await page.close();
});

test("redirectToSettings for an action the rules allow: the settings screen at once, without removal", async () => {
  const userId = newUser("settings-allow");
  const tracked = await env.server.backend.track({ userId, action: "manageDevices", attributes: { redirectToSettings: true } });
  assert.equal(tracked.state, "ALLOW");
  const page = await env.browser.newPage();
  await page.goto(tracked.url, { waitUntil: "load" });
  await visible(page, "#screen-settings");
  await visible(page, "#authenticators-empty");
  await visible(page, "#settings-add-passkey");
  assert.equal(await page.$("button.remove"), null);
  await page.click("#settings-done");
  await visible(page, "#screen-done");
  await page.close();
});

test("redirectToSettings after a passkey sign-in, redirect mode: remove the push device; the passkey used stays → CHALLENGE_SUCCEEDED / PASSKEY", async () => {
  const userId = newUser("settings-passkey");
  const page = await env.open(env.allowed);
  await addVirtualAuthenticator(page);
  // A first passkey through the page (the rules allow a user with nothing enrolled).
  const enrolment = await env.server.backend.track({
    userId,
    action: "signIn",
    attributes: { redirectUrl: `${env.allowed.origin}/?back=enrolled` },
  });
  await launchRedirect(page, enrolment.url);
  const first = await uiFrame(page);
  await visible(first, "#method-add-passkey");
  await first.click("#method-add-passkey");
  await page.waitForFunction((origin) => window.location.href.startsWith(`${origin}/?back=enrolled`), {}, env.allowed.origin);
  const phone = new Device(env.server);
  const pushDevice = await phone.enroll(userId, "push", { deviceName: "Work phone" });

  const tracked = await env.server.backend.track({
    userId,
    action: "manageDevices",
    attributes: { redirectToSettings: true, redirectUrl: `${env.allowed.origin}/?back=settings-passkey` },
  });
  assert.equal(tracked.state, "CHALLENGE_REQUIRED");
  await launchRedirect(page, tracked.url);
  const ui = await uiFrame(page);
  await visible(ui, "#method-passkey");
  await ui.click("#method-passkey");
  await visible(ui, "#screen-settings");
  await ui.waitForFunction(() => document.querySelectorAll("#authenticators li").length === 2);
  await ui.click(`li[data-id="${pushDevice.userAuthenticatorId}"] button.remove`);
  await ui.waitForFunction(() => document.querySelectorAll("#authenticators li").length === 1);
  assert.deepEqual(await ui.$$eval("#authenticators .name", (items) => items.map((item) => item.textContent)), ["Passkey"]);
  await ui.click("#settings-done");
  await page.waitForFunction((origin) => window.location.href.startsWith(`${origin}/?back=settings-passkey`), {}, env.allowed.origin);
  await assertSucceeded(new URL(page.url()).searchParams.get("token"), userId, "PASSKEY");
  const authenticators = await env.server.backend.getAuthenticators({ userId });
  assert.deepEqual(authenticators.map((a) => a.verificationMethod), ["PASSKEY"]);
  await page.close();
});
