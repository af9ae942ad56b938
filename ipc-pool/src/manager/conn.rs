//! A client's connection to the manager: the shared request queue, and a response queue of
//! its own that it announces with `Hello`.

use std::time::{Duration, Instant};

use ipc_core::{Placement, ProcessIdentity};
use ipc_queue::{GetError, PutError, Queue, Serde};

use super::error::ManagerError;
use super::wire::{Address, Op, Reply, Request, SLOT_SIZE};

/// How long a client waits between liveness checks of the manager while connecting.
const CONNECT_SLICE: Duration = Duration::from_millis(50);
/// How long a live manager may take to take a new connection before the client gives up with
/// [`ManagerError::Refused`]. A manager that cannot open the client's queue refuses at once
/// (see `server.rs`); this bounds the wait for one that is alive but not serving (stopped).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Conn {
    client: u64,
    requests: Queue<Request, Serde>,
    responses: Queue<Reply, Serde>,
}

impl Conn {
    pub(super) fn connect(addr: &Address) -> Result<Self, ManagerError> {
        let requests = Queue::<Request, Serde>::open_producer(&addr.requests)
            .map_err(|_| ManagerError::ManagerGone)?;
        let responses = Queue::<Reply, Serde>::create(&Placement::Anonymous, 4, SLOT_SIZE)
            .map_err(ManagerError::Queue)?;
        let process = ProcessIdentity::current().map_err(|e| {
            ManagerError::Refused(format!("cannot tell the manager who this process is: {e}"))
        })?;
        let client = ipc_core::random_u128() as u64;
        let mut conn = Self {
            client,
            requests,
            responses,
        };
        conn.send(Op::Hello {
            responses: conn.responses.handle(),
            process,
        })?;
        let responses = &mut conn.responses;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        // Until the manager has attached as the producer, "no producer" does not mean gone:
        // wait in slices and check that the manager lives.
        loop {
            match responses.get_timeout(CONNECT_SLICE) {
                Ok(Reply::Unit) => break,
                Ok(Reply::Err(e)) => return Err(e.into()),
                Ok(_) => return Err(ManagerError::Protocol("bad reply to hello")),
                Err(GetError::Timeout) => {
                    if !addr.server.is_alive() {
                        return Err(ManagerError::ManagerGone);
                    }
                    if Instant::now() >= deadline {
                        return Err(ManagerError::Refused(format!(
                            "the manager (pid {}) did not take the connection within {:?}; it \
                             may be out of file descriptors",
                            addr.server.pid(),
                            CONNECT_TIMEOUT
                        )));
                    }
                }
                Err(_) => return Err(ManagerError::ManagerGone),
            }
        }
        // From now on this handle only receives: when the manager dies, `get` says so.
        responses.close();
        Ok(conn)
    }

    fn send(&mut self, op: Op) -> Result<(), ManagerError> {
        match self.requests.put(Request {
            client: self.client,
            op,
        }) {
            Ok(()) => Ok(()),
            Err(PutError::Encode(_, e)) => Err(ManagerError::Encode(e)),
            Err(_) => Err(ManagerError::ManagerGone),
        }
    }

    pub(super) fn call(&mut self, op: Op) -> Result<Reply, ManagerError> {
        self.send(op)?;
        match self.responses.get() {
            Ok(Reply::Err(e)) => Err(e.into()),
            Ok(r) => Ok(r),
            Err(GetError::Decode(e)) => Err(ManagerError::Decode(e)),
            Err(_) => Err(ManagerError::ManagerGone),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.requests.try_put(Request {
            client: self.client,
            op: Op::Bye,
        });
    }
}
