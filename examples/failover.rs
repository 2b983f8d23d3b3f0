//! Failover, process by process: three `zk-server` processes on loopback form an ensemble,
//! a client writes continuously, the leader is SIGKILLed, and the program measures how long
//! writes stop, then checks that every acknowledged write is readable from every member
//! (the killed one restarted). Repeats for `--rounds`.
//!
//! ```sh
//! cargo build --release -p zk-server --bin zk-server
//! cargo run --release --example failover -- --rounds 100
//! ```
//!
//! Prints one line per round and a `RESULT failover …` summary (median, p95, max of the
//! write gap). Exits 1 if any acknowledged write is missing on any member, or if a round
//! cannot elect a leader; the 2 s target is reported, not enforced (figures, not a test).
//!
//! `--apache` runs the same rounds against Apache ZooKeeper members (`QuorumPeerMain` from the
//! Debian package that `scripts/interop.sh install` sets up), for comparison.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zk::client::{Client, RetryNTimes};
use zk::server::reserve_port;

#[derive(Debug, Parser)]
struct Args {
    /// Kill-and-recover rounds.
    #[arg(long, default_value_t = 20)]
    rounds: u32,
    /// The members' tickTime, ms.
    #[arg(long, default_value_t = 200)]
    tick_time: u32,
    /// The zk-server binary (default: next to this example's target directory).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Seconds of writing before the kill, and after the writes resumed.
    #[arg(long, default_value_t = 1.0)]
    write_seconds: f64,
    /// Run Apache ZooKeeper members instead (java and /usr/share/java/zookeeper.jar).
    #[arg(long)]
    apache: bool,
}

/// Apache ZooKeeper's classpath as the Debian package installs it.
const APACHE_CLASSPATH: &str =
    "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";

/// What runs a member.
#[derive(Debug, Clone)]
enum Launcher {
    ZkServer(PathBuf),
    Apache,
}

impl Launcher {
    fn command(&self, config: &Path) -> Command {
        match self {
            Launcher::ZkServer(bin) => {
                let mut c = Command::new(bin);
                c.arg("--config").arg(config);
                c
            }
            Launcher::Apache => {
                let mut c = Command::new("java");
                c.arg("-Dzookeeper.root.logger=WARN,CONSOLE")
                    .arg("-cp")
                    .arg(APACHE_CLASSPATH)
                    .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                    .arg(config);
                c
            }
        }
    }
}

struct Member {
    id: u32,
    client_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn start(&mut self, launcher: &Launcher) -> std::io::Result<()> {
        let log = std::fs::File::create(self.config.with_extension("log"))?;
        self.child = Some(
            launcher
                .command(&self.config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?,
        );
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ensemble(dir: &Path, tick_time: u32) -> std::io::Result<Vec<Member>> {
    let ports: Vec<(u16, u16, u16)> = (0..3)
        .map(|_| Ok((reserve_port()?, reserve_port()?, reserve_port()?)))
        .collect::<std::io::Result<_>>()?;
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, (_, q, e))| format!("server.{}=127.0.0.1:{q}:{e}\n", i + 1))
        .collect();
    let mut members = Vec::new();
    for (i, (client, _, _)) in ports.iter().enumerate() {
        let id = i as u32 + 1;
        let data = dir.join(format!("member-{id}"));
        std::fs::create_dir_all(&data)?;
        std::fs::write(data.join("myid"), format!("{id}\n"))?;
        let config = data.join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime={tick_time}\ninitLimit=10\nsyncLimit=5\ndataDir={}\n\
                 clientPort={client}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n\
                 admin.enableServer=false\n\
                 quorum.auth.secret=failover-example-secret\n{servers}",
                data.display()
            ),
        )?;
        members.push(Member {
            id,
            client_port: *client,
            config,
            child: None,
        });
    }
    Ok(members)
}

async fn mode(member: &Member) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", member.client_port))
        .await
        .ok()?;
    stream.write_all(b"srvr").await.ok()?;
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(1), stream.read_to_string(&mut reply))
        .await
        .ok()?
        .ok()?;
    reply
        .lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::to_owned)
}

async fn wait_for_leader(members: &[Member], patience: Duration) -> Option<usize> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        let mut leader = None;
        let mut serving = 0;
        for (i, m) in members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            match mode(m).await.as_deref() {
                Some("leader") => {
                    leader = Some(i);
                    serving += 1;
                }
                Some(_) => serving += 1,
                None => {}
            }
        }
        let running = members.iter().filter(|m| m.child.is_some()).count();
        if leader.is_some() && serving == running {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn client(connect: &str) -> Result<Client, zk::client::Error> {
    Client::builder()
        .connect_string(connect)
        .session_timeout(Duration::from_secs(6))
        .connection_timeout(Duration::from_secs(5))
        .retry_policy(RetryNTimes::new(50, Duration::from_millis(20)))
        .build()
}

/// Acknowledged writes with when they were acknowledged.
type Acks = Arc<Mutex<Vec<(Instant, String)>>>;

async fn writer(client: Client, acks: Acks, stop: Arc<std::sync::atomic::AtomicBool>) {
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let path = format!("/failover/w-{i:08}");
        // Idempotent: a create retried after a lost reply finds its own node.
        if client.create(&path).idempotent().await.is_ok() {
            if let Ok(mut acks) = acks.lock() {
                acks.push((Instant::now(), path));
            }
        }
        i += 1;
    }
}

struct Round {
    gap: Duration,
    acknowledged: usize,
}

async fn round(args: &Args, launcher: &Launcher) -> Result<Round, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut members = ensemble(dir.path(), args.tick_time).map_err(|e| e.to_string())?;
    for m in &mut members {
        m.start(launcher)
            .map_err(|e| format!("starting a member: {e}"))?;
    }
    let leader = wait_for_leader(&members, Duration::from_secs(20))
        .await
        .ok_or("no leader within 20 s")?;
    let connect: Vec<String> = members.iter().map(Member::connect_string).collect();
    let client = client(&connect.join(",")).map_err(|e| e.to_string())?;
    client
        .block_until_connected(Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    client
        .create("/failover")
        .idempotent()
        .await
        .map_err(|e| e.to_string())?;
    let acks: Acks = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(writer(client.clone(), acks.clone(), stop.clone())))
        .collect();
    let write_for = Duration::from_secs_f64(args.write_seconds);
    tokio::time::sleep(write_for).await;

    members[leader].kill();
    let killed_at = Instant::now();
    let resumed_at = loop {
        let first_after = acks
            .lock()
            .ok()
            .and_then(|a| a.iter().map(|(t, _)| *t).find(|t| *t > killed_at));
        if let Some(t) = first_after {
            break t;
        }
        if killed_at.elapsed() > Duration::from_secs(30) {
            return Err("writes did not resume within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    tokio::time::sleep(write_for).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    let _ = client.close().await;

    members[leader]
        .start(launcher)
        .map_err(|e| format!("restarting: {e}"))?;
    wait_for_leader(&members, Duration::from_secs(20))
        .await
        .ok_or("the restarted member did not rejoin within 20 s")?;
    let acknowledged: Vec<String> = acks
        .lock()
        .map_err(|_| "poisoned")?
        .iter()
        .map(|(_, p)| p.trim_start_matches("/failover/").to_owned())
        .collect();
    for m in &members {
        let reader = client_for(m).await?;
        reader.sync("/failover").await.map_err(|e| e.to_string())?;
        let kids: std::collections::HashSet<String> = reader
            .get_children("/failover")
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        if let Some(missing) = acknowledged.iter().find(|p| !kids.contains(*p)) {
            return Err(format!(
                "member {} lacks acknowledged write {missing}",
                m.id
            ));
        }
        let _ = reader.close().await;
    }
    Ok(Round {
        gap: resumed_at - killed_at,
        acknowledged: acknowledged.len(),
    })
}

async fn client_for(member: &Member) -> Result<Client, String> {
    let c = client(&member.connect_string()).map_err(|e| e.to_string())?;
    c.block_until_connected(Duration::from_secs(10))
        .await
        .map_err(|e| format!("member {}: {e}", member.id))?;
    Ok(c)
}

fn default_server_bin() -> PathBuf {
    // target/<profile>/examples/failover → target/<profile>/zk-server
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("zk-server")))
        .unwrap_or_else(|| PathBuf::from("zk-server"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let launcher = if args.apache {
        Launcher::Apache
    } else {
        let bin = args.server_bin.clone().unwrap_or_else(default_server_bin);
        if !bin.exists() {
            eprintln!(
                "no zk-server binary at {} (build it: cargo build --release -p zk-server --bin zk-server)",
                bin.display()
            );
            return ExitCode::from(2);
        }
        Launcher::ZkServer(bin)
    };
    let mut gaps = Vec::new();
    for n in 1..=args.rounds {
        match round(&args, &launcher).await {
            Ok(r) => {
                println!(
                    "round {n}: writes resumed {} ms after the leader's SIGKILL; {} acknowledged writes on all 3 members",
                    r.gap.as_millis(),
                    r.acknowledged
                );
                gaps.push(r.gap);
            }
            Err(e) => {
                eprintln!("round {n}: FAILED: {e}");
                return ExitCode::from(1);
            }
        }
    }
    gaps.sort();
    let at = |q: f64| gaps[((gaps.len() - 1) as f64 * q).round() as usize].as_millis();
    println!(
        "RESULT failover server={} rounds={} tick_ms={} gap_ms median={} p95={} max={} within_2s={}/{}",
        if args.apache { "apache" } else { "zk-server" },
        gaps.len(),
        args.tick_time,
        at(0.5),
        at(0.95),
        at(1.0),
        gaps.iter()
            .filter(|g| **g <= Duration::from_secs(2))
            .count(),
        gaps.len()
    );
    ExitCode::SUCCESS
}
