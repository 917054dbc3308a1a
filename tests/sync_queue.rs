//! `Queue`, `LifoQueue`, `PriorityQueue`: order, bounds, joinable tasks,
//! close, iteration, and no item lost to a kill or timeout.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::guard;
use greenlet::queue::{GetError, LifoQueue, PriorityQueue, PutError, Queue};
use greenlet::{Builder, GreenletError};

fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        greenlet::yield_now();
    }
}

#[test]
fn sync_queue_orders() {
    let q = Queue::new();
    let l = LifoQueue::new();
    let p = PriorityQueue::new();
    for i in [3, 1, 2] {
        q.put(i).unwrap();
        l.put(i).unwrap();
        p.put(i).unwrap();
    }
    let drain =
        |f: &dyn Fn() -> Result<i32, GetError>| (0..3).map(|_| f().unwrap()).collect::<Vec<_>>();
    assert_eq!(drain(&|| q.get_nowait()), [3, 1, 2]);
    assert_eq!(drain(&|| l.get_nowait()), [2, 1, 3]);
    assert_eq!(drain(&|| p.get_nowait()), [1, 2, 3]);
    assert_eq!(q.get_nowait(), Err(GetError::Empty));
}

#[test]
fn sync_queue_bounded_put_waits_and_nowait_fails() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let q = Arc::new(Queue::bounded(2));
            q.put(1).unwrap();
            q.put(2).unwrap();
            assert!(q.is_full());
            assert_eq!(q.put_nowait(3), Err(PutError::Full(3)));
            assert_eq!(
                q.put_timeout(3, Duration::from_millis(2)),
                Err(PutError::Timeout(3))
            );
            assert_eq!(q.putters(), 0);
            let q2 = q.clone();
            let putter = greenlet::spawn(move || q2.put(3));
            until(|| q.putters() == 1);
            assert_eq!(q.get(), Ok(1));
            assert_eq!(putter.get(), Ok(&Ok(())));
            assert_eq!(q.len(), 2);
            assert_eq!(q.get(), Ok(2));
            assert_eq!(q.get(), Ok(3));
        });
    });
}

#[test]
fn sync_queue_getters_served_in_fifo_order_without_barging() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let q = Arc::new(Queue::new());
            let got = Arc::new(Mutex::new(Vec::new()));
            let gs: Vec<_> = (0..4)
                .map(|i| {
                    let (q2, got) = (q.clone(), got.clone());
                    let g = greenlet::spawn(move || {
                        let v = q2.get().unwrap();
                        got.lock().unwrap().push((i, v));
                    });
                    until(|| q.getters() == i + 1);
                    g
                })
                .collect();
            for v in 0..4 {
                q.put(v * 10).unwrap();
                // Reserved for the first getter: nobody else can take it.
                assert_eq!(q.get_nowait(), Err(GetError::Empty));
            }
            greenlet::joinall(&gs);
            let mut got = got.lock().unwrap().clone();
            got.sort();
            assert_eq!(got, [(0, 0), (1, 10), (2, 20), (3, 30)]);
        });
    });
}

#[test]
fn sync_queue_item_reserved_for_a_killed_getter_goes_to_the_next() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let q = Arc::new(Queue::new());
            let (qa, qb) = (q.clone(), q.clone());
            let a = greenlet::spawn(move || qa.get());
            until(|| q.getters() == 1);
            let b = greenlet::spawn(move || qb.get());
            until(|| q.getters() == 2);
            q.put("item").unwrap(); // reserved for a
            a.kill();
            assert_eq!(a.get(), Err(GreenletError::Killed));
            assert_eq!(b.get(), Ok(&Ok("item")));
            assert!(q.is_empty());
        });
    });
}

#[test]
fn sync_queue_item_reserved_for_a_killed_getter_stays_in_the_queue() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let q = Arc::new(Queue::new());
            let qa = q.clone();
            let a = greenlet::spawn(move || qa.get());
            until(|| q.getters() == 1);
            q.put(7).unwrap();
            a.kill();
            assert_eq!(q.get_nowait(), Ok(7));
        });
    });
}

#[test]
fn sync_queue_slot_reserved_for_a_killed_putter_goes_to_the_next() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let q = Arc::new(Queue::bounded(1));
            q.put(0).unwrap();
            let (qa, qb) = (q.clone(), q.clone());
            let a = greenlet::spawn(move || qa.put(1));
            until(|| q.putters() == 1);
            let b = greenlet::spawn(move || qb.put(2));
            until(|| q.putters() == 2);
            assert_eq!(q.get(), Ok(0)); // the free place is a's
            a.kill();
            assert_eq!(b.get(), Ok(&Ok(())));
            assert_eq!(q.get_nowait(), Ok(2));
            assert_eq!(q.get_nowait(), Err(GetError::Empty));
        });
    });
}

#[test]
fn sync_queue_get_timeout() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let q: Queue<u8> = Queue::new();
            assert_eq!(
                q.get_timeout(Duration::from_millis(2)),
                Err(GetError::Timeout)
            );
            assert_eq!(
                q.peek_timeout(Duration::from_millis(2)),
                Err(GetError::Timeout)
            );
            assert_eq!(q.getters(), 0);
        });
    });
}

#[test]
fn sync_queue_peek_waits_and_does_not_take() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let q = Arc::new(Queue::new());
            let q2 = q.clone();
            let peeker = greenlet::spawn(move || q2.peek());
            until(|| !peeker.ready() && q.is_empty());
            q.put(String::from("x")).unwrap();
            assert_eq!(peeker.get(), Ok(&Ok("x".to_string())));
            assert_eq!(q.len(), 1);
            assert_eq!(q.peek_nowait(), Ok("x".to_string()));
        });
    });
}

#[test]
fn sync_queue_join_waits_for_task_done() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let q = Arc::new(Queue::new());
            for i in 0..10 {
                q.put(i).unwrap();
            }
            assert!(!q.join_timeout(Duration::from_millis(1)));
            let q2 = q.clone();
            let worker = greenlet::spawn(move || {
                let mut sum = 0;
                while let Ok(v) = q2.get_nowait() {
                    sum += v;
                    q2.task_done();
                }
                sum
            });
            q.join();
            assert_eq!(q.unfinished_tasks(), 0);
            assert_eq!(worker.get(), Ok(&45));
        });
    });
}

#[test]
fn sync_queue_close_wakes_everyone_and_iteration_drains() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let q = Arc::new(Queue::bounded(1));
            let getters: Vec<_> = (0..3)
                .map(|_| {
                    let q = q.clone();
                    greenlet::spawn(move || q.get())
                })
                .collect();
            until(|| q.getters() == 3);
            q.close();
            for g in &getters {
                assert_eq!(g.get(), Ok(&Err(GetError::Closed)));
            }
            assert_eq!(q.put(1), Err(PutError::Closed(1)));

            let q = Arc::new(Queue::bounded(1));
            q.put(1).unwrap();
            let q2 = q.clone();
            let putter = greenlet::spawn(move || q2.put(2));
            until(|| q.putters() == 1);
            q.close();
            assert_eq!(putter.get(), Ok(&Err(PutError::Closed(2))));
            // What was put before the close is still there.
            assert_eq!(q.iter().collect::<Vec<_>>(), [1]);
            assert_eq!(q.get(), Err(GetError::Closed));
        });
    });
}

#[test]
fn sync_queue_between_greenlets_and_plain_threads() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let q = Arc::new(Queue::bounded(4));
            let q2 = q.clone();
            let producer = std::thread::spawn(move || {
                for i in 0..1000u64 {
                    q2.put(i).unwrap();
                }
                q2.close();
            });
            let sum: u64 = q.iter().sum();
            producer.join().unwrap();
            assert_eq!(sum, 999 * 1000 / 2);
        });
    });
}
