//! Running independent work items on every core: shards of a query, parts
//! at start-up. Items are taken from a shared counter (a slow item does not
//! hold up the others), the calling thread works too, and results come back
//! in item order.
//!
//! Invariant: every item is run exactly once; a panicking worker becomes
//! the error `panicked()` instead of unwinding into the caller.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` over `items` on up to one thread per core, in item order; the first
/// error in item order wins.
pub fn map<I: Sync, T: Send, E: Send>(
    items: &[I],
    f: impl Fn(&I) -> Result<T, E> + Sync,
    panicked: impl Fn() -> E,
) -> Result<Vec<T>, E> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let drain = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            mine.push((i, f(item)));
        }
        mine
    };
    let done = crossbeam::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(|_| drain())).collect();
        let mut all = drain();
        for helper in helpers {
            all.extend(helper.join().ok()?);
        }
        Some(all)
    });
    let Ok(Some(done)) = done else {
        return Err(panicked());
    };
    let mut slots: Vec<Option<Result<T, E>>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in done {
        slots[i] = Some(r);
    }
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err(panicked())))
        .collect()
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
}
