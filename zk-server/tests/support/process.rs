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

/// A four-letter word's answer, `None` when the connection fails.
fn four_letter_word(addr: &str, word: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
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
        let mut process = ServerProcess {
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

    /// Waits until the child answers `ruok` — the child itself, not another server that took
    /// the port (a port from [`free_port`] can be taken again before the child binds it):
    /// `conf` must name this data directory, and the child must still run.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let our_dir = format!(
            "dataDir={}",
            self.dir.join("data").join("version-2").display()
        );
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut stderr);
                }
                panic!(
                    "zk-server on port {} exited while starting ({status}): {stderr}",
                    self.port
                );
            }
            if four_letter_word(&self.addr(), "ruok").as_deref() == Some("imok") {
                let conf = four_letter_word(&self.addr(), "conf").unwrap_or_default();
                // A whitelist without conf leaves ruok as the only check.
                if !conf.contains("dataDir=") || conf.contains(&our_dir) {
                    return;
                }
                panic!(
                    "another server answers on port {} (its conf: {conf:?})",
                    self.port
                );
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
