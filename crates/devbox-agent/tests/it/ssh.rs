//! The SSH server mode against Debian's OpenSSH client, with the server run
//! as an ordinary process on this machine: exec with exit codes, standard
//! error and input, terminals, variables, SFTP, both kinds of forwarding,
//! the one accepted key, and the server's restart by init.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{AGENT, collect, term, wait_exit, wait_for};

fn need(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(found, "{tool} is missing: apt-get install {package}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A key pair made by `ssh-keygen` at `path` (and `path.pub`).
fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A running SSH server with its keys and a client key it accepts.
struct Server {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Server {
    fn start() -> Server {
        need("ssh", "openssh-client");
        need("ssh-keygen", "openssh-client");
        let dir = std::env::temp_dir().join(format!(
            "devbox-agent-ssh-{}-{}",
            std::process::id(),
            free_port()
        ));
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        keygen(&keys.join("host_key"));
        keygen(&dir.join("client"));
        keygen(&dir.join("stranger"));
        std::fs::copy(dir.join("client.pub"), keys.join("authorized_keys")).unwrap();
        let port = free_port();
        let child = Command::new(AGENT)
            .args(["ssh", "--listen", &format!("127.0.0.1:{port}"), "--keys"])
            .arg(&keys)
            .arg("--status-dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the SSH server to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Server { dir, port, child }
    }

    fn ssh(&self, key: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-i").arg(self.dir.join(key)).args([
            "-p",
            &self.port.to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ]);
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut c = self.ssh("client");
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let feeder = thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn exec_carries_output_error_and_exit_code() {
    let s = Server::start();
    let out = s.run(
        &["root@127.0.0.1", "--", "echo out; echo err >&2; exit 7"],
        b"",
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    let missing = s.run(&["root@127.0.0.1", "--", "/no/such/program"], b"");
    assert_eq!(missing.status.code(), Some(127), "{missing:?}");
}

#[test]
fn standard_input_reaches_the_command_and_its_end_closes_it() {
    let s = Server::start();
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let out = s.run(&["root@127.0.0.1", "--", "wc -c"], &data);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout).trim(), data.len().to_string());
    let back = s.run(&["root@127.0.0.1", "--", "cat"], &data);
    assert!(
        back.stdout == data,
        "cat returned {} bytes",
        back.stdout.len()
    );
}

#[test]
fn variables_and_the_login_environment_are_set() {
    let s = Server::start();
    let out = s.run(
        &[
            "-o",
            "SetEnv=DEVBOX_TEST=yes",
            "root@127.0.0.1",
            "--",
            "echo $DEVBOX_TEST $USER $HOME; pwd",
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let home = std::fs::canonicalize("/root").unwrap_or_else(|_| "/".into());
    assert_eq!(
        text(&out.stdout),
        format!("yes root /root\n{}\n", home.display())
    );
}

#[test]
fn a_terminal_has_its_type_and_size() {
    need("script", "util-linux");
    let s = Server::start();
    let ssh: Vec<String> = {
        let c = s.ssh("client");
        std::iter::once(c.get_program().to_string_lossy().into_owned())
            .chain(c.get_args().map(|a| a.to_string_lossy().into_owned()))
            .collect()
    };
    let line = format!(
        "stty cols 100 rows 30; {} -tt root@127.0.0.1 'tty; echo T=$TERM; stty size; exit 3'",
        ssh.join(" ")
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("TERM", "vt220")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = text(&out.stdout);
    assert!(screen.contains("/dev/pts/"), "{screen}");
    assert!(screen.contains("T=vt220"), "{screen}");
    assert!(screen.contains("30 100"), "{screen}");
    assert_eq!(out.status.code(), Some(3), "{screen}");
}

#[test]
fn sftp_puts_and_gets_a_file_intact() {
    need("sftp", "openssh-client");
    let s = Server::start();
    let local = s.dir.join("local.bin");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let remote = s.dir.join("remote.bin");
    let back = s.dir.join("back.bin");
    let batch = format!(
        "put {} {}\nget {} {}\nls -l {}\n",
        local.display(),
        remote.display(),
        remote.display(),
        back.display(),
        s.dir.display()
    );
    let mut c = s.ssh("client");
    // sftp takes the same options, with -P for the port.
    let args: Vec<String> = c
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .map(|a| if a == "-p" { "-P".to_owned() } else { a })
        .collect();
    c = Command::new("sftp");
    c.args(&args).args(["-b", "-", "root@127.0.0.1"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read(&remote).unwrap() == data);
    assert!(std::fs::read(&back).unwrap() == data);
    assert!(text(&out.stdout).contains("remote.bin"), "{out:?}");
}

/// A TCP server that answers every connection with `reply` and the first
/// line it read.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 64];
                let n = conn.read(&mut buf).unwrap_or(0);
                let _ = conn.write_all(b"echo:");
                let _ = conn.write_all(&buf[..n]);
            });
        }
    });
    port
}

#[test]
fn local_forwarding_connects_from_the_server_side() {
    let s = Server::start();
    let port = echo_server();
    // -W is local forwarding over the client's standard streams.
    let out = s.run(
        &["-W", &format!("127.0.0.1:{port}"), "root@127.0.0.1"],
        b"hello\n",
    );
    assert_eq!(text(&out.stdout), "echo:hello\n", "{out:?}");
    let refused = s.run(
        &[
            "-W",
            &format!("127.0.0.1:{}", free_port()),
            "root@127.0.0.1",
        ],
        b"x",
    );
    assert!(!refused.status.success(), "{refused:?}");
}

#[test]
fn remote_forwarding_listens_on_the_server_side() {
    let s = Server::start();
    let port = echo_server();
    let remote = free_port();
    let mut c = s.ssh("client");
    c.args([
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-R",
        &format!("127.0.0.1:{remote}:127.0.0.1:{port}"),
        "root@127.0.0.1",
    ])
    .stdin(Stdio::null());
    let mut forwarding = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", remote)) {
            conn.write_all(b"through\n").unwrap();
            let mut got = String::new();
            let _ = conn.read_to_string(&mut got);
            if !got.is_empty() {
                break got;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the remote forwarding never answered"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let _ = forwarding.kill();
    let _ = forwarding.wait();
    assert_eq!(got, "echo:through\n");
}

#[test]
fn only_the_authorized_key_logs_in() {
    let s = Server::start();
    let out = s
        .ssh("stranger")
        .args(["root@127.0.0.1", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(text(&out.stderr).contains("Permission denied"), "{out:?}");
    let unknown = s.run(&["nosuchuser@127.0.0.1", "true"], b"");
    assert_eq!(unknown.status.code(), Some(255), "{unknown:?}");
}

#[test]
fn activity_is_recorded_in_the_status_directory() {
    let s = Server::start();
    let out = s.run(&["root@127.0.0.1", "--", "true"], b"");
    assert!(out.status.success(), "{out:?}");
    let file = s.dir.join("activity.json");
    wait_for("the activity record", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("\"sessions\":0"))
    });
    let record = std::fs::read_to_string(&file).unwrap();
    assert!(record.contains("\"last_activity\":\"20"), "{record}");
}

#[test]
fn init_starts_the_ssh_server_again_when_it_dies() {
    need("ssh-keygen", "openssh-client");
    let dir = std::env::temp_dir().join(format!("devbox-agent-restart-{}", std::process::id()));
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    keygen(&keys.join("host_key"));
    keygen(&dir.join("client"));
    std::fs::copy(dir.join("client.pub"), keys.join("authorized_keys")).unwrap();
    let port = free_port();
    let mut init = Command::new(AGENT)
        .arg("--status-dir")
        .arg(&dir)
        .args(["--ssh-listen", &format!("127.0.0.1:{port}"), "--ssh-keys"])
        .arg(&keys)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = collect(init.stderr.take().unwrap());
    wait_for("the SSH server to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // Kill the SSH server (the only child of init here): init lives on and
    // starts it again.
    let pgrep = Command::new("pgrep")
        .args(["-P", &init.id().to_string()])
        .output()
        .unwrap();
    let pid: i32 = text(&pgrep.stdout).trim().parse().expect("one child");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    wait_for("the port to close", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    wait_for("the SSH server to listen again", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(
        init.try_wait().unwrap().is_none(),
        "init ended with the SSH server"
    );
    term(&init);
    assert_eq!(
        wait_exit(&mut init, Duration::from_secs(15)).code(),
        Some(0)
    );
    let err = err.join().unwrap();
    assert!(
        err.contains("the SSH server was killed by signal 9; starting it again"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
