// The Devbox web page: sign-in, the dashboard (live through the event
// stream), a devbox's detail (resources, IDE links and SSH, commits, logs, ports,
// terminal) and images (list, import and pull with progress, remove).

import { ApiError, Devbox, Image, Port, call, ndjson, post, setCsrf, csrfToken } from "./api";
import { accessPanel } from "./access";
import { commitsPanel } from "./commits";
import { openTerminal } from "./terminal";
import { Child, act, ago, closeEvents, events, h, say, size, when } from "./ui";

const main = document.getElementById("main")!;
let cleanup: (() => void)[] = [];

function signIn(message = "") {
  location.hash = "#/signin";
  render(message);
}

function signInView(message: string) {
  const token = h("input", { type: "password", id: "token", placeholder: "dbx_…", autocomplete: "current-password", required: true }) as HTMLInputElement;
  const form = h("form", {
    class: "card signin",
    onsubmit: async (e: Event) => {
      e.preventDefault();
      try {
        const r = await fetch("/api/v1/session", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ token: token.value.trim() }), credentials: "same-origin",
        });
        if (!r.ok) {
          const body = await r.json().catch(() => null);
          throw new Error(body?.error?.message ?? r.statusText);
        }
        setCsrf((await r.json()).csrf);
        location.hash = "#/";
      } catch (err) {
        say((err as Error).message, true);
      }
    },
  },
    h("h2", {}, "Sign in"),
    h("p", {}, "Paste an API token. The admin token is in the server's data directory, in the file admin-token."),
    token,
    h("button", { type: "submit", id: "signin" }, "Sign in"));
  main.append(form);
  if (message) say(message, true);
  token.focus();
}

function stateBadge(d: Devbox): HTMLElement {
  const text = d.reason ? `${d.state} (${d.reason})` : d.state;
  return h("span", { class: `state ${d.state}`, "data-state": d.state }, text);
}

function lifecycleButtons(d: Devbox, after: () => void): HTMLElement {
  const run = (op: string) => () => act(`${op} ${d.name}`, async () => { await call("POST", `/devboxes/${d.name}/${op}`); after(); });
  return h("span", { class: "buttons" },
    h("button", { onclick: run("start"), "data-op": "start" }, "Start"),
    h("button", { onclick: run("stop"), "data-op": "stop" }, "Stop"),
    h("button", { onclick: run("restart"), "data-op": "restart" }, "Restart"),
    h("button", {
      class: "danger", "data-op": "delete",
      onclick: () => confirm(`Delete ${d.name} and all its commits?`) && act(`delete ${d.name}`, async () => { await call("DELETE", `/devboxes/${d.name}`); after(); }),
    }, "Delete"));
}

async function dashboard() {
  const table = h("tbody");
  const images = h("select", { id: "new-image", required: true });
  const name = h("input", { id: "new-name", placeholder: "name", required: true, pattern: "[a-z][a-z0-9\\-]*" }) as HTMLInputElement;
  const autoStop = h("input", { id: "new-auto-stop", placeholder: "auto-stop minutes (optional)", type: "number", min: "1" }) as HTMLInputElement;
  const rows = new Map<string, HTMLElement>();
  const load = async () => {
    const list = await call<Devbox[]>("GET", "/devboxes");
    table.replaceChildren();
    rows.clear();
    for (const d of list) {
      const row = h("tr", { "data-devbox": d.name },
        h("td", {}, h("a", { href: `#/devbox/${d.name}` }, d.name)),
        h("td", { class: "state-cell" }, stateBadge(d)),
        h("td", {}, d.image),
        h("td", {}, d.ip || "-"),
        h("td", { title: when(d.last_activity) }, ago(d.last_activity)),
        h("td", {}, lifecycleButtons(d, () => {})));
      rows.set(d.name, row);
      table.append(row);
    }
    if (!list.length) table.append(h("tr", {}, h("td", { colspan: 6 }, "No devboxes yet: create one above.")));
  };
  const form = h("form", {
    class: "card create",
    onsubmit: (e: Event) => {
      e.preventDefault();
      const body: any = { name: name.value, image: (images as HTMLSelectElement).value };
      if (autoStop.value) body.auto_stop = Number(autoStop.value) * 60;
      act(`create ${name.value}`, async () => { await call("POST", "/devboxes", body); name.value = ""; });
    },
  }, h("h2", {}, "New devbox"), name, images, autoStop, h("button", { type: "submit", id: "create" }, "Create"));
  main.append(form, h("div", { class: "card" }, h("h2", {}, "Devboxes"),
    h("table", {}, h("thead", {}, h("tr", {}, ...["Name", "State", "Image", "IP", "Last activity", ""].map((t) => h("th", {}, t)))), table)));
  cleanup.push(events((ev) => {
    if (ev.type === "state") {
      const row = rows.get(ev.devbox);
      if (!row || ev.from === null || ev.from === undefined) return void load();
      const cell = row.querySelector(".state-cell")!;
      cell.replaceChildren(stateBadge({ state: ev.to, reason: ev.reason ?? null } as Devbox));
      if (ev.to === "running") load();
    } else if (ev.type === "deleted" || ev.type === "gap") {
      load();
    } else if (ev.type === "operation_failed") {
      say(`${ev.op} ${ev.devbox ?? ""}: ${ev.message}`, true);
    }
  }));
  const imgs = await call<Image[]>("GET", "/images");
  images.replaceChildren(...imgs.map((i) => h("option", { value: i.reference }, i.reference)));
  await load();
}

async function detail(name: string) {
  const d = await call<Devbox>("GET", `/devboxes/${name}`);
  const info = h("dl", { class: "facts" });
  const fill = (d: Devbox) => info.replaceChildren(
    ...([
      ["State", stateBadge(d)], ["Image", d.image], ["IP", d.ip || "-"],
      ["CPUs", String(d.resources.cpus)], ["Memory", size(d.resources.memory)], ["PIDs", String(d.resources.pids)],
      ["Head", d.head ?? "no commit yet"], ["Auto-stop", d.auto_stop ? `after ${Math.round(d.auto_stop / 60)}m idle` : "off"],
      ["Last activity", d.last_activity ? `${when(d.last_activity)} (${ago(d.last_activity)})` : "none seen yet"], ["Error", d.error ?? ""],
    ] as [string, Child][]).flatMap(([k, v]) => v ? [h("dt", {}, k), h("dd", {}, v)] : []));
  let latest = d;
  fill(d);
  const refresh = async () => fill(latest = await call<Devbox>("GET", `/devboxes/${name}`));
  const history = commitsPanel(name, () => latest);
  const access = accessPanel(d);
  const logs = h("pre", { class: "logs", id: "logs" });
  const ports = h("tbody");
  const loadPorts = async () => {
    const list = await call<Port[]>("GET", `/devboxes/${name}/ports`);
    ports.replaceChildren(...list.map((p) => h("tr", {},
      h("td", {}, String(p.port)), h("td", {}, p.listening ? "listening" : "-"),
      h("td", {}, h("select", {
        onchange: (e: Event) => act(`port ${p.port}`, () => call("PUT", `/devboxes/${name}/ports/${p.port}`, { access: (e.target as HTMLSelectElement).value })),
      }, ...["private", "public"].map((a) => h("option", { value: a, selected: a === p.access }, a)))),
      h("td", {}, h("a", { href: p.url, target: "_blank" }, p.url), " ", h("a", { href: p.path_url, target: "_blank" }, "(by path)")),
      h("td", {}, h("button", {
        onclick: () => act(`share port ${p.port}`, async () => {
          const link = await call<{ url: string }>("POST", `/devboxes/${name}/ports/${p.port}/share`, { expires_in: 3600 });
          prompt("A link that works for an hour without signing in:", link.url);
        }),
      }, "Share 1h")))));
    if (!list.length) ports.append(h("tr", {}, h("td", { colspan: 5 }, "Nothing listens yet.")));
  };
  // Logs follow as they are written, for as long as the page is shown.
  const abort = new AbortController();
  cleanup.push(() => abort.abort());
  fetch(`/api/v1/devboxes/${name}/logs?follow=true&tail=200`, { signal: abort.signal, credentials: "same-origin" })
    .then(async (r) => {
      const reader = r.body!.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        logs.textContent += dec.decode(value, { stream: true });
        logs.scrollTop = logs.scrollHeight;
      }
    }).catch(() => {});
  cleanup.push(events((ev) => {
    if (ev.type === "gap") { refresh(); loadPorts(); history.load(); return; }
    if (ev.devbox !== name) return;
    history.onEvent(ev);
    // A commit or rollback moves the head without a change of state.
    if (ev.type === "operation_finished") refresh();
    if (ev.type === "state") { refresh(); if (ev.to === "running" || ev.to === "stopped") loadPorts(); }
    if (ev.type === "deleted") location.hash = "#/";
  }));
  main.append(
    h("div", { class: "card" }, h("h2", {}, name), info,
      lifecycleButtons(d, refresh), " ",
      h("a", { class: "button", href: `#/devbox/${name}/terminal`, id: "open-terminal" }, "Terminal")),
    access.el,
    history.el,
    h("div", { class: "card" }, h("h2", {}, "Logs"), logs),
    h("div", { class: "card" }, h("h2", {}, "Ports"), h("table", {}, ports)));
  await Promise.all([loadPorts(), history.load(), access.load()]);
}

function terminalView(name: string) {
  const el = h("div", { class: "terminal", id: "terminal" });
  const status = h("p", { class: "muted" }, `A shell in ${name}. `, h("a", { href: `#/devbox/${name}` }, "Back"));
  main.append(h("div", { class: "card wide" }, status, el));
  cleanup.push(openTerminal(el, name, (msg) => status.replaceChildren(`${msg}. `, h("a", { href: `#/devbox/${name}` }, "Back"))));
}

async function imagesView() {
  const table = h("tbody");
  const progress = h("pre", { class: "progress", id: "progress" });
  const load = async () => {
    const list = await call<Image[]>("GET", "/images");
    table.replaceChildren(...list.map((i) => h("tr", {},
      h("td", {}, i.reference), h("td", {}, i.digest.slice(7, 19)), h("td", {}, size(i.size)), h("td", {}, String(i.layers)),
      h("td", {}, when(i.created_at)),
      h("td", {}, h("button", { class: "danger", onclick: () => act(`remove ${i.reference}`, async () => { await call("DELETE", `/images/${encodeURIComponent(i.reference)}`); await load(); }) }, "Remove")))));
  };
  const show = (ev: any) => {
    if (ev.type === "progress") progress.textContent = `${ev.digest.slice(7, 19)}: ${size(ev.current)} of ${size(ev.total)}`;
    else if (ev.type === "resolved") progress.textContent = `resolved ${ev.digest}: ${ev.layers.length} layers`;
    else if (ev.type === "done") progress.textContent = `stored ${ev.image.reference}`;
    else if (ev.type === "error") throw new Error(ev.error.message);
  };
  const ref = h("input", { placeholder: "registry/repository:tag", required: true }) as HTMLInputElement;
  const insecure = h("input", { type: "checkbox" }) as HTMLInputElement;
  const pull = h("form", {
    class: "card",
    onsubmit: (e: Event) => {
      e.preventDefault();
      act(`pull ${ref.value}`, async () => { await ndjson(await post("/images/pull", { reference: ref.value, insecure: insecure.checked }), show); await load(); });
    },
  }, h("h2", {}, "Pull"), ref, h("label", {}, insecure, " plain HTTP"), h("button", { type: "submit" }, "Pull"));
  const file = h("input", { type: "file", required: true }) as HTMLInputElement;
  const as = h("input", { placeholder: "name:tag", required: true }) as HTMLInputElement;
  const imp = h("form", {
    class: "card",
    onsubmit: (e: Event) => {
      e.preventDefault();
      const f = file.files![0];
      act(`import ${as.value}`, () => new Promise<void>((resolve, reject) => {
        // XMLHttpRequest reports upload progress; the answer is the import's own.
        const xhr = new XMLHttpRequest();
        xhr.open("POST", `/api/v1/images/import?name=${encodeURIComponent(as.value)}&source=${encodeURIComponent(f.name)}`);
        xhr.setRequestHeader("X-CSRF-Token", csrfToken());
        xhr.upload.onprogress = (p) => { progress.textContent = `uploading: ${size(p.loaded)} of ${size(p.total)}`; };
        xhr.onload = () => {
          try {
            if (xhr.status >= 400) throw new Error(JSON.parse(xhr.responseText)?.error?.message ?? xhr.statusText);
            for (const line of xhr.responseText.split("\n")) if (line.trim()) show(JSON.parse(line));
            load().then(resolve, reject);
          } catch (err) { reject(err); }
        };
        xhr.onerror = () => reject(new Error("the upload failed"));
        xhr.send(f);
      }));
    },
  }, h("h2", {}, "Import"), h("p", { class: "muted" }, "An OCI layout or docker save archive, or a rootfs tarball."), file, as, h("button", { type: "submit" }, "Import"));
  main.append(h("div", { class: "card" }, h("h2", {}, "Images"), h("table", {}, table)), pull, imp, h("div", { class: "card" }, progress));
  await load();
}

async function render(message = "") {
  for (const f of cleanup) f();
  cleanup = [];
  main.replaceChildren();
  say("");
  const route = location.hash.replace(/^#\/?/, "").split("/");
  try {
    if (route[0] === "signin") return signInView(message);
    const who = await fetch("/api/v1/session", { credentials: "same-origin" });
    if (who.status === 401) return signInView("");
    if (who.ok) setCsrf((await who.json()).csrf);
    document.body.classList.add("signed-in");
    if (route[0] === "devbox" && route[2] === "terminal") return terminalView(route[1]);
    if (route[0] === "devbox") return await detail(route[1]);
    if (route[0] === "images") return await imagesView();
    return await dashboard();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return signInView("your session ended: sign in again");
    say((e as Error).message, true);
  }
}

document.getElementById("signout")!.addEventListener("click", async () => {
  await fetch("/api/v1/session", { method: "DELETE", headers: { "X-CSRF-Token": csrfToken() }, credentials: "same-origin" });
  document.body.classList.remove("signed-in");
  closeEvents();
  signIn();
});
window.addEventListener("hashchange", () => render());
render();
