//! Switch round trip between two raw greenlets, beside bare corosensei.
//!
//! - `greenlet`: a `RawGreenlet` loops `main.switch(())`; each iteration is
//!   one `g.switch(())` from the thread's main greenlet, so one round trip
//!   main -> g -> main.
//! - `corosensei`: the same round trip on a bare `corosensei::Coroutine` with
//!   its default stack: one `resume(())` whose body loops `suspend(())`.
//!
//! Goal (issue 2, section 4): greenlet within 2x of bare corosensei.
//!
//! `cargo bench --bench greenlet_switch`

use corosensei::{Coroutine, CoroutineResult, Yielder};
use criterion::{Criterion, criterion_group, criterion_main};
use greenlet::RawGreenlet;

fn switch_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch_round_trip");

    group.bench_function("greenlet", |b| {
        let main = RawGreenlet::<()>::current();
        let g = RawGreenlet::new(move |()| {
            loop {
                main.switch(());
            }
        });
        b.iter(|| g.switch(()));
        // Dropping `g` unwinds it (GreenletExit) outside the timed loop.
    });

    group.bench_function("corosensei", |b| {
        let mut coro = Coroutine::new(|y: &Yielder<(), ()>, ()| {
            loop {
                y.suspend(());
            }
        });
        b.iter(|| match coro.resume(()) {
            CoroutineResult::Yield(()) => {}
            CoroutineResult::Return(never) => never,
        });
        // Dropping the suspended coroutine unwinds it.
    });

    group.finish();
}

criterion_group!(benches, switch_round_trip);
criterion_main!(benches);
