//! Valgrind client requests that tell memcheck where each greenlet stack
//! is, so that it follows our stack switches.
//!
//! Memcheck takes a jump of the stack pointer for a switch to another stack
//! only when the jump is large or lands in another registered stack.
//! Between two neighbouring stacks of one slab it would take the jump for a
//! frame pushed or popped, mark the memory in between as unused, and then
//! report reads of the other greenlet's saved stack pointer as invalid.
//!
//! A request is a sequence of instructions that does nothing natively and
//! that valgrind recognises; the stacks are only registered when running
//! under valgrind (asked once per slab).

use std::arch::asm;

const RUNNING_ON_VALGRIND: usize = 0x1001;
const STACK_REGISTER: usize = 0x1501;
const STACK_DEREGISTER: usize = 0x1502;

/// Makes a client request; `default` is the answer outside valgrind.
fn request(default: usize, code: usize, arg1: usize, arg2: usize) -> usize {
    let args: [usize; 6] = [code, arg1, arg2, 0, 0, 0];
    let answer: usize;
    // SAFETY: natively this only rotates rdi by 128 bits in all (leaving it
    // as it was, and declared clobbered anyway) and exchanges rbx with
    // itself. Valgrind reads the six words at rax and answers in rdx.
    unsafe {
        asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") default => answer,
            in("rax") args.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack),
        )
    };
    answer
}

/// Whether the process runs under valgrind.
pub(crate) fn running() -> bool {
    request(0, RUNNING_ON_VALGRIND, 0, 0) != 0
}

/// Registers the stack `low..high`; returns its id for [`deregister`].
pub(crate) fn register(low: usize, high: usize) -> usize {
    request(0, STACK_REGISTER, low, high)
}

/// Forgets a stack registered by [`register`].
pub(crate) fn deregister(id: usize) {
    request(0, STACK_DEREGISTER, id, 0);
}

#[cfg(test)]
mod tests {
    #[test]
    fn requests_do_nothing_outside_valgrind() {
        // The test suite does not run under valgrind; the answer is then
        // the default and nothing else changes.
        if !super::running() {
            assert_eq!(super::register(0x1000, 0x2000), 0);
            super::deregister(0);
        }
    }
}
