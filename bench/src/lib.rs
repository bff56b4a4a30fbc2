//! What the two benchmarks share: latency statistics, timed spawns, `ip -batch`, and cleanup
//! of the namespaces and temp dirs a run made.

pub mod common;
