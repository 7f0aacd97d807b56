// The real-browser harness: the trusted-device server, a tenant with allowed origins, a static
// page on another origin that loads the unmodified @authsignal/browser bundle, headless Debian
// Chromium driven by puppeteer-core, a device emulator and the backend (@authsignal/node).
// See README.md in this directory. Nothing here downloads a browser.
//
// Environment:
//   TD_BIN           the trusted-device binary (default: ../../target/debug/trusted-device)
//   CHROMIUM_PATH    the browser (default: /usr/bin/chromium, Debian's `chromium` package)

import { spawn, execFileSync } from "node:child_process";
import { generateKeyPairSync, sign as nodeSign, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import puppeteer from "puppeteer-core";
import { Authsignal as ServerSdk } from "@authsignal/node";

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.TD_BIN ?? path.resolve(here, "../../target/debug/trusted-device");
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const BUNDLE = path.join(here, "node_modules/@authsignal/browser/dist/index.min.js");

/**
 * The QR-code transports the browser tests run: `websocket` is the browser SDK's default
 * (`polling: false`, spec 3.8), `polling` the REST path (`polling: true`).
 */
export const QR_TRANSPORTS = ["websocket", "polling"];

/** A free TCP port on the loopback interface. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------- the server

/**
 * Starts `trusted-device serve` on the embedded store in a fresh directory, with one tenant
 * whose allowed origins are `allowedOrigins` (set with `tenant configure --allowed-origin`, as an
 * operator does). Returns {baseUrl, origin, tenantId, secretKey, backend, log(), stop()}.
 */
export async function startServer({ allowedOrigins = [], passkeyOrigins = [], ui = null } = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), "td-browser-"));
  // The port first: with `ui`, the pre-built UI's public URL names it (issue #16). The page is
  // served at http://localhost:<port> (a secure context and RP id localhost, for passkeys).
  const port = await freePort();
  const publicOrigin = `http://localhost:${port}`;
  if (ui) passkeyOrigins = [...passkeyOrigins, publicOrigin];
  const tenantId = `browser-${randomUUID().slice(0, 8)}`;
  const store = ["--data-dir", dataDir];
  const created = execFileSync(BIN, ["tenant", "create", "--tenant-id", tenantId, ...store], { encoding: "utf8" });
  const secretKey = created.match(/^secret key: (\S+)$/m)?.[1];
  if (!secretKey) throw new Error(`tenant create printed no secret: ${created}`);
  if (allowedOrigins.length > 0) {
    const args = ["tenant", "configure", "--tenant-id", tenantId, ...store];
    for (const origin of allowedOrigins) args.push("--allowed-origin", origin);
    execFileSync(BIN, args, { encoding: "utf8" });
  }
  if (passkeyOrigins.length > 0) {
    // The tenant's WebAuthn relying party: RP id localhost (an RP id cannot be an IP address).
    const args = ["tenant", "configure", "--tenant-id", tenantId, ...store, "--passkey-rp-id", "localhost"];
    for (const origin of passkeyOrigins) args.push("--passkey-origin", origin);
    execFileSync(BIN, args, { encoding: "utf8" });
  }
  if (ui?.name || ui?.colour) {
    const args = ["tenant", "configure", "--tenant-id", tenantId, ...store];
    if (ui.name) args.push("--ui-name", ui.name);
    if (ui.colour) args.push("--ui-colour", ui.colour);
    execFileSync(BIN, args, { encoding: "utf8" });
  }
  let output = "";
  const serveArgs = ["serve", "--addr", `127.0.0.1:${port}`, "--tenant-id", tenantId, ...store];
  if (ui) serveArgs.push("--public-url", `${publicOrigin}/v1`);
  const child = spawn(BIN, serveArgs, {
    // The secret goes through the environment, not the command line (visible in ps).
    env: { ...process.env, TRUSTED_DEVICE_SECRET_KEY: secretKey, RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const deadline = Date.now() + 15_000;
  while (!output.includes("listening")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`the server did not start:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const origin = `http://127.0.0.1:${port}`;
  const baseUrl = `${origin}/v1`;
  return {
    baseUrl,
    origin,
    /** With `ui`: the origin of the pre-built UI's pages (track's `url`). */
    publicOrigin,
    tenantId,
    secretKey,
    /** The backend: the official Node SDK with the tenant's secret key. */
    backend: new ServerSdk({ apiSecretKey: secretKey, apiUrl: baseUrl }),
    /** Everything the server logged so far (one line per request, warnings). */
    log: () => output,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.on("exit", resolve)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------------------------ the page

/**
 * Serves the test page and the unmodified browser SDK bundle at http://localhost:<port>: an
 * origin other than the API's (http://127.0.0.1:<port>). Returns {origin, stop()}.
 */
export async function startPageServer() {
  const bundle = readFileSync(BUNDLE);
  const server = createServer((request, response) => {
    if (request.url === "/authsignal.js") {
      response.writeHead(200, { "Content-Type": "text/javascript" }).end(bundle);
    } else if (request.url === "/" || request.url.startsWith("/?")) {
      response
        .writeHead(200, { "Content-Type": "text/html; charset=utf-8" })
        .end('<!doctype html><meta charset="utf-8"><title>trusted-device browser test</title><link rel="icon" href="data:,"><script src="/authsignal.js"></script><p>test page</p>');
    } else {
      response.writeHead(404).end();
    }
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    origin: `http://localhost:${port}`,
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Launches headless Chromium (Debian's), `--no-sandbox` when running as root. */
export async function launchBrowser() {
  const args = ["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"];
  if (process.getuid?.() === 0) args.push("--no-sandbox");
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true, args });
}

/**
 * Opens the test page of `pageOrigin` and creates `window.client`, the browser SDK's
 * `new Authsignal({tenantId, baseUrl})`. Console errors and failed requests are collected on
 * `page.problems` (a CORS refusal shows there).
 */
export async function openPage(browser, { pageOrigin, baseUrl, tenantId }) {
  const page = await browser.newPage();
  page.problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") page.problems.push(message.text());
  });
  page.on("requestfailed", (request) => page.problems.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`));
  await page.goto(`${pageOrigin}/`, { waitUntil: "load" });
  await page.evaluate(
    ({ tenantId, baseUrl }) => {
      window.client = new window.authsignal.Authsignal({ tenantId, baseUrl });
    },
    { tenantId, baseUrl },
  );
  return page;
}

/**
 * Runs `fn(client, arg)` in the page with the SDK's client and returns its result. A thrown
 * error (e.g. `TypeError: Failed to fetch` when CORS blocks) comes back as `{thrown: message}`.
 */
export async function inPage(page, fn, arg) {
  return page.evaluate(
    async (source, arg) => {
      const run = new Function(`return (${source});`)();
      try {
        return await run(window.client, arg);
      } catch (error) {
        return { thrown: String(error) };
      }
    },
    fn.toString(),
    arg ?? null,
  );
}

/**
 * Starts a QR-code challenge in the page with the browser SDK and records every state change on
 * `window.qrStates` ([{state, accessToken}]). `transport` is one of QR_TRANSPORTS.
 */
export async function qrChallengeInPage(page, { action, transport = "polling", pollInterval = 300 }) {
  return inPage(
    page,
    async (client, { action, polling, pollInterval }) => {
      window.qrStates = [];
      return client.qrCode.challenge({
        action,
        polling,
        pollInterval,
        onStateChange: (state, accessToken) => window.qrStates.push({ state, accessToken }),
      });
    },
    { action, polling: transport === "polling", pollInterval },
  );
}

/** Waits until `predicate()` (run in Node) is truthy; fails after `timeoutMs`. */
export async function waitFor(predicate, { timeoutMs = 10_000, what = "the condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// ---------------------------------------------------------------------------- WebAuthn (passkeys)

/**
 * Gives the page a DevTools virtual WebAuthn authenticator: a platform passkey authenticator
 * (CTAP2, internal transport, resident keys, user verification that always succeeds, presence
 * simulated). Returns {cdp, authenticatorId, credentials(), remove()}. For the passkey tests:
 * `navigator.credentials.create/get` (and the SDK's `client.passkey.signUp/signIn`) on a page
 * at http://localhost:<port> (RP id `localhost`) then succeed without a person.
 */
export async function addVirtualAuthenticator(page, options = {}) {
  const cdp = await page.createCDPSession();
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      ...options,
    },
  });
  return {
    cdp,
    authenticatorId,
    credentials: async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials,
    remove: () => cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId }),
  };
}

// ------------------------------------------------------------------------- the device emulator

/**
 * A phone as the mobile SDKs are on the wire: a P-256 key (SPKI DER, standard base64), DER
 * ECDSA-SHA256 signatures over UTF-8 messages (spec 4.1, 4.2, 4.4), tenant Basic as Android
 * sends it. It talks to the API from Node, not from the page.
 */
export class Device {
  constructor(server) {
    this.server = server;
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    this.publicKey = publicKey.export({ type: "spki", format: "der" }).toString("base64");
    this.privateKey = privateKey;
    this.auth = `Basic ${Buffer.from(`${server.tenantId}:`).toString("base64")}`;
  }

  sign(message) {
    return nodeSign("sha256", Buffer.from(message, "utf8"), this.privateKey).toString("base64");
  }

  /** `?publicKey=` as Android builds it (spec 4.3). */
  get query() {
    return encodeURIComponent(Buffer.from(this.publicKey, "utf8").toString("base64"));
  }

  async call(method, path, { auth = this.auth, body, headers = {} } = {}) {
    const response = await fetch(`${this.server.baseUrl}/client${path}`, {
      method,
      headers: { Authorization: auth, "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (response.status !== 200) {
      throw new Error(`${method} ${path} → ${response.status}: ${JSON.stringify(json)}`);
    }
    return json;
  }

  /** Enrolls this key for `userId` in `namespace` (`push`, `qr-code`) through the backend's track. */
  async enroll(userId, namespace, { deviceName = "browser-test phone", devicePlatform = "android" } = {}) {
    const tracked = await this.server.backend.track({ userId, action: "addAuthenticator", attributes: { scope: "add:authenticators" } });
    this.namespace = namespace;
    return this.call("POST", `/user-authenticators/${namespace}`, {
      auth: `Bearer ${tracked.token}`,
      body: { publicKey: this.publicKey, deviceName, devicePlatform },
    });
  }

  /** The pending push challenge, read with a signed nonce (spec 3.4.5); `{}` when none. */
  async pendingPush() {
    const nonce = await this.call("POST", `/user-authenticators/push/challenge/sign?publicKey=${this.query}`);
    return this.call("GET", `/user-authenticators/push/challenge?publicKey=${this.query}`, {
      headers: { "X-Authsignal-Signature": this.sign(nonce.message) },
    });
  }

  /** Approves (or rejects) a push or claimed QR challenge; `verificationCode` for number matching. */
  async answer(challengeId, approved = true, verificationCode = undefined) {
    return this.call("POST", `/user-authenticators/${this.namespace}/challenge`, {
      body: { challengeId, publicKey: this.publicKey, signature: this.sign(challengeId), approved, verificationCode },
    });
  }

  /** Claims a QR-code challenge (what scanning it does). */
  async claim(challengeId) {
    return this.call("POST", "/user-authenticators/qr-code/challenge/claim", {
      body: { challengeId, publicKey: this.publicKey, signature: this.sign(challengeId) },
    });
  }
}

/**
 * Everything a browser test needs, started together: the server with a tenant allowing the
 * `allowed` page origin, a second page server whose origin the tenant does not allow, and
 * Chromium. `close()` stops them all.
 */
export async function startAll({ ui = null } = {}) {
  const allowed = await startPageServer();
  const disallowed = await startPageServer();
  const server = await startServer({ allowedOrigins: [allowed.origin], passkeyOrigins: [allowed.origin], ui });
  const browser = await launchBrowser();
  return {
    server,
    allowed,
    disallowed,
    browser,
    open: (pageServer) => openPage(browser, { pageOrigin: pageServer.origin, baseUrl: server.baseUrl, tenantId: server.tenantId }),
    async close() {
      await browser.close();
      await server.stop();
      await allowed.stop();
      await disallowed.stop();
    },
  };
}
