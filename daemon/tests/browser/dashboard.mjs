// The dashboard in a real headless Chromium (Debian's, driven by playwright-core),
// against a daemon the Rust test started (daemon/tests/e2e/dashboard.rs). Exits
// non-zero on the first failed expectation; writes a screenshot of every page to OUT.
//
// Environment: BASE (the daemon's URL), OPERATOR and VIEWER (tokens), IDP (the OpenID
// provider's URL, whose account `ann` is an operator), OUT (screenshot folder),
// CHROMIUM (the browser; default /usr/bin/chromium).
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.NODE_MODULES_DIR + "/");
const { chromium } = require("playwright-core");

const BASE = process.env.BASE;
const OUT = process.env.OUT;
mkdirSync(OUT, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});

/// A page that records every console error and uncaught exception.
async function open(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (m) => { if (m.type() === "error") page.errors.push(`${current}: ${m.text()} (${m.location().url})`); });
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.setDefaultTimeout(30_000);
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: `${OUT}/${name}.png`, fullPage: true });
}

async function signIn(page, token) {
  const started = Date.now();
  await page.goto(BASE + "/");
  await page.locator("form.signin").waitFor();
  assert.ok(Date.now() - started < 5000, "the page loads at once");
  await page.fill("#token", token);
  await page.click("form.signin button[type=submit]");
  await page.locator("#principal").waitFor({ state: "visible" });
}

let current = "start";
function step(name) {
  current = name;
  console.log(`--- ${name}`);
}

// ---- an operator ---------------------------------------------------------------------

step("sign in");
const op = await open();
await op.goto(BASE + "/");
await op.locator("form.signin").waitFor();
await shot(op, "signin");
await signIn(op, process.env.OPERATOR);
assert.match(await op.textContent("#principal"), /o \(operator\)/);

step("overview lists the connectors");
await op.locator('tr[data-connector="docs"]').waitFor();
for (const id of ["a", "b", "docs"]) {
  assert.equal(await op.locator(`tr[data-connector="${id}"]`).count(), 1, id);
}
assert.match(await op.textContent("main"), /open conflicts/);
assert.match(await op.textContent('tr[data-connector="docs"]'), /succeeded/);
assert.match(await op.textContent("main"), /vectorizer \w+, queued/);
await shot(op, "overview");

step("a run, watched live to its end");
await op.click('a[href="#/connectors/docs"]');
await op.locator("h1", { hasText: "Connector docs" }).waitFor();
await shot(op, "connector");
const before = await op.locator("table a[href^='#/jobs/']").count();
await op.click("button:has-text('Full run')");
await op.waitForFunction((n) => document.querySelectorAll("table a[href^='#/jobs/']").length > n, before);
const href = await op.locator("table a[href^='#/jobs/']").first().getAttribute("href");
await op.click(`a[href='${href}']`);
await op.locator("#job-status").waitFor();
assert.match(await op.textContent("#job-status"), /^(queued|running)$/, "the job page opens while the job runs");
// progress shows while it runs, then the end arrives by the event stream (no reload)
const navigations = [];
op.on("framenavigated", (f) => { if (f === op.mainFrame()) navigations.push(f.url()); });
await op.waitForFunction(() => document.querySelector("#job-status")?.textContent === "succeeded", null, { timeout: 90_000 });
assert.deepEqual(navigations.filter((u) => !u.includes("#/jobs/")), [], "no reload");
const bar = op.locator("#job-progress progress");
const [value, max] = [Number(await bar.getAttribute("value")), Number(await bar.getAttribute("max"))];
assert.ok(max >= 20 << 20 && value === max, `the bar is full: ${value} of ${max}`);
assert.match(await op.textContent("#job-progress"), /3010 of 3010 files/);
assert.equal(await op.locator("button:text-is('Cancel')").count(), 0, "nothing to cancel once it ended");
await op.waitForFunction(() => /job (claimed|started)|succeeded|committed|files/i.test(document.querySelector("#job-log")?.textContent || ""));
await shot(op, "job");

step("a conflict resolved");
await op.click('a[href="#/conflicts"]');
const card = op.locator("section[data-conflict]");
await card.first().waitFor();
assert.match(await card.first().textContent(), /path_claim/);
assert.match(await card.first().textContent(), /incoming: b/);
assert.match(await card.first().textContent(), /existing: a/);
await shot(op, "conflicts");
await card.first().locator("button:has-text('keep source')").click();
await op.locator("text=No open conflicts").waitFor();

step("search, and a hit opened");
await op.click('a[href="#/search"]');
await op.fill("#q", "how often to clean the pump filter");
await op.click("button:has-text('Search')");
const hit = op.locator("#hits .hit a").first();
await hit.waitFor().catch(async (e) => {
  throw new Error(`no hit: ${await op.textContent("#hits")}: ${e.message}`);
});
assert.match(await hit.textContent(), /\/docs\/pumps\.md/);
assert.match(await op.textContent("#hits"), /Clean the filter every month/);
const content = await op.request.get(new URL(await hit.getAttribute("href"), BASE).href);
assert.equal(content.status(), 200);
const body = await content.text();
assert.match(body, /Clean the filter every month/, `${content.url()} ${JSON.stringify(content.headers())}`);
await shot(op, "search");

step("items");
await op.click('a[href="#/items"]');
await op.fill("#prefix", "/docs/pu");
await op.click("button:has-text('Browse')");
await op.locator("a.mono", { hasText: "/docs/pumps.md" }).click();
await op.locator("a:has-text('download')").first().waitFor();
await shot(op, "item");

step("no console errors");
assert.deepEqual(op.errors, [], "console errors of the operator's pages");

step("a forged change (no anti-CSRF token) is refused");
const csrf = await op.evaluate(async () => {
  const r = await fetch("/api/v1/connectors/docs/pause", { method: "POST" });
  return [r.status, (await r.json()).error.code];
});
assert.deepEqual(csrf, [403, "CSRF_TOKEN_INVALID"]);

step("sign out");
await op.click("#signout");
await op.locator("form.signin").waitFor();

// ---- a viewer, on a phone-sized screen -------------------------------------------------

step("a viewer sees no mutating buttons");
const viewer = await open({ width: 390, height: 844 });
await signIn(viewer, process.env.VIEWER);
await viewer.locator('tr[data-connector="docs"]').waitFor();
const overflow = await viewer.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
assert.ok(overflow <= 0, `readable on a phone: ${overflow}px wider than the screen`);
await shot(viewer, "overview-phone");
await viewer.goto(BASE + "/#/connectors/docs");
await viewer.locator("h1", { hasText: "Connector docs" }).waitFor();
await viewer.locator("section h2", { hasText: "Recent jobs" }).waitFor();
for (const label of ["Run", "Full run", "Pause", "Resume"]) {
  assert.equal(await viewer.locator(`button:text-is('${label}')`).count(), 0, label);
}
assert.deepEqual(viewer.errors, [], "console errors of the viewer's pages");

step("a viewer's changes are refused, with or without the token");
const forged = await viewer.evaluate(async () => {
  const plain = await fetch("/api/v1/connectors/docs/pause", { method: "POST" });
  const me = await (await fetch("/api/v1/session")).json();
  const withToken = await fetch("/api/v1/connectors/docs/pause", { method: "POST", headers: { "X-CSRF-Token": me.csrf_token } });
  return [plain.status, (await plain.json()).error.code, withToken.status, (await withToken.json()).error.code];
});
assert.deepEqual(forged, [403, "AUTHZ_FORBIDDEN", 403, "AUTHZ_FORBIDDEN"]);
// the browser reports the refusals it was made to provoke; nothing else
assert.ok(viewer.errors.every((e) => e.includes("status of 403") && e.includes("/pause")), viewer.errors.join("\n"));
viewer.errors.length = 0;

step("keyboard: the navigation is reachable with Tab and works with Enter");
await viewer.goto(BASE + "/#/conflicts");
await viewer.locator("h1", { hasText: "Conflicts" }).waitFor();
await viewer.evaluate(() => document.activeElement && document.activeElement.blur());
let reached = false;
for (let i = 0; i < 4 && !reached; i++) {
  await viewer.keyboard.press("Tab");
  reached = (await viewer.evaluate(() => document.activeElement?.textContent)) === "Overview";
}
assert.ok(reached, "Tab reaches the Overview link");
await viewer.keyboard.press("Enter");
await viewer.locator("h1", { hasText: "Overview" }).waitFor();
assert.deepEqual(viewer.errors, [], "console errors of the viewer's pages");

step("sign in with the identity provider, and a failed sign-in says why");
const person = await open();
await person.goto(BASE + "/");
await person.locator("#idp-sign-in").waitFor();
await person.click("#idp-sign-in");
await person.waitForURL((u) => u.href.startsWith(process.env.IDP));
await person.fill("input[name=login]", "ann");
await person.fill("input[name=password]", "any password");
await person.click("button[type=submit]");
await person.locator("button", { hasText: "Continue" }).click();
await person.waitForURL((u) => u.href.startsWith(BASE));
await person.locator("#principal", { hasText: "oidc:ann (operator)" }).waitFor();
await person.locator('tr[data-connector="docs"]').waitFor();
const cookies = await person.context().cookies(BASE);
const session = cookies.find((c) => c.name === "tributary_session");
assert.ok(session && session.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
// an operator signed in through the provider sees the operator's buttons
await person.goto(BASE + "/#/connectors/docs");
await person.locator("button:text-is('Pause')").waitFor();
await shot(person, "signed-in-with-idp");
await person.click("#signout");
await person.locator("#idp-sign-in").waitFor();
// the provider's own pages are not ours: only this origin's errors count
const ours = (errors) => errors.filter((e) => e.includes(BASE));
assert.deepEqual(ours(person.errors), [], "console errors of the dashboard");
// as the daemon's callback sends the browser back after a failed sign-in
await person.goto("about:blank");
await person.goto(BASE + "/#/signin?error=" + encodeURIComponent("the identity provider refused: access_denied"));
await person.locator("p.error", { hasText: "access_denied" }).waitFor();
assert.equal(await person.locator("#nav").isVisible(), false, "no navigation while signed out");
assert.equal(new URL(person.url()).hash, "", "the reason is taken off the address");
await shot(person, "signin-failed");

step("the API reference renders");
const docs = await open();
await docs.goto(BASE + "/api/v1/docs");
await docs.locator("h1", { hasText: "Tributary admin API" }).waitFor();
await docs.locator("text=Queue a job now").first().waitFor();
await docs.screenshot({ path: `${OUT}/api-docs.png` }); // its first screen: the whole reference is very long
assert.deepEqual(docs.errors, [], "console errors of the API reference");

await browser.close();
console.log("dashboard: all checks passed");
