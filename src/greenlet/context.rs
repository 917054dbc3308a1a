//! The stack switch itself: save this context's registers, load another's.
//!
//! # Design
//!
//! A context is a stack pointer. A suspended context keeps its resume
//! address and the registers the compiler cannot be told about (rbx, rbp)
//! pushed on its own stack, and its stack pointer in its greenlet's header
//! (the root's included). [`switch`] pushes the
//! running context's, stores its stack pointer, and jumps to the target's
//! resume address, which restores the target's stack pointer and registers:
//! any context to any other, in one step. That is what greenlets need
//! (python greenlet switches this way); an asymmetric resume / suspend pair,
//! as coroutine libraries offer, needs a trampoline in between and two
//! steps per switch.
//!
//! The switch is inline assembly that tells the compiler every other
//! register is clobbered, so only the registers live across it are saved,
//! by the compiler, and it ends in an indirect jump rather than a `ret`: the
//! CPU predicts a jump from the same place to the same resume point (a
//! loop's switch, the hub's), where a `ret` to another stack's address would
//! be mispredicted every time by the return-stack predictor.
//!
//! Two words cross every switch, in registers: the message ([`Wire`], which
//! also names the greenlet whose last switch this is, if any: see
//! `switch::settle`) and the address of the value sent, if any (see
//! `raw::try_switch`).
//!
//! A new context is a stack prepared by [`prepare`] so that the first switch
//! into it calls the entry function with the two words. Its return address
//! is null, which ends every backtrace and unwind there; the entry catches
//! every panic itself, and is `extern "C"`, so one that got out would abort
//! rather than unwind into nothing.
//!
//! x86_64 only for now. The x87 control word and MXCSR, callee-saved in the
//! System V ABI, are not switched (a greenlet that changes the rounding
//! mode changes it for the thread).

use std::arch::{asm, naked_asm};

use super::header::Wire;

/// What a context finds when it is switched to: the message, and where the
/// value sent with it is (null or dangling if none).
pub(crate) struct Arrival {
    pub(crate) wire: Wire,
    pub(crate) val: *mut (),
}

/// Saves the running context's stack pointer in `*save` and continues the
/// context whose saved stack pointer is `to`, handing it `wire` and `val`.
/// Returns when some context switches back to the saved one.
///
/// # Safety
/// `to` is the saved stack pointer of a suspended context of this thread
/// (stored by a `switch`, or made by [`prepare`]), not resumed since.
/// `save` stays valid until the saved context is resumed.
#[inline(always)]
pub(crate) unsafe fn switch(wire: Wire, val: *mut (), save: *mut usize, to: usize) -> Arrival {
    let (wire_out, val_out): (usize, *mut ());
    // SAFETY: per the caller. Every register but rbx, rbp and rsp is
    // declared clobbered; rbx and rbp are pushed and popped here, and rsp is
    // back at its value when the context is resumed at `2:`. The resumer
    // jumps there with rcx = the stack pointer saved here.
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            "mov [rdx], rsp",
            "jmp [rcx]",
            "2:",
            "lea rsp, [rcx + 8]",
            "pop rbx",
            "pop rbp",
            inout("rdi") wire.0 => wire_out,
            inout("rsi") val => val_out,
            inout("rdx") save => _,
            inout("rcx") to => _,
            lateout("r12") _,
            lateout("r13") _,
            lateout("r14") _,
            lateout("r15") _,
            clobber_abi("C"),
        )
    };
    Arrival {
        wire: Wire(wire_out),
        val: val_out,
    }
}

/// Where a prepared stack is first resumed: rcx is its stack pointer, under
/// which lie the entry function and a null return address. Calls the entry
/// with the two words (rdi, rsi) as its arguments.
// SAFETY (naked): the body is the whole function and never returns to a
// caller: only `switch` jumps here, with rcx from `prepare`, whose words it
// reads before moving onto that stack.
#[unsafe(naked)]
unsafe extern "C" fn first_resume() {
    naked_asm!("lea rsp, [rcx + 16]", "jmp [rcx + 8]")
}

/// Prepares a stack whose top (16-aligned) is `top` so that the first
/// [`switch`] to the returned stack pointer calls `entry(wire, val)`, on
/// this stack, with a null return address.
///
/// # Safety
/// `top` is 16-aligned and the three words below it are the caller's,
/// unused.
pub(crate) unsafe fn prepare(top: usize, entry: unsafe extern "C" fn(Wire, *mut ()) -> !) -> usize {
    debug_assert_eq!(top % 16, 0);
    // A function is entered with its return address at the stack pointer,
    // 8 below a 16-byte boundary: here a null one, in the top word.
    let sp = top - 24;
    let frame = sp as *mut usize;
    // SAFETY: the three words from sp to top are the caller's.
    unsafe {
        frame.write(first_resume as *const () as usize);
        frame.add(1).write(entry as usize);
        frame.add(2).write(0);
    }
    sp
}
