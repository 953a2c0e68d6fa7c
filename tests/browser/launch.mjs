// Debian's chromium, headless, as every UI test starts it (KEEL_CHROMIUM overrides the
// path), and a page that collects script errors and blocked resources.
import { chromium } from "playwright-core";

export async function launch() {
  return chromium.launch({
    executablePath: process.env.KEEL_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

// A page whose errors land in `problems`.
export async function page(browser, problems, viewport) {
  const page = await browser.newPage({ viewport });
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  return page;
}
