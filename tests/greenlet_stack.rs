//! Stack overflow reports, guard-page limits and panic reports, checked in
//! child processes (each re-runs this test binary on one test, with an
//! environment variable that tells the test to act instead of supervise).

mod common;

use std::process::{Command, Output};

use common::guard;
use greenlet::{GreenletBuilder, RawBuilder};

const CHILD: &str = "GREENLET_TEST_CHILD";

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs this test binary on test `name` in a child process.
fn run_child(name: &str, envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RUST_BACKTRACE", "0");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// True (and says so) if `vm.max_map_count` is raised so far that 70,000
/// stacks with `mprotect` guards would not exhaust it.
fn map_count_out_of_reach() -> bool {
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if limit > 140_000 {
        eprintln!("vm.max_map_count is {limit}: the limit is out of reach, skipping");
        return true;
    }
    false
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 32];
    std::hint::black_box(&frame);
    recurse(depth + 1).wrapping_add(frame[3])
}

#[test]
fn overflow_in_a_raw_greenlet_is_reported_by_name() {
    if in_child() {
        let g = RawBuilder::new()
            .name("deep-raw")
            .stack_size(64 * 1024)
            .build(|()| {
                recurse(0);
            })
            .unwrap();
        g.switch(());
        unreachable!("the overflow aborts");
    }
    let out = guard(|| run_child("overflow_in_a_raw_greenlet_is_reported_by_name", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the process must not exit cleanly");
    assert!(
        stderr.contains("greenlet deep-raw overflowed its 64 KiB stack"),
        "stderr: {stderr}"
    );
}

#[test]
fn overflow_in_a_spawned_greenlet_is_reported_by_name() {
    if in_child() {
        greenlet::Builder::new().workers(2).run(|| {
            GreenletBuilder::new()
                .name("deep-spawned")
                .spawn(|| {
                    recurse(0);
                })
                .join();
        });
        unreachable!("the overflow aborts");
    }
    let out = guard(|| run_child("overflow_in_a_spawned_greenlet_is_reported_by_name", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("greenlet deep-spawned overflowed its 32 KiB stack"),
        "stderr: {stderr}"
    );
}

#[test]
fn a_panic_is_printed_once_naming_the_greenlet() {
    if in_child() {
        greenlet::Builder::new().workers(2).run(|| {
            let g = GreenletBuilder::new()
                .name("faulty")
                .spawn(|| -> u8 { panic!("the sky fell") });
            assert!(g.get().is_err());
        });
        return;
    }
    let out = guard(|| run_child("a_panic_is_printed_once_naming_the_greenlet", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert_eq!(
        stderr.matches("the sky fell").count(),
        1,
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("greenlet 'faulty' panicked"),
        "stderr: {stderr}"
    );
}

#[test]
fn mprotect_guards_hit_the_map_count_limit_with_a_clear_error() {
    if in_child() {
        // Old-kernel guards: two mappings per stack, so the default
        // vm.max_map_count (65530) runs out near 32,700 stacks.
        let mut held = Vec::new();
        for i in 0..70_000 {
            match RawBuilder::new().build(|()| ()) {
                Ok(g) => held.push(g),
                Err(e) => {
                    println!("FAILED AT {i}: {e}");
                    return;
                }
            }
        }
        println!("NO FAILURE");
        return;
    }
    if map_count_out_of_reach() {
        return;
    }
    let out = guard(|| {
        run_child(
            "mprotect_guards_hit_the_map_count_limit_with_a_clear_error",
            &[("GREENLET_GUARD", "mprotect")],
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED AT"), "stdout: {stdout}");
    assert!(stdout.contains("vm.max_map_count"), "stdout: {stdout}");
}

#[test]
fn guard_install_holds_many_more_stacks_than_the_map_count_allows_mprotect() {
    if in_child() {
        let held: Vec<_> = (0..40_000)
            .map(|_| RawBuilder::new().build(|()| ()).unwrap())
            .collect();
        println!("HELD {}", held.len());
        return;
    }
    if std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|v| {
            let mut it = v
                .trim()
                .split(['.', '-'])
                .map(|x| x.parse::<u32>().unwrap_or(0));
            (it.next().unwrap_or(0), it.next().unwrap_or(0)) < (6, 13)
        })
        .unwrap_or(true)
    {
        eprintln!("kernel older than 6.13: MADV_GUARD_INSTALL is not there, skipping");
        return;
    }
    let out = guard(|| {
        run_child(
            "guard_install_holds_many_more_stacks_than_the_map_count_allows_mprotect",
            &[],
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("HELD 40000"), "stdout: {stdout}");
}

#[test]
fn try_spawn_reports_running_out_of_mappings() {
    if in_child() {
        greenlet::Builder::new().workers(1).run(|| {
            let mut held = Vec::new();
            for i in 0..70_000 {
                match greenlet::try_spawn(|| greenlet::sleep(std::time::Duration::from_secs(3600)))
                {
                    Ok(g) => held.push(g),
                    Err(e) => {
                        println!("TRY_SPAWN FAILED AT {i}: {e}");
                        // `spawn` panics with the same message.
                        let p = std::panic::catch_unwind(|| greenlet::spawn(|| ())).unwrap_err();
                        println!("SPAWN PANICKED: {}", common::panic_text(&*p));
                        break;
                    }
                }
                if i % 64 == 0 {
                    // Let them start (and take their stacks).
                    greenlet::yield_now();
                }
            }
            // Those that could not start report why.
            let failed = held
                .iter()
                .filter(|g| matches!(g.error(), Some(greenlet::GreenletError::Stack(_))))
                .count();
            println!("STARTED WITHOUT STACK: {failed}");
        });
        return;
    }
    if map_count_out_of_reach() {
        return;
    }
    let out = guard(|| {
        run_child(
            "try_spawn_reports_running_out_of_mappings",
            &[("GREENLET_GUARD", "mprotect")],
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("TRY_SPAWN FAILED AT"), "stdout: {stdout}");
    assert!(stdout.contains("vm.max_map_count"), "stdout: {stdout}");
    assert!(
        stdout.contains("SPAWN PANICKED: greenlet: "),
        "stdout: {stdout}"
    );
}
