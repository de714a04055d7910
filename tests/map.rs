//! `TaskManager::map` and `map_unordered`: order, laziness, the in-flight
//! bound, the caller's thread, panics, dropping, and a close mid-way.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use common::{wait_for, watchdog, Gate};
use taskwarden::{TaskError, TaskManager};

/// An input iterator that counts the items pulled from it and records the
/// thread that pulled each one.
struct Counted<I> {
    inner: I,
    pulled: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<ThreadId>>>,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next();
        if item.is_some() {
            self.pulled.fetch_add(1, Ordering::SeqCst);
            self.threads.lock().unwrap().push(thread::current().id());
        }
        item
    }
}

struct Probe {
    pulled: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<ThreadId>>>,
}

impl Probe {
    fn new() -> Probe {
        Probe {
            pulled: Arc::default(),
            threads: Arc::default(),
        }
    }

    fn wrap<I: Iterator>(&self, inner: I) -> Counted<I> {
        Counted {
            inner,
            pulled: self.pulled.clone(),
            threads: self.threads.clone(),
        }
    }

    fn pulled(&self) -> usize {
        self.pulled.load(Ordering::SeqCst)
    }

    fn threads(&self) -> HashSet<ThreadId> {
        self.threads.lock().unwrap().iter().copied().collect()
    }
}

fn gates(n: usize) -> Arc<Vec<Gate>> {
    Arc::new((0..n).map(|_| Gate::new()).collect())
}

#[test]
fn map_yields_in_input_order_whatever_the_completion_order() {
    watchdog(|| {
        let manager = TaskManager::new(4);
        let gates = gates(4);
        let finished = Arc::new(AtomicUsize::new(0));
        let (g, f) = (gates.clone(), finished.clone());
        let results = manager.map(0..4_usize, move |i| {
            g[i].wait();
            f.fetch_add(1, Ordering::SeqCst);
            i * 10
        });
        for i in [3, 2, 1] {
            gates[i].open();
        }
        wait_for("items 1..4 to finish", || {
            finished.load(Ordering::SeqCst) == 3
        });
        gates[0].open();
        let got: Vec<_> = results.collect();
        assert_eq!(got, vec![Ok(0), Ok(10), Ok(20), Ok(30)]);
    });
}

#[test]
fn map_unordered_yields_in_completion_order_with_input_indices() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let gates = gates(3);
        let g = gates.clone();
        let mut results = manager.map_unordered(vec!['a', 'b', 'c'], move |c| {
            let i = (c as u8 - b'a') as usize;
            g[i].wait();
            c.to_ascii_uppercase()
        });
        for (i, c) in [(1, 'B'), (2, 'C'), (0, 'A')] {
            gates[i].open();
            assert_eq!(results.next(), Some((i, Ok(c))));
        }
        assert_eq!(results.next(), None);
    });
}

#[test]
fn map_unordered_yields_every_index_exactly_once() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let mut got: Vec<_> = manager
            .map_unordered(0..100_u64, |x| x * x)
            .map(|(i, r)| (i, r.unwrap()))
            .collect();
        got.sort_unstable();
        let expected: Vec<_> = (0..100_u64).map(|x| (x as usize, x * x)).collect();
        assert_eq!(got, expected);
    });
}

#[test]
fn the_first_window_is_submitted_before_map_returns() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let probe = Probe::new();
        let (tx, rx) = mpsc::channel();
        let results = manager.map(probe.wrap(0..100), move |x| {
            tx.send(x).unwrap();
            x
        });
        assert!(
            probe.pulled() > 0,
            "nothing submitted before the first next"
        );
        // Work overlaps the caller: a task runs without any call to `next`.
        let first = rx
            .recv_timeout(common::LIMIT)
            .expect("a task ran before next");
        assert!(first < 4);
        assert!(probe.pulled() <= 4, "more than 2 x max_tasks in flight");
        drop(results);

        let probe = Probe::new();
        let unordered = manager.map_unordered(probe.wrap(0..100), |x| x);
        assert!(probe.pulled() > 0, "map_unordered submits eagerly too");
        drop(unordered);
    });
}

#[test]
fn at_most_twice_max_tasks_items_are_in_flight() {
    watchdog(|| {
        let max = 2;
        let manager = TaskManager::new(max);
        let probe = Probe::new();
        let mut results = manager.map(probe.wrap(0..50_u32), |x| x + 1);
        // Every submitted item finishes, yet no more input is drawn until
        // results are taken.
        let pulled = probe.pulled();
        assert!(pulled > 0 && pulled <= 2 * max);
        wait_for("the window to finish", || {
            manager.stats().completed as usize == pulled
        });
        assert_eq!(probe.pulled(), pulled, "input drawn without a next call");
        let mut yielded = 0;
        for result in results.by_ref() {
            yielded += 1;
            assert_eq!(result, Ok(yielded));
            let in_flight = probe.pulled() - yielded as usize;
            assert!(in_flight <= 2 * max, "{in_flight} in flight");
        }
        assert_eq!(yielded, 50);
        assert_eq!(probe.pulled(), 50);
    });
}

#[test]
fn the_in_flight_bound_holds_for_map_unordered_and_endless_input() {
    watchdog(|| {
        let max = 3;
        let manager = TaskManager::new(max);
        let probe = Probe::new();
        let mut results = manager.map_unordered(probe.wrap(0_u64..), |x| x);
        let mut seen = HashSet::new();
        for taken in 1..=200 {
            let (i, result) = results.next().expect("endless input never ends");
            assert_eq!(result, Ok(i as u64));
            assert!(seen.insert(i));
            assert!(
                probe.pulled() - taken <= 2 * max,
                "{} in flight",
                probe.pulled() - taken
            );
        }
        drop(results);

        let probe = Probe::new();
        let got: Vec<_> = manager
            .map(probe.wrap(0_u64..), |x| x * 3)
            .take(100)
            .collect();
        assert_eq!(got, (0..100).map(|x| Ok(x * 3)).collect::<Vec<_>>());
        assert!(probe.pulled() <= 100 + 2 * max);
    });
}

#[test]
fn the_input_is_advanced_on_the_callers_thread() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let probe = Probe::new();
        let results: Vec<_> = manager.map(probe.wrap(0..40), |x| x).collect();
        assert_eq!(results.len(), 40);
        assert_eq!(probe.threads(), HashSet::from([thread::current().id()]));

        // Made on one thread, consumed on another: each pulls while it calls.
        let manager = Arc::new(TaskManager::new(2));
        let probe = Probe::new();
        let results = manager.map(probe.wrap(0..40), |x| x);
        let here = thread::current().id();
        let there = thread::scope(|s| {
            s.spawn(move || {
                let got: Vec<_> = results.collect();
                assert_eq!(got.len(), 40);
                thread::current().id()
            })
            .join()
            .unwrap()
        });
        let threads = probe.threads();
        assert!(threads.contains(&here), "map pulls the first window");
        assert!(threads.contains(&there), "next pulls the rest");
        assert_eq!(threads.len(), 2);

        let probe = Probe::new();
        let count = manager.map_unordered(probe.wrap(0..40), |x| x).count();
        assert_eq!(count, 40);
        assert_eq!(probe.threads(), HashSet::from([here]));
    });
}

#[test]
fn one_items_panic_is_that_items_error_and_the_others_go_on() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let f = |x: u32| {
            if x == 3 {
                panic!("item {x}");
            }
            x
        };
        let results: Vec<_> = manager.map(0..8, f).collect();
        for (i, result) in results.iter().enumerate() {
            if i == 3 {
                assert_eq!(result, &Err(TaskError::Panicked("item 3".into())));
            } else {
                assert_eq!(result, &Ok(i as u32));
            }
        }
        assert_eq!(results.len(), 8);

        let mut results: Vec<_> = manager.map_unordered(0..8, f).collect();
        results.sort_by_key(|(i, _)| *i);
        assert_eq!(results.len(), 8);
        assert_eq!(results[3], (3, Err(TaskError::Panicked("item 3".into()))));
        assert!(results
            .iter()
            .filter(|(i, _)| *i != 3)
            .all(|(i, r)| r == &Ok(*i as u32)));
    });
}

/// Dropping a map cancels what is in flight: running items see their flag,
/// queued ones never run.
fn dropping_cancels_in_flight(unordered: bool) {
    let max = 2;
    let manager = TaskManager::new(max);
    let probe = Probe::new();
    let started = Arc::new(Mutex::new(Vec::new()));
    let flagged = Arc::new(AtomicUsize::new(0));
    let (s, fl) = (started.clone(), flagged.clone());
    let f = move |i: usize| {
        s.lock().unwrap().push(i);
        wait_for("the cancel flag", taskwarden::is_cancelled);
        fl.fetch_add(1, Ordering::SeqCst);
        i
    };
    let items = probe.wrap(0..20);
    if unordered {
        let results = manager.map_unordered(items, f);
        wait_for("two items running", || manager.running().len() == max);
        drop(results);
    } else {
        let results = manager.map(items, f);
        wait_for("two items running", || manager.running().len() == max);
        drop(results);
    }
    manager.drain();
    let started = started.lock().unwrap().clone();
    assert_eq!(started.len(), max, "queued items never ran: {started:?}");
    assert_eq!(
        flagged.load(Ordering::SeqCst),
        max,
        "running items were flagged"
    );
    assert!(probe.pulled() <= 2 * max);
    let stats = manager.stats();
    assert_eq!(
        stats.cancelled as usize,
        probe.pulled() - max,
        "the rest of the window was cancelled: {stats:?}"
    );
}

#[test]
fn dropping_a_map_cancels_what_is_in_flight() {
    watchdog(|| dropping_cancels_in_flight(false));
}

#[test]
fn dropping_a_map_unordered_cancels_what_is_in_flight() {
    watchdog(|| dropping_cancels_in_flight(true));
}

/// After the close: at most one more item drawn (the rejected one, which
/// comes back as `Err(Cancelled)` and last), then the end.
fn check_after_close<T: std::fmt::Debug + PartialEq>(
    rest: &[Result<T, TaskError>],
    pulled_at_close: usize,
    pulled_after: usize,
    yielded_before: usize,
    ordered: bool,
) {
    assert!(
        pulled_after <= pulled_at_close + 1,
        "input drawn after the close: {pulled_at_close} -> {pulled_after}"
    );
    assert_eq!(
        yielded_before + rest.len(),
        pulled_after,
        "one result per item drawn: {rest:?}"
    );
    if pulled_after == pulled_at_close + 1 {
        // `Map` yields the refused item in its input position (the last
        // drawn); `MapUnordered` at once.
        let refused = if ordered { rest.last() } else { rest.first() };
        assert_eq!(
            refused,
            Some(&Err(TaskError::Cancelled)),
            "the rejected item comes back cancelled: {rest:?}"
        );
    }
}

#[test]
fn once_the_manager_is_closed_no_more_input_is_drawn() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let probe = Probe::new();
        let mut results = manager.map(probe.wrap(0_u64..), |x| x);
        assert_eq!(results.next(), Some(Ok(0)));
        assert_eq!(results.next(), Some(Ok(1)));
        let report = manager.close();
        assert!(report.is_clean(), "{report:?}");
        let pulled_at_close = probe.pulled();
        let rest: Vec<_> = results.by_ref().collect();
        let pulled_after = probe.pulled();
        check_after_close(&rest, pulled_at_close, pulled_after, 2, true);
        for (offset, result) in rest.iter().enumerate().take(pulled_at_close - 2) {
            assert_eq!(result, &Ok(offset as u64 + 2), "submitted before the close");
        }
        assert_eq!(results.next(), None, "the map stays ended");
        assert_eq!(probe.pulled(), pulled_after);
    });
}

#[test]
fn a_close_that_drops_queued_items_ends_an_endless_map() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let g = gate.clone();
        let probe = Probe::new();
        let results = manager.map(probe.wrap(0_u64..), move |x| {
            if x == 0 {
                g.wait();
            }
            x
        });
        wait_for("item 0 running", || manager.running().len() == 1);
        let pulled_at_close = probe.pulled();
        assert!(pulled_at_close <= 2, "a window of 2 x max_tasks");
        let report = manager.close_timeout(Duration::from_millis(50));
        assert_eq!(report.abandoned.len(), 1);
        assert_eq!(report.cancelled.len(), pulled_at_close - 1);
        gate.open();
        let rest: Vec<_> = results.collect();
        check_after_close(&rest, pulled_at_close, probe.pulled(), 0, true);
        assert_eq!(rest[0], Ok(0), "the running item is waited for");
        for result in &rest[1..] {
            assert_eq!(result, &Err(TaskError::Cancelled));
        }
    });
}

#[test]
fn an_endless_map_unordered_ends_after_a_close() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let probe = Probe::new();
        let mut results = manager.map_unordered(probe.wrap(0_u64..), |x| x);
        for _ in 0..10 {
            assert!(matches!(results.next(), Some((_, Ok(_)))));
        }
        manager.close();
        let pulled_at_close = probe.pulled();
        let rest: Vec<_> = results.map(|(_, r)| r).collect();
        check_after_close(&rest, pulled_at_close, probe.pulled(), 10, false);
        assert!(
            rest.iter().filter(|r| r.is_err()).count() <= 1,
            "only the rejected item fails: {rest:?}"
        );
    });
}

#[test]
fn maps_are_send_and_debug() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let results = manager.map(vec![String::from("a"), String::from("bc")], |s| s.len());
        assert!(!format!("{results:?}").is_empty());
        let unordered = manager.map_unordered(0..3, |x| x);
        assert!(!format!("{unordered:?}").is_empty());
        let (a, b) = thread::scope(|s| {
            let a = s.spawn(move || results.collect::<Vec<_>>());
            let b = s.spawn(move || unordered.count());
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(a, vec![Ok(1), Ok(2)]);
        assert_eq!(b, 3);
    });
}

#[test]
fn an_empty_input_yields_nothing() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        assert_eq!(manager.map(Vec::<u8>::new(), |x| x).next(), None);
        assert_eq!(manager.map_unordered(0..0, |x: i32| x).next(), None);
        assert_eq!(manager.stats().threads, 0, "no work, no thread");
    });
}

/// A map made on a closed manager says so: one `Err(Cancelled)` for the
/// first item (its spawn is refused), then the end; nothing is drawn past
/// it. An empty input ends at once.
#[test]
fn a_map_on_a_closed_manager_yields_one_cancelled_item_then_ends() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        assert!(manager.close().is_clean());
        let probe = Probe::new();
        let ordered: Vec<_> = manager.map(probe.wrap(0_u64..), |x| x).collect();
        assert_eq!(ordered, [Err(TaskError::Cancelled)]);
        assert_eq!(probe.pulled(), 1, "one item drawn, refused");
        let unordered: Vec<_> = manager.map_unordered(vec![7_u64, 8], |x| x).collect();
        assert_eq!(unordered, [(0, Err(TaskError::Cancelled))]);
        let empty: Vec<_> = manager.map(Vec::<u64>::new(), |x| x).collect();
        assert!(empty.is_empty());
    });
}
