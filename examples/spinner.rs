//! The spinner seed program: a greenlet draws a spinner while a slow
//! function works; when the answer is in, the spinner is killed, clears its
//! line on the way out, and the answer is printed.
//!
//! ```python
//! def spin(msg):
//!     for char in itertools.cycle('|/-\\'):
//!         print(f'\r{char} {msg}', end='', flush=True)
//!         try:
//!             gevent.sleep(.1)
//!         except GreenletExit:
//!             break
//!     print('\r' + ' ' * (len(msg) + 2) + '\r', end='')
//!
//! def slow_function():
//!     gevent.sleep(3)
//!     return 42
//!
//! spinner = gevent.spawn(spin, 'thinking!')
//! result = slow_function()
//! spinner.kill()
//! print('Answer:', result)
//! ```
//!
//! `kill` unwinds the spinner from its `sleep`; what Python does in
//! `except GreenletExit` is a drop guard here, and `kill` returns once it
//! has run, so the line is clear before the answer is printed.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Where the spinner draws: the terminal in `main`, a recorder in the test.
pub type Screen = Arc<dyn Fn(&str) + Send + Sync>;

/// The spinner's frames, in order.
pub const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

/// Draws a frame and `msg` every `tick` until killed.
fn spin(msg: &'static str, tick: Duration, screen: Screen) {
    /// Clears the line when the spinner is unwound by its kill.
    struct ClearLine(Screen, usize);
    impl Drop for ClearLine {
        fn drop(&mut self) {
            (self.0)(&format!("\r{}\r", " ".repeat(self.1)));
        }
    }
    let _clear = ClearLine(screen.clone(), msg.len() + 2);
    for frame in FRAMES.iter().cycle() {
        screen(&format!("\r{frame} {msg}"));
        greenlet::sleep(tick);
    }
}

fn slow_function(work: Duration) -> u32 {
    greenlet::sleep(work); // pretend to wait a long time for I/O
    42
}

/// Spins on `screen` every `tick` while the slow function works for
/// `work`; returns its answer once the spinner is gone.
pub fn supervisor(work: Duration, tick: Duration, screen: Screen) -> u32 {
    greenlet::run(move || {
        let spinner = greenlet::spawn(move || spin("thinking!", tick, screen));
        let result = slow_function(work);
        spinner.kill();
        result
    })
}

#[allow(dead_code)]
fn main() {
    let screen: Screen = Arc::new(|s: &str| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    });
    let answer = supervisor(Duration::from_secs(3), Duration::from_millis(100), screen);
    println!("Answer: {answer}");
}
