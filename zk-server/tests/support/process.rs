//! The `zk-server` binary as a child process, for crash tests and tests that need their own
//! file-descriptor budget.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Writes a zoo.cfg for `dir`/`port` plus extra lines.
pub fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let cfg = dir.join("zoo.cfg");
    let whitelist = if extra.contains("4lw.commands.whitelist") {
        ""
    } else {
        "4lw.commands.whitelist=*\n"
    };
    let text = format!(
        "tickTime=200\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n\
         maxSessionTimeout=60000\n{whitelist}{extra}\n",
        dir.join("data").display()
    );
    std::fs::write(&cfg, text).expect("write zoo.cfg");
    cfg
}

impl ServerProcess {
    /// Starts the binary and waits until it answers `ruok`.
    pub fn start(dir: &Path, port: u16, extra: &str) -> ServerProcess {
        let cfg = write_config(dir, port, extra);
        let child = Command::new(env!("CARGO_BIN_EXE_zk-server"))
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn zk-server");
        let process = ServerProcess {
            child,
            port,
            dir: dir.to_owned(),
        };
        process.wait_ready();
        process
    }

    /// Runs the binary to completion (for configurations that must refuse to start).
    pub fn run_to_exit(dir: &Path, port: u16) -> (i32, String) {
        let cfg = write_config(dir, port, "");
        let output = Command::new(env!("CARGO_BIN_EXE_zk-server"))
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "error")
            .output()
            .expect("run zk-server");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(self.addr()) {
                use std::io::{Read, Write};
                let mut out = String::new();
                if s.write_all(b"ruok").is_ok()
                    && s.read_to_string(&mut out).is_ok()
                    && out == "imok"
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "zk-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The txn-log files of a data directory, oldest first.
pub fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.join("data").join("version-2"))
        .expect("data dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("log."))
        })
        .collect();
    logs.sort();
    logs
}
