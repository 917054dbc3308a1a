//! The `Greenlet<T>` handle.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::GreenletError;
use super::cell::{Link, Prefix, add_link, claim_start, is_done, prefix, wait_done};
use crate::greenlet::GreenletExit;
use crate::greenlet::header::{HeaderRef, INTERRUPT_KILL};
use crate::greenlet::switch::current_ptr;

/// A handle to a spawned greenlet: join it, get its result, kill it.
///
/// Handles are cheap to clone; the greenlet runs whether or not any handle
/// is kept.
///
/// ```
/// greenlet::run(|| {
///     let g = greenlet::spawn(|| "done");
///     assert_eq!(g.get(), Ok(&"done"));
///     assert!(g.ready() && g.successful());
/// });
/// ```
pub struct Greenlet<T> {
    cell: HeaderRef,
    _t: PhantomData<Arc<T>>,
}

impl<T> Clone for Greenlet<T> {
    fn clone(&self) -> Self {
        Greenlet {
            cell: self.cell.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Greenlet")
            .field("id", &self.cell.id)
            .field("name", &self.cell.display_name())
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T> Greenlet<T> {
    fn prefix(&self) -> &Prefix<T> {
        // SAFETY: a Greenlet<T> is only made for a TaskCell<T, _>.
        unsafe { prefix::<T>(&self.cell) }
    }

    fn result(&self) -> Option<&Result<T, GreenletError>> {
        if !is_done(&self.cell) {
            return None;
        }
        // SAFETY: DONE was observed (acquire): the result is written and
        // never changes again.
        unsafe { (*self.prefix().result.get()).as_ref() }
    }

    /// Waits until the greenlet has ended (returned, panicked or been killed).
    ///
    /// From a greenlet this parks only the caller; from a plain thread it
    /// blocks the thread.
    ///
    /// # Panics
    /// If a greenlet joins itself, or (in a `run`'s main greenlet or a plain
    /// thread) if nothing can ever wake the caller: the program would block
    /// forever.
    pub fn join(&self) {
        wait_done(&self.cell, None);
    }

    /// Waits at most `timeout`; true if the greenlet has ended.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        wait_done(&self.cell, Some(Instant::now() + timeout))
    }

    /// Waits for the greenlet, then returns its value, or how it failed.
    pub fn get(&self) -> Result<&T, GreenletError> {
        self.join();
        match self.result() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.clone()),
            None => unreachable!("joined greenlets have a result"),
        }
    }

    /// The value, if the greenlet has returned one (gevent's `value`).
    pub fn value(&self) -> Option<&T> {
        self.result().and_then(|r| r.as_ref().ok())
    }

    /// How it failed, if it has ended and failed (gevent's `exception`).
    pub fn error(&self) -> Option<GreenletError> {
        self.result().and_then(|r| r.as_ref().err().cloned())
    }

    /// True once the greenlet has ended, however.
    pub fn ready(&self) -> bool {
        is_done(&self.cell)
    }

    /// True once the greenlet has ended by returning a value.
    pub fn successful(&self) -> bool {
        matches!(self.result(), Some(Ok(_)))
    }

    /// Kills the greenlet and waits until it has finished unwinding.
    ///
    /// `GreenletExit` is raised at its next switch point (waking it if it is
    /// parked); if it has not started it never will. Killing the running
    /// greenlet raises `GreenletExit` at once. A dead greenlet is left alone.
    pub fn kill(&self) {
        self.kill_nowait();
        self.join();
    }

    /// Kills the greenlet and waits at most `timeout` for it to finish
    /// unwinding; true if it has.
    pub fn kill_timeout(&self, timeout: Duration) -> bool {
        self.kill_nowait();
        self.join_timeout(timeout)
    }

    /// Asks the greenlet to die and returns at once.
    pub fn kill_nowait(&self) {
        if self.ready() {
            return;
        }
        if claim_start(&self.cell) {
            // SAFETY: we claimed it.
            unsafe { (self.cell.vtable.cancel)(&self.cell) };
            return;
        }
        if current_ptr() == self.cell.as_ptr() {
            std::panic::resume_unwind(Box::new(GreenletExit));
        }
        crate::hub::interrupt(&self.cell, INTERRUPT_KILL);
    }

    /// Calls `f` with this greenlet once it has ended (gevent's `link`); at
    /// once if it has already. `f` runs in whatever ends the greenlet (the
    /// greenlet itself, its killer, or the caller here), so it should be
    /// short.
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// greenlet::run(|| {
    ///     let (tx, rx) = mpsc::channel();
    ///     let g = greenlet::spawn(|| 5);
    ///     g.link(move |g| tx.send(*g.value().unwrap()).unwrap());
    ///     g.join();
    ///     assert_eq!(rx.recv().unwrap(), 5);
    /// });
    /// ```
    pub fn link(&self, f: impl FnOnce(&Greenlet<T>) + Send + 'static)
    where
        T: Send + Sync + 'static,
    {
        let me = self.clone();
        let call = Link::call(move || f(&me));
        if let Err(Link::Call(f)) = add_link(&self.cell, call) {
            f();
        }
    }

    /// The name given at spawn, or `Greenlet-<id>`.
    pub fn name(&self) -> String {
        self.cell.display_name()
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.cell.id
    }

    pub(crate) fn header(&self) -> &HeaderRef {
        &self.cell
    }

    /// A handle on a fresh cell made for a `T` result.
    pub(super) fn from_cell(cell: HeaderRef) -> Self {
        Greenlet {
            cell,
            _t: PhantomData,
        }
    }

    /// Takes the result out. Only for a handle nobody else can see (the
    /// runtime's main greenlet).
    pub(crate) fn into_result(self) -> Result<T, GreenletError> {
        assert!(self.ready(), "into_result on a running greenlet");
        // SAFETY: done (result written), and the caller guarantees no other
        // handle reads the slot.
        unsafe { (*self.prefix().result.get()).take() }.expect("a finished greenlet's result")
    }
}
