//! Where fresh ids come from.
//!
//! The core mints session and permission-request ids but has no randomness
//! of its own in Wasm: the component passes the host's `random-id` import,
//! native callers (tests, benchmarks) pass a closure.

/// A source of fresh, unique ids (UUID v4 strings in the component).
pub trait IdSource {
    fn fresh_id(&mut self) -> String;
}

impl<F: FnMut() -> String> IdSource for F {
    fn fresh_id(&mut self) -> String {
        self()
    }
}

/// How many times a colliding id is redrawn before giving up. A real UUID
/// source never collides; a broken one must not hang the core.
pub(crate) const MINT_ATTEMPTS: usize = 16;

/// Draws ids until one is not `taken`; `None` when the source keeps colliding.
pub(crate) fn mint_unique(ids: &mut dyn IdSource, taken: impl Fn(&str) -> bool) -> Option<String> {
    (0..MINT_ATTEMPTS)
        .map(|_| ids.fresh_id())
        .find(|id| !taken(id))
}
