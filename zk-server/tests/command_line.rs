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
