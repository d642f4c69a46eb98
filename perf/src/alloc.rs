//! A counting global allocator: allocations and bytes requested per operation.
//!
//! `unsafe` is needed to implement `GlobalAlloc`; this crate is a measurement harness outside
//! the library (which forbids unsafe code), and the implementation only forwards to the system
//! allocator after bumping two counters. Counting is off except inside [`count`], so the timed
//! rounds pay one relaxed atomic load per allocation.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn note(size: usize) {
    if ON.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counters are atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A reallocation counts as one allocation of the new size.
        note(new_size);
        // SAFETY: as for `dealloc`; `new_size` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations and bytes per operation over `n` calls of `op`, counted in every thread of the
/// process (a log's writer thread included). `n` uncounted calls come first, then `reset`
/// (which clears a memory sink without giving back its vector's capacity), so that the
/// amortized growth of a sink's storage is not counted against the operation.
pub fn count(n: u64, mut op: impl FnMut(), reset: impl FnOnce()) -> (f64, f64) {
    for _ in 0..n {
        op();
    }
    reset();
    ALLOCS.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    ON.store(true, Ordering::SeqCst);
    for _ in 0..n {
        op();
    }
    ON.store(false, Ordering::SeqCst);
    let (a, b) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    (a as f64 / n as f64, b as f64 / n as f64)
}
