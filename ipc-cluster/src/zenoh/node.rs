//! `Node`: this process's zenoh peer session, the one thing every cluster object is built on.

use std::fmt;
#[cfg(feature = "tls")]
use std::path::PathBuf;
use std::time::Duration;

use zenoh::Wait;

/// The lease zenoh announces by default: a peer that vanishes without closing its connection
/// (a cut cable, a frozen machine) is declared dead after this long. A killed or crashed process
/// closes its TCP connections, so its death is seen at once, whatever the lease.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// This process's place in the cluster: a zenoh peer session (no router, no daemon).
///
/// A master listens on an endpoint the hosts know; a host connects to it. Peers find the rest
/// of the cluster from there (zenoh's gossip through the peers they are connected to); multicast
/// scouting is off unless asked for, so nothing joins by accident.
///
/// ```no_run
/// use std::time::Duration;
/// use ipc_cluster::Node;
///
/// // The master:
/// let master = Node::builder().listen("tcp/0.0.0.0:7447").open()?;
/// // A host, on another machine, detecting a silent master within 2 s instead of 10 s:
/// let host = Node::builder()
///     .connect("tcp/192.0.2.1:7447")
///     .lease(Duration::from_secs(2))
///     .open()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Node {
    session: zenoh::Session,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("zid", &self.session.zid().to_string())
            .finish()
    }
}

/// Builder for [`Node`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct NodeBuilder {
    listen: Vec<String>,
    connect: Vec<String>,
    multicast: bool,
    lease: Option<Duration>,
    #[cfg(feature = "tls")]
    tls: TlsParts,
}

/// The files of a node's TLS identity (feature `tls`), for [`NodeBuilder::tls`]: PEM files, as
/// `openssl` writes them.
///
/// The same certificate and key serve both sides of a link: the node presents them when it
/// listens (as a server) and when it connects (as a client), and it accepts a peer only if the
/// peer's certificate chains to `root_ca` (mutual TLS). A listener's certificate must also name
/// (subjectAltName) the host name or IP address that the others write in their `tls/` endpoint.
///
/// ```no_run
/// use ipc_cluster::{Node, TlsFiles};
///
/// let master = Node::builder()
///     .listen("tls/0.0.0.0:7447")
///     .tls(TlsFiles {
///         root_ca: "ca.pem".into(),
///         certificate: "node.pem".into(),
///         private_key: "node.key".into(),
///     })
///     .open()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tls")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate of the authority that signed every node's certificate.
    pub root_ca: PathBuf,
    /// This node's certificate (signed by `root_ca`; it may be followed by intermediates).
    pub certificate: PathBuf,
    /// This node's private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub private_key: PathBuf,
}

/// The TLS files given so far: all three from [`NodeBuilder::tls`], one at a time from a
/// command line.
#[cfg(feature = "tls")]
#[derive(Debug, Clone, Default)]
struct TlsParts {
    root_ca: Option<PathBuf>,
    certificate: Option<PathBuf>,
    private_key: Option<PathBuf>,
}

/// Opening a node failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// An endpoint is not of the form `proto/address:port` (e.g. `tcp/0.0.0.0:7447`).
    InvalidEndpoint {
        /// The endpoint given.
        endpoint: String,
    },
    /// The lease is shorter than a millisecond or does not fit zenoh's configuration.
    InvalidLease,
    /// zenoh refused a configuration value.
    Config {
        /// The configuration key.
        key: &'static str,
        /// zenoh's error.
        source: zenoh::Error,
    },
    /// zenoh could not open the session (e.g. the listening port is taken).
    Open(zenoh::Error),
    /// Some of the TLS files were given, not all three (root CA, certificate, private key).
    #[cfg(feature = "tls")]
    TlsIncomplete,
    /// A TLS file cannot be read, or its path is not UTF-8 (zenoh takes paths as strings).
    #[cfg(feature = "tls")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEndpoint { endpoint } => write!(
                f,
                "invalid endpoint {endpoint:?}: expected proto/address:port, e.g. tcp/0.0.0.0:7447"
            ),
            Self::InvalidLease => f.write_str("the lease must be at least 1 ms"),
            Self::Config { key, .. } => write!(f, "zenoh refused the configuration of {key}"),
            Self::Open(_) => f.write_str("cannot open the zenoh session"),
            #[cfg(feature = "tls")]
            Self::TlsIncomplete => f.write_str(
                "TLS needs all three of the root CA certificate, the certificate and the private key",
            ),
            #[cfg(feature = "tls")]
            Self::TlsFile { path, .. } => write!(f, "cannot use the TLS file {}", path.display()),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config { source, .. } => Some(&**source),
            Self::Open(e) => Some(&**e),
            #[cfg(feature = "tls")]
            Self::TlsFile { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A JSON array of endpoint strings; endpoints are checked to hold no character that needs
/// escaping.
fn json_list(items: &[String]) -> Result<String, NodeError> {
    let mut s = String::from("[");
    for (i, e) in items.iter().enumerate() {
        let ok = e.contains('/')
            && !e.is_empty()
            && e.chars().all(|c| !c.is_control() && c != '"' && c != '\\');
        if !ok {
            return Err(NodeError::InvalidEndpoint {
                endpoint: e.clone(),
            });
        }
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        s.push_str(e);
        s.push('"');
    }
    s.push(']');
    Ok(s)
}

/// A TLS file's path as a JSON string, once it is known to be readable.
#[cfg(feature = "tls")]
fn json_path(path: &std::path::Path) -> Result<String, NodeError> {
    let fail = |source| NodeError::TlsFile {
        path: path.to_owned(),
        source,
    };
    std::fs::File::open(path).map_err(fail)?;
    let text = path.to_str().ok_or_else(|| {
        fail(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path is not UTF-8",
        ))
    })?;
    let mut s = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => s.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => s.push(c),
        }
    }
    s.push('"');
    Ok(s)
}

impl NodeBuilder {
    /// Listens on `endpoint` (e.g. `tcp/0.0.0.0:7447`); repeatable. A node that others connect
    /// to (a master, a queue's owner) listens; without any, the node listens nowhere.
    pub fn listen(mut self, endpoint: impl Into<String>) -> Self {
        self.listen.push(endpoint.into());
        self
    }

    /// Connects to `endpoint` (e.g. `tcp/192.0.2.1:7447`); repeatable. zenoh keeps retrying in
    /// the background until the peer is there.
    pub fn connect(mut self, endpoint: impl Into<String>) -> Self {
        self.connect.push(endpoint.into());
        self
    }

    /// Finds peers by UDP multicast on the local network too (zenoh's scouting; default off,
    /// so a node meets only the endpoints it was given and the peers they gossip about).
    pub fn multicast_scouting(mut self, on: bool) -> Self {
        self.multicast = on;
        self
    }

    /// The lease this node announces (default [`DEFAULT_LEASE`], 10 s): a peer that stops
    /// hearing from it this long (4 keep-alives a lease) declares it dead. Lower it to detect a
    /// silent death (a network cut, a frozen machine) sooner; a killed process is detected at
    /// once whatever the lease, because its connections close.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Secures `tls/` endpoints with mutual TLS (feature `tls`): this node presents `files`'
    /// certificate on every TLS link it listens on or connects through, and accepts a peer only
    /// if the peer's certificate chains to `files.root_ca`. Give every node of the cluster the
    /// same `root_ca` and listen and connect on `tls/host:port` endpoints; `tcp/` endpoints
    /// stay plain, so a node meant to be reached only through TLS listens on none.
    ///
    /// The files are checked to be readable when the node opens ([`NodeError::TlsFile`]); a peer
    /// whose certificate the authority did not sign (or a listener whose certificate does not
    /// name the address connected to) is refused at the TLS handshake, and zenoh keeps retrying
    /// the connection as it does for a peer that is not there. See [`TlsFiles`].
    #[cfg(feature = "tls")]
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = TlsParts {
            root_ca: Some(files.root_ca),
            certificate: Some(files.certificate),
            private_key: Some(files.private_key),
        };
        self
    }

    /// Sets the TLS files one by one, as a command line gives them (`open` checks that all
    /// three or none are there).
    #[cfg(feature = "tls")]
    pub(crate) fn tls_parts(
        mut self,
        root_ca: Option<PathBuf>,
        certificate: Option<PathBuf>,
        private_key: Option<PathBuf>,
    ) -> Self {
        self.tls = TlsParts {
            root_ca,
            certificate,
            private_key,
        };
        self
    }

    /// The zenoh configuration for the TLS files, if any were given.
    #[cfg(feature = "tls")]
    fn tls_config(&self) -> Result<Vec<(&'static str, String)>, NodeError> {
        let t = &self.tls;
        let (root_ca, certificate, private_key) = match (&t.root_ca, &t.certificate, &t.private_key)
        {
            (None, None, None) => return Ok(Vec::new()),
            (Some(r), Some(c), Some(k)) => (json_path(r)?, json_path(c)?, json_path(k)?),
            _ => return Err(NodeError::TlsIncomplete),
        };
        Ok(vec![
            ("transport/link/tls/root_ca_certificate", root_ca),
            ("transport/link/tls/listen_certificate", certificate.clone()),
            ("transport/link/tls/listen_private_key", private_key.clone()),
            ("transport/link/tls/connect_certificate", certificate),
            ("transport/link/tls/connect_private_key", private_key),
            ("transport/link/tls/enable_mtls", "true".to_owned()),
            (
                "transport/link/tls/verify_name_on_connect",
                "true".to_owned(),
            ),
        ])
    }

    /// Opens the session.
    pub fn open(self) -> Result<Node, NodeError> {
        let mut config = zenoh::Config::default();
        let mut set = |key: &'static str, value: &str| {
            config
                .insert_json5(key, value)
                .map_err(|source| NodeError::Config { key, source })
        };
        set("mode", "\"peer\"")?;
        set("listen/endpoints", &json_list(&self.listen)?)?;
        set("connect/endpoints", &json_list(&self.connect)?)?;
        // A connection that fails is made again at once, then after 50, 100, 200, 400 ms and
        // every second (zenoh's default waits a second first): a live peer must be back within
        // the grace the liveliness watchers give a withdrawn token.
        set(
            "connect/retry",
            "{period_init_ms: 50, period_max_ms: 1000, period_increase_factor: 2}",
        )?;
        set(
            "scouting/multicast/enabled",
            if self.multicast { "true" } else { "false" },
        )?;
        if let Some(lease) = self.lease {
            let ms = lease.as_millis();
            if ms == 0 || ms > u128::from(u32::MAX) {
                return Err(NodeError::InvalidLease);
            }
            set("transport/link/tx/lease", &ms.to_string())?;
        }
        #[cfg(feature = "tls")]
        for (key, value) in self.tls_config()? {
            set(key, &value)?;
        }
        let session = zenoh::open(config).wait().map_err(NodeError::Open)?;
        Ok(Node { session })
    }
}

impl Node {
    /// A builder: endpoints to listen on and connect to, scouting, lease (and TLS, with the
    /// feature `tls`).
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// A builder from the command line's `--listen ENDPOINT`, `--connect ENDPOINT` (both
    /// repeatable) and `--lease-ms N`, and with the feature `tls` `--tls-root-ca FILE`,
    /// `--tls-certificate FILE` and `--tls-private-key FILE` (all three, or `open` fails with
    /// [`NodeError::TlsIncomplete`]; see [`NodeBuilder::tls`]); other arguments are ignored.
    /// The master of a program launched as `prog --listen tcp/0.0.0.0:7447` opens its node with
    /// this.
    pub fn builder_from_args(args: impl IntoIterator<Item = String>) -> NodeBuilder {
        let mut b = NodeBuilder::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--listen" => {
                    if let Some(e) = it.next() {
                        b = b.listen(e);
                    }
                }
                "--connect" => {
                    if let Some(e) = it.next() {
                        b = b.connect(e);
                    }
                }
                "--lease-ms" => {
                    if let Some(ms) = it.next().and_then(|v| v.parse::<u64>().ok()) {
                        b = b.lease(Duration::from_millis(ms));
                    }
                }
                #[cfg(feature = "tls")]
                "--tls-root-ca" => b.tls.root_ca = it.next().map(PathBuf::from),
                #[cfg(feature = "tls")]
                "--tls-certificate" => b.tls.certificate = it.next().map(PathBuf::from),
                #[cfg(feature = "tls")]
                "--tls-private-key" => b.tls.private_key = it.next().map(PathBuf::from),
                _ => {}
            }
        }
        b
    }

    /// The zenoh session, for anything this crate does not wrap.
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }

    /// This node's zenoh id.
    pub fn id(&self) -> String {
        self.session.zid().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.session.close().wait();
    }
}
