//! The condition dialogue (seed program 7): two parties, 小爱 (XiaoAi) and
//! 天猫精灵 (TianMao), share one `Condition` and speak in strict
//! alternation, TianMao first.
//!
//! ```text
//! cargo run --example dialogue
//! ```

use std::sync::{Arc, Mutex};

use greenlet::sync::{Condition, Event, Lock};

pub const LINES: [&str; 12] = [
    "小爱同学",
    "在",
    "我们来对古诗吧",
    "好啊",
    "我住长江头",
    "君住长江尾",
    "日日思君不见君",
    "共饮长江水",
    "此水几时休",
    "此恨何时已",
    "只愿君心似我心",
    "定不负相思意",
];

/// Runs the dialogue inside a runtime and returns the lines as spoken,
/// each prefixed with its speaker.
pub fn dialogue(print: bool) -> Vec<String> {
    // The lock guards whose turn it is (the index of the next line).
    let shared = Arc::new((Lock::new(0usize), Condition::new()));
    let said = Arc::new(Mutex::new(Vec::new()));
    let a_waiting = Arc::new(Event::new());

    let party = |name: &'static str, first: usize, ready: Option<Arc<Event>>| {
        let (shared, said) = (shared.clone(), said.clone());
        move || {
            let (turn, cond) = &*shared;
            let mut t = turn.lock();
            if let Some(ready) = ready {
                ready.set(); // waiting (below) releases the lock to B
            }
            for i in (first..LINES.len()).step_by(2) {
                t = cond.wait_while(t, |t| *t != i);
                let line = format!("{name}: {}", LINES[i]);
                if print {
                    println!("{line}");
                }
                said.lock().unwrap().push(line);
                *t += 1;
                cond.notify_one();
            }
        }
    };

    // A must be waiting before B speaks: start A, wait until it holds the
    // lock, then start B (which can only lock once A waits).
    let a = greenlet::spawn(party("小爱", 1, Some(a_waiting.clone())));
    a_waiting.wait();
    let b = greenlet::spawn(party("天猫精灵", 0, None));
    greenlet::joinall(&[a, b]);
    std::mem::take(&mut *said.lock().unwrap())
}

#[allow(dead_code)]
fn main() {
    greenlet::run(|| {
        dialogue(true);
    });
}
