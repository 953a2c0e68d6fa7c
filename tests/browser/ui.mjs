// The browser UI of `keel serve`, in a real browser: Debian's chromium driven by
// playwright-core. Run by crates/keel-cli/tests/serve_browser.rs against a `keel serve`
// whose replay model answers every session with the same script:
//   1. read notes.txt   2. read missing.txt (a tool error)   3. an answer with code
//   4. (the session's second turn) bash `curl …; sleep 30`: it wants the network, so it
//      waits for approval (Allow is clicked), then runs until the Stop button cancels it.
//
// usage: node ui.mjs LOGIN_URL SCREENSHOT_DIR
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launch, page as newPage } from "./launch.mjs";

const [loginUrl, outDir] = process.argv.slice(2);
if (!loginUrl || !outDir) {
  console.error("usage: node ui.mjs LOGIN_URL SCREENSHOT_DIR");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const AMBER = "rgb(245, 158, 11)";
const GREEN = "rgb(34, 197, 94)";
const RED = "rgb(239, 68, 68)";
const BLUE = "rgb(59, 130, 246)";

const browser = await launch();
const problems = [];
try {
  const page = await newPage(browser, problems, { width: 1280, height: 900 });

  // The printed URL logs in (cookie) and lands on `/` without the token.
  await page.goto(loginUrl);
  assert.equal(new URL(page.url()).search, "", "the token left the address bar");
  const badge = page.locator("#session-badge");
  assert.equal(await badge.textContent(), "new session");
  const cookies = await page.context().cookies();
  assert.ok(cookies.some((c) => c.name.startsWith("keel_token_") && c.httpOnly && c.sameSite === "Strict"),
    "an HttpOnly SameSite=Strict login cookie");

  const input = page.locator("#message");
  const transcript = page.locator("#transcript");
  const color = (locator, property) => locator.evaluate((el, p) => getComputedStyle(el)[p], property);

  // Shift+Enter is a new line, not a send.
  await input.click();
  await input.type("what is in");
  await input.press("Shift+Enter");
  await input.type("notes.txt?");
  assert.equal(await input.inputValue(), "what is in\nnotes.txt?");
  assert.equal(await page.locator(".event.user").count(), 0, "nothing sent yet");

  // Enter sends; the turn streams in.
  await input.press("Enter");
  await page.locator(".event.done").first().waitFor();
  assert.equal(await page.locator(".event.user").first().textContent(), "what is in\nnotes.txt?");

  const call = page.locator(".event.tool_call").first();
  assert.match(await call.locator(".label").textContent(), /tool call · read/);
  assert.match(await call.textContent(), /notes\.txt/);
  assert.equal(await color(call, "borderLeftColor"), AMBER, "tool calls are amber");
  assert.equal(await color(call.locator(".label"), "color"), AMBER);

  const result = page.locator(".event.tool_result:not(.failed)").first();
  assert.match(await result.textContent(), /alpha/);
  assert.equal(await color(result, "borderLeftColor"), GREEN, "tool results are green");

  const failed = page.locator(".event.tool_result.failed").first();
  assert.match(await failed.textContent(), /missing\.txt/);
  assert.equal(await color(failed, "borderLeftColor"), RED, "tool errors are red");

  const thinking = page.locator(".event.thinking").first();
  assert.equal(await color(thinking, "color"), BLUE, "thinking is blue");

  const response = page.locator(".event.response").first();
  assert.match(await response.textContent(), /notes\.txt holds two lines/);
  assert.equal(await page.locator(".event.text", { hasText: "holds two lines" }).count(), 0,
    "the streamed answer is replaced by the formatted one, not shown twice");
  const code = response.locator("pre.code code");
  assert.equal(await code.textContent(), "alpha\nbeta");
  assert.match(await color(code, "fontFamily"), /mono/i, "code blocks are monospaced");
  assert.equal(await color(page.locator("body"), "backgroundColor"), "rgb(15, 17, 21)", "dark theme");
  assert.match(await page.locator(".event.done").first().textContent(), /completed/);

  const firstId = await badge.getAttribute("data-session-id");
  assert.match(firstId, /^[0-9a-f-]{36}$/, "the badge holds the session id");
  assert.equal(await badge.textContent(), firstId.slice(0, 8));
  await page.locator(`#sessions button[data-session-id="${firstId}"]`).waitFor();
  await page.setViewportSize({ width: 1280, height: 1500 });
  await page.screenshot({ path: join(outDir, "keel-serve-ui.png") });

  // The session's second turn runs a long command; Stop cancels it.
  await input.fill("now wait");
  await input.press("Enter");
  const stop = page.locator("#stop");
  await page.locator(".event.tool_call", { hasText: "sleep 30" }).waitFor();
  const approval = page.locator(".event.approval");
  await approval.waitFor();
  assert.match(await approval.textContent(), /network/);
  assert.equal(await color(approval, "borderLeftColor"), AMBER, "approval requests are amber");
  await approval.locator("button.approve-allow").click();
  await page.locator(".event.approval-decision.allowed", { hasText: "approved (user)" }).waitFor();
  assert.equal(await approval.locator("button").count(), 0, "the buttons go once answered");
  assert.equal(await stop.isEnabled(), true, "Stop is live while a turn runs");
  await stop.click();
  await page.locator(".event.done.cancelled").waitFor();
  assert.equal(await stop.isEnabled(), false);
  assert.equal(await badge.getAttribute("data-session-id"), firstId, "same session");

  // A new session: the badge changes.
  await page.locator("#new-session").click();
  assert.equal(await badge.textContent(), "new session");
  assert.equal(await transcript.locator(".event").count(), 0, "a clean transcript");
  await input.fill("and in a new session?");
  await page.locator("#send").click();
  await page.locator(".event.done").waitFor();
  const secondId = await badge.getAttribute("data-session-id");
  assert.match(secondId, /^[0-9a-f-]{36}$/);
  assert.notEqual(secondId, firstId, "a new session id");
  assert.equal(await badge.textContent(), secondId.slice(0, 8));
  await page.locator(`#sessions button[data-session-id="${secondId}"]`).waitFor();

  // Reopening the first session replays it from the store, both turns.
  await page.locator(`#sessions button[data-session-id="${firstId}"]`).click();
  await page.locator(".event.done.cancelled").waitFor();
  assert.equal(await badge.getAttribute("data-session-id"), firstId);
  assert.equal(await page.locator(".event.user").count(), 2);
  assert.equal(await page.locator(".event.tool_call").count(), 3);
  await page.screenshot({ path: join(outDir, "keel-serve-ui-replayed.png"), fullPage: true });

  assert.deepEqual(problems, [], "no script errors and no blocked resources");
  console.log(`ok: sessions ${firstId} and ${secondId}; screenshots in ${outDir}`);
} finally {
  await browser.close();
}
