//! Running independent work items on every core: shards of a query, parts
//! at start-up. Items run on rayon's global pool, one worker per core for
//! the life of the process. A query used to start a helper thread of its
//! own, which started late and took only about 30 % of the shards, so a 10M
//! Q6 ran mostly on one core (docs/benchmarks.md, "Query workers"). Work
//! stealing keeps a slow item from holding up the others, and results come
//! back in item order.
//!
//! Invariant: every item is run exactly once; a panicking item becomes the
//! error `panicked()` instead of unwinding into the caller.

use rayon::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `f` over `items` on up to one thread per core, in item order; the first
/// error in item order wins.
pub fn map<I: Sync, T: Send, E: Send>(
    items: &[I],
    f: impl Fn(&I) -> Result<T, E> + Sync,
    panicked: impl Fn() -> E + Sync,
) -> Result<Vec<T>, E> {
    if items.len() <= 1 {
        return items.iter().map(|i| run(&f, i, &panicked)).collect();
    }
    let done: Vec<Result<T, E>> = items
        .par_iter()
        .with_max_len(1)
        .map(|i| run(&f, i, &panicked))
        .collect();
    done.into_iter().collect()
}

/// One item, a panic turned into `panicked()`.
fn run<I, T, E>(
    f: &impl Fn(&I) -> Result<T, E>,
    item: &I,
    panicked: &impl Fn() -> E,
) -> Result<T, E> {
    catch_unwind(AssertUnwindSafe(|| f(item))).unwrap_or_else(|_| Err(panicked()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_in_order_and_the_first_error_wins() {
        let items: Vec<u32> = (0..100).collect();
        let squares = super::map(&items, |i| Ok::<_, String>(i * i), || "panic".into()).unwrap();
        assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        let r = super::map(
            &items,
            |i| {
                if *i % 30 == 29 {
                    Err(format!("bad {i}"))
                } else {
                    Ok(*i)
                }
            },
            || "panic".to_string(),
        );
        assert_eq!(r, Err("bad 29".to_string()));
        assert_eq!(
            super::map(&[] as &[u32], |i| Ok::<_, ()>(*i), || ()),
            Ok(vec![])
        );
    }

    #[test]
    fn a_panicking_item_is_an_error_and_every_other_item_still_runs() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let items: Vec<u32> = (0..50).collect();
        let ran = AtomicUsize::new(0);
        let r = super::map(
            &items,
            |i| {
                ran.fetch_add(1, Ordering::Relaxed);
                if *i == 7 {
                    panic!("item 7 fails");
                }
                Ok::<_, String>(*i)
            },
            || "a worker panicked".to_string(),
        );
        assert_eq!(r, Err("a worker panicked".to_string()));
        assert_eq!(ran.load(Ordering::Relaxed), items.len());
        // The pool still works after a panic.
        let again = super::map(&items, |i| Ok::<_, String>(*i), || "panic".into());
        assert_eq!(again, Ok(items.clone()));
    }
}
