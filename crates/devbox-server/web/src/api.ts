// The API as the page uses it: same-origin requests with the session
// cookie, the CSRF token on every change, and the API's error message
// surfaced as the exception's message.

export interface Devbox {
  name: string; id: string; image: string; state: string; error: string | null;
  reason: string | null; ip: string; resources: { cpus: number; memory: number; pids: number };
  head: string | null; auto_stop: number | null; last_activity: string | null;
  command: string[] | null; created_at: string;
}
export interface Image { reference: string; digest: string; size: number; layers: number; created_at: string }
export interface Commit {
  id: string; created_at: string; trigger: string; message: string; head: boolean; layer_size: number;
  excluded_bytes: number; digest: string | null; pinned: boolean; merged_into: string | null;
}
export interface Diff {
  since: string | null; added: number; modified: number; deleted: number; bytes: number; ignored_bytes: number;
  entries: { path: string; change: string; kind: string | null; size: number }[];
  ignored: { path: string; dir: boolean; entries: number; bytes: number }[];
}
export interface SshInfo { host_key: string; port: number }
export interface IdeLink { ide: string; url: string; host: string; port: number; user: string; workdir: string }
export interface Port { port: number; access: string; listening: boolean; url: string; path_url: string }

let csrf = sessionStorage.getItem("devbox-csrf") ?? "";

export function setCsrf(token: string) {
  csrf = token;
  sessionStorage.setItem("devbox-csrf", token);
}

export class ApiError extends Error {
  constructor(public status: number, message: string) { super(message); }
}

async function fail(r: Response): Promise<never> {
  let message = `${r.status} ${r.statusText}`;
  try {
    const body = await r.json();
    if (body?.error?.message) message = body.error.message;
  } catch { /* not JSON */ }
  throw new ApiError(r.status, message);
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const send = () => fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  // A read that never got an answer (the browser saw the network change, a
  // connection dropped) is asked again, twice at most; it changes nothing.
  // Changes are sent once: whether they happened is the server's to say.
  let r: Response | undefined;
  for (let attempt = 0; r === undefined; attempt++) {
    try {
      r = await send();
    } catch (e) {
      if (method !== "GET" || attempt >= 2) throw e;
      await new Promise((done) => setTimeout(done, 300));
    }
  }
  if (!r.ok) await fail(r);
  if (r.status === 204) return undefined as T;
  return r.json() as Promise<T>;
}

/** Reads a newline-delimited JSON answer (pull, import), one event at a time. */
export async function ndjson(r: Response, each: (ev: any) => void) {
  if (!r.ok) await fail(r);
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) each(JSON.parse(line));
    }
  }
}

export function post(path: string, body: unknown, extra: Record<string, string> = {}) {
  return fetch(`/api/v1${path}`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, ...extra },
    body: JSON.stringify(body),
  });
}

export function csrfToken() { return csrf; }
