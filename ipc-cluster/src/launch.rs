//! The launch mode, like `python -m mpi4py.futures`: one program, master or worker host by its
//! command line.
//!
//! ```text
//! prog --listen tcp/0.0.0.0:7447                                  # the master (your main)
//! prog --cluster-worker --connect tcp/MASTER:7447 --processes 8   # a worker host
//! ```
//!
//! [`init`], called first in `main`, takes a `--cluster-worker` run over: it serves the master
//! and exits, so `main`'s own code runs only in the master. It runs from `main`, not from a
//! constructor before it as `ipc_core`'s child roles do, because a host starts zenoh's runtime
//! and threads, which must not run before every library's constructors have (their order is
//! unspecified).

use std::time::Duration;

/// The flag that makes a run of the program a worker host.
pub const WORKER_FLAG: &str = "--cluster-worker";

/// A worker host's command line.
#[cfg_attr(not(feature = "zenoh"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerArgs {
    pub(crate) connect: Vec<String>,
    pub(crate) listen: Vec<String>,
    pub(crate) processes: Option<usize>,
    pub(crate) job: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) wait_master: Option<Duration>,
    pub(crate) lease: Option<Duration>,
    pub(crate) multicast: bool,
    pub(crate) tls_root_ca: Option<String>,
    pub(crate) tls_certificate: Option<String>,
    pub(crate) tls_private_key: Option<String>,
}

/// `Some(usage error)` or the parsed flags; arguments that are not ours are left to the
/// program.
#[cfg_attr(not(feature = "zenoh"), allow(dead_code))]
pub(crate) fn parse(args: &[String]) -> Result<WorkerArgs, String> {
    let mut w = WorkerArgs {
        connect: Vec::new(),
        listen: Vec::new(),
        processes: None,
        job: None,
        name: None,
        wait_master: None,
        lease: None,
        multicast: false,
        tls_root_ca: None,
        tls_certificate: None,
        tls_private_key: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |flag: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} needs a whole number, not {v:?}"))
        };
        match a.as_str() {
            "--connect" => w.connect.push(value("--connect")?),
            "--listen" => w.listen.push(value("--listen")?),
            "--processes" => {
                let n = number("--processes", value("--processes")?)?;
                w.processes = Some(usize::try_from(n).map_err(|_| "--processes is too large")?);
            }
            "--job" => w.job = Some(value("--job")?),
            "--name" => w.name = Some(value("--name")?),
            "--wait-master" => {
                let s = number("--wait-master", value("--wait-master")?)?;
                w.wait_master = Some(Duration::from_secs(s));
            }
            "--lease-ms" => {
                let ms = number("--lease-ms", value("--lease-ms")?)?;
                w.lease = Some(Duration::from_millis(ms));
            }
            "--multicast" => w.multicast = true,
            "--tls-root-ca" => w.tls_root_ca = Some(value("--tls-root-ca")?),
            "--tls-certificate" => w.tls_certificate = Some(value("--tls-certificate")?),
            "--tls-private-key" => w.tls_private_key = Some(value("--tls-private-key")?),
            _ => {}
        }
    }
    if w.connect.is_empty() && !w.multicast {
        return Err("a worker host needs --connect ENDPOINT (the master's), or --multicast".into());
    }
    let tls = [&w.tls_root_ca, &w.tls_certificate, &w.tls_private_key];
    if tls.iter().any(|f| f.is_some()) && !tls.iter().all(|f| f.is_some()) {
        return Err(
            "TLS needs all three of --tls-root-ca, --tls-certificate and --tls-private-key".into(),
        );
    }
    Ok(w)
}

const USAGE: &str = "usage: PROGRAM --cluster-worker --connect tcp/MASTER:7447 [--processes N] \
                     [--job NAME] [--name NAME] [--wait-master SECONDS] [--lease-ms MS] \
                     [--listen ENDPOINT] [--multicast] [--tls-root-ca FILE --tls-certificate FILE \
                     --tls-private-key FILE]";

/// Call first in `main`. Prepares `ipc_core` ([`ipc_core::init`]), then, if the command line
/// holds `--cluster-worker`, serves as a worker host and exits the process: status 0 when the
/// master shut the pool down or vanished, 1 when serving failed (refused, no master), 2 on a
/// usage error. Otherwise it returns and `main` goes on as the master or a plain program.
///
/// Worker flags: `--connect ENDPOINT` (repeatable; the master's), `--processes N` (default: the
/// CPU count), `--job NAME`, `--name NAME`, `--wait-master SECONDS` (default 30),
/// `--lease-ms MS`, `--listen ENDPOINT`, `--multicast`, and with the feature `tls`
/// `--tls-root-ca FILE --tls-certificate FILE --tls-private-key FILE` (mutual TLS on `tls/`
/// endpoints, see `NodeBuilder::tls`). Other arguments are ignored.
///
/// ```no_run
/// ipc_cluster::init(); // first in `main`; then the master's code
/// ```
pub fn init() {
    ipc_core::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == WORKER_FLAG) {
        return;
    }
    std::process::exit(run_worker(&args));
}

#[cfg(feature = "zenoh")]
fn run_worker(args: &[String]) -> i32 {
    use crate::{Node, ServeEnd, ServeOptions};

    let w = match parse(args) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ipc-cluster: {e}\n{USAGE}");
            return 2;
        }
    };
    let mut b = Node::builder().multicast_scouting(w.multicast);
    for e in &w.connect {
        b = b.connect(e.clone());
    }
    for e in &w.listen {
        b = b.listen(e.clone());
    }
    if let Some(l) = w.lease {
        b = b.lease(l);
    }
    #[cfg(feature = "tls")]
    {
        b = b.tls_parts(
            w.tls_root_ca.map(Into::into),
            w.tls_certificate.map(Into::into),
            w.tls_private_key.map(Into::into),
        );
    }
    #[cfg(not(feature = "tls"))]
    if w.tls_root_ca.is_some() {
        eprintln!(
            "ipc-cluster: this program was built without the `tls` feature of ipc-cluster; it \
             cannot use --tls-root-ca, --tls-certificate, --tls-private-key\n{USAGE}"
        );
        return 2;
    }
    let node = match b.open() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("ipc-cluster worker: {}", error_chain(&e));
            return 1;
        }
    };
    let mut opts = ServeOptions::new();
    if let Some(j) = w.job {
        opts = opts.job(j);
    }
    if let Some(n) = w.name {
        opts = opts.name(n);
    }
    if let Some(d) = w.wait_master {
        opts = opts.wait_master(d);
    }
    let processes = w.processes.unwrap_or_else(ipc_core::cpu_count);
    let code = match opts.serve(&node, processes) {
        Ok(ServeEnd::Shutdown) => 0,
        Ok(ServeEnd::MasterGone) => {
            eprintln!("ipc-cluster worker: the master is gone; stopping");
            0
        }
        Err(e) => {
            eprintln!("ipc-cluster worker: {}", error_chain(&e));
            1
        }
    };
    drop(node);
    code
}

/// An error and its sources, on one line.
#[cfg(feature = "zenoh")]
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(not(feature = "zenoh"))]
fn run_worker(_args: &[String]) -> i32 {
    eprintln!(
        "ipc-cluster: this program was built without a cluster backend (enable the `zenoh` \
         feature of ipc-cluster); it cannot serve as a worker host\n{USAGE}"
    );
    2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_worker_flags_and_ignores_the_rest() {
        let w = parse(&args(
            "--cluster-worker input.txt --connect tcp/10.0.0.1:7447 --processes 8 --job sim \
             --lease-ms 500 --wait-master 5 -v",
        ))
        .unwrap();
        assert_eq!(w.connect, ["tcp/10.0.0.1:7447"]);
        assert_eq!(w.processes, Some(8));
        assert_eq!(w.job.as_deref(), Some("sim"));
        assert_eq!(w.lease, Some(Duration::from_millis(500)));
        assert_eq!(w.wait_master, Some(Duration::from_secs(5)));
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&args("--cluster-worker")).is_err());
        assert!(parse(&args("--cluster-worker --connect")).is_err());
        assert!(parse(&args("--cluster-worker --connect tcp/a:1 --processes x")).is_err());
        assert!(
            parse(&args(
                "--cluster-worker --connect tls/a:1 --tls-root-ca ca.pem"
            ))
            .is_err()
        );
    }

    #[test]
    fn parses_the_tls_flags() {
        let w = parse(&args(
            "--cluster-worker --connect tls/10.0.0.1:7447 --tls-root-ca ca.pem \
             --tls-certificate node.pem --tls-private-key node.key",
        ))
        .unwrap();
        assert_eq!(w.tls_root_ca.as_deref(), Some("ca.pem"));
        assert_eq!(w.tls_certificate.as_deref(), Some("node.pem"));
        assert_eq!(w.tls_private_key.as_deref(), Some("node.key"));
    }
}
