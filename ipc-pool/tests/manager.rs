//! Manager behaviour with real processes: each proxy kind, registered types, concurrent updates
//! from several processes, a SIGKILLed manager, a SIGKILLed client, a panicking method.

use std::time::Duration;

use ipc_core::Process;
use ipc_pool::{DictProxy, ListProxy, Managed, Manager, ManagerError, Proxy};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Account {
    balance: i64,
}

#[derive(Serialize, Deserialize)]
enum AccountOp {
    Deposit(i64),
    Withdraw(i64),
    Balance,
    SlowBalance(u64),
    Explode,
}

impl Managed for Account {
    type Request = AccountOp;
    type Response = Result<i64, String>;
    fn handle(&mut self, op: AccountOp) -> Result<i64, String> {
        match op {
            AccountOp::Deposit(n) => self.balance += n,
            AccountOp::Withdraw(n) if n > self.balance => return Err("insufficient funds".into()),
            AccountOp::Withdraw(n) => self.balance -= n,
            AccountOp::Balance => {}
            AccountOp::SlowBalance(ms) => std::thread::sleep(Duration::from_millis(ms)),
            AccountOp::Explode => panic!("the account exploded"),
        }
        Ok(self.balance)
    }
}

fn add_one(n: Option<u64>) -> u64 {
    n.unwrap_or(0) + 1
}

fn hammer((counts, names, me): (DictProxy<String, u64>, ListProxy<String>, String)) -> u64 {
    for _ in 0..250 {
        counts
            .update_with("hits".to_string(), add_one)
            .expect("update");
    }
    names.push(me).expect("push");
    counts.get(&"hits".to_string()).expect("get").unwrap_or(0)
}

fn deposit_from_child(acct: Proxy<Account>) -> i64 {
    acct.call(AccountOp::Deposit(5))
        .expect("call")
        .expect("deposit")
}

fn slow_call(acct: Proxy<Account>) -> i64 {
    acct.call(AccountOp::SlowBalance(2_000))
        .expect("call")
        .expect("balance")
}

#[test]
fn dict_operations() {
    let m = Manager::start().unwrap();
    let d = m.dict::<String, i32>().unwrap();
    assert!(d.is_empty().unwrap());
    assert_eq!(d.insert("a".into(), 1).unwrap(), None);
    assert_eq!(d.insert("a".into(), 2).unwrap(), Some(1));
    d.extend([("b".to_string(), 3), ("c".to_string(), 4)])
        .unwrap();
    assert_eq!(d.len().unwrap(), 3);
    assert!(d.contains(&"b".into()).unwrap());
    assert_eq!(d.remove(&"b".into()).unwrap(), Some(3));
    assert_eq!(d.get(&"zzz".into()).unwrap(), None);
    assert_eq!(d.keys().unwrap(), ["a", "c"]);
    assert_eq!(d.values().unwrap(), [2, 4]);
    assert_eq!(
        d.items().unwrap(),
        [("a".to_string(), 2), ("c".to_string(), 4)]
    );
    d.clear().unwrap();
    assert_eq!(d.len().unwrap(), 0);
}

#[test]
fn list_and_namespace_operations() {
    let m = Manager::start().unwrap();
    let l = m.list::<u32>().unwrap();
    l.push(1).unwrap();
    l.extend([2, 3, 4]).unwrap();
    l.insert(0, 0).unwrap();
    assert_eq!(l.snapshot().unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(l.set(1, 10).unwrap(), 1);
    assert_eq!(l.remove(2).unwrap(), 2);
    assert_eq!(l.pop().unwrap(), Some(4));
    assert_eq!(l.get(1).unwrap(), Some(10));
    assert_eq!(l.get(9).unwrap(), None);
    assert!(matches!(l.remove(9), Err(ManagerError::NotFound(_))));
    assert_eq!(l.len().unwrap(), 3);

    let ns = m.namespace().unwrap();
    ns.set("x", &42u8).unwrap();
    ns.set("name", &"demo".to_string()).unwrap();
    assert_eq!(ns.get::<u8>("x").unwrap(), Some(42));
    assert_eq!(ns.get::<String>("name").unwrap().as_deref(), Some("demo"));
    assert_eq!(ns.get::<u8>("missing").unwrap(), None);
}

#[test]
fn four_processes_update_without_losing_an_increment() {
    let m = Manager::start().unwrap();
    let counts = m.dict::<String, u64>().unwrap();
    let names = m.list::<String>().unwrap();
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let arg = (counts.clone(), names.clone(), format!("worker-{i}"));
            let p = Process::new(hammer, arg);
            p.start().unwrap();
            p
        })
        .collect();
    for p in &workers {
        p.join_timeout(Duration::from_secs(120)).unwrap();
    }
    assert_eq!(counts.get(&"hits".to_string()).unwrap(), Some(1000));
    let mut got = names.snapshot().unwrap();
    got.sort();
    assert_eq!(got, ["worker-0", "worker-1", "worker-2", "worker-3"]);
}

#[test]
fn registered_type_lives_in_the_manager() {
    let m = Manager::start().unwrap();
    let acct = m.register(Account { balance: 10 }).unwrap();
    assert_eq!(acct.call(AccountOp::Deposit(5)).unwrap(), Ok(15));
    assert_eq!(
        acct.call(AccountOp::Withdraw(100)).unwrap(),
        Err("insufficient funds".into())
    );
    let child = Process::new(deposit_from_child, acct.clone());
    child.start().unwrap();
    assert_eq!(child.join_timeout(Duration::from_secs(60)).unwrap(), 20);
    assert_eq!(acct.call(AccountOp::Balance).unwrap(), Ok(20));
}

#[test]
fn a_panicking_method_fails_that_call_only() {
    let m = Manager::start().unwrap();
    let acct = m.register(Account { balance: 1 }).unwrap();
    match acct.call(AccountOp::Explode) {
        Err(ManagerError::Panicked { message }) => assert!(message.contains("exploded")),
        other => panic!("expected Panicked, got {:?}", other.map(|_| ())),
    }
    assert_eq!(acct.call(AccountOp::Balance).unwrap(), Ok(1));
}

#[test]
fn a_killed_manager_fails_pending_and_later_calls() {
    let m = Manager::start().unwrap();
    let acct = m.register(Account { balance: 7 }).unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    let pending = {
        // A connection of its own, as another process would have.
        let wire = ipc_core::codec::encode(&acct).unwrap();
        std::thread::spawn(move || {
            let acct: Proxy<Account> = ipc_core::codec::decode(&wire).unwrap();
            acct.call(AccountOp::SlowBalance(30_000))
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(m.pid() as i32, libc::SIGKILL) }, 0);
    assert!(matches!(
        pending.join().unwrap(),
        Err(ManagerError::ManagerGone)
    ));
    assert!(matches!(d.insert(1, 1), Err(ManagerError::ManagerGone)));
    assert!(matches!(
        acct.call(AccountOp::Balance),
        Err(ManagerError::ManagerGone)
    ));
}

#[test]
fn a_killed_client_does_not_stop_the_manager() {
    let m = Manager::start().unwrap();
    let acct = m.register(Account { balance: 3 }).unwrap();
    let child = Process::new(slow_call, acct.clone());
    child.start().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    assert!(child.join_timeout(Duration::from_secs(30)).is_err());
    assert_eq!(acct.call(AccountOp::Deposit(1)).unwrap(), Ok(4));
    let d = m.dict::<u8, u8>().unwrap();
    d.insert(1, 2).unwrap();
    assert_eq!(d.get(&1).unwrap(), Some(2));
}

#[test]
fn shutdown_ends_the_manager_for_every_proxy() {
    let m = Manager::start().unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    d.insert(1, 1).unwrap();
    m.shutdown().unwrap();
    assert!(matches!(d.get(&1), Err(ManagerError::ManagerGone)));
}

#[test]
fn a_dict_keeps_insertion_order_as_python_does() {
    let m = Manager::start().unwrap();
    let d = m.dict::<String, u32>().unwrap();
    for (i, k) in ["zebra", "apple", "mango", "banana"].iter().enumerate() {
        d.insert(k.to_string(), i as u32).unwrap();
    }
    d.remove(&"apple".to_string()).unwrap();
    d.insert("apple".to_string(), 9).unwrap();
    d.insert("zebra".to_string(), 7).unwrap();
    assert_eq!(d.keys().unwrap(), ["zebra", "mango", "banana", "apple"]);
    assert_eq!(d.values().unwrap(), [7, 2, 3, 9]);
}

fn connect_then_hang((d, i): (DictProxy<u32, u32>, u32)) {
    d.insert(i, 1).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn the_manager_forgets_its_killed_clients() {
    let m = Manager::start().unwrap();
    let d = m.dict::<u32, u32>().unwrap();
    d.insert(0, 0).unwrap();
    let base = open_fds(m.pid());
    for i in 1..=20u32 {
        let p = Process::new(connect_then_hang, (d.clone(), i));
        p.start().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while d.get(&i).unwrap() != Some(1) {
            assert!(
                std::time::Instant::now() < deadline,
                "child {i} never connected"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        p.kill().unwrap();
        let _ = p.join_timeout(Duration::from_secs(30));
    }
    // Each killed client held a descriptor and a mapping in the manager until it was pruned; the
    // manager checks for dead clients whenever it has been idle for a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = open_fds(m.pid());
        if now <= base + 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the manager still holds {now} descriptors (it had {base} before 20 clients were killed)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.len().unwrap(), 21);
}

/// Connects (its first call) and stays connected; or returns why the manager refused it.
fn connect_or_say_why((d, i): (DictProxy<u32, u32>, u32)) -> String {
    match d.insert(i, 1) {
        Ok(_) => {
            std::thread::sleep(Duration::from_secs(120));
            String::new()
        }
        Err(e) => e.to_string(),
    }
}

/// The lowest descriptor number a process could open next.
fn lowest_free_fd(pid: u32) -> u64 {
    let used: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap()
}

#[test]
fn a_manager_out_of_descriptors_refuses_a_new_client_at_once_and_says_why() {
    let m = Manager::start().unwrap();
    let d = m.dict::<u32, u32>().unwrap();
    d.insert(0, 0).unwrap();
    // No descriptor above the ones the manager holds now: every new client's queue fails to
    // open with EMFILE once the holes below are taken.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: with no new limit, prlimit only writes the current one into `limit`.
    let r = unsafe {
        libc::prlimit(
            m.pid() as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut limit,
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    limit.rlim_cur = lowest_free_fd(m.pid());
    // SAFETY: prlimit reads `limit` and writes nothing (no old-limit pointer); the hard limit
    // is unchanged.
    let r = unsafe {
        libc::prlimit(
            m.pid() as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    let mut children = Vec::new();
    let mut why = None;
    for i in 1..=64u32 {
        let p = Process::new(connect_or_say_why, (d.clone(), i));
        p.start().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if d.get(&i).unwrap() == Some(1) {
                break; // connected: the next one
            }
            if !p.is_alive() {
                // Refused when its argument (the proxy) connects, or at its first call.
                why = Some(match p.join_timeout(Duration::from_secs(30)) {
                    Ok(message) => message,
                    Err(e) => e.to_string(),
                });
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "child {i} neither connected nor was refused"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        children.push(p);
        if why.is_some() {
            break;
        }
    }
    for p in &children {
        let _ = p.kill();
        let _ = p.join_timeout(Duration::from_secs(30));
    }
    let why = why.expect("64 clients connected to a manager with no descriptor to spare");
    // The refusal comes from the manager, naming the limit; not the client's connect timeout.
    assert!(why.contains("RLIMIT_NOFILE"), "{why}");
    // The manager still serves the clients it has.
    assert_eq!(d.get(&0).unwrap(), Some(0));
}

fn store_a_queue(list: ListProxy<ipc_queue::Queue<u64>>) {
    let q = ipc_queue::Queue::<u64>::new(4).unwrap();
    let mut producer = ipc_queue::Queue::<u64>::open_producer(&q.handle()).unwrap();
    producer.put(42).unwrap();
    list.push(q).unwrap();
    // This process's handles of the queue are gone when it returns: only the manager's remain.
}

#[test]
fn a_queue_stored_in_a_manager_list_can_be_read_back() {
    let m = Manager::start().unwrap();
    let list = m.list::<ipc_queue::Queue<u64>>().unwrap();
    let p = Process::new(store_a_queue, list.clone());
    p.start().unwrap();
    p.join_timeout(Duration::from_secs(60)).unwrap();
    // Python stores the queue itself: reading it back gives a queue that works.
    let mut q = list.get(0).unwrap().expect("a stored queue");
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 42);
    q.put(7).unwrap();
    let mut again = list.get(0).unwrap().unwrap();
    assert_eq!(again.get_timeout(Duration::from_secs(10)).unwrap(), 7);
}

#[test]
fn dict_list_and_namespace_methods_python_programs_use() {
    let m = Manager::start().unwrap();
    let d = m.dict::<String, i32>().unwrap();
    assert_eq!(d.setdefault("a".into(), 1).unwrap(), 1);
    assert_eq!(d.setdefault("a".into(), 5).unwrap(), 1);
    d.insert("b".into(), 2).unwrap();
    assert_eq!(d.popitem().unwrap(), Some(("b".to_string(), 2)));
    assert_eq!(d.pop(&"zz".into(), -1).unwrap(), -1);
    assert_eq!(d.copy().unwrap(), [("a".to_string(), 1)]);
    assert_eq!(d.pop(&"a".into(), -1).unwrap(), 1);
    assert_eq!(d.popitem().unwrap(), None);

    let l = m.list::<i32>().unwrap();
    l.extend([5, 3, 9, 3, 1]).unwrap();
    assert_eq!(l.count(&3).unwrap(), 2);
    assert_eq!(l.index(&9).unwrap(), Some(2));
    assert_eq!(l.index(&7).unwrap(), None);
    l.sort().unwrap();
    assert_eq!(l.snapshot().unwrap(), [1, 3, 3, 5, 9]);
    l.reverse().unwrap();
    assert_eq!(l.snapshot().unwrap(), [9, 5, 3, 3, 1]);
    assert_eq!(l.slice(1..3).unwrap(), [5, 3]);
    assert_eq!(l.slice(3..100).unwrap(), [3, 1]);
    l.set_slice(1..4, [0]).unwrap();
    assert_eq!(l.snapshot().unwrap(), [9, 0, 1]);

    let ns = m.namespace().unwrap();
    ns.set("x", &1u8).unwrap();
    ns.set("y", &"two".to_string()).unwrap();
    assert_eq!(ns.fields().unwrap(), ["x", "y"]);
    assert!(ns.delete("x").unwrap());
    assert!(!ns.delete("x").unwrap());
    assert_eq!(ns.fields().unwrap(), ["y"]);
    assert_eq!(ns.get::<u8>("x").unwrap(), None);
}

fn set_up_manager(greeting: String) {
    assert_eq!(greeting, "ready");
}

fn refuse_to_set_up(_: ()) {
    panic!("no setup today");
}

#[test]
fn a_manager_runs_its_initializer_before_serving() {
    let m = Manager::builder()
        .initializer(set_up_manager, "ready".to_string())
        .start()
        .unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    d.insert(1, 1).unwrap();
    match Manager::builder().initializer(refuse_to_set_up, ()).start() {
        Err(ManagerError::Initializer(message)) => assert!(message.contains("no setup today")),
        other => panic!("expected Initializer, got {other:?}"),
    }
}

#[test]
fn a_manager_hands_out_every_primitive_python_offers() {
    let m = Manager::start().unwrap();
    let rlock = m.rlock().unwrap();
    let s = m.semaphore(0).unwrap();
    let b = m.bounded_semaphore(1).unwrap();
    let c = m.condition().unwrap();
    let barrier = m.barrier(2).unwrap();
    let a = m.array(&[1u32, 2, 3]).unwrap();
    assert_eq!(a.len(), 3);
    let jq = m.joinable_queue::<String>(4).unwrap();
    // Each works from another process, as Python's managed objects do.
    let child = Process::new(
        use_managed_primitives,
        (
            rlock.try_clone().unwrap(),
            s.try_clone().unwrap(),
            b.try_clone().unwrap(),
            c.try_clone().unwrap(),
            barrier.try_clone().unwrap(),
            a.try_clone().unwrap(),
            jq.try_clone().unwrap(),
        ),
    );
    child.start().unwrap();
    let mut jq = jq;
    assert!(
        s.acquire_timeout(Duration::from_secs(30)),
        "the child's release"
    );
    assert_eq!(
        jq.get_timeout(Duration::from_secs(30)).unwrap(),
        "from the child"
    );
    jq.task_done().unwrap();
    jq.join_timeout(Duration::from_secs(30)).unwrap();
    barrier.wait_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(a.to_vec(), [1, 42, 3]);
    // The child released what it took: the bounded semaphore's one permit and the lock.
    assert!(b.try_acquire());
    drop(rlock.try_lock().expect("the child released the rlock"));
    child.join_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(child.exit_code(), Some(0));
}

type ManagedPrimitives = (
    ipc_sync::RLock,
    ipc_sync::Semaphore,
    ipc_sync::BoundedSemaphore,
    ipc_sync::Condition,
    ipc_sync::Barrier,
    ipc_sync::Array<u32>,
    ipc_queue::JoinableQueue<String, ipc_queue::Serde>,
);

fn use_managed_primitives((rlock, s, b, c, barrier, a, mut jq): ManagedPrimitives) {
    {
        let _outer = rlock.lock().unwrap();
        let _inner = rlock.lock().unwrap(); // re-entrant
        assert!(b.try_acquire());
        {
            let g = c.lock().unwrap();
            a.set(1, 42).unwrap();
            g.notify_all();
        }
        b.release().unwrap();
    }
    jq.put("from the child".to_string()).unwrap();
    s.release().unwrap();
    barrier.wait().unwrap();
}
