//! Bad configuration is an error naming the setting; the defaults and the
//! stack size are what the builder says; the library installs no logger.

mod common;

use std::time::Duration;

use common::{wait_for, watchdog, Gate};
use taskwarden::TaskManager;

#[test]
fn bad_settings_are_named() {
    watchdog(|| {
        let cases = [
            (TaskManager::builder().max_tasks(0), "max_tasks"),
            (TaskManager::builder().max_tasks(usize::MAX), "max_tasks"),
            (
                TaskManager::builder().close_timeout(Duration::ZERO),
                "close_timeout",
            ),
            (TaskManager::builder().queue_capacity(0), "queue_capacity"),
            (TaskManager::builder().thread_name(""), "thread_name"),
            (TaskManager::builder().thread_name("a\0b"), "thread_name"),
            (TaskManager::builder().stack_size(0), "stack_size"),
        ];
        for (builder, setting) in cases {
            let error = builder.start().unwrap_err();
            assert_eq!(error.setting(), setting);
            assert!(error.to_string().contains(setting), "{error}");
            let _: &dyn std::error::Error = &error;
        }
    });
}

#[test]
fn defaults_are_valid() {
    watchdog(|| {
        let manager = TaskManager::builder().start().unwrap();
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
        let debug = format!("{manager:?}");
        assert!(debug.contains("max_tasks: 35"), "{debug}");
    });
}

#[test]
#[should_panic(expected = "max_tasks")]
fn new_panics_on_zero_naming_max_tasks() {
    watchdog(|| {
        let _ = TaskManager::new(0);
    });
}

#[test]
fn an_absurd_stack_size_is_a_spawn_error_with_no_thread_left() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .stack_size(usize::MAX / 2)
            .start()
            .unwrap();
        let error = manager.spawn(|| 1).unwrap_err();
        assert_eq!(error.kind(), taskwarden::SpawnErrorKind::ThreadStart);
        assert!(std::error::Error::source(&error).is_some());
        assert_eq!(error.into_inner()(), 1, "the closure is handed back");
        let stats = manager.stats();
        assert_eq!((stats.threads, stats.queued, stats.running), (0, 0, 0));
        assert!(manager.close().is_clean());
    });
}

#[test]
fn the_default_builder_runs_35_tasks_at_once() {
    watchdog(|| {
        let manager = TaskManager::builder().start().unwrap();
        let gate = Gate::new();
        let held: Vec<_> = (0..36)
            .map(|_| {
                let gate = gate.clone();
                manager.spawn(move || gate.wait()).unwrap()
            })
            .collect();
        wait_for("35 running", || manager.running().len() == 35);
        let stats = manager.stats();
        assert_eq!((stats.running, stats.queued), (35, 1), "{stats:?}");
        assert_eq!(manager.running().len(), 35, "never a 36th");
        gate.open();
        for handle in held {
            handle.join().unwrap();
        }
    });
}

/// Uses 4 MiB of stack, measured by address: more than a std thread's
/// default 2 MiB, so this passes only if the builder's `stack_size` reaches
/// the worker (a stack overflow aborts the binary, which fails loudly too).
#[test]
fn the_stack_size_is_applied_to_the_workers() {
    fn deep(top: usize, want: usize) -> usize {
        let frame = std::hint::black_box([1_u8; 4096]);
        let used = top.saturating_sub(std::hint::black_box(frame.as_ptr()) as usize);
        if used >= want {
            used
        } else {
            // Not a tail call: the frame lives across the recursion.
            deep(top, want).max(std::hint::black_box(frame[4095]) as usize)
        }
    }
    watchdog(|| {
        let manager = TaskManager::builder().stack_size(8 << 20).start().unwrap();
        let used = manager
            .spawn(|| {
                let top = 0_u8;
                deep(std::hint::black_box(&top) as *const u8 as usize, 4 << 20)
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(used >= 4 << 20);
    });
}

/// No logger is set in this binary: after the library started, ran and
/// closed a manager, installing one still succeeds.
#[test]
fn the_library_never_installs_a_logger() {
    struct Quiet;
    impl log::Log for Quiet {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            false
        }
        fn log(&self, _: &log::Record<'_>) {}
        fn flush(&self) {}
    }
    watchdog(|| {
        let manager = TaskManager::new(2);
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
        let _ = manager.spawn(|| panic!("logged at error level"));
        manager.drain();
        assert!(manager.close().is_clean());
        drop(manager);
        assert!(
            log::set_logger(&Quiet).is_ok(),
            "a logger was already installed"
        );
    });
}
