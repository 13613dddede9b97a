// The web page in headless Chromium (Debian's, driven by playwright-core):
// sign in, create and start a devbox, see its state change without a
// reload, type `echo hi` in the terminal and see `hi`, stop it, delete it.
// Screenshots go to $SHOTS. Run by the Rust e2e test `web`, which starts
// the server and passes DEVBOX_URL and DEVBOX_TOKEN.
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.env.DEVBOX_URL;
const token = process.env.DEVBOX_TOKEN;
const shots = process.env.SHOTS;
const image = process.env.DEVBOX_IMAGE ?? "base:1";
const timeout = 60_000;

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "devbox-ui-")), {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  viewport: { width: 1280, height: 800 },
});
const page = context.pages()[0] ?? await context.newPage();
page.setDefaultTimeout(timeout);
const step = (s) => console.log(`step: ${s}`);
try {
  step("sign in");
  await page.goto(`${url}/`);
  await page.fill("#token", token);
  await page.click("#signin");
  await page.waitForSelector("#create");

  step("create");
  await page.fill("#new-name", "webui");
  await page.selectOption("#new-image", image);
  await page.click("#create");
  const row = page.locator('tr[data-devbox="webui"]');
  await row.locator('[data-state="stopped"]').waitFor();

  step("start, and see it run without a reload");
  const navigations = [];
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });
  await row.locator('button[data-op="start"]').click();
  await row.locator('[data-state="running"]').waitFor();
  if (navigations.some((u) => !u.includes("#"))) throw new Error(`the page reloaded: ${navigations}`);
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });

  step("terminal");
  await page.click('a[href="#/devbox/webui"]');
  await page.click("#open-terminal");
  await page.waitForSelector("#terminal .xterm");
  await page.locator("#terminal .xterm").click();
  // The prompt first, so the keys go to a shell that reads them.
  // Locators, not page functions: the page's CSP allows no eval.
  await page.locator("#terminal .xterm-rows > div", { hasText: "#" }).first().waitFor();
  await page.keyboard.type("echo hi\n");
  await page.locator("#terminal .xterm-rows > div", { hasText: /^\s*hi\s*$/ }).waitFor();
  await page.screenshot({ path: `${shots}/terminal.png` });

  step("stop and delete");
  await page.goto(`${url}/ui/#/`);
  await row.locator('[data-state="running"]').waitFor();
  await row.locator('button[data-op="stop"]').click();
  await row.locator('[data-state="stopped"]').waitFor();
  page.on("dialog", (d) => d.accept());
  await row.locator('button[data-op="delete"]').click();
  await row.waitFor({ state: "detached" });
  await page.screenshot({ path: `${shots}/deleted.png`, fullPage: true });
  console.log("ui test passed");
} catch (e) {
  await page.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
  console.error(e);
  process.exitCode = 1;
} finally {
  await context.close();
}
