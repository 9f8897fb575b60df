//! Real `redis-server` processes for polycache's test suites: a standalone server, N
//! independent shards and an N-master cluster, on free loopback ports in temp dirs; and,
//! for the fault suites only (they take seconds to start), a cluster whose masters each
//! have a replica, a Sentinel setup (a master, a replica, three sentinels) and a
//! black-holed address ([`BlackHole`]).
//!
//! Cleanup does not depend on destructors running: each server lives under a small `sh`
//! guard that waits on a pipe from this process. When the pipe closes — on `Drop`, on a
//! panic, on exit, even on `kill -9` of the test process — the guard kills the server and
//! removes its directory.
//!
//! Set `POLYCACHE_TEST_REDIS` to the JSON that `polycache-harness` prints to reuse servers
//! that are already running (one harness for every suite of `make test`).

pub mod agent;
#[cfg(feature = "notation")]
pub mod notation;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The variable that points suites at already-running servers.
pub const REUSE_ENV: &str = "POLYCACHE_TEST_REDIS";

type Error = Box<dyn std::error::Error + Send + Sync>;
/// Harness result.
pub type Result<T> = std::result::Result<T, Error>;

/// URLs of a running topology, in the form `polycache` accepts; printed as JSON by the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// `redis://127.0.0.1:<port>`.
    pub standalone: Option<String>,
    /// `redis+shards://127.0.0.1:<a>,127.0.0.1:<b>,…`.
    pub shards: Option<String>,
    /// `redis+cluster://127.0.0.1:<a>,…`.
    pub cluster: Option<String>,
    /// `127.0.0.1:<port>` → pid of every server, so tests can pause or kill one.
    #[serde(default)]
    pub pids: BTreeMap<String, u32>,
    /// `redis+cluster://…` of a cluster whose masters each have a replica
    /// (`--cluster-replicas 1`); every node is a seed. Only when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_replicas: Option<String>,
    /// `redis+sentinel://<s1>,<s2>,<s3>/mymaster`: three sentinels watching a master with
    /// one replica. Only when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<String>,
    /// `redis://127.0.0.1:<port>` of a [`BlackHole`]: connects to it hang. Only when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blackhole: Option<String>,
}

/// The master name the harness's sentinels monitor.
pub const SENTINEL_MASTER: &str = "mymaster";

/// One `redis-server` under its cleanup guard.
#[derive(Debug)]
pub struct Server {
    port: u16,
    tls: bool,
    pid: u32,
    dir: PathBuf,
    guard: Child,
    guard_stdin: Option<ChildStdin>,
}

impl Server {
    /// Starts a server with extra `redis-server` arguments and waits until it answers PING.
    ///
    /// # Errors
    /// When `redis-server` is missing or does not come up within 10 s.
    pub fn start(extra_args: &[&str]) -> Result<Server> {
        Server::start_with(extra_args, false)
    }

    /// Starts a server that speaks only TLS on its port, with a fresh self-signed
    /// certificate (clients connect with `rediss://…/#insecure`; see [`Server::url`]).
    ///
    /// # Errors
    /// As [`Server::start`], or when `openssl` cannot make the certificate.
    pub fn start_tls() -> Result<Server> {
        Server::start_with(&[], true)
    }

    /// Starts a sentinel (`redis-server <conf> --sentinel`) that monitors the master at
    /// `master` (`127.0.0.1:<port>`) as [`SENTINEL_MASTER`] with a quorum of 2, calling it
    /// down after 1 s without answers.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub fn start_sentinel(master: &str) -> Result<Server> {
        let (host, port) = master.split_once(':').ok_or("master is not host:port")?;
        let conf = format!(
            "sentinel monitor {SENTINEL_MASTER} {host} {port} 2\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
             sentinel failover-timeout {SENTINEL_MASTER} 5000\n\
             sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
        );
        Server::start_configured(&[], false, Some(&conf))
    }

    fn start_with(extra_args: &[&str], tls: bool) -> Result<Server> {
        Server::start_configured(extra_args, tls, None)
    }

    fn start_configured(extra_args: &[&str], tls: bool, sentinel: Option<&str>) -> Result<Server> {
        let mut last_err: Error = "no attempt".into();
        for _ in 0..5 {
            match Server::try_start(free_port()?, extra_args, tls, sentinel) {
                Ok(server) => return Ok(server),
                Err(err) => last_err = err,
            }
        }
        Err(last_err)
    }

    fn try_start(
        port: u16,
        extra_args: &[&str],
        tls: bool,
        sentinel: Option<&str>,
    ) -> Result<Server> {
        let dir =
            std::env::temp_dir().join(format!("polycache-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut args = vec![binary];
        if let Some(conf) = sentinel {
            // A sentinel rewrites its config file, so it gets one of its own, first.
            let path = dir.join("sentinel.conf");
            std::fs::write(&path, conf)?;
            args.extend([path.display().to_string(), "--sentinel".into()]);
        }
        if tls {
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let made = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if !made.success() {
                return Err("openssl could not make a test certificate".into());
            }
            let (cert, key) = (cert.display().to_string(), key.display().to_string());
            for arg in [
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-auth-clients",
            ] {
                args.push(arg.to_owned());
            }
            args.extend(["no".into(), "--tls-cert-file".into(), cert.clone()]);
            args.extend([
                "--tls-key-file".into(),
                key,
                "--tls-ca-cert-file".into(),
                cert,
            ]);
        } else {
            args.extend(["--port".into(), port.to_string()]);
        }
        args.extend([
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--daemonize".into(),
            "no".into(),
        ]);
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        // The guard: start the server, print its pid, wait for our pipe to close, clean up.
        let script = format!(
            "{} >{}/redis.log 2>&1 & pid=$!; echo $pid; read _ignored; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf {}",
            quoted.join(" "),
            shell_quote(&dir.display().to_string()),
            shell_quote(&dir.display().to_string()),
        );
        let mut guard = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let guard_stdin = guard.stdin.take();
        let pid = read_pid(guard.stdout.take())?;
        let server = Server {
            port,
            tls,
            pid,
            dir,
            guard,
            guard_stdin,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(
                    format!("redis-server on port {} did not start: {log}", self.port).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        if !self.tls {
            return command(self.port, &["PING"]).is_ok_and(|reply| reply == "PONG");
        }
        let cli = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
        Command::new(cli)
            .args(["--tls", "--insecure", "-p", &self.port.to_string(), "PING"])
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "PONG")
    }

    /// The server's pid (for `kill -STOP` and the like).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>`, or for a TLS server `rediss://127.0.0.1:<port>/#insecure`
    /// (its certificate is self-signed).
    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://{}/#insecure", self.addr())
        } else {
            format!("redis://{}", self.addr())
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        signal(self.pid, "STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid, "CONT");
    }

    /// Kills the server (SIGKILL): connections break, new ones are refused.
    pub fn kill(&self) {
        signal(self.pid, "KILL");
    }

    /// Sends one command and returns the reply as text (for test setup, not for speed).
    ///
    /// # Errors
    /// On I/O errors or an error reply.
    pub fn command(&self, args: &[&str]) -> Result<String> {
        command(self.port, args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.guard_stdin.take()); // EOF: the guard kills the server and removes its dir
        let _ = self.guard.wait();
    }
}

/// An address that accepts nothing and answers nothing: a loopback listener that never
/// accepts, with a backlog of 0 already filled by connections it holds. The kernel drops
/// every further SYN, so a `connect` to it hangs until the client's own timeout, as with a
/// firewalled or unplugged host.
///
/// Why not a non-routable address such as `10.255.255.1`: on the sandboxes this project is
/// built on, outbound connections go through a proxy that completes the handshake at once,
/// so such an address does not hang (and WASI guests may only use loopback anyway).
#[derive(Debug)]
pub struct BlackHole {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _held: Vec<TcpStream>,
}

impl BlackHole {
    /// Binds a free loopback port and fills its accept queue.
    ///
    /// # Errors
    /// When the port cannot be bound, or the queue does not fill within 64 connections.
    pub fn start() -> Result<BlackHole> {
        use socket2::{Domain, Protocol, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        listener.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        listener.listen(0)?;
        let addr = listener
            .local_addr()?
            .as_socket()
            .ok_or("the listener has no IP address")?;
        let mut held = Vec::new();
        // Connections complete until the queue is full; the first one that times out
        // proves that SYNs are now dropped.
        while held.len() < 64 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => held.push(stream),
                Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                    return Ok(BlackHole {
                        addr,
                        _listener: listener,
                        _held: held,
                    })
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err("the black hole's accept queue did not fill".into())
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

/// What a [`Topology`] starts. The first three are what every suite shares; the others
/// take seconds and exist for the fault suites.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spec {
    /// A standalone server.
    pub standalone: bool,
    /// Independent shard servers.
    pub shards: usize,
    /// Masters of a cluster without replicas (0 for none; Redis needs at least 3).
    pub cluster: usize,
    /// Masters of a cluster where each master has one replica (0 for none, else ≥ 3).
    pub cluster_replicas: usize,
    /// A master, its replica and three sentinels.
    pub sentinel: bool,
    /// A [`BlackHole`].
    pub blackhole: bool,
}

/// Servers of one topology, stopped when dropped.
#[derive(Debug, Default)]
pub struct Topology {
    /// The standalone server.
    pub standalone: Option<Server>,
    /// Independent shard servers.
    pub shards: Vec<Server>,
    /// Cluster masters.
    pub cluster: Vec<Server>,
    /// Nodes of the cluster with replicas, as `redis-cli --cluster create` got them: the
    /// first half start as masters, the second half as their replicas (ask `ROLE` or
    /// `CLUSTER NODES` for the current roles: a failover swaps them).
    pub cluster_replicas: Vec<Server>,
    /// The Sentinel setup's data nodes: the initial master, then its replica.
    pub sentinel_data: Vec<Server>,
    /// The three sentinels.
    pub sentinels: Vec<Server>,
    /// The black-holed address.
    pub blackhole: Option<BlackHole>,
}

impl Topology {
    /// Starts a standalone server (if asked), `shards` independent servers and a cluster of
    /// `cluster_masters` masters (0 for none; Redis needs at least 3).
    ///
    /// # Errors
    /// When a server does not start or the cluster does not become ready.
    pub fn start(standalone: bool, shards: usize, cluster_masters: usize) -> Result<Topology> {
        Topology::start_spec(Spec {
            standalone,
            shards,
            cluster: cluster_masters,
            ..Spec::default()
        })
    }

    /// Starts everything `spec` asks for.
    ///
    /// # Errors
    /// When a server does not start, or a cluster or the sentinels do not become ready.
    pub fn start_spec(spec: Spec) -> Result<Topology> {
        let mut topology = Topology::default();
        if spec.standalone {
            topology.standalone = Some(Server::start(&[])?);
        }
        for _ in 0..spec.shards {
            topology.shards.push(Server::start(&[])?);
        }
        if spec.cluster > 0 {
            topology.cluster = start_cluster(spec.cluster, 0)?;
        }
        if spec.cluster_replicas > 0 {
            topology.cluster_replicas = start_cluster(spec.cluster_replicas, 1)?;
        }
        if spec.sentinel {
            (topology.sentinel_data, topology.sentinels) = start_sentinel()?;
        }
        if spec.blackhole {
            topology.blackhole = Some(BlackHole::start()?);
        }
        Ok(topology)
    }

    /// The URLs of this topology.
    pub fn endpoints(&self) -> Endpoints {
        let list = |servers: &[Server]| {
            servers
                .iter()
                .map(Server::addr)
                .collect::<Vec<_>>()
                .join(",")
        };
        Endpoints {
            standalone: self.standalone.as_ref().map(Server::url),
            shards: (!self.shards.is_empty())
                .then(|| format!("redis+shards://{}", list(&self.shards))),
            cluster: (!self.cluster.is_empty())
                .then(|| format!("redis+cluster://{}", list(&self.cluster))),
            pids: self
                .standalone
                .iter()
                .chain(&self.shards)
                .chain(&self.cluster)
                .chain(&self.cluster_replicas)
                .chain(&self.sentinel_data)
                .chain(&self.sentinels)
                .map(|s| (s.addr(), s.pid))
                .collect(),
            cluster_replicas: (!self.cluster_replicas.is_empty())
                .then(|| format!("redis+cluster://{}", list(&self.cluster_replicas))),
            sentinel: (!self.sentinels.is_empty()).then(|| {
                format!(
                    "redis+sentinel://{}/{SENTINEL_MASTER}",
                    list(&self.sentinels)
                )
            }),
            blackhole: self.blackhole.as_ref().map(BlackHole::url),
        }
    }
}

/// The endpoints every test in this process shares: from [`REUSE_ENV`] when set, otherwise
/// a standalone server, 3 shards and a 3-master cluster started once (and cleaned up when
/// the process exits).
///
/// # Panics
/// When the servers cannot be started; tests cannot run without them.
pub fn shared() -> &'static Endpoints {
    static SHARED: OnceLock<Endpoints> = OnceLock::new();
    static SERVERS: OnceLock<Topology> = OnceLock::new();
    SHARED.get_or_init(|| {
        if let Ok(json) = std::env::var(REUSE_ENV) {
            return serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{REUSE_ENV} is not harness JSON: {e}"));
        }
        let topology = SERVERS.get_or_init(|| {
            Topology::start(true, 3, 3).unwrap_or_else(|e| panic!("starting redis: {e}"))
        });
        topology.endpoints()
    })
}

/// `masters` masters, each with `replicas` replicas. With replicas, a node is called failed
/// after 1 s (2 s without: nothing to fail over to).
fn start_cluster(masters: usize, replicas: usize) -> Result<Vec<Server>> {
    let node_timeout = if replicas > 0 { "1000" } else { "2000" };
    let servers = (0..masters * (1 + replicas))
        .map(|_| {
            Server::start(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                node_timeout,
            ])
        })
        .collect::<Result<Vec<_>>>()?;
    let cli = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
    let mut create = Command::new(cli);
    create.args(["--cluster", "create"]);
    create.args(servers.iter().map(Server::addr));
    create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
    let output = create.stdin(Stdio::null()).output()?;
    if !output.status.success() {
        return Err(format!(
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for server in &servers {
        loop {
            let info = server.command(&["CLUSTER", "INFO"]).unwrap_or_default();
            if info.contains("cluster_state:ok") {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("cluster not ready: {info}").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Every replica has finished its first sync, so a failover has data to promote.
    for server in &servers {
        wait_until(deadline, || {
            let info = server.command(&["INFO", "replication"]).unwrap_or_default();
            info.contains("role:master") || info.contains("master_link_status:up")
        })?;
    }
    Ok(servers)
}

/// A master, its replica (in sync) and three sentinels that know both and each other.
fn start_sentinel() -> Result<(Vec<Server>, Vec<Server>)> {
    let master = Server::start(&[])?;
    let port = master.port().to_string();
    let replica = Server::start(&["--replicaof", "127.0.0.1", &port])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    wait_until(deadline, || {
        let info = replica
            .command(&["INFO", "replication"])
            .unwrap_or_default();
        info.contains("master_link_status:up")
    })?;
    let sentinels = (0..3)
        .map(|_| Server::start_sentinel(&master.addr()))
        .collect::<Result<Vec<_>>>()?;
    // Sentinels find the replica through the master and each other through hello
    // messages (every 2 s); a failover needs both.
    for sentinel in &sentinels {
        wait_until(deadline, || {
            let info = sentinel.command(&["INFO", "sentinel"]).unwrap_or_default();
            info.contains("status=ok") && info.contains("slaves=1") && info.contains("sentinels=3")
        })?;
    }
    Ok((vec![master, replica], sentinels))
}

/// Polls `ready` every 50 ms until it holds or `deadline` passes.
fn wait_until(deadline: Instant, mut ready: impl FnMut() -> bool) -> Result<()> {
    while !ready() {
        if Instant::now() > deadline {
            return Err("servers not ready in time".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A free port whose cluster-bus twin (port + 10000) is free too.
fn free_port() -> Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port pair found".into())
}

fn read_pid(stdout: Option<ChildStdout>) -> Result<u32> {
    let stdout = stdout.ok_or("guard has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    Ok(line.trim().parse()?)
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A minimal RESP exchange for setup commands (PING, CLUSTER INFO, FLUSHALL).
fn command(port: u16, args: &[&str]) -> Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end();
    match line.as_bytes().first() {
        Some(b'+') | Some(b':') => Ok(line[1..].to_owned()),
        Some(b'-') => Err(line[1..].to_owned().into()),
        Some(b'$') => {
            let len: i64 = line[1..].parse()?;
            if len < 0 {
                return Ok(String::new());
            }
            let mut body = vec![0; len as usize + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len as usize);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => Err(format!("unexpected reply {line:?}").into()),
    }
}
