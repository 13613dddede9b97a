// A terminal in the browser on the exec WebSocket: a real pty in the
// devbox, resized with the window, its output shown by xterm.js.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";

const STDIN = 0, STDOUT = 1, STDERR = 2;

export function openTerminal(el: HTMLElement, devbox: string, onEnd: (msg: string) => void): () => void {
  const term = new Terminal({ cursorBlink: true, fontSize: 14, convertEol: false });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el);
  fit.fit();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/devboxes/${encodeURIComponent(devbox)}/exec/ws`);
  ws.binaryType = "arraybuffer";
  const enc = new TextEncoder();
  let ended = false;
  ws.onopen = () => {
    // A failed `exec` ends a POSIX shell, so bash is looked for first.
    ws.send(JSON.stringify({
      type: "start", cmd: ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"],
      env: ["TERM=xterm-256color"], tty: true, rows: term.rows, cols: term.cols,
    }));
    term.focus();
  };
  ws.onmessage = (m) => {
    if (typeof m.data === "string") {
      const msg = JSON.parse(m.data);
      if (msg.type === "exit") { ended = true; onEnd(`the shell exited with ${msg.code}`); }
      if (msg.type === "error") { ended = true; onEnd(msg.message); }
      return;
    }
    const bytes = new Uint8Array(m.data);
    if (bytes[0] === STDOUT || bytes[0] === STDERR) term.write(bytes.subarray(1));
  };
  // The close that follows an exit or an error keeps what they said.
  ws.onclose = (c) => { if (!ended) onEnd(c.reason || "the terminal session ended"); };
  term.onData((d) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const data = enc.encode(d);
    const frame = new Uint8Array(data.length + 1);
    frame[0] = STDIN;
    frame.set(data, 1);
    ws.send(frame);
  });
  const resize = () => {
    fit.fit();
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", rows: term.rows, cols: term.cols }));
  };
  window.addEventListener("resize", resize);
  return () => {
    window.removeEventListener("resize", resize);
    ws.close();
    term.dispose();
  };
}
