//! `Channel`: a rendezvous.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::guard;
use greenlet::queue::{Channel, GetError, PutError};
use greenlet::{Builder, GreenletError};

fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        greenlet::yield_now();
    }
}

#[test]
fn sync_channel_put_waits_for_a_getter() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let ch = Arc::new(Channel::new());
            assert_eq!(ch.put_nowait(1), Err(PutError::Full(1)));
            assert_eq!(ch.get_nowait(), Err(GetError::Empty));
            let c = ch.clone();
            let putter = greenlet::spawn(move || c.put(5));
            until(|| ch.putters() == 1);
            assert!(!putter.ready(), "no getter yet");
            assert_eq!(ch.get(), Ok(5));
            assert_eq!(putter.get(), Ok(&Ok(())));
        });
    });
}

#[test]
fn sync_channel_put_nowait_to_a_waiting_getter() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let ch = Arc::new(Channel::new());
            let c = ch.clone();
            let getter = greenlet::spawn(move || c.get());
            until(|| ch.getters() == 1);
            assert_eq!(ch.put_nowait(9), Ok(()));
            assert_eq!(getter.get(), Ok(&Ok(9)));
        });
    });
}

#[test]
fn sync_channel_timeouts_give_the_item_back() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let ch: Channel<String> = Channel::new();
            assert_eq!(
                ch.put_timeout("x".into(), Duration::from_millis(2)),
                Err(PutError::Timeout("x".into()))
            );
            assert_eq!(
                ch.get_timeout(Duration::from_millis(2)),
                Err(GetError::Timeout)
            );
            assert_eq!((ch.getters(), ch.putters()), (0, 0));
        });
    });
}

#[test]
fn sync_channel_item_handed_to_a_killed_getter_is_not_lost() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let ch = Arc::new(Channel::new());
            let (c1, c2) = (ch.clone(), ch.clone());
            let a = greenlet::spawn(move || c1.get());
            until(|| ch.getters() == 1);
            let b = greenlet::spawn(move || c2.get());
            until(|| ch.getters() == 2);
            ch.put(1).unwrap(); // handed to a, the put is done
            a.kill();
            assert_eq!(a.get(), Err(GreenletError::Killed));
            assert_eq!(b.get(), Ok(&Ok(1)));

            let c = ch.clone();
            let lone = greenlet::spawn(move || c.get());
            until(|| ch.getters() == 1);
            ch.put(2).unwrap();
            lone.kill();
            assert_eq!(ch.get_nowait(), Ok(2), "kept for the next get");
        });
    });
}

#[test]
fn sync_channel_close_returns_items_to_putters() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let ch = Arc::new(Channel::new());
            let c = ch.clone();
            let putter = greenlet::spawn(move || c.put("kept"));
            until(|| ch.putters() == 1);
            ch.close();
            assert_eq!(putter.get(), Ok(&Err(PutError::Closed("kept"))));
            assert_eq!(ch.get(), Err(GetError::Closed));
            assert!(ch.is_closed());
        });
    });
}

#[test]
fn sync_channel_between_workers_and_threads() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let ch = Arc::new(Channel::new());
            let c = ch.clone();
            let t = std::thread::spawn(move || {
                for i in 0..500u32 {
                    c.put(i).unwrap();
                }
                c.close();
            });
            let c = ch.clone();
            let g = greenlet::spawn(move || c.iter().collect::<Vec<_>>());
            let got = g.get().unwrap().clone();
            t.join().unwrap();
            assert_eq!(got, (0..500).collect::<Vec<_>>());
        });
    });
}
