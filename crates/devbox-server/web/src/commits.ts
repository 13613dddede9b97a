// A devbox's commits on its detail page: the history (newest first, the
// head marked), committing now with a message, rolling back to a commit,
// forking a new devbox from one, and what the next commit would hold.
// Commits made anywhere (the CLI, auto-commit, a stop) show up through the
// event stream, without a reload.

import { Commit, Devbox, Diff, call } from "./api";
import { act, h, size, when } from "./ui";

export interface CommitsPanel {
  el: HTMLElement;
  load: () => Promise<void>;
  onEvent: (ev: any) => void;
}

// Operations after which the history or the pending changes differ.
const CHANGES = new Set(["commit", "rollback", "stop", "restart", "auto-stop", "start", "update"]);

export function commitsPanel(name: string, current: () => Devbox): CommitsPanel {
  const rows = h("tbody", { id: "commits" });
  const pending = h("div", { id: "diff", class: "diff" });
  const status = h("p", { id: "commit-status", class: "muted" });
  const message = h("input", { id: "commit-message", placeholder: "message (optional)", maxlength: "1000" }) as HTMLInputElement;
  const path = `/devboxes/${encodeURIComponent(name)}`;
  // Loads may overlap (a click and an event); only the newest one is shown.
  let generation = 0;

  const rollback = (c: Commit) => {
    const restart = current().state === "running"
      ? `\n\n${name} is running: it stops now (committing its changes first) and starts again from this commit.`
      : "";
    if (!confirm(`Roll back ${name} to commit ${c.id}? Its next start runs from this commit; later commits stay in the history.${restart}`)) return;
    act(`roll back ${name} to ${c.id}`, async () => { await call("POST", `${path}/rollback`, { commit: c.id }); await load(); });
  };

  const fork = async (c: Commit) => {
    const fork = prompt(`Name of the new devbox, starting from ${name} at commit ${c.id}:`, `${name}-fork`);
    if (!fork) return;
    const made = await act(`fork ${fork} from ${name}@${c.id}`, () => call("POST", "/devboxes", { name: fork.trim(), from: `${name}@${c.id}` }));
    if (made) location.hash = `#/devbox/${encodeURIComponent(fork.trim())}`;
  };

  const row = (c: Commit) => {
    // Retention may have reclaimed an old commit's image: it stays as history only.
    const gone = c.digest ? {} : { disabled: true, title: "retention reclaimed this commit's image" };
    return h("tr", { "data-commit": c.id, class: c.head ? "head" : "" },
      h("td", {}, c.head ? h("span", { class: "state running", title: "the next start runs from this commit" }, "head") : ""),
      h("td", {}, h("code", {}, c.id)),
      h("td", {}, when(c.created_at)),
      h("td", {}, c.trigger),
      h("td", { class: "message" }, c.message),
      h("td", { title: c.excluded_bytes ? `${size(c.excluded_bytes)} left out by the ignore rules` : "" },
        size(c.layer_size), c.excluded_bytes ? ` (+${size(c.excluded_bytes)} ignored)` : ""),
      h("td", { class: "buttons" },
        h("button", { "data-op": "rollback", onclick: () => rollback(c), ...gone }, "Roll back"),
        h("button", { "data-op": "fork", onclick: () => fork(c), ...gone }, "Fork")));
  };

  const showDiff = (d: Diff) => {
    const summary = `${d.added} added, ${d.modified} modified, ${d.deleted} deleted: ${size(d.bytes)}` +
      (d.ignored.length ? `; ${d.ignored.length} ignored path${d.ignored.length > 1 ? "s" : ""} (${size(d.ignored_bytes)}) left out` : "");
    const since = d.since ? `since commit ${d.since}` : "since the image";
    const list = d.entries.slice(0, 200).map((e) => h("li", { class: e.change },
      `${e.change[0].toUpperCase()} ${e.path}`, e.size ? ` (${size(e.size)})` : ""));
    if (d.entries.length > list.length) list.push(h("li", { class: "muted" }, `and ${d.entries.length - list.length} more`));
    const ignored = d.ignored.map((i) => h("li", { class: "muted" }, `ignored ${i.path}${i.dir ? "/" : ""} (${i.entries} entries, ${size(i.bytes)})`));
    pending.replaceChildren(
      h("span", { id: "diff-summary" }, `Pending ${since}: ${summary}`),
      d.entries.length || ignored.length ? h("details", {}, h("summary", {}, "paths"), h("ul", { class: "paths" }, ...list, ...ignored)) : "");
  };

  async function load() {
    const mine = ++generation;
    const [history, diff] = await Promise.all([
      call<Commit[]>("GET", `${path}/commits`),
      // The pending changes are known only where the devbox has run; say why not instead.
      call<Diff>("GET", `${path}/diff`).catch((e: Error) => e),
    ]);
    if (mine !== generation) return;
    rows.replaceChildren(...history.map(row));
    if (!history.length) rows.append(h("tr", {}, h("td", { colspan: 7 }, "No commits yet: commit now, or stop the devbox (every stop commits).")));
    if (diff instanceof Error) pending.replaceChildren(h("span", { class: "muted" }, `Pending changes: ${diff.message}`));
    else showDiff(diff);
  }

  const onEvent = (ev: any) => {
    if (ev.devbox !== name) return;
    if (ev.type === "operation_started" && (ev.op === "commit" || ev.op === "rollback")) {
      status.textContent = `${ev.op === "commit" ? "committing" : "rolling back"} (asked by ${ev.caller})…`;
      status.className = "muted";
    } else if (ev.type === "operation_failed" && CHANGES.has(ev.op)) {
      status.textContent = `${ev.op} failed: ${ev.message}`;
      status.className = "error";
      load().catch(() => {});
    } else if (ev.type === "operation_finished" && CHANGES.has(ev.op)) {
      // The line said an operation runs; what it said after one ended stays.
      if (status.textContent?.endsWith("…")) status.textContent = "";
      load().catch(() => {});
    }
  };

  const form = h("form", {
    id: "commit-form",
    onsubmit: (e: Event) => {
      e.preventDefault();
      const body: { message?: string } = message.value.trim() ? { message: message.value.trim() } : {};
      act(`commit ${name}`, async () => {
        const c = await call<Commit>("POST", `${path}/commits`, body);
        message.value = "";
        await load();
        status.textContent = `committed ${c.id} (${size(c.layer_size)})`;
      });
    },
  }, message, h("button", { type: "submit", id: "commit-now" }, "Commit now"),
    h("button", { type: "button", onclick: () => act("refresh the pending changes", load) }, "Refresh"));

  const el = h("div", { class: "card", id: "commits-panel" },
    h("h2", {}, "Commits"),
    h("p", { class: "muted" }, "A commit saves the devbox's changes while it keeps running; every stop commits too."),
    form, status, pending,
    h("table", {},
      h("thead", {}, h("tr", {}, ...["", "ID", "Time", "Trigger", "Message", "Layer", ""].map((t) => h("th", {}, t)))),
      rows));
  return { el, load, onEvent };
}
