//! What a guest `Store` may allocate: linear memory, tables and their
//! elements, core instances and memories. Everything past a cap traps at the
//! growth itself (never a silent `-1` the guest might loop on), with a cause
//! naming the limit.

use wasmtime::ResourceLimiter;

/// The caps of one store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Bytes of linear memory, summed over every memory of the store (a
    /// per-memory cap would let a component with N memories hold N times it).
    pub memory: usize,
    /// Table elements, summed over every table of the store.
    pub table_elements: usize,
    /// Core instances (a component instantiates several).
    pub instances: usize,
    /// Tables, over every core instance.
    pub tables: usize,
    /// Linear memories, over every core instance.
    pub memories: usize,
}

// Measured on the guests this repository builds (`tests/limits.rs` prints
// what each one's instantiation asks for):
//
// | guest (Rust, wit-bindgen, wasm32-unknown-unknown)    | instances | tables | memories | table elements |
// |------------------------------------------------------|-----------|--------|----------|----------------|
// | exports only, no string-taking import (policy-default, -readonly, -select-first, -slow, -loop, -trap, -memory) | 1 | 1 | 1 | 19..34 |
// | imports that lower strings/lists (core, policy-hostile-imports with WASI, -poll, -sleep¹, -logflood) | 3 | 2 | 1 | 20..35 |
//
// ¹ policy-hostile-sleep: 1/1/1. wit-component adds a shim and a fixup
// module (their own instance and table) when an import needs the guest's
// memory or allocator.
//
// No toolchain for WASI targets is available to build a guest with the
// preview1 adapter here; such a guest adds the adapter's instance and table,
// and componentize-py (Python) links some ten shared libraries plus shims,
// binding a dozen or more core instances around one memory and one
// table of tens of thousands of functions. Hence caps far above our own
// guests: 100 instances, 100 tables, 8 memories and 100 000 table elements
// (at most ~1.6 MiB of tables), with every byte of linear memory counted
// against the one memory cap.
pub const POLICY_TABLE_ELEMENTS: usize = 100_000;
pub const POLICY_INSTANCES: usize = 100;
pub const POLICY_TABLES: usize = 100;
pub const POLICY_MEMORIES: usize = 8;

impl Caps {
    pub(crate) fn policy(memory: usize) -> Caps {
        Caps {
            memory,
            table_elements: POLICY_TABLE_ELEMENTS,
            instances: POLICY_INSTANCES,
            tables: POLICY_TABLES,
            memories: POLICY_MEMORIES,
        }
    }

    /// The core is trusted and ours: the same counts, and the memory wasm32
    /// can address (its event ring is its main use of memory).
    pub(crate) fn core(memory: usize) -> Caps {
        Caps::policy(memory)
    }
}

/// A guest asked for more than its cap. Found in a fault's error chain by
/// `fault::describe`, which reports it as is.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum LimitHit {
    #[error("hit its {} MiB memory limit (asked for {} MiB)", cap >> 20, desired.div_ceil(1 << 20))]
    Memory { cap: usize, desired: usize },
    #[error("hit its {cap}-element table limit (asked for {desired})")]
    Table { cap: usize, desired: usize },
}

/// The store's `ResourceLimiter`: keeps the totals the caps apply to.
#[derive(Debug)]
pub(crate) struct GuestLimiter {
    caps: Caps,
    /// Bytes of linear memory granted, over all memories.
    memory: usize,
    /// Table elements granted, over all tables.
    table_elements: usize,
}

impl GuestLimiter {
    pub(crate) fn new(caps: Caps) -> Self {
        GuestLimiter {
            caps,
            memory: 0,
            table_elements: 0,
        }
    }

    /// (bytes of memory, table elements) the store holds.
    pub(crate) fn totals(&self) -> (usize, usize) {
        (self.memory, self.table_elements)
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.memory - current.min(self.memory)).saturating_add(desired);
        if total > self.caps.memory {
            return Err(wasmtime::Error::new(LimitHit::Memory {
                cap: self.caps.memory,
                desired: total,
            }));
        }
        if maximum.is_some_and(|max| desired > max) {
            // The module's own declared maximum: ordinary wasm semantics.
            return Ok(false);
        }
        self.memory = total;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("the host could not grow the guest's memory"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total =
            (self.table_elements - current.min(self.table_elements)).saturating_add(desired);
        if total > self.caps.table_elements {
            return Err(wasmtime::Error::new(LimitHit::Table {
                cap: self.caps.table_elements,
                desired: total,
            }));
        }
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("the host could not grow the guest's table"))
    }

    fn instances(&self) -> usize {
        self.caps.instances
    }

    fn tables(&self) -> usize {
        self.caps.tables
    }

    fn memories(&self) -> usize {
        self.caps.memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn memory_is_capped_over_all_memories_together() {
        let mut limiter = GuestLimiter::new(Caps::policy(64 * MIB));
        assert!(limiter.memory_growing(0, 40 * MIB, None).unwrap());
        // A second memory of 40 MiB would be under a per-memory cap.
        let refused = limiter.memory_growing(0, 40 * MIB, None).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "hit its 64 MiB memory limit (asked for 80 MiB)"
        );
        // Growing the first memory counts only the growth.
        assert!(limiter.memory_growing(40 * MIB, 64 * MIB, None).unwrap());
        assert!(limiter
            .memory_growing(64 * MIB, 64 * MIB + 1, None)
            .is_err());
        assert_eq!(limiter.totals().0, 64 * MIB);
        // The module's own maximum is plain wasm: a failed grow, not a trap.
        let mut limiter = GuestLimiter::new(Caps::policy(64 * MIB));
        assert!(!limiter.memory_growing(MIB, 2 * MIB, Some(MIB)).unwrap());
    }

    #[test]
    fn table_elements_are_capped_over_all_tables_together() {
        let mut limiter = GuestLimiter::new(Caps::policy(64 * MIB));
        assert!(limiter.table_growing(0, 60_000, None).unwrap());
        let refused = limiter.table_growing(0, 60_000, None).unwrap_err();
        assert!(
            refused.to_string().contains("100000-element table limit"),
            "{refused}"
        );
        assert!(limiter.table_growing(60_000, 100_000, None).unwrap());
    }
}
