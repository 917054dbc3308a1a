//! The greenlet seed program: two greenlets switching by hand.
//!
//! ```python
//! def task1(): print('task1 start'); g2.switch(); print('task1 end'); g2.switch()
//! def task2(): print('task2 start'); g1.switch(); print('task2 end')
//! g1 = greenlet(task1); g2 = greenlet(task2); g1.switch()
//! ```
//!
//! Prints `task1 start`, `task2 start`, `task1 end`, `task2 end`.

use std::cell::OnceCell;
use std::rc::Rc;

use greenlet::RawGreenlet;

/// Runs the two tasks; `say` gets each line as it is printed.
pub fn pingpong(say: impl Fn(&str) + Clone + 'static) {
    // task1 needs g2, which is made after it: share a slot.
    let g2_slot: Rc<OnceCell<RawGreenlet>> = Rc::new(OnceCell::new());
    let (g2, say1) = (g2_slot.clone(), say.clone());
    let g1 = RawGreenlet::new(move |()| {
        say1("task1 start");
        g2.get().unwrap().switch(());
        say1("task1 end");
        g2.get().unwrap().switch(());
    });
    let to_g1 = g1.clone();
    let task2 = RawGreenlet::new(move |()| {
        say("task2 start");
        to_g1.switch(());
        say("task2 end");
    });
    g2_slot.set(task2).unwrap();
    // task2 ends without switching back: its parent (main) resumes here.
    g1.switch(());
}

#[allow(dead_code)]
fn main() {
    pingpong(|line| println!("{line}"));
}
