//! Mutual TLS between nodes (feature `tls`): a pool and a pipe over `tls/` endpoints, and peers
//! whose certificates the cluster's authority did not sign refused in both directions. The
//! certificates are made for each test by the `openssl` command line, in a temporary directory.
#![cfg(feature = "tls")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use ipc_cluster::{ClusterPool, Node, NodeError, PipeOpenError, ServeOptions, TlsFiles};
use ipc_testkit::{Role, Watchdog, assert_no_tagged_processes, unique};

/// How long a refused peer is given to meet the other end: zenoh retries a refused connection
/// in the background, so a refusal shows as no peer within the wait.
const REFUSED_WAIT: Duration = Duration::from_secs(3);

fn square(x: u64) -> u64 {
    x * x
}

/// A throwaway public key infrastructure: a certificate authority, a node certificate it
/// signed, and a rogue one signed by another authority; removed when dropped.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn generate() -> Self {
        let dir = std::env::temp_dir().join(unique("ipc-cluster-tls"));
        std::fs::create_dir(&dir).unwrap();
        let pki = Self { dir };
        std::fs::write(
            pki.path("node.ext"),
            "basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth, clientAuth\n\
             subjectAltName = DNS:localhost, IP:127.0.0.1\n",
        )
        .unwrap();
        for (ca, node) in [("ca", "node"), ("rogue-ca", "rogue")] {
            let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
            pki.openssl(&format!(
                "req -x509 {ec} -days 2 -subj /CN=ipc-cluster-test-{ca} \
                 -addext basicConstraints=critical,CA:TRUE \
                 -addext keyUsage=critical,keyCertSign,cRLSign -keyout {ca}.key -out {ca}.pem"
            ));
            pki.openssl(&format!(
                "req -new {ec} -subj /CN=localhost -keyout {node}.key -out {node}.csr"
            ));
            let serial = ipc_core::random_u128() as u64 | 1;
            pki.openssl(&format!(
                "x509 -req -in {node}.csr -CA {ca}.pem -CAkey {ca}.key -set_serial 0x{serial:x} \
                 -days 2 -extfile node.ext -out {node}.pem"
            ));
        }
        pki
    }

    /// Runs `openssl` with `args` (split at whitespace) in the directory.
    fn openssl(&self, args: &str) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(&self.dir)
            .output()
            .expect("the tls tests need the `openssl` command (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The files of `who` (`node`, signed by the authority, or `rogue`, signed by another);
    /// both trust the cluster's authority.
    fn files(&self, who: &str) -> TlsFiles {
        files_in(&self.dir, who)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn files_in(dir: &Path, who: &str) -> TlsFiles {
    TlsFiles {
        root_ca: dir.join("ca.pem"),
        certificate: dir.join(format!("{who}.pem")),
        private_key: dir.join(format!("{who}.key")),
    }
}

/// A node listening on a fresh `tls/127.0.0.1` port with `files`; the endpoint.
fn tls_listener(files: TlsFiles) -> (Node, String) {
    let endpoint = format!("tls/127.0.0.1:{}", free_port());
    let node = Node::builder()
        .listen(&endpoint)
        .tls(files)
        .open()
        .expect("a TLS listener");
    (node, endpoint)
}

fn tls_client(endpoint: &str, files: TlsFiles) -> Node {
    Node::builder()
        .connect(endpoint)
        .tls(files)
        .open()
        .expect("a TLS client")
}

#[test]
#[ignore = "a worker host over TLS, started by the tests of this file"]
fn tls_host_role() {
    let Some(spec) = child_spec() else { return };
    let dir = PathBuf::from(spec_get(&spec, "dir").unwrap());
    let node = tls_client(
        &spec_get(&spec, "connect").unwrap(),
        files_in(&dir, &spec_get(&spec, "who").unwrap()),
    );
    let end = ServeOptions::new()
        .job(spec_get(&spec, "job").unwrap())
        .name(spec_get(&spec, "name").unwrap())
        .wait_master(Duration::from_secs(20))
        .serve(&node, 1);
    let code = match end {
        Ok(end) => {
            println!("SERVE-END {end:?}");
            0
        }
        Err(e) => {
            println!("SERVE-ERROR {e}");
            3
        }
    };
    drop(node);
    std::process::exit(code);
}

fn spawn_tls_host(endpoint: &str, job: &str, pki: &Pki, who: &str, tag: &str) -> Role {
    let dir = pki.dir.to_str().expect("a UTF-8 temporary directory");
    spawn_role(
        "tls_host_role",
        &format!("connect={endpoint};job={job};name={who};dir={dir};who={who}"),
        tag,
    )
}

#[test]
fn a_pool_and_a_pipe_over_mutual_tls() {
    let _w = Watchdog::arm(Duration::from_secs(120), "pool and pipe over TLS");
    let pki = Pki::generate();
    let tag = unique("tag");
    let job = unique("job");
    let (master, endpoint) = tls_listener(pki.files("node"));
    let mut host = spawn_tls_host(&endpoint, &job, &pki, "node", &tag);
    let mut pool = ClusterPool::builder()
        .job(&job)
        .min_hosts(1)
        .build(&master)
        .expect("the host joins over TLS");
    let want: Vec<u64> = (0..500u64).map(|x| x * x).collect();
    // On failure, say how the host ended (it prints `SERVE-END`/`SERVE-ERROR`) or that it
    // still runs: a `HostLost` alone does not tell which.
    let got = pool
        .map(square, 0..500u64)
        .unwrap_or_else(|e| panic!("{e:?}; {}", host.report(Duration::from_secs(2))));
    assert_eq!(got, want);
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    assert_eq!(pool.hosts()[0].name, "node");

    let peer = tls_client(&endpoint, pki.files("node"));
    let [a, b] = pipe_between(&master, &peer, &unique("p"), Duration::from_secs(20));
    let (a, b) = (a.unwrap(), b.unwrap());
    for i in 0..100u32 {
        a.send(&i).unwrap();
    }
    for i in 0..100u32 {
        let got = b.recv_timeout::<u32>(Duration::from_secs(20));
        assert_eq!(got.unwrap_or_else(|e| panic!("message {i}: {e}")), i);
    }
    let big: Vec<u8> = (0..1 << 20).map(|k: u32| (k * 7) as u8).collect();
    b.send(&big).unwrap();
    assert!(a.recv_timeout::<Vec<u8>>(Duration::from_secs(20)).unwrap() == big);

    pool.join();
    assert!(host.wait(Duration::from_secs(30)).success());
    assert_no_tagged_processes(&tag);
}

#[test]
fn peers_whose_certificate_the_authority_did_not_sign_are_refused() {
    let _w = Watchdog::arm(Duration::from_secs(120), "rogue TLS peers");
    let pki = Pki::generate();
    let tag = unique("tag");
    let job = unique("job");
    let (master, endpoint) = tls_listener(pki.files("node"));

    // A rogue host (it trusts the authority, but its own certificate is not the authority's)
    // never joins: the master refuses its certificate at the handshake.
    let pool = ClusterPool::builder().job(&job).build(&master).unwrap();
    let rogue_host = spawn_tls_host(&endpoint, &job, &pki, "rogue", &tag);
    assert!(pool.wait_for_hosts(1, REFUSED_WAIT).is_err());

    // A rogue client cannot reach the master's node either.
    let rogue = tls_client(&endpoint, pki.files("rogue"));
    for end in pipe_between(&master, &rogue, &unique("p"), REFUSED_WAIT) {
        assert!(matches!(end, Err(PipeOpenError::NoPeer { .. })), "{end:?}");
    }

    // A rogue listener: a node of the cluster refuses its certificate when connecting to it.
    let (rogue_listener, rogue_endpoint) = tls_listener(pki.files("rogue"));
    let honest = tls_client(&rogue_endpoint, pki.files("node"));
    for end in pipe_between(&rogue_listener, &honest, &unique("p"), REFUSED_WAIT) {
        assert!(matches!(end, Err(PipeOpenError::NoPeer { .. })), "{end:?}");
    }

    // The same master still takes a peer with a certificate of its authority.
    let peer = tls_client(&endpoint, pki.files("node"));
    let [a, b] = pipe_between(&master, &peer, &unique("p"), Duration::from_secs(20));
    a.unwrap().send(&"hello").unwrap();
    assert_eq!(b.unwrap().recv::<String>().unwrap(), "hello");
    drop(rogue_host);
    assert_no_tagged_processes(&tag);
}

#[test]
fn unreadable_or_incomplete_tls_files_are_refused_at_open() {
    let pki = Pki::generate();
    let mut files = pki.files("node");
    files.private_key = pki.path("missing.key");
    match Node::builder().tls(files).open() {
        Err(NodeError::TlsFile { path, .. }) => assert_eq!(path, pki.path("missing.key")),
        other => panic!("{other:?}"),
    }
    let args = ["prog", "--tls-root-ca", "ca.pem"].map(String::from);
    assert!(matches!(
        Node::builder_from_args(args).open(),
        Err(NodeError::TlsIncomplete)
    ));
}
