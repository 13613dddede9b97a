//! The web page in real headless Chromium: `crates/devbox-server/web/test/ui.mjs`
//! (playwright-core, from the page's own lockfile) against a real server.
//! Screenshots of the dashboard, the terminal and the commit history land in
//! `target/ui-screenshots/`.

use std::path::PathBuf;
use std::process::Command;

use super::harness::{Server, require_tool};

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../devbox-server/web")
}

#[test]
fn the_web_page_signs_in_runs_a_devbox_its_terminal_and_its_commits() {
    require_tool("node", "nodejs");
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "/usr/bin/chromium not found: install it with `apt-get install chromium`"
    );
    let web = web_dir();
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in {}",
        web.display()
    );
    let s = Server::start();
    s.import_busybox("base:1");
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(web.join("test/ui.mjs"))
        .env("DEVBOX_URL", &s.url)
        .env("DEVBOX_TOKEN", s.token())
        .env("SHOTS", &shots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed (screenshots in {}):\n{stdout}\n{}\nserver log:\n{}",
        shots.display(),
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    assert!(stdout.contains("ui test passed"), "{stdout}");
    for shot in ["dashboard.png", "terminal.png", "commits.png"] {
        assert!(shots.join(shot).is_file(), "no screenshot {shot}");
    }
    // The devbox is gone through the page.
    let list = s.json(&["ls", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
}
