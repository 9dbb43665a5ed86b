//! What a guest `Store` may allocate: linear memory, tables and their
//! elements, core instances and memories. Everything past a cap traps at the
//! growth itself (never a silent `-1` the guest might loop on), with a cause
//! naming the limit.

use wasmtime::ResourceLimiter;

/// The caps of one store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Bytes of linear memory, per memory.
    pub memory: usize,
    /// Elements per table.
    pub table_elements: usize,
    /// Core instances (a component instantiates several).
    pub instances: usize,
    /// Tables, summed over every core instance.
    pub tables: usize,
    /// Linear memories, summed over every core instance.
    pub memories: usize,
}

/// Counts for policies, measured on real guests (see `tests/limits.rs`,
/// which prints them) and capped with a wide margin:
///
/// | guest                                   | instances | tables | memories | table elements |
/// |-----------------------------------------|-----------|--------|----------|----------------|
/// | Rust wit-bindgen (policy-default)       | 1         | 1      | 1        | ~100           |
/// | Rust + WASI adapter (hostile-imports)   | 5         | 4      | 2        | ~300           |
///
/// Interpreted languages (componentize-py, jco) carry far larger indirect
/// function tables (tens of thousands of entries), hence 100 000 elements:
/// 800 KiB of table per instance at most, well under the memory cap.
pub(crate) const POLICY_TABLE_ELEMENTS: usize = 100_000;
pub(crate) const POLICY_INSTANCES: usize = 32;
pub(crate) const POLICY_TABLES: usize = 32;
pub(crate) const POLICY_MEMORIES: usize = 8;

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

/// The store's `ResourceLimiter`; also records the peaks, for measuring.
#[derive(Debug)]
pub(crate) struct GuestLimiter {
    caps: Caps,
    peak_memory: usize,
    peak_table_elements: usize,
}

impl GuestLimiter {
    pub(crate) fn new(caps: Caps) -> Self {
        GuestLimiter {
            caps,
            peak_memory: 0,
            peak_table_elements: 0,
        }
    }

    /// (largest memory, largest table) granted so far.
    pub(crate) fn peaks(&self) -> (usize, usize) {
        (self.peak_memory, self.peak_table_elements)
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.caps.memory {
            return Err(wasmtime::Error::new(LimitHit::Memory {
                cap: self.caps.memory,
                desired,
            }));
        }
        if maximum.is_some_and(|max| desired > max) {
            // The module's own declared maximum: ordinary wasm semantics.
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("the host could not grow the guest's memory"))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.caps.table_elements {
            return Err(wasmtime::Error::new(LimitHit::Table {
                cap: self.caps.table_elements,
                desired,
            }));
        }
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.peak_table_elements = self.peak_table_elements.max(desired);
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
