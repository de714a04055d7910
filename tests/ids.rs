//! Ids carry their manager (API.md part three): one manager's id passed to
//! another is never mistaken for one of its tasks, and `get()`, `Display`
//! and the order of one manager's ids are unchanged.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{hold_slot, scaled, watchdog};
use taskwarden::{TaskManager, TaskState};

#[test]
fn a_foreign_id_never_cancels_a_task_with_the_same_number() {
    watchdog(|| {
        let m1 = TaskManager::new(1);
        let m2 = TaskManager::new(1);
        let (gate1, held1) = hold_slot(&m1);
        let (gate2, held2) = hold_slot(&m2);
        let queued1 = m1.spawn(|| "m1's second").unwrap();
        let queued2 = m2.spawn(|| "m2's second").unwrap();
        assert_eq!(queued1.id().get(), queued2.id().get(), "same numbers");
        assert_ne!(queued1.id(), queued2.id(), "different managers");

        assert!(!m2.cancel(queued1.id()), "m1's id reached m2");
        assert_eq!(m2.state(queued1.id()), None);
        assert_eq!(m2.state(held1.id()), None, "even a running one");
        assert_eq!(m2.state(queued2.id()), Some(TaskState::Queued));
        assert_eq!(m2.queued(), vec![queued2.id()], "m2's task untouched");

        // wait_all treats a foreign id as finished, and never panics.
        m2.wait_all([queued1.id(), held1.id()]);
        assert!(m2.wait_all_timeout([queued1.id()], Duration::ZERO));
        assert!(!m2.wait_all_timeout([queued1.id(), queued2.id()], Duration::from_millis(5)));

        gate1.open();
        gate2.open();
        held1.join().unwrap();
        held2.join().unwrap();
        assert_eq!(queued1.join(), Ok("m1's second"));
        assert_eq!(queued2.join(), Ok("m2's second"));
    });
}

#[test]
fn ids_keep_their_number_display_and_order_and_sort_by_manager() {
    watchdog(|| {
        let m1 = TaskManager::new(2);
        let m2 = TaskManager::new(2);
        let a1 = m1.spawn_detached(|| ()).unwrap();
        let a2 = m1.spawn_detached(|| ()).unwrap();
        let b1 = m2.spawn_detached(|| ()).unwrap();
        assert_eq!((a1.get(), a2.get(), b1.get()), (1, 2, 1));
        assert_eq!(a1.to_string(), "task-1");
        assert_eq!(b1.to_string(), "task-1");
        assert_eq!(format!("{b1:>8}"), "  task-1");
        assert_eq!(format!("{a2:?}"), "TaskId(2)");
        assert!(a1 < a2);
        // Ordered by manager, then by number: both of one manager's ids
        // fall on the same side of the other's.
        assert_eq!(a1 < b1, a2 < b1);
        m1.drain();
        m2.drain();
    });
}

#[test]
fn managers_alive_together_never_share_ids() {
    watchdog(|| {
        let managers: Vec<_> = (0..scaled(200)).map(|_| TaskManager::new(1)).collect();
        let ids: HashSet<_> = managers
            .iter()
            .map(|m| m.spawn_detached(|| ()).unwrap())
            .collect();
        assert_eq!(ids.len(), managers.len(), "two managers issued the same id");
        for m in &managers {
            m.drain();
            // Each manager knows exactly one of these ids: its own.
            assert_eq!(ids.iter().filter(|id| m.state(**id).is_some()).count(), 1);
        }
    });
}
