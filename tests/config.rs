//! Bad configuration is an error naming the setting.

use std::time::Duration;

use taskwarden::TaskManager;

#[test]
fn bad_settings_are_named() {
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
}

#[test]
fn defaults_are_valid() {
    let manager = TaskManager::builder().start().unwrap();
    assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
    let debug = format!("{manager:?}");
    assert!(debug.contains("max_tasks: 35"), "{debug}");
}

#[test]
#[should_panic(expected = "max_tasks")]
fn new_panics_on_zero_naming_max_tasks() {
    let _ = TaskManager::new(0);
}

#[test]
fn an_absurd_stack_size_is_a_spawn_error_with_no_thread_left() {
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
}
