//! The core's global allocator: recycled power-of-two blocks on top of the
//! standard allocator (dlmalloc on wasm32-unknown-unknown).
//!
//! Why: every `publish` allocates three strings (the canonical ABI lowers the
//! session id, kind and data through `cabi_realloc`) and frees three (the id,
//! and the evicted event's kind and data). In steady state the ring frees
//! exactly the sizes it allocates, so a free list per size class turns each
//! allocation into a pop and each free into a push, measurably cheaper than
//! dlmalloc's bookkeeping on the hot path.
//!
//! Blocks up to [`MAX_BLOCK`] bytes are rounded up to a power of two and
//! never returned to dlmalloc, only reused for the same class: memory stays
//! bounded by each class's peak use (a Wasm memory never shrinks anyway).
//! Larger or over-aligned requests go straight to dlmalloc.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// The smallest block holds the free list's next pointer.
const MIN_BLOCK_SHIFT: u32 = 3;
const MAX_BLOCK_SHIFT: u32 = 16;
const MAX_BLOCK: usize = 1 << MAX_BLOCK_SHIFT;
const CLASSES: usize = (MAX_BLOCK_SHIFT - MIN_BLOCK_SHIFT + 1) as usize;
/// Class blocks are allocated with this alignment; more goes to dlmalloc.
const BLOCK_ALIGN: usize = 16;

pub struct SizeClassAlloc {
    /// Heads of the per-class free lists; a free block's first word links
    /// to the next one.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: a wasm32-unknown-unknown component instance has one thread (the
// target has no threads without the atomics feature, which is not enabled).
unsafe impl Sync for SizeClassAlloc {}

impl SizeClassAlloc {
    pub const fn new() -> Self {
        Self { free: UnsafeCell::new([ptr::null_mut(); CLASSES]) }
    }
}

/// The size class of `layout`, or `None` when dlmalloc serves it directly.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.size() > MAX_BLOCK || layout.align() > BLOCK_ALIGN {
        return None;
    }
    let shift = layout.size().max(1 << MIN_BLOCK_SHIFT).next_power_of_two().trailing_zeros();
    Some((shift - MIN_BLOCK_SHIFT) as usize)
}

fn block_layout(class: usize) -> Layout {
    let size = 1usize << (class as u32 + MIN_BLOCK_SHIFT);
    // SAFETY: a power of two no larger than MAX_BLOCK, power-of-two align.
    unsafe { Layout::from_size_align_unchecked(size, BLOCK_ALIGN.min(size)) }
}

unsafe impl GlobalAlloc for SizeClassAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded (see `Sync`), and no reentrancy: nothing
        // below calls back into this allocator while the list is borrowed.
        let free = unsafe { &mut *self.free.get() };
        let head = free[class];
        if head.is_null() {
            return unsafe { System.alloc(block_layout(class)) };
        }
        // SAFETY: `head` is a free block of this class; its first word is the link.
        free[class] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            return unsafe { System.dealloc(block, layout) };
        };
        let free = unsafe { &mut *self.free.get() };
        // SAFETY: the block is at least one pointer large and aligned for it.
        unsafe { block.cast::<*mut u8>().write(free[class]) };
        free[class] = block;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid layout for `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let class = class_of(layout);
        if class.is_some() && class == class_of(new_layout) {
            return block;
        }
        if class.is_none() && class_of(new_layout).is_none() {
            return unsafe { System.realloc(block, layout, new_size) };
        }
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        moved
    }
}
