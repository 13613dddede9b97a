// The web page in headless Chromium (Debian's, driven by playwright-core):
// sign in, create and start a devbox, see its state change without a
// reload, type `echo hi` in the terminal and see `hi`, see the change it
// made pending, commit it from the page and see the commit in the history
// (and one made through the API arrive live), roll back to it, fork a
// devbox from it, see the IDE links and the ssh command, stop it, delete it.
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
// What the page's sockets said, for the failure report.
page.on("websocket", (ws) => {
  console.log(`websocket ${ws.url()}`);
  ws.on("framereceived", (f) => { if (typeof f.payload === "string") console.log(`websocket text: ${f.payload}`); });
  ws.on("socketerror", (e) => console.log(`websocket error: ${e}`));
  ws.on("close", () => console.log("websocket closed"));
});
page.on("console", (m) => { if (m.type() === "error") console.log(`page console: ${m.text()}`); });
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
  // A change for the commit to hold.
  await page.keyboard.type("echo v1 > /webui-state && echo written\n");
  await page.locator("#terminal .xterm-rows > div", { hasText: /^\s*written\s*$/ }).waitFor();
  await page.screenshot({ path: `${shots}/terminal.png` });

  step("the detail page: IDE links and the ssh command");
  await page.locator("#terminal").locator("..").locator('a[href="#/devbox/webui"]').click();
  const vscode = await page.locator("#open-vscode").getAttribute("href");
  if (!vscode.startsWith("vscode://vscode-remote/ssh-remote+")) throw new Error(`the VS Code link is ${vscode}`);
  const jetbrains = await page.locator("#open-jetbrains").getAttribute("href");
  if (!jetbrains.startsWith("jetbrains-gateway://connect#type=ssh")) throw new Error(`the JetBrains link is ${jetbrains}`);
  const ssh = await page.locator("#ssh-command").textContent();
  if (!/^ssh -p \d+ webui@\S+$/.test(ssh)) throw new Error(`the ssh command is ${ssh}`);

  step("the pending change, then commit it from the page");
  await page.locator("#diff-summary", { hasText: /[1-9]\d* added/ }).waitFor();
  const reloads = [];
  page.on("load", () => reloads.push(page.url()));
  await page.fill("#commit-message", "from the page");
  await page.click("#commit-now");
  const mine = page.locator("#commits tr", { hasText: "from the page" });
  await mine.waitFor();
  if (!/manual/.test(await mine.textContent())) throw new Error(`the commit row is ${await mine.textContent()}`);
  await page.locator("#commits tr.head", { hasText: "from the page" }).waitFor();
  // What is pending is now counted from that commit.
  const id = await mine.getAttribute("data-commit");
  await page.locator("#diff-summary", { hasText: `since commit ${id}` }).waitFor();

  step("a commit made elsewhere arrives through the event stream");
  const r = await fetch(`${url}/api/v1/devboxes/webui/commits`, {
    method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ message: "from outside" }),
  });
  if (r.status !== 201) throw new Error(`the commit through the API answered ${r.status}: ${await r.text()}`);
  await page.locator("#commits tr.head", { hasText: "from outside" }).waitFor();
  if (await page.locator("#commits tr.head").count() !== 1) throw new Error("more than one commit is marked head");
  if (reloads.length) throw new Error(`the page reloaded: ${reloads}`);
  await page.screenshot({ path: `${shots}/commits.png`, fullPage: true });

  // Confirmations are accepted; the fork's prompt gets its name.
  page.on("dialog", (d) => d.type() === "prompt" ? d.accept("webui-fork") : d.accept());

  step("roll back to the page's commit: the running devbox restarts from it");
  await mine.locator('button[data-op="rollback"]').click();
  await page.locator("#commits tr.head", { hasText: "from the page" }).waitFor();
  await page.locator('.facts [data-state="running"]').waitFor();

  step("fork a new devbox from that commit, then delete the fork");
  await mine.locator('button[data-op="fork"]').click();
  await page.locator("h2", { hasText: "webui-fork" }).waitFor();
  await page.locator('.facts [data-state="stopped"]').waitFor();
  await page.locator('button[data-op="delete"]').click();
  await page.locator('tr[data-devbox="webui-fork"]').waitFor({ state: "detached" });
  await page.locator('tr[data-devbox="webui"]').waitFor();

  step("stop and delete");
  await page.goto(`${url}/ui/#/`);
  await row.locator('[data-state="running"]').waitFor();
  await row.locator('button[data-op="stop"]').click();
  await row.locator('[data-state="stopped"]').waitFor();
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
