//! The `zk-server` binary's command line, as a newcomer first runs it.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::process::free_port;

/// `zk-server --port P` alone serves, keeping its data in ./zk-data.
#[test]
fn port_alone_serves_with_data_in_the_working_directory() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zk-server"))
        .args(["--port", &port.to_string(), "--address", "127.0.0.1"])
        .current_dir(cwd.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn zk-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("zk-server exited: {status}");
        }
        // srvr is on the default whitelist.
        if let Some(answer) = srvr(port) {
            break answer;
        }
        assert!(Instant::now() < deadline, "zk-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.contains("Mode: standalone"), "{answer}");
    assert!(
        cwd.path().join("zk-data").join("version-2").is_dir(),
        "the data directory is ./zk-data"
    );
}

fn srvr(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

/// `--data-dir` with `--config` replaces zoo.cfg's dataDir before the file is read, so an
/// ensemble member's myid comes from the directory it actually uses.
#[test]
fn data_dir_overrides_the_config_before_myid_is_read() {
    let root = tempfile::tempdir().expect("tempdir");
    let (configured, used) = (root.path().join("configured"), root.path().join("used"));
    std::fs::create_dir_all(&used).expect("dir");
    std::fs::write(used.join("myid"), "1\n").expect("myid");
    let port = free_port();
    let (q1, e1, q2, e2, q3, e3) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let cfg = root.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nquorum.auth.secret=0123456789abcdef0123\n\
             server.1=127.0.0.1:{q1}:{e1}\nserver.2=127.0.0.1:{q2}:{e2}\n\
             server.3=127.0.0.1:{q3}:{e3}\n",
            configured.display()
        ),
    )
    .expect("zoo.cfg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zk-server"))
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&used)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zk-server");
    // A lone member of three serves nothing, but it runs and answers srvr.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut stderr);
            }
            panic!("zk-server exited ({status}): {stderr}");
        }
        if srvr(port).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "zk-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(used.join("version-2").is_dir(), "data in the --data-dir");
    assert!(!configured.exists(), "nothing in zoo.cfg's dataDir");
}
