//! `Queue` against `VecDeque`: in one thread, every sequence of operations gives the same
//! results as the model (FIFO order, full and empty at the same moments, exact length).

use std::collections::VecDeque;

use ipc_queue::{Queue, Serde, TryGetError, TryPutError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u64),
    Get,
    Len,
    /// A second handle of the same queue does the operation.
    OtherPut(u64),
    OtherGet,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u64>().prop_map(Op::Put),
        4 => Just(Op::Get),
        1 => Just(Op::Len),
        2 => any::<u64>().prop_map(Op::OtherPut),
        2 => Just(Op::OtherGet),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn plain_queue_matches_vecdeque(cap in 1..9usize, ops in proptest::collection::vec(op(), 1..200)) {
        let mut q = Queue::<u64>::new(cap).unwrap();
        let mut other = Queue::<u64>::open(&q.handle()).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Put(v) | Op::OtherPut(v) => {
                    let h = if matches!(op, Op::Put(_)) { &mut q } else { &mut other };
                    match h.try_put(v) {
                        Ok(()) => {
                            prop_assert!(model.len() < cap);
                            model.push_back(v);
                        }
                        Err(TryPutError::Full(back)) => {
                            prop_assert_eq!(back, v);
                            prop_assert_eq!(model.len(), cap);
                        }
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Get | Op::OtherGet => {
                    let h = if matches!(op, Op::Get) { &mut q } else { &mut other };
                    match h.try_get() {
                        Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                        Err(TryGetError::Empty) => prop_assert!(model.is_empty()),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Len => {
                    prop_assert_eq!(q.len(), model.len());
                    prop_assert_eq!(q.is_empty(), model.is_empty());
                    prop_assert_eq!(q.is_full(), model.len() == cap);
                }
            }
        }
    }

    #[test]
    fn serde_queue_matches_vecdeque(cap in 1..6usize, ops in proptest::collection::vec(op(), 1..100)) {
        let mut q = Queue::<String, Serde>::new(cap).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Put(v) | Op::OtherPut(v) => {
                    // Some values are larger than a slot and travel in a segment of their own.
                    let s = "v".repeat((v % 300) as usize);
                    match q.try_put(s.clone()) {
                        Ok(()) => model.push_back(s),
                        Err(TryPutError::Full(_)) => prop_assert_eq!(model.len(), cap),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Get | Op::OtherGet => match q.try_get() {
                    Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                    Err(TryGetError::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                },
                Op::Len => prop_assert_eq!(q.len(), model.len()),
            }
        }
    }
}
