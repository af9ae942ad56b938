//! `Process::join_async` with every start method, on three executors (tokio current-thread,
//! tokio multi-thread, `futures::executor`): results, a result larger than the socket buffer,
//! timeouts, a child killed while awaited, many children joined at once, and a dropped join.

use std::time::Duration;

use ipc_core::{JoinError, StartMethod};
use ipc_testkit::process::{START_METHODS as METHODS, process};
use ipc_testkit::{WATCHDOG, on_every_executor};

fn square(x: u64) -> u64 {
    x * x
}

fn big(n: usize) -> Vec<u8> {
    vec![7; n]
}

fn sleeps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn join_async_returns_the_result_with_each_method() {
    for method in METHODS {
        on_every_executor(WATCHDOG, move || async move {
            let p = process(method, square, 12);
            p.start().unwrap();
            assert_eq!(p.join_async().await.unwrap(), 144);
            assert_eq!(p.exit_code(), Some(0));
        });
    }
}

#[test]
fn a_result_larger_than_the_socket_buffer_is_read_while_awaited() {
    for method in METHODS {
        on_every_executor(WATCHDOG, move || async move {
            let p = process(method, big, 4 << 20);
            p.start().unwrap();
            let v = p.join_async().await.unwrap();
            assert_eq!(v.len(), 4 << 20);
            assert!(v.iter().all(|&b| b == 7));
        });
    }
}

#[test]
fn join_timeout_async_times_out_and_the_child_stays_joinable() {
    on_every_executor(WATCHDOG, || async {
        let p = process(StartMethod::ForkServer, sleeps, 300);
        p.start().unwrap();
        assert!(matches!(
            p.join_timeout_async(Duration::from_millis(20)).await,
            Err(JoinError::Timeout)
        ));
        assert!(p.is_alive());
        // A join future dropped before it is ready changes nothing either.
        {
            let mut fut = Box::pin(p.join_async());
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(p.join_async().await.unwrap(), 300);
    });
}

#[test]
fn a_child_killed_while_awaited_ends_the_join() {
    for method in METHODS {
        on_every_executor(WATCHDOG, move || async move {
            let p = process(method, sleeps, 60_000);
            p.start().unwrap();
            let join = p.join_async();
            p.kill().unwrap();
            assert!(matches!(join.await, Err(JoinError::Signaled { signal: 9 })));
            assert_eq!(p.exit_code(), Some(-9));
        });
    }
}

#[test]
fn many_children_are_joined_by_concurrent_tasks() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..32u64)
            .map(|i| {
                tokio::spawn(async move {
                    let p = process(StartMethod::ForkServer, square, i);
                    p.start().unwrap();
                    p.join_async().await.unwrap()
                })
            })
            .collect();
        let all = async {
            let mut sum = 0;
            for t in tasks {
                sum += t.await.unwrap();
            }
            sum
        };
        let sum = tokio::time::timeout(WATCHDOG, all).await.expect("watchdog");
        assert_eq!(sum, (0..32u64).map(|i| i * i).sum::<u64>());
    });
}
