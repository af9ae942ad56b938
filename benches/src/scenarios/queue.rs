//! `ours.*` scenarios of ipc-queue: the SPSC ring, the MPMC `Queue`, `Pipe` round trips and
//! 1 MiB payloads, each between this process and one forked child, with the received values
//! checked (count and checksum) so that a fast wrong answer cannot pass.

use std::time::{Duration, Instant};

use ipc_queue::{Queue, RingBuffer, Serde, pipe, pipe_with_capacity};
use serde::{Deserialize, Serialize};

use crate::{Config, Scenario, fork_child};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "ours.spsc_u64",
            unit: "msgs/s",
            higher_is_better: true,
            run: spsc_u64,
        },
        Scenario {
            name: "ours.queue_u64",
            unit: "msgs/s",
            higher_is_better: true,
            run: queue_u64,
        },
        Scenario {
            name: "ours.queue_serde_small",
            unit: "msgs/s",
            higher_is_better: true,
            run: queue_serde_small,
        },
        Scenario {
            name: "ours.pipe_rtt",
            unit: "ns",
            higher_is_better: false,
            run: pipe_rtt,
        },
        Scenario {
            name: "ours.pipe_rtt_sleeping",
            unit: "µs",
            higher_is_better: false,
            run: pipe_rtt_sleeping,
        },
        Scenario {
            name: "ours.queue_1mib",
            unit: "GB/s",
            higher_is_better: true,
            run: queue_1mib,
        },
        Scenario {
            name: "ours.loan_1mib",
            unit: "msgs/s",
            higher_is_better: true,
            run: loan_1mib,
        },
        Scenario {
            name: "ours.pipe_1mib",
            unit: "GB/s",
            higher_is_better: true,
            run: pipe_1mib,
        },
    ]
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn spsc_u64(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n: u64 = cfg.pick(50_000_000, 5_000_000);
    let (tx, mut rx) = RingBuffer::<u64>::new(1 << 14)?;
    let handle = tx.handle();
    drop(tx);
    let start = Instant::now();
    let child = fork_child(move || {
        let mut tx = ipc_queue::Producer::<u64>::open(&handle)?;
        let mut batch = [0u64; 256];
        let mut i = 0u64;
        while i < n {
            let k = batch.len().min((n - i) as usize);
            for (j, b) in batch[..k].iter_mut().enumerate() {
                *b = i + j as u64;
            }
            let mut done = 0;
            while done < k {
                let m = tx.push_slice(&batch[done..k]).map_err(err)?;
                if m == 0 {
                    std::hint::spin_loop();
                }
                done += m;
            }
            i += k as u64;
        }
        Ok(())
    })?;
    let mut buf = [0u64; 256];
    let (mut got, mut sum) = (0u64, 0u64);
    while got < n {
        let k = rx.pop_slice(&mut buf).map_err(err)?;
        if k == 0 {
            std::hint::spin_loop();
            continue;
        }
        for &v in &buf[..k] {
            sum = sum.wrapping_add(v);
        }
        got += k as u64;
    }
    let elapsed = start.elapsed();
    child.wait()?;
    anyhow::ensure!(sum == n.wrapping_mul(n - 1) / 2, "checksum mismatch");
    Ok(Some(per_second(n, elapsed)))
}

fn queue_u64(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n: u64 = cfg.pick(20_000_000, 2_000_000);
    let mut q = Queue::<u64>::new(1 << 12)?;
    let handle = q.handle();
    let start = Instant::now();
    let child = fork_child(move || {
        let mut q = Queue::<u64>::open_producer(&handle)?;
        for i in 0..n {
            q.put(i).map_err(err)?;
        }
        Ok(())
    })?;
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(q.get()?);
    }
    let elapsed = start.elapsed();
    child.wait()?;
    anyhow::ensure!(sum == n.wrapping_mul(n - 1) / 2, "checksum mismatch");
    Ok(Some(per_second(n, elapsed)))
}

/// A small message such as a task description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Small {
    id: u64,
    name: String,
    values: [f32; 4],
}

fn queue_serde_small(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n: u64 = cfg.pick(5_000_000, 500_000);
    let mut q = Queue::<Small, Serde>::new(1 << 12)?;
    let handle = q.handle();
    let start = Instant::now();
    let child = fork_child(move || {
        let mut q = Queue::<Small, Serde>::open_producer(&handle)?;
        for i in 0..n {
            let m = Small {
                id: i,
                name: "task".into(),
                values: [1.0, 2.0, 3.0, i as f32],
            };
            q.put(m).map_err(err)?;
        }
        Ok(())
    })?;
    let mut sum = 0u64;
    for _ in 0..n {
        let m = q.get()?;
        anyhow::ensure!(m.name == "task", "bad message");
        sum = sum.wrapping_add(m.id);
    }
    let elapsed = start.elapsed();
    child.wait()?;
    anyhow::ensure!(sum == n.wrapping_mul(n - 1) / 2, "checksum mismatch");
    Ok(Some(per_second(n, elapsed)))
}

/// Mean round trip of an 8-byte message between two processes, in seconds.
fn rtt(rounds: u64, spin: Option<Duration>) -> anyhow::Result<f64> {
    let (mut a, b) = pipe()?;
    let handle = b.handle();
    drop(b);
    if let Some(s) = spin {
        a.set_spin(s);
    }
    let child = fork_child(move || {
        let mut b = ipc_queue::Connection::open(&handle)?;
        if let Some(s) = spin {
            b.set_spin(s);
        }
        let mut buf = [0u8; 8];
        for _ in 0..rounds + 1000 {
            let n = b.recv_bytes_into(&mut buf)?;
            let v = u64::from_le_bytes(buf) + 1;
            anyhow::ensure!(n == 8, "bad length");
            b.send_bytes(&v.to_le_bytes())?;
        }
        Ok(())
    })?;
    let mut buf = [0u8; 8];
    let mut start = Instant::now();
    for i in 0..rounds + 1000 {
        if i == 1000 {
            start = Instant::now();
        }
        a.send_bytes(&i.to_le_bytes())?;
        a.recv_bytes_into(&mut buf)?;
        anyhow::ensure!(u64::from_le_bytes(buf) == i + 1, "bad echo");
    }
    let elapsed = start.elapsed();
    child.wait()?;
    Ok(elapsed.as_secs_f64() / rounds as f64)
}

fn pipe_rtt(cfg: &Config) -> anyhow::Result<Option<f64>> {
    Ok(Some(rtt(cfg.pick(1_000_000, 100_000), None)? * 1e9))
}

fn pipe_rtt_sleeping(cfg: &Config) -> anyhow::Result<Option<f64>> {
    Ok(Some(
        rtt(cfg.pick(100_000, 10_000), Some(Duration::ZERO))? * 1e6,
    ))
}

const MIB: usize = 1 << 20;
type Mib = [u64; MIB / 8];

fn queue_1mib(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n: u64 = cfg.pick(4000, 500);
    let mut q = Queue::<Mib>::new(4)?;
    let handle = q.handle();
    let start = Instant::now();
    let child = fork_child(move || {
        let mut q = Queue::<Mib>::open_producer(&handle)?;
        let mut msg: Box<Mib> = bytemuck::zeroed_box();
        for i in 0..n {
            msg[0] = i;
            msg[MIB / 8 - 1] = i;
            q.put_from(&msg).map_err(err)?;
        }
        Ok(())
    })?;
    let mut msg: Box<Mib> = bytemuck::zeroed_box();
    for i in 0..n {
        q.get_into(&mut msg)?;
        anyhow::ensure!(msg[0] == i && msg[MIB / 8 - 1] == i, "bad message");
    }
    let elapsed = start.elapsed();
    child.wait()?;
    Ok(Some(per_second(n * MIB as u64, elapsed) / 1e9))
}

fn loan_1mib(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n: u64 = cfg.pick(2_000_000, 200_000);
    let mut q = Queue::<[u8; MIB]>::new(8)?;
    let handle = q.handle();
    let start = Instant::now();
    let child = fork_child(move || {
        let mut q = Queue::<[u8; MIB]>::open_producer(&handle)?;
        for i in 0..n {
            let mut loan = q.loan().map_err(err)?;
            loan.as_bytes_mut()[..8].copy_from_slice(&i.to_le_bytes());
            loan.commit();
        }
        Ok(())
    })?;
    let mut sum = 0u64;
    for _ in 0..n {
        let sample = q.get_sample()?;
        let mut first = [0u8; 8];
        first.copy_from_slice(&sample.as_bytes()[..8]);
        sum = sum.wrapping_add(u64::from_le_bytes(first));
    }
    let elapsed = start.elapsed();
    child.wait()?;
    anyhow::ensure!(sum == n.wrapping_mul(n - 1) / 2, "checksum mismatch");
    Ok(Some(per_second(n, elapsed)))
}

fn pipe_1mib(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n: u64 = cfg.pick(4000, 500);
    let (mut a, b) = pipe_with_capacity(&ipc_core::Placement::Anonymous, 4 * MIB, false)?;
    let handle = b.handle();
    drop(b);
    let start = Instant::now();
    let child = fork_child(move || {
        let mut w = ipc_queue::Connection::open(&handle)?;
        let mut msg = vec![0u8; MIB];
        for i in 0..n {
            msg[..8].copy_from_slice(&i.to_le_bytes());
            w.send_bytes(&msg)?;
        }
        Ok(())
    })?;
    let mut buf = vec![0u8; MIB];
    for i in 0..n {
        let k = a.recv_bytes_into(&mut buf)?;
        anyhow::ensure!(k == MIB && buf[..8] == i.to_le_bytes(), "bad message");
    }
    let elapsed = start.elapsed();
    child.wait()?;
    Ok(Some(per_second(n * MIB as u64, elapsed) / 1e9))
}
