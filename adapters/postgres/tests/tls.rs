//! TLS to the metadata database: a PostgreSQL server of the test's own that accepts TLS
//! connections only, with a certificate from a CA of the test's own. With that CA in
//! `metadata.ca_file` the adapter connects and verifies the server; without it the server's
//! certificate is refused; a plain connection is refused by the server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use dss_config::MetadataConfig;
use dss_postgres::PgMetadata;

fn run(program: &str, args: &[&str], dir: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

/// A TLS-only server, run as the `postgres` system user (the server refuses root).
struct TlsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        // `runuser` does not pass its SIGKILL on: stop the postmaster itself (its pid is the
        // first line of postmaster.pid), then reap `runuser`.
        let pid_file = self._dir.path().join("data/postmaster.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
        {
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin() -> PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed in /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .max()
        .expect("a PostgreSQL version")
}

fn start() -> (TlsServer, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    dss_conformance::tls::TestCa::new().write(dir.path());
    run("chmod", &["755", "."], dir.path());
    run("chown", &["-R", "postgres", "."], dir.path());
    run("chmod", &["600", "server.key"], dir.path());
    let data = dir.path().join("data");
    let as_postgres = |program: PathBuf| {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    };
    let out = as_postgres(bin().join("initdb"))
        .args(["-A", "trust", "-U", "dss", "--no-sync", "-D"])
        .arg(&data)
        .output()
        .expect("initdb");
    assert!(out.status.success(), "initdb: {out:?}");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all all reject\n",
    )
    .expect("pg_hba.conf");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let d = dir.path().display();
    let child = as_postgres(bin().join("postgres"))
        .arg("-D")
        .arg(&data)
        .args([
            "-p",
            &port.to_string(),
            "-k",
            "/tmp",
            "-c",
            "listen_addresses=127.0.0.1",
        ])
        .args([
            "-c",
            "ssl=on",
            "-c",
            &format!("ssl_cert_file={d}/server.pem"),
        ])
        .args([
            "-c",
            &format!("ssl_key_file={d}/server.key"),
            "-c",
            "fsync=off",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("postgres");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new(bin().join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "postgres did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ca = dir.path().join("ca.pem");
    (
        TlsServer {
            child,
            port,
            _dir: dir,
        },
        ca,
    )
}

#[tokio::test]
#[ignore = "needs root and PostgreSQL; run by infra/local/test.sh"]
async fn the_server_is_verified_with_the_configured_ca_and_plain_connections_fail() {
    let (server, ca) = start();
    let url = |mode: &str| {
        Some(format!(
            "postgres://dss@127.0.0.1:{}/postgres?sslmode={mode}",
            server.port
        ))
    };
    let cfg = |mode: &str, ca_file: Option<PathBuf>| MetadataConfig {
        url: url(mode),
        ca_file,
        connect_timeout_ms: 3_000,
        ..MetadataConfig::default()
    };
    let m = PgMetadata::connect(&cfg("require", Some(ca.clone())))
        .await
        .expect("TLS with the configured CA");
    let c = m.pool().get().await.expect("connection");
    let on: bool = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(on, "the session is encrypted");
    drop((c, m));

    let e = PgMetadata::connect(&cfg("require", None))
        .await
        .expect_err("an unknown CA");
    assert!(
        e.to_string().starts_with("metadata.url: cannot reach"),
        "{e}"
    );
    let e = PgMetadata::connect(&cfg("disable", Some(ca)))
        .await
        .expect_err("plain connections are refused");
    assert!(e.to_string().contains("no encryption"), "{e}");
}
