//! The shim of a devbox's container: how a devbox ended (killed from the
//! host, out of memory), the startup command's state, the capped console
//! log, and no shim left once the devbox is stopped or removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use devbox_model::api::CommandStatus;
use devbox_model::{ByteSize, DevboxId};
use devbox_runtime::{ContainerState, ExitRecord, LocalRuntime, Runtime, cgroup, command_status};

use crate::common::*;

const GRACE: Duration = Duration::from_secs(5);

/// A whole file of the console log, or an empty string.
fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn devbox_dir(root: &Path, id: &DevboxId) -> PathBuf {
    root.join("devboxes").join(id.as_str())
}

fn exit_record(root: &Path, id: &DevboxId) -> Option<ExitRecord> {
    ExitRecord::read(&devbox_dir(root, id).join("exit.json"))
}

fn status(root: &Path, id: &DevboxId) -> Option<CommandStatus> {
    command_status::read(&devbox_dir(root, id).join("run"))
}

/// Polls `cond` until it returns something, for at most `limit`.
async fn wait_for<T>(what: &str, limit: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap()
}

async fn init_pid(rt: &LocalRuntime, id: &DevboxId) -> u32 {
    match rt.status(id).await.unwrap().state {
        ContainerState::Running { pid } => pid,
        other => panic!("devbox {id} is {other:?}, not running"),
    }
}

#[tokio::test]
async fn a_pid_1_killed_from_the_host_is_recorded_as_137() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let spec = start_spec(&id, "box-killed", &layer);
    start(&rt, &spec).await.expect("start");
    let pid = init_pid(&rt, &id).await;
    let shims = shims_of(&id);
    assert_eq!(shims.len(), 1, "one shim per devbox: {shims:?}");
    assert_eq!(parent_of(pid), shims[0], "the shim is the init's parent");
    assert_eq!(exit_record(root.path(), &id), None, "it has not ended");

    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let record = wait_for("the exit record", Duration::from_secs(10), || {
        exit_record(root.path(), &id)
    })
    .await;
    assert_eq!(
        (record.code, record.signal, record.oom_killed),
        (137, Some(9), false)
    );
    let age = chrono::Utc::now() - record.finished_at;
    assert!(
        age.num_seconds() < 3600 && age.num_seconds() >= 0,
        "{record:?}"
    );
    // The runtime reports the same, before the teardown removes the container.
    match rt.status(&id).await.unwrap().state {
        ContainerState::Exited(Some(exit)) => {
            assert_eq!((exit.code, exit.signal), (137, Some(9)));
            assert_eq!(exit.describe(), "exited with 137: killed by SIGKILL");
        }
        other => panic!("not an exit with its record: {other:?}"),
    }
    // The shim goes with its container.
    wait_for("the shim to exit", Duration::from_secs(10), || {
        shims_of(&id).is_empty().then_some(())
    })
    .await;

    // The next start forgets the old record; a stop leaves a new one.
    start(&rt, &spec).await.expect("start again");
    assert_eq!(exit_record(root.path(), &id), None);
    rt.stop(&id, GRACE).await.expect("stop");
    assert_eq!(shims_of(&id), Vec::<u32>::new(), "a shim outlived the stop");
    let record = exit_record(root.path(), &id).expect("an exit record after stop");
    assert_eq!((record.code, record.signal), (0, None), "{record:?}");
    rt.remove(&id).await.expect("remove");
    assert_nothing_left(root.path(), &id);
}

#[tokio::test]
async fn memory_over_the_limit_counts_oom_kills_and_an_oom_killed_pid_1_says_so() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    // 10,000 pages: the kernel weighs oom_score_adj in thousandths of the
    // limit in pages, rounded down, so a round number of thousands of pages
    // lets an agent with the highest adjustment outweigh any other process.
    const LIMIT: u64 = 10_000 * 4096;
    let mut spec = start_spec(&id, "box-oom", &layer);
    spec.resources.memory = ByteSize(LIMIT);
    start(&rt, &spec).await.expect("start");
    assert_eq!(cgroup::memory_limit(&id).unwrap(), Some(LIMIT));
    assert_eq!(cgroup::oom_kills(&id), 0);

    // A process allocating past the limit is killed; the devbox lives on.
    let hog = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"];
    let out = exec(&rt, &id, &hog).await;
    assert_eq!(out.code, 137, "{out:?}");
    assert!(cgroup::oom_kills(&id) >= 1, "the OOM kill was not counted");
    let pid = init_pid(&rt, &id).await;

    // Make the agent the OOM killer's first choice: now PID 1 dies of it.
    // The memory goes to four processes, 12 MiB each, held while their
    // pipe is full: a victim is chosen by its own size (the pages of its
    // program included), and none of them comes near the agent's weight.
    std::fs::write(format!("/proc/{pid}/oom_score_adj"), "1000").unwrap();
    let hogs = "for i in 1 2 3 4; do dd if=/dev/zero bs=12M count=1 | sleep 60 & done; wait";
    let _ = exec(&rt, &id, &["sh", "-c", hogs]).await;
    let record = wait_for("the exit record", Duration::from_secs(20), || {
        exit_record(root.path(), &id)
    })
    .await;
    assert_eq!(
        (record.code, record.signal, record.oom_killed),
        (137, Some(9), true),
        "{record:?}"
    );
    assert!(cgroup::oom_kills(&id) >= 2);
    rt.remove(&id).await.expect("remove");
    assert_nothing_left(root.path(), &id);
}

#[tokio::test]
async fn the_startup_commands_state_is_reported_from_inside_the_devbox() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    // As a user other than root, who must be able to write the report.
    let mut spec = start_spec(&id, "box-status", &layer);
    spec.user = Some("dev".into());
    spec.command = Some(vec!["sh".into(), "-c".into(), "exit 3".into()]);
    start(&rt, &spec).await.expect("start");
    let got = wait_for("the command's exit", Duration::from_secs(20), || {
        status(root.path(), &id).filter(|s| *s != CommandStatus::Running)
    })
    .await;
    assert_eq!(got, CommandStatus::Exited { code: 3 });
    // The model's own type reads what the agent wrote.
    let raw =
        std::fs::read_to_string(devbox_dir(root.path(), &id).join("run/command.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<CommandStatus>(&raw).unwrap(),
        CommandStatus::Exited { code: 3 }
    );
    rt.stop(&id, GRACE).await.expect("stop");
    // The report of the last run is kept while the devbox is stopped.
    assert_eq!(
        status(root.path(), &id),
        Some(CommandStatus::Exited { code: 3 })
    );

    spec.command = Some(vec!["/no/such/program".into(), "--flag".into()]);
    start(&rt, &spec)
        .await
        .expect("start with a missing program");
    let got = wait_for("the command's failure", Duration::from_secs(20), || {
        status(root.path(), &id)
    })
    .await;
    let CommandStatus::Failed { message } = &got else {
        panic!("not a failure: {got:?}");
    };
    assert!(message.contains("/no/such/program"), "{message}");
    // The devbox itself runs on.
    assert!(rt.status(&id).await.unwrap().state.is_running());
    rt.remove(&id).await.expect("remove");
    assert_nothing_left(root.path(), &id);
}

#[tokio::test]
async fn a_chatty_startup_command_keeps_the_console_log_within_its_maximum() {
    const MAX: u64 = 64 * 1024;
    let net = TestNet::claim();
    let root = temp_root();
    require_prerequisites();
    let mut config = net.config(root.path());
    config.console_log_max = MAX;
    let rt = LocalRuntime::new(config).await.expect("create the runtime");
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let mut spec = start_spec(&id, "box-chatty", &layer);
    spec.command = Some(vec![
        "sh".into(),
        "-c".into(),
        "i=0; while [ $i -lt 5000 ]; do echo \"line $i of a chatty startup command\"; \
         i=$((i+1)); done; echo newest-line"
            .into(),
    ]);
    start(&rt, &spec).await.expect("start");
    let dir = devbox_dir(root.path(), &id);
    let (cur, old) = (dir.join("console.log"), dir.join("console.log.1"));
    let done = "devbox-agent: command exited with status 0\n";
    wait_for(
        "the command's end in the log",
        Duration::from_secs(60),
        || read_log(&cur).ends_with(done).then_some(()),
    )
    .await;
    let (cur_text, old_text) = (read_log(&cur), read_log(&old));
    assert!(
        cur_text.len() as u64 + old_text.len() as u64 <= MAX,
        "{} + {} bytes",
        old_text.len(),
        cur_text.len()
    );
    assert!(!old_text.is_empty(), "the log never rotated");
    let whole = old_text + &cur_text;
    assert!(whole.contains("newest-line\n"), "{cur_text}");
    assert!(!whole.contains("line 0 of"), "the oldest output is dropped");
    // The runtime's reader gives the same, older part first.
    let streamed = read_logs(&rt, &id).await;
    assert!(streamed.ends_with(done), "{streamed}");
    assert!(streamed.contains("newest-line\n") && !streamed.contains("line 0 of"));

    // Inside the devbox, the console is a pipe to the shim, not a host file.
    let out = exec(&rt, &id, &["readlink", "/proc/1/fd/1"]).await;
    assert!(out.stdout.starts_with("pipe:"), "{out:?}");
    rt.remove(&id).await.expect("remove");
    assert_nothing_left(root.path(), &id);
}
