// Plan mode, a turn's diff and undo in keel's browser UI, in a real chromium. Run by
// crates/keel-cli/tests/serve.rs against a `keel serve` whose replay model answers:
//   1. read notes.txt   2. a numbered plan   (a planning turn: Plan first ticked)
//   3. edit notes.txt, beta → gamma   4. "Done."   (the approved plan)
//
// usage: node diff_undo.mjs LOGIN_URL SCREENSHOT_DIR REPO_DIR
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { launch, page as newPage } from "./launch.mjs";

const [loginUrl, outDir, repo] = process.argv.slice(2);
if (!loginUrl || !outDir || !repo) {
  console.error("usage: node diff_undo.mjs LOGIN_URL SCREENSHOT_DIR REPO_DIR");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const notes = () => readFileSync(join(repo, "notes.txt"), "utf8");
const GREEN = "rgb(34, 197, 94)";

const browser = await launch();
const problems = [];
try {
  const page = await newPage(browser, problems, { width: 1280, height: 1200 });
  await page.goto(loginUrl);

  // A planning turn: it reads, and ends with a plan to approve; nothing changes.
  await page.locator("#plan-mode").check();
  await page.locator("#message").fill("replace beta");
  await page.locator("#message").press("Enter");
  const plan = page.locator(".event.plan");
  await plan.waitFor();
  assert.match(await plan.textContent(), /Replace beta with gamma in notes\.txt\./);
  assert.equal(await plan.locator("li").count(), 2);
  assert.equal(notes(), "alpha\nbeta\n", "planning changes nothing");

  // Approve: the plan runs as the next turn and its files show with their counts.
  await page.locator("#plan-mode").uncheck();
  await plan.locator("button.approve-plan").click();
  assert.match(await plan.locator(".label").textContent(), /plan · approved/);
  const checkpoint = page.locator(".event.checkpoint");
  await checkpoint.waitFor();
  assert.match(await checkpoint.textContent(), /notes\.txt \+1 −1/);
  await page.locator(".event.done").nth(1).waitFor();
  assert.equal(notes(), "alpha\ngamma\n");

  // The turn's diff, coloured.
  await checkpoint.locator("button.show-diff").click();
  const diff = checkpoint.locator("pre.diff");
  await diff.waitFor();
  assert.match(await diff.textContent(), /-beta\n\+gamma\n/);
  const added = diff.locator("span.add").first();
  assert.equal(await added.evaluate((el) => getComputedStyle(el).color), GREEN);

  // Undo puts the file back; redo brings the change again.
  await checkpoint.locator("button.undo").click();
  await page.locator(".event.restore.undo").waitFor();
  assert.equal(notes(), "alpha\nbeta\n");
  await page.screenshot({ path: join(outDir, "keel-serve-diff-undo.png"), fullPage: true });
  await checkpoint.locator("button.redo").click();
  await page.locator(".event.restore.redo").waitFor();
  assert.equal(notes(), "alpha\ngamma\n");

  assert.deepEqual(problems, [], "no script errors and no blocked resources");
  console.log(`ok: plan approved, diff shown, undone and redone; screenshot in ${outDir}`);
} finally {
  await browser.close();
}
