//! PostgreSQL for the end-to-end tests: a new database on the server the test script started,
//! or a server of the test's own that it can stop and start again.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A new, empty database on the server `admin` names; its URL.
pub(crate) async fn new_database_on(admin: &str) -> String {
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .expect("connect to the PostgreSQL server");
    tokio::spawn(conn);
    let name = format!("dss_e2e_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let mut url = url::Url::parse(admin).expect("a URL");
    url.set_path(&name);
    url.to_string()
}

/// A new, empty database on the PostgreSQL server the test script started; its URL.
pub(crate) async fn new_database() -> String {
    let admin = std::env::var("DSS_TEST_PG_URL")
        .expect("DSS_TEST_PG_URL names a PostgreSQL server (infra/local/test.sh starts one)");
    new_database_on(&admin).await
}

/// A PostgreSQL server of one test, on a port of its own; stopped on drop.
pub(crate) struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// Runs the server's programs as the `postgres` system user when this is root (the server
/// refuses root).
fn as_server_user(program: &std::path::Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    match root {
        true => {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        }
        false => Command::new(program),
    }
}

impl PgServer {
    /// Initialises a cluster (trusting the `dss` role) and starts it.
    pub(crate) fn start() -> PgServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed in /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .max()
            .expect("a PostgreSQL version");
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
        let _ = Command::new("chown").args(["postgres"]).arg(&data).status();
        let out = as_server_user(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "dss", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {out:?}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut s = PgServer {
            bin,
            data,
            port,
            child: None,
            _dir: dir,
        };
        s.resume();
        s
    }

    /// The URL of its `postgres` database.
    pub(crate) fn url(&self) -> String {
        format!("postgres://dss@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub(crate) fn resume(&mut self) {
        let child = as_server_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-k", "/tmp"])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server at once (its "fast" shutdown: clients are disconnected).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = as_server_user(&self.bin.join("pg_ctl"))
                .args(["stop", "-m", "fast", "-D"])
                .arg(&self.data)
                .output();
            let _ = child.wait();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
