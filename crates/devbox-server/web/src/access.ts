// How to reach a devbox from outside the page: links that open it in VS
// Code (Remote-SSH) or JetBrains Gateway, and the plain ssh command line
// through the server's SSH gateway, with a copy button.

import { Devbox, IdeLink, SshInfo, call } from "./api";
import { h, say } from "./ui";

/** The host the page was reached at, as ssh takes it (no IPv6 brackets). */
function sshHost(): string {
  return location.hostname.replace(/^\[(.*)\]$/, "$1");
}

async function copy(text: string, from: HTMLElement) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Without the clipboard API (a page served over plain HTTP to another
    // host), copying the selected text still works.
    const range = document.createRange();
    range.selectNodeContents(from);
    const sel = getSelection()!;
    sel.removeAllRanges();
    sel.addRange(range);
    document.execCommand("copy");
  }
  say(`copied: ${text}`);
}

export function accessPanel(d: Devbox): { el: HTMLElement; load: () => Promise<void> } {
  const links = h("p", { class: "buttons", id: "ide-links" });
  const ssh = h("p", { id: "ssh" });
  const path = `/devboxes/${encodeURIComponent(d.name)}`;

  async function load() {
    const [vscode, jetbrains, info] = await Promise.all([
      call<IdeLink>("GET", `${path}/open?ide=vscode`).catch((e: Error) => e),
      call<IdeLink>("GET", `${path}/open?ide=jetbrains`).catch((e: Error) => e),
      call<SshInfo>("GET", "/ssh").catch((e: Error) => e),
    ]);
    // They are plain links: the browser hands the URL to the IDE registered for its scheme.
    const link = (l: IdeLink | Error, id: string, label: string) => l instanceof Error
      ? h("span", { class: "error" }, `${label}: ${l.message}`)
      : h("a", { class: "button", id, href: l.url, title: l.url }, label);
    links.replaceChildren(link(vscode, "open-vscode", "Open in VS Code"), " ",
      link(jetbrains, "open-jetbrains", "Open in JetBrains Gateway"));
    if (info instanceof Error) return void ssh.replaceChildren(h("span", { class: "error" }, `SSH: ${info.message}`));
    const line = `ssh -p ${info.port} ${d.name}@${sshHost()}`;
    const code = h("code", { id: "ssh-command" }, line);
    ssh.replaceChildren(code, " ", h("button", { id: "copy-ssh", onclick: () => copy(line, code) }, "Copy"));
  }

  const el = h("div", { class: "card", id: "access" },
    h("h2", {}, "Connect"),
    links, ssh,
    h("p", { class: "muted" },
      "Register your public key once with ", h("code", {}, "devbox key add ~/.ssh/id_ed25519.pub"),
      ". The VS Code link uses the host ", h("code", {}, `${d.name}.devbox`), " that ",
      h("code", {}, "devbox ssh-config >> ~/.ssh/config"),
      " adds, which goes through HTTPS. A stopped devbox starts when you connect."));
  return { el, load };
}
