//! The greenlet seed program: two greenlets switching by hand.
//!
//! Prints `task1 start`, `task2 start`, `task1 end`, `task2 end`.

use std::cell::OnceCell;
use std::rc::Rc;

use greenlet::RawGreenlet;

fn main() {
    let g2_slot: Rc<OnceCell<RawGreenlet>> = Rc::new(OnceCell::new());
    let g2 = g2_slot.clone();
    let g1 = RawGreenlet::new(move |()| {
        println!("task1 start");
        g2.get().unwrap().switch(());
        println!("task1 end");
        g2.get().unwrap().switch(());
    });
    let to_g1 = g1.clone();
    let task2 = RawGreenlet::new(move |()| {
        println!("task2 start");
        to_g1.switch(());
        println!("task2 end");
    });
    g2_slot.set(task2).unwrap();
    g1.switch(());
}
