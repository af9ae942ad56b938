//! A guided walk through the toolkit: each step prints what it did, its result, and its timing.
//!
//! Run with `cargo run --release --example tour`.

use std::process::Command;
use std::time::{Duration, Instant};

use examples::fmt_duration;
use ipc_core::{Placement, Process, RawArray, RawValue, SharedMemory, StartMethod};
use ipc_pool::{Manager, Pool};
use ipc_queue::{Connection, Queue};

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn step(what: &str, result: impl std::fmt::Display, took: Duration) {
    println!("  {what:<52} {result:<32} {:>10}", fmt_duration(took));
}

/// Times `n` runs of `f` and returns the mean duration of one.
fn per_op(n: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

fn segments() -> anyhow::Result<()> {
    section("Shared-memory segments (ipc-core)");
    let t = Instant::now();
    let anon = SharedMemory::anonymous(1 << 20)?;
    step(
        "anonymous 1 MiB segment (memfd, cannot leak)",
        format!("{} bytes", anon.len()),
        t.elapsed(),
    );

    let t = Instant::now();
    let named = SharedMemory::create_named(4096)?;
    let name = named.name().unwrap_or_default().to_owned();
    step("named segment, O_EXCL, mode 0600", &name, t.elapsed());

    let t = Instant::now();
    let other = SharedMemory::builder(&name).open()?;
    other.write(0, b"written through a second mapping")?;
    let mut buf = [0u8; 32];
    named.read(0, &mut buf)?;
    step(
        "opened by name, written, read back",
        String::from_utf8_lossy(&buf[..7]),
        t.elapsed(),
    );

    let create_open = per_op(200, || {
        let s = SharedMemory::create_named(4096).expect("create");
        let o = SharedMemory::builder(s.name().unwrap_or_default())
            .open()
            .expect("open");
        drop(o);
        drop(s);
    });
    step(
        "create + open + unlink a named segment (mean)",
        "ok",
        create_open,
    );
    drop(other);
    drop(named);
    let gone = !std::path::Path::new(&format!("/dev/shm/{name}")).exists();
    step(
        "owner dropped: name removed from /dev/shm",
        gone,
        Duration::ZERO,
    );
    Ok(())
}

fn typed_values() -> anyhow::Result<()> {
    section("Typed raw values and arrays (ipc-core)");
    let t = Instant::now();
    let v = RawValue::new(5u64)?;
    v.fetch_add(10);
    step("RawValue::new(5u64), fetch_add(10)", v.get(), t.elapsed());

    let n = 10_000_000;
    let each = per_op(n, || {
        v.fetch_add(1);
    });
    step(
        "atomic increments in shared memory (mean)",
        format!("{:.0} M/s", 1e3 / each.as_nanos().max(1) as f64),
        each,
    );

    let t = Instant::now();
    let a = RawArray::from_slice(&[1i32, 2, 3])?;
    for i in 0..a.len() {
        a.fetch_add(i, 1)?;
    }
    step(
        "RawArray [1, 2, 3], add 1 to each",
        format!("{:?}", a.to_vec()),
        t.elapsed(),
    );

    let t = Instant::now();
    let err = RawValue::<u32>::open(&v.handle())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    step(
        "open a RawValue<u64> as RawValue<u32>",
        "refused",
        t.elapsed(),
    );
    println!("    error: {err}");

    let t = Instant::now();
    let named = RawArray::create_from(&Placement::NamedRandom, &[0.5f64; 4])?;
    let again = RawArray::<f64>::open_named(named.name().unwrap_or_default())?;
    step(
        "named RawArray<f64> opened by name",
        format!("{:?}", again.to_vec()),
        t.elapsed(),
    );
    Ok(())
}

fn sync() -> anyhow::Result<()> {
    section("Robust synchronisation (ipc-sync)");
    let lock = ipc_sync::Lock::new()?;
    let each = per_op(1_000_000, || {
        drop(lock.lock());
    });
    step("Lock: uncontended lock + unlock (mean)", "no syscall", each);

    let value = ipc_sync::Value::new(5i64)?;
    let t = Instant::now();
    if let Ok(mut g) = value.get_lock() {
        g.update(|v| *v += 10);
    }
    step("Value(5) += 10 under its lock", value.get(), t.elapsed());
    let each = per_op(1_000_000, || {
        value.fetch_add(1);
    });
    step("Value: lock-free fetch_add (mean)", "atomic", each);

    let array = ipc_sync::Array::from_slice(&[1i32, 2, 3])?;
    let t = Instant::now();
    for i in 0..array.len() {
        array.fetch_add(i, 1)?;
    }
    step(
        "Array [1, 2, 3], add 1 to each",
        format!("{:?}", array.to_vec()),
        t.elapsed(),
    );

    let event = ipc_sync::Event::new()?;
    let t = Instant::now();
    let before = event.wait_timeout(Duration::from_millis(1));
    event.set();
    let after = event.wait_timeout(Duration::ZERO);
    step(
        "Event: wait times out, then set, then wait",
        format!("{before} -> {after}"),
        t.elapsed(),
    );
    Ok(())
}

fn noop(_: ()) {}

fn add_ten(v: RawValue<u64>) -> u64 {
    v.fetch_add(10) + 10
}

fn processes() -> anyhow::Result<()> {
    section("Processes (ipc-core)");
    for method in [
        StartMethod::ForkServer,
        StartMethod::Spawn,
        StartMethod::Fork,
    ] {
        let start_join = || -> anyhow::Result<Duration> {
            let t = Instant::now();
            let p = Process::builder().start_method(method).target(noop, ());
            p.start()?;
            p.join()?;
            Ok(t.elapsed())
        };
        start_join()?; // the fork server starts on first use
        let runs = 20;
        let mut total = Duration::ZERO;
        for _ in 0..runs {
            total += start_join()?;
        }
        step(
            &format!("start + join a no-op child, {method:?} (mean)"),
            "exit code 0",
            total / runs,
        );
    }
    let value = RawValue::new(5u64)?;
    let t = Instant::now();
    let p = Process::new(add_ten, RawValue::<u64>::open(&value.handle())?);
    p.start()?;
    let seen = p.join()?;
    step(
        "child adds 10 to a shared RawValue(5)",
        format!("child saw {seen}, parent sees {}", value.get()),
        t.elapsed(),
    );
    Ok(())
}

fn put_square(mut q: Queue<u64>) {
    q.put(5 * 5).expect("put");
}

fn send_list(mut c: Connection) {
    c.send(&vec![1, 2, 3]).expect("send");
}

fn produce(mut q: Queue<u64>) {
    for i in 0..STREAM {
        q.put(i).expect("put");
    }
}

const STREAM: u64 = 2_000_000;

fn queues() -> anyhow::Result<()> {
    section("Queues and pipes (ipc-queue)");
    let mut q = Queue::<u64>::new(16)?;
    let t = Instant::now();
    let p = Process::new(put_square, Queue::<u64>::open(&q.handle())?);
    p.start()?;
    let v = q.get_timeout(Duration::from_secs(60))?;
    p.join()?;
    step(
        "a child puts 5 * 5 on a Queue; the parent gets",
        v,
        t.elapsed(),
    );

    let (mut ours, theirs) = ipc_queue::pipe()?;
    let t = Instant::now();
    let p = Process::new(send_list, theirs);
    p.start()?;
    let list: Vec<i32> = ours.recv()?;
    p.join()?;
    step(
        "a child sends [1, 2, 3] through a Pipe",
        format!("{list:?}"),
        t.elapsed(),
    );

    let mut q = Queue::<u64>::new(4096)?;
    let p = Process::new(produce, Queue::<u64>::open(&q.handle())?);
    let t = Instant::now();
    p.start()?;
    let mut sum = 0u64;
    for _ in 0..STREAM {
        sum = sum.wrapping_add(q.get_timeout(Duration::from_secs(60))?);
    }
    let took = t.elapsed();
    p.join()?;
    anyhow::ensure!(
        sum == STREAM * (STREAM - 1) / 2,
        "lost or duplicated messages"
    );
    step(
        "2,000,000 u64 from a child through a Queue",
        format!("{:.1} M msgs/s", STREAM as f64 / took.as_secs_f64() / 1e6),
        took,
    );
    Ok(())
}

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

fn add_one(n: Option<u64>) -> u64 {
    n.unwrap_or(0) + 1
}

fn pools() -> anyhow::Result<()> {
    section("Pools and the manager (ipc-pool)");
    let t = Instant::now();
    let pool = Pool::builder().processes(3).build()?;
    step(
        "Pool of 3 workers started",
        format!("pids {:?}", pool.worker_pids()),
        t.elapsed(),
    );
    let t = Instant::now();
    let squares = pool.map(square, [1, 2, 3, 4, 5])?;
    step(
        "pool.map(square, [1, 2, 3, 4, 5])",
        format!("{squares:?}"),
        t.elapsed(),
    );
    pool.map(square, 0..200_000u64)?; // warm: large messages, every worker
    let n = 1_000_000u64;
    let t = Instant::now();
    let all = pool.map(square, 0..n)?;
    let took = t.elapsed();
    anyhow::ensure!(all.len() as u64 == n, "lost results");
    step(
        "pool.map over 1,000,000 u64",
        format!("{:.1} M tasks/s", n as f64 / took.as_secs_f64() / 1e6),
        took,
    );
    let each = per_op(2000, || {
        let _ = pool.apply(square, 7);
    });
    step("pool.apply round trip (mean)", "49", each);
    // The task says which worker runs it, through a value in shared memory.
    let running = RawValue::new(0u32)?;
    let doomed = pool.apply_async(report_pid_then_sleep, RawValue::open(&running.handle())?)?;
    let started = Instant::now();
    while running.get() == 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the task never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = ipc_core::raw::os::kill(running.get(), libc::SIGKILL);
    let t = Instant::now();
    let err = doomed
        .get()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    step(
        "SIGKILL a busy worker: its task fails, pool lives",
        "replaced",
        t.elapsed(),
    );
    println!("    error: {err}");
    let t = Instant::now();
    let again = pool.map(square, 0..10u64)?;
    step(
        "the next map works",
        format!("{} results", again.len()),
        t.elapsed(),
    );
    drop(pool);

    let t = Instant::now();
    let manager = Manager::start()?;
    let counts = manager.dict::<String, u64>()?;
    step("Manager started, dict created", "ok", t.elapsed());
    let each = per_op(5000, || {
        let _ = counts.update_with("hits".to_string(), add_one);
    });
    step(
        "manager dict update_with round trip (mean)",
        counts.get(&"hits".to_string())?.unwrap_or(0),
        each,
    );
    Ok(())
}

fn report_pid_then_sleep(pid: RawValue<u32>) -> u64 {
    pid.set(std::process::id());
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn python_interop() -> anyhow::Result<()> {
    section("Python interop (multiprocessing.shared_memory)");
    let python = Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing.shared_memory")
        .output();
    if !python.is_ok_and(|o| o.status.success()) {
        println!("  skipped: python3 is not available");
        return Ok(());
    }
    let seg = SharedMemory::create_named(64)?;
    seg.write(0, b"hello from Rust")?;
    let script = "import sys\n\
        from multiprocessing import shared_memory, resource_tracker\n\
        s = shared_memory.SharedMemory(name=sys.argv[1])\n\
        resource_tracker.unregister(s._name, 'shared_memory')\n\
        print(bytes(s.buf[:15]).decode(), end='')\n\
        s.buf[16:33] = b'hello from Python'\n\
        s.close()\n";
    let t = Instant::now();
    let out = Command::new("python3")
        .args(["-c", script, seg.name().unwrap_or_default()])
        .output()?;
    let took = t.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    step(
        "Python attaches our segment and reads",
        String::from_utf8_lossy(&out.stdout),
        took,
    );
    let mut buf = [0u8; 17];
    seg.read(16, &mut buf)?;
    step(
        "we read what Python wrote",
        String::from_utf8_lossy(&buf),
        Duration::ZERO,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let start = Instant::now();
    println!("A tour of the ipc workspace: Python's multiprocessing on shared memory, in Rust.");
    segments()?;
    typed_values()?;
    sync()?;
    processes()?;
    queues()?;
    pools()?;
    python_interop()?;
    println!("\nTour finished in {}.", fmt_duration(start.elapsed()));
    Ok(())
}
