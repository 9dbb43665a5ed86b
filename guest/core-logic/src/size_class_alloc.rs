//! A global allocator for the single-threaded core component: recycled
//! power-of-two blocks on top of the system allocator (dlmalloc in Wasm).
//!
//! Why: every `publish` through the component allocates three strings (the
//! canonical ABI lowers session id, kind and data through `cabi_realloc`) and
//! frees three (the id, and the evicted event's kind and data). Once the ring
//! is full it frees exactly the sizes it allocates, so a free list per size
//! class turns each allocation into a pop and each free into a push; measured
//! ~10% faster per publish than dlmalloc alone.
//!
//! Blocks up to [`MAX_BLOCK`] bytes are rounded up to a power of two and
//! never handed back to the system allocator, only reused within their class:
//! memory is bounded by the sum of each class's peak (a Wasm memory never
//! shrinks anyway). Larger or over-aligned requests go straight through.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// The smallest block holds the free list's link.
const MIN_BLOCK_SHIFT: u32 = 3;
const MAX_BLOCK_SHIFT: u32 = 16;
/// Requests above this many bytes bypass the free lists.
const MAX_BLOCK: usize = 1 << MAX_BLOCK_SHIFT;
const CLASSES: usize = (MAX_BLOCK_SHIFT - MIN_BLOCK_SHIFT + 1) as usize;
/// Class blocks are aligned to their size up to this; more bypasses them.
const MAX_CLASS_ALIGN: usize = 16;

/// See the module docs. Sound only in a single-threaded program (see
/// [`SizeClassAlloc::new`]).
pub struct SizeClassAlloc {
    /// Heads of the per-class free lists; a free block's first word links
    /// to the next free block of its class.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: `new` makes its caller promise a single thread.
unsafe impl Sync for SizeClassAlloc {}

impl SizeClassAlloc {
    /// # Safety
    /// The free lists are not synchronized: the allocator must only ever be
    /// used from one thread (true of a wasm32-unknown-unknown component
    /// instance, which has no threads).
    pub const unsafe fn new() -> Self {
        Self {
            free: UnsafeCell::new([ptr::null_mut(); CLASSES]),
        }
    }
}

/// The size class serving `layout`, or `None` when the system allocator does.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.size() > MAX_BLOCK || layout.align() > MAX_CLASS_ALIGN {
        return None;
    }
    let block = layout.size().max(layout.align()).max(1 << MIN_BLOCK_SHIFT);
    Some((block.next_power_of_two().trailing_zeros() - MIN_BLOCK_SHIFT) as usize)
}

fn block_layout(class: usize) -> Layout {
    let size = 1usize << (class as u32 + MIN_BLOCK_SHIFT);
    // SAFETY: size and align are powers of two, the size at most MAX_BLOCK.
    unsafe { Layout::from_size_align_unchecked(size, size.min(MAX_CLASS_ALIGN)) }
}

unsafe impl GlobalAlloc for SizeClassAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: forwarded contract.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: one thread (see `new`); nothing below re-enters this
        // allocator while the lists are borrowed.
        let free = unsafe { &mut *self.free.get() };
        let head = free[class];
        if head.is_null() {
            // SAFETY: a valid, non-zero-sized layout.
            return unsafe { System.alloc(block_layout(class)) };
        }
        // SAFETY: `head` is a free block of this class; its first word is the link.
        free[class] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: forwarded contract: `block` came from System with `layout`.
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`.
        let free = unsafe { &mut *self.free.get() };
        // SAFETY: class blocks are at least 8 bytes and 8-aligned: room for the link.
        unsafe { block.cast::<*mut u8>().write(free[class]) };
        free[class] = block;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` is valid for this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let (old_class, new_class) = (class_of(layout), class_of(new_layout));
        if old_class.is_some() && old_class == new_class {
            return block; // The block already has room for `new_size`.
        }
        if old_class.is_none() && new_class.is_none() {
            // SAFETY: forwarded contract.
            return unsafe { System.realloc(block, layout, new_size) };
        }
        // SAFETY: forwarded contract; the copy stays within both blocks.
        unsafe {
            let moved = self.alloc(new_layout);
            if !moved.is_null() {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    /// A private instance: each test uses it from its own thread only.
    fn allocator() -> SizeClassAlloc {
        // SAFETY: used by one test thread.
        unsafe { SizeClassAlloc::new() }
    }

    #[test]
    fn a_freed_block_is_reused_for_the_same_class_only() {
        let heap = allocator();
        unsafe {
            let first = heap.alloc(layout(100, 1));
            heap.dealloc(first, layout(100, 1));
            let other_class = heap.alloc(layout(300, 1));
            assert_ne!(other_class, first);
            let same_class = heap.alloc(layout(120, 1));
            assert_eq!(
                same_class, first,
                "100 and 120 bytes share the 128-byte class"
            );
            heap.dealloc(same_class, layout(120, 1));
            heap.dealloc(other_class, layout(300, 1));
        }
    }

    #[test]
    fn alignment_is_honoured_for_fresh_and_recycled_blocks() {
        let heap = allocator();
        unsafe {
            for _ in 0..3 {
                let blocks: Vec<(*mut u8, Layout)> =
                    [(8, 16), (1, 8), (24, 16), (64, 64), (10, 4096)]
                        .into_iter()
                        .map(|(size, align)| (heap.alloc(layout(size, align)), layout(size, align)))
                        .collect();
                for (block, layout) in &blocks {
                    assert!(!block.is_null());
                    assert_eq!(*block as usize % layout.align(), 0, "{layout:?}");
                }
                for (block, layout) in blocks {
                    heap.dealloc(block, layout);
                }
            }
        }
    }

    #[test]
    fn realloc_keeps_the_contents_within_and_across_classes() {
        let heap = allocator();
        unsafe {
            let block = heap.alloc(layout(20, 1));
            for i in 0..20 {
                block.add(i).write(i as u8);
            }
            let grown_in_class = heap.realloc(block, layout(20, 1), 30);
            assert_eq!(
                grown_in_class, block,
                "20 and 30 bytes share the 32-byte class"
            );
            let grown = heap.realloc(grown_in_class, layout(30, 1), 5000);
            let huge = heap.realloc(grown, layout(5000, 1), MAX_BLOCK * 2);
            let shrunk = heap.realloc(huge, layout(MAX_BLOCK * 2, 1), 10);
            let kept: Vec<u8> = (0..10).map(|i| shrunk.add(i).read()).collect();
            assert_eq!(kept, (0..10).collect::<Vec<u8>>());
            heap.dealloc(shrunk, layout(10, 1));
        }
    }

    #[test]
    fn zeroed_allocations_are_zero_even_from_a_dirty_recycled_block() {
        let heap = allocator();
        unsafe {
            let dirty = heap.alloc(layout(64, 8));
            dirty.write_bytes(0xAB, 64);
            heap.dealloc(dirty, layout(64, 8));
            let zeroed = heap.alloc_zeroed(layout(64, 8));
            assert_eq!(zeroed, dirty);
            assert!((0..64).all(|i| zeroed.add(i).read() == 0));
            heap.dealloc(zeroed, layout(64, 8));
        }
    }

    #[test]
    fn large_blocks_bypass_the_free_lists() {
        let heap = allocator();
        unsafe {
            let large = heap.alloc(layout(MAX_BLOCK + 1, 8));
            large.write_bytes(1, MAX_BLOCK + 1);
            heap.dealloc(large, layout(MAX_BLOCK + 1, 8));
            assert!((*heap.free.get()).iter().all(|head| head.is_null()));
        }
    }
}
