// What every view of the page shares: building elements, the status line,
// running an action with the API's message on failure, formatting, and
// the event stream.

import { ApiError } from "./api";

export type Child = Node | string | null | undefined | false;

export function h(tag: string, attrs: Record<string, any> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== false && v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) if (c) el.append(c);
  return el;
}

const note = document.getElementById("note")!;

export function say(msg: string, error = false) {
  note.textContent = msg;
  note.className = error ? "note error" : "note";
}

/** Runs an action, showing the API's message when it fails; true when it succeeded. */
export async function act(label: string, f: () => Promise<unknown>): Promise<boolean> {
  say(`${label}…`);
  try {
    await f();
    say(`${label}: done`);
    return true;
  } catch (e) {
    // The hash change renders the sign-in form.
    if (e instanceof ApiError && e.status === 401) location.hash = "#/signin";
    else say(`${label}: ${(e as Error).message}`, true);
    return false;
  }
}

export function size(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)}${units[i]}`;
}

export function when(t: string | null): string {
  return t ? new Date(t).toLocaleString() : "-";
}

/** How long ago `t` was, in the largest whole unit: "5m ago". */
export function ago(t: string | null): string {
  if (!t) return "never";
  const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
  if (s < 60) return "just now";
  for (const [unit, secs] of [["d", 86400], ["h", 3600], ["m", 60]] as [string, number][]) {
    if (s >= secs) return `${Math.floor(s / secs)}${unit} ago`;
  }
  return "just now";
}

// The event stream: one EventSource for the page, reconnecting (with
// Last-Event-ID) by itself; views subscribe while they are shown.
type Listener = (ev: any) => void;
const listeners = new Set<Listener>();
let source: EventSource | null = null;

export function events(l: Listener): () => void {
  if (!source) {
    source = new EventSource("/api/v1/events");
    source.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      for (const f of listeners) f(ev);
    };
  }
  listeners.add(l);
  return () => listeners.delete(l);
}

/** Closes the event stream, when the user signs out. */
export function closeEvents() {
  source?.close();
  source = null;
}
