//! Hosts on one machine: a network namespace per host, joined to the machine by a veth pair
//! (`10.S.i.2` inside host `i`, `10.S.i.1` on the machine's end), and the shared services bound
//! to the machine's end of host 1's pair, which every host reaches through its default route.
//! A process in a host reaches neither the machine's loopback (where the other tests' services
//! listen) nor the other hosts, only what listens on the machine's side of the links. Needs root
//! (CI runs as root).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// Runs `ip args…`; panics with its error when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` network namespaces, removed on drop.
pub(crate) struct Hosts {
    tag: String,
    subnet: u8,
    n: usize,
}

impl Hosts {
    /// Creates hosts 1 to `n`.
    pub(crate) fn create(n: usize) -> Hosts {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        assert!(root, "network namespaces need root (CI runs as root)");
        let tag = format!("dss{:04x}", rand_u16());
        let subnet = 100 + (rand_u16() % 150) as u8;
        let hosts = Hosts { tag, subnet, n: 0 };
        let mut hosts = hosts;
        for i in 1..=n {
            let (ns, outer, inner) = hosts.names(i);
            ip(&["netns", "add", &ns]);
            hosts.n = i;
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            ip(&["link", "set", &inner, "netns", &ns]);
            ip(&[
                "addr",
                "add",
                &format!("10.{}.{i}.1/24", hosts.subnet),
                "dev",
                &outer,
            ]);
            ip(&["link", "set", &outer, "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                ip(&all);
            };
            inside(&[
                "addr",
                "add",
                &format!("10.{}.{i}.2/24", hosts.subnet),
                "dev",
                &inner,
            ]);
            inside(&["link", "set", &inner, "up"]);
            inside(&["link", "set", "lo", "up"]);
            inside(&[
                "route",
                "add",
                "default",
                "via",
                &format!("10.{}.{i}.1", hosts.subnet),
            ]);
        }
        hosts
    }

    /// Host `i`'s namespace and the two ends of its veth pair.
    fn names(&self, i: usize) -> (String, String, String) {
        (
            format!("{}h{i}", self.tag),
            format!("{}v{i}", self.tag),
            format!("{}p{i}", self.tag),
        )
    }

    /// The machine's address every host reaches (where the shared services listen).
    pub(crate) fn services_address(&self) -> String {
        format!("10.{}.1.1", self.subnet)
    }

    /// Host `i`'s address.
    pub(crate) fn address(&self, i: usize) -> String {
        format!("10.{}.{i}.2", self.subnet)
    }

    /// `program` to run inside host `i`.
    pub(crate) fn command(&self, i: usize, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names(i).0]).arg(program);
        c
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 1..=self.n {
            let (ns, outer, _) = self.names(i);
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            let _ = Command::new("ip").args(["link", "del", &outer]).output();
        }
    }
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ (std::process::id() << 7)) as u16
}

/// The shared services (moto, PostgreSQL, osmem-server, an SMTP sink writing a Maildir), started
/// by `infra/local/services.sh` on `address`; stopped when dropped.
pub(crate) struct Services {
    child: Child,
    stdin: Option<ChildStdin>,
    /// moto's URL.
    pub(crate) moto: String,
    /// The PostgreSQL server's URL (its `postgres` database).
    pub(crate) postgres: String,
    /// osmem-server's URL.
    pub(crate) search: String,
    /// The SMTP port.
    pub(crate) smtp_port: String,
    /// Where the SMTP sink writes.
    pub(crate) maildir: String,
}

impl Services {
    pub(crate) fn start(address: &str) -> Services {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(
                "set -e; source infra/local/services.sh; start_moto; start_postgres; start_osmem; start_smtp; \
                 echo \"moto=$MOTO_URL\"; echo \"postgres=$PG_URL\"; echo \"search=$OSMEM_URL\"; \
                 echo \"smtp=$SMTP_PORT\"; echo \"maildir=$SMTP_MAILDIR\"; echo ready; read -r _",
            )
            .current_dir(root)
            .env("DSS_SERVICE_HOST", address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the services");
        let stdin = child.stdin.take();
        let mut found = std::collections::HashMap::new();
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        for line in lines.map_while(Result::ok) {
            if line == "ready" {
                break;
            }
            if let Some((k, v)) = line.split_once('=') {
                found.insert(k.to_string(), v.to_string());
            }
        }
        let get = |k: &str| {
            found
                .get(k)
                .cloned()
                .unwrap_or_else(|| panic!("the services did not start ({k} missing)"))
        };
        Services {
            moto: get("moto"),
            postgres: get("postgres"),
            search: get("search"),
            smtp_port: get("smtp"),
            maildir: get("maildir"),
            child,
            stdin,
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        // End of input ends the script; its exit trap stops the servers.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
