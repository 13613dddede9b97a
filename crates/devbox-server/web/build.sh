#!/usr/bin/env bash
# Rebuilds the web page's assets into dist/, which is committed and embedded
# in the server binary: `cargo build` never needs npm. Run after changing
# anything under src/ or static/ (npm ci installs the pinned tools first).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/esbuild ] || npm ci --no-audit --no-fund
mkdir -p dist
node_modules/.bin/esbuild src/main.ts --bundle --minify --target=es2020 --legal-comments=none --outfile=dist/app.js
cp node_modules/@xterm/xterm/css/xterm.css dist/xterm.css
cp static/index.html static/app.css dist/
