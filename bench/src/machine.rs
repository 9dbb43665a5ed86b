//! A fixed CPU loop, timed before and after the run: if the machine (shared with other
//! people's builds) slowed down or sped up meanwhile, the two times differ and the figures
//! should be read with that in mind.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Iterations of the loop: a few hundred ms on a current core.
const ITERATIONS: u64 = 300_000_000;

/// Runs the fixed loop and returns how long it took.
pub fn cpu_loop_time() -> Duration {
    let started = Instant::now();
    let mut state = black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..ITERATIONS {
        // xorshift64: a dependency chain the optimiser cannot shorten.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
    }
    black_box(state);
    started.elapsed()
}
