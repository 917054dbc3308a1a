//! Raw greenlets: python greenlet's contract.

mod common;

use std::cell::{Cell, OnceCell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use common::{DropCount, DropFlag, guard, panic_text};
use greenlet::{GreenletExit, RawBuilder, RawGreenlet, SwitchError};

#[test]
fn seed_program_runs_in_order() {
    guard(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let g2_slot: Rc<OnceCell<RawGreenlet>> = Rc::new(OnceCell::new());
        let (l1, s1) = (log.clone(), g2_slot.clone());
        let g1 = RawGreenlet::new(move |()| {
            l1.borrow_mut().push("task1 start");
            s1.get().unwrap().switch(());
            l1.borrow_mut().push("task1 end");
            s1.get().unwrap().switch(());
        });
        let (l2, to_g1) = (log.clone(), g1.clone());
        let g2 = RawGreenlet::new(move |()| {
            l2.borrow_mut().push("task2 start");
            to_g1.switch(());
            l2.borrow_mut().push("task2 end");
        });
        g2_slot.set(g2).unwrap();
        g1.switch(());
        assert_eq!(
            *log.borrow(),
            ["task1 start", "task2 start", "task1 end", "task2 end"]
        );
    });
}

#[test]
fn values_pass_both_ways() {
    guard(|| {
        let main = RawGreenlet::<i64>::current();
        let g = RawGreenlet::new(move |first: i64| {
            let second = main.switch(first + 1);
            let third = main.switch(second * 10);
            third - 1
        });
        assert_eq!(g.switch(1), 2);
        assert_eq!(g.switch(5), 50);
        assert_eq!(g.switch(100), 99);
        assert!(g.is_dead());
    });
}

#[test]
fn first_switch_starts_the_function_with_the_value() {
    guard(|| {
        let seen = Rc::new(Cell::new(None));
        let s = seen.clone();
        let g = RawGreenlet::new(move |v: String| {
            s.set(Some(v.len()));
            v
        });
        assert!(!g.is_started());
        assert_eq!(seen.get(), None, "nothing runs before the first switch");
        assert_eq!(g.switch("hello".to_string()), "hello");
        assert_eq!(seen.get(), Some(5));
    });
}

#[test]
fn return_value_goes_to_the_parent() {
    guard(|| {
        let outer = RawGreenlet::new(|()| {
            // The inner greenlet's parent is `outer` (current at creation).
            let inner = RawGreenlet::new(|x: u32| x * 3);
            let got = inner.cast::<u32>().switch(7);
            assert_eq!(got, 21);
        });
        outer.switch(());
        assert!(outer.is_dead());

        // An explicit parent receives the value even if someone else started it.
        let collector = RawGreenlet::new(|v: u32| v + 1000);
        let child = RawBuilder::new()
            .parent(&collector)
            .build(|v: u32| v * 2)
            .unwrap();
        // child returns 10 to collector, which starts with it and returns 1010
        // to its own parent: main.
        assert_eq!(child.switch(5), 1010);
    });
}

#[test]
fn panic_propagates_to_the_parent() {
    guard(|| {
        let g = RawGreenlet::new(|()| panic!("inner failure"));
        let err = catch_unwind(AssertUnwindSafe(|| g.switch(()))).unwrap_err();
        assert_eq!(panic_text(&*err), "inner failure");
        assert!(g.is_dead());
    });
}

#[test]
fn throw_into_suspended_greenlet_unwinds_it() {
    guard(|| {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let main = RawGreenlet::<()>::current();
        let g = RawGreenlet::new(move |()| {
            let _flag = DropFlag(d);
            main.switch(());
            unreachable!("the throw never returns here");
        });
        g.switch(());
        assert_eq!(drops.get(), 0);
        assert_eq!(g.throw(), None, "GreenletExit is a normal end");
        assert!(g.is_dead());
        assert_eq!(drops.get(), 1, "destructors ran");
    });
}

#[test]
fn throw_can_be_caught_and_answered() {
    guard(|| {
        let main = RawGreenlet::<i32>::current();
        let g = RawGreenlet::new(move |_: i32| {
            let r = catch_unwind(AssertUnwindSafe(|| main.switch(0)));
            assert!(r.unwrap_err().is::<GreenletExit>());
            7
        });
        g.switch(0);
        assert_eq!(g.throw(), Some(7));
    });
}

#[test]
fn throw_into_unstarted_greenlet_never_runs_it() {
    guard(|| {
        let ran = Rc::new(Cell::new(false));
        let drops = Rc::new(Cell::new(0));
        let (r, d) = (ran.clone(), DropFlag(drops.clone()));
        let g = RawGreenlet::new(move |()| {
            let _d = d;
            r.set(true);
        });
        assert_eq!(g.throw(), None);
        assert!(g.is_dead());
        assert!(!ran.get());
        assert_eq!(drops.get(), 1, "the closure was dropped");
        // A dead greenlet's switch goes to its parent (main): returns at once.
        g.switch(());
        assert!(!ran.get());
    });
}

#[test]
fn switching_to_a_dead_greenlet_goes_to_its_parent() {
    guard(|| {
        let parent = RawGreenlet::new(|v: u8| {
            // Started by the switch to the dead child, with the value.
            v + 1
        });
        let child = RawBuilder::new().parent(&parent).build(|v: u8| v).unwrap();
        // child returns 1 to parent (starting it), parent returns 2 to main.
        assert_eq!(child.switch(1), 2);
        assert!(child.is_dead() && parent.is_dead());
        // Both dead: the switch climbs to main, i.e. returns at once.
        assert_eq!(child.switch(9), 9);
    });
}

#[test]
fn reparenting_detects_cycles() {
    guard(|| {
        let a = RawGreenlet::new(|()| ());
        let b = RawBuilder::new().parent(&a).build(|()| ()).unwrap();
        let c = RawBuilder::new().parent(&b).build(|()| ()).unwrap();
        assert_eq!(a.set_parent(&c), Err(SwitchError::ParentCycle));
        assert_eq!(a.set_parent(&a), Err(SwitchError::ParentCycle));
        assert_eq!(c.set_parent(&a), Ok(()));
        assert_eq!(c.parent().unwrap(), a);
    });
}

#[test]
fn every_thread_has_an_implicit_main_greenlet() {
    guard(|| {
        let main = RawGreenlet::<()>::current();
        assert!(main.parent().is_none(), "main has no parent");
        assert!(main.is_active());
        assert_eq!(RawGreenlet::<()>::current(), main);
        let main_id = main.id();
        let other = std::thread::spawn(|| RawGreenlet::<()>::current().id())
            .join()
            .unwrap();
        assert_ne!(other, main_id, "each thread has its own main greenlet");

        let m = main.clone();
        let g = RawGreenlet::new(move |()| {
            let me = RawGreenlet::<()>::current();
            assert_ne!(me, m);
            assert_eq!(me.parent().unwrap(), m);
        });
        g.switch(());
    });
}

#[test]
fn switching_to_another_threads_greenlet_is_an_error() {
    guard(|| {
        let g = RawGreenlet::new(|v: u32| v);
        let remote = g.remote();
        let r = std::thread::spawn(move || {
            (
                remote.try_switch(5u32),
                remote.to_local::<u32>().map(|_| ()),
            )
        })
        .join()
        .unwrap();
        assert_eq!(r.0, Err(SwitchError::WrongThread));
        assert_eq!(r.1, Err(SwitchError::WrongThread));
        assert_eq!(g.switch(3), 3, "still usable on its own thread");
    });
}

#[test]
fn mismatched_value_types_are_refused_before_switching() {
    guard(|| {
        let g = RawGreenlet::new(|v: u32| v);
        let as_string = g.cast::<String>();
        assert!(matches!(
            as_string.try_switch("x".into()),
            Err(SwitchError::TypeMismatch { .. })
        ));
        assert!(!g.is_started());
        assert_eq!(g.switch(4), 4);
    });
}

#[test]
fn dropping_the_last_handle_unwinds_a_suspended_greenlet() {
    guard(|| {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let main = RawGreenlet::<()>::current();
        let g = RawGreenlet::new(move |()| {
            let _flag = DropFlag(d);
            main.switch(());
        });
        g.switch(());
        assert_eq!(drops.get(), 0);
        drop(g);
        assert_eq!(drops.get(), 1, "the suspended stack was unwound");
    });
}

#[test]
fn dropping_an_unstarted_greenlet_drops_its_closure() {
    guard(|| {
        let drops = Rc::new(Cell::new(0));
        let d = DropFlag(drops.clone());
        let g = RawGreenlet::new(move |()| {
            let _d = d;
        });
        drop(g);
        assert_eq!(drops.get(), 1);
    });
}

#[test]
fn a_chain_of_100_000_greenlets_passes_a_value_along() {
    guard(|| {
        const N: u64 = 100_000;
        // Each greenlet adds one and hands on to the next, which it creates:
        // its parent is the previous one, so each result climbs back up.
        fn link(depth: u64) -> impl FnOnce(u64) -> u64 {
            move |v: u64| {
                if depth == N {
                    return v;
                }
                RawBuilder::new()
                    .stack_size(16 * 1024)
                    .build(link(depth + 1))
                    .unwrap()
                    .switch(v + 1)
            }
        }
        let first = RawGreenlet::new(link(1));
        assert_eq!(first.switch(0), N - 1);
    });
}

#[test]
fn a_flat_ring_of_100_000_greenlets_passes_a_value_along() {
    guard(|| {
        const N: usize = 100_000;
        let ring: Rc<RefCell<Vec<RawGreenlet<u64>>>> = Rc::new(RefCell::new(Vec::new()));
        for i in 0..N {
            let r = ring.clone();
            let g = RawBuilder::new()
                .stack_size(16 * 1024)
                .build(move |v: u64| {
                    let next = r.borrow().get(i + 1).cloned();
                    match next {
                        Some(next) => next.switch(v + 1),
                        None => v + 1,
                    }
                })
                .unwrap();
            ring.borrow_mut().push(g);
        }
        let first = ring.borrow()[0].clone();
        assert_eq!(first.switch(0), N as u64);
        ring.borrow_mut().clear();
    });
}

#[test]
fn stack_size_below_minimum_is_an_error() {
    guard(|| {
        let err = RawBuilder::new()
            .stack_size(1024)
            .build(|()| ())
            .unwrap_err();
        assert!(err.to_string().contains("below the minimum"), "{err}");
    });
}

#[test]
fn switching_to_self_returns_the_value() {
    guard(|| {
        let g = RawGreenlet::new(|v: u8| RawGreenlet::<u8>::current().switch(v + 1));
        assert_eq!(g.switch(1), 2);
        let main = RawGreenlet::<u8>::current();
        assert_eq!(main.switch(4), 4);
    });
}

#[test]
fn a_backtrace_taken_in_a_greenlet_ends_at_its_start() {
    guard(|| {
        let g = RawGreenlet::new(|()| {
            let trace = std::backtrace::Backtrace::force_capture().to_string();
            assert!(
                trace.contains("a_backtrace_taken_in_a_greenlet_ends_at_its_start"),
                "the greenlet's own frames are in its backtrace:\n{trace}"
            );
            // The walk stops at the greenlet's entry: nothing of the stack
            // that switched to it (this test's thread) is in it.
            assert!(!trace.contains("guard_for"), "{trace}");
        });
        g.switch(());
        assert!(g.is_dead());
    });
}

/// Eight values mixed together at every step, integer and floating point.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mix([u64; 6], [f64; 2]);

impl Mix {
    fn new() -> Self {
        Mix([1, 2, 3, 4, 5, 6], [0.5, 1.5])
    }

    #[inline(always)]
    fn step(&mut self, r: u64) {
        let [a, b, c, d, e, f] = &mut self.0;
        *a = a.wrapping_add(r);
        *b = b.wrapping_mul(3).wrapping_add(*a);
        *c ^= b.rotate_left(7);
        *d = d.wrapping_add(*c);
        *e = e.wrapping_mul(5).wrapping_add(*d);
        *f ^= *e;
        self.1[0] += r as f64;
        self.1[1] *= 1.0001;
    }
}

#[test]
fn values_live_across_switches_keep_their_registers() {
    // Many values live across each switch, so the compiler keeps some in
    // callee-saved registers and has to save the rest: a register the
    // switch failed to restore shows as a different result.
    guard(|| {
        let main = RawGreenlet::<u64>::current();
        let g = RawGreenlet::new(move |mut x: u64| {
            loop {
                x = main.switch(x.wrapping_mul(3));
            }
        });
        let mut live = Mix::new();
        for i in 0..1000u64 {
            let r = g.switch(i);
            assert_eq!(r, i.wrapping_mul(3));
            live.step(r);
        }
        let mut expected = Mix::new();
        for i in 0..1000u64 {
            expected.step(i.wrapping_mul(3));
        }
        assert_eq!(live, expected);
    });
}

#[test]
fn a_closure_too_large_for_its_stack_is_an_error() {
    guard(|| {
        let big = [7u8; 64 * 1024];
        let r = RawBuilder::new()
            .stack_size(greenlet::MIN_STACK_SIZE)
            .build(move |()| {
                std::hint::black_box(&big);
            });
        match r {
            Err(greenlet::StackError::ClosureTooLarge { closure, stack }) => {
                assert!(closure >= 64 * 1024);
                assert_eq!(stack, greenlet::MIN_STACK_SIZE);
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a 64 KiB closure fit on the smallest stack"),
        }
        // A larger stack takes it (debug builds copy the closure a few times
        // on the way in).
        let g = RawBuilder::new()
            .stack_size(1024 * 1024)
            .build(move |()| {
                assert_eq!(std::hint::black_box(&big)[100], 7);
            })
            .unwrap();
        g.switch(());
        assert!(g.is_dead());
    });
}

/// An unstarted greenlet that records whether it ran, and an unstarted
/// child of it that runs `body`.
fn unstarted_parent_of(
    body: impl FnOnce(()) + 'static,
) -> (Rc<Cell<bool>>, RawGreenlet, RawGreenlet) {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let parent = RawGreenlet::new(move |()| r.set(true));
    let child = RawBuilder::new().parent(&parent).build(body).unwrap();
    (ran, parent, child)
}

#[test]
fn a_panic_reaching_an_unstarted_parent_ends_it_unrun() {
    guard(|| {
        let (ran, parent, child) = unstarted_parent_of(|()| panic!("child failure"));
        // The panic goes to `parent`, which has not started: it ends at
        // once and passes the panic on to its own parent, main.
        let err = catch_unwind(AssertUnwindSafe(|| child.switch(()))).unwrap_err();
        assert_eq!(panic_text(&*err), "child failure");
        assert!(child.is_dead() && parent.is_dead());
        assert!(!ran.get());
    });
}

#[test]
fn an_exit_reaching_an_unstarted_parent_ends_it_unrun() {
    guard(|| {
        let (ran, parent, child) =
            unstarted_parent_of(|()| unreachable!("thrown into before it starts"));
        // The exit of the unstarted child goes to `parent`, which ends at
        // once, as a normal end: main gets nothing back.
        assert_eq!(child.throw(), None);
        assert!(child.is_dead() && parent.is_dead());
        assert!(!ran.get());
    });
}

#[test]
fn large_and_owning_values_cross_switches_once() {
    // A value is sent by address and moved out by the receiver: each must
    // arrive intact and be dropped exactly once, whatever its size.
    type Big = ([u64; 32], Rc<()>);
    guard(|| {
        let token = Rc::new(());
        let main = RawGreenlet::<Big>::current();
        let g = RawGreenlet::new(move |mut v: Big| {
            for _ in 0..100 {
                v.0[0] += 1;
                v = main.switch(v);
            }
            v
        });
        let mut v: Big = ([7; 32], token.clone());
        for i in 0..100u64 {
            v = g.switch(v);
            assert_eq!(v.0[0], 8 + i);
            assert_eq!(v.0[31], 7);
            assert_eq!(Rc::strong_count(&token), 2, "one value alive");
        }
        // The last switch starts the return: the value comes back as the
        // greenlet's result.
        let back = g.switch(v);
        assert!(g.is_dead());
        assert_eq!(back.0[0], 107);
        drop(back);
        assert_eq!(Rc::strong_count(&token), 1, "nothing leaked");
    });
}

#[test]
fn a_suspended_greenlet_held_by_a_thread_local_is_unwound_at_thread_exit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // The thread-local is made before the thread's first greenlet (so
    // before its root): its destructor runs after the root's, and dropping
    // the handle then must still kill the greenlet by switching from the
    // root (it aborted the process once).
    thread_local! {
        static HELD: RefCell<Option<RawGreenlet>> = const { RefCell::new(None) };
    }
    guard(|| {
        let unwound = Arc::new(AtomicUsize::new(0));
        let u = unwound.clone();
        std::thread::spawn(move || {
            HELD.with(|h| {
                let main = RawGreenlet::<()>::current();
                let g = RawGreenlet::new(move |()| {
                    let _count = DropCount(u);
                    main.switch(());
                    unreachable!("killed, never resumed");
                });
                g.switch(());
                *h.borrow_mut() = Some(g);
            });
        })
        .join()
        .expect("the thread ends cleanly");
        assert_eq!(unwound.load(Ordering::SeqCst), 1);
    });
}
