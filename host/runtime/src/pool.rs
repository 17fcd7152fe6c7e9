//! The sandbox pool: wasmtime's pooling instance allocator, which reserves every
//! sandbox's memories, tables and instance state once per runtime and reuses them
//! (instantiation then maps a slot instead of allocating and copying), and the permits
//! that keep concurrent sandboxes within its slots: a run beyond them waits for one to
//! free up rather than failing to instantiate.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Core instances, memories and tables one sandbox of the engine component may hold: the
/// component's own modules plus the WASI adapter and the shims `wasm-tools component new`
/// adds. Generous, so that a larger engine build still fits; a component beyond them fails
/// to load with wasmtime's message naming the limit.
const CORE_INSTANCES_PER_SANDBOX: u32 = 16;
const MEMORIES_PER_SANDBOX: u32 = 2;
const TABLES_PER_SANDBOX: u32 = 8;

/// Bytes of each pooled table and async stack that a freed slot zeroes in place instead
/// of returning to the kernel, so the next sandbox in the slot does not fault them in
/// again: the component's tables are a few KiB. One sandbox from pre-instantiation
/// measured 22.9 -> 17.7 µs (`m365sync-bench sandbox`, two runs each). Not for linear
/// memory: zeroing even 64 KiB of it cost more than the faults it saved.
const KEEP_RESIDENT: usize = 64 * 1024;

/// How a runtime allocates its sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxAllocation {
    /// Each sandbox allocated when it starts and freed when it ends (wasmtime's default).
    OnDemand,
    /// Up to this many sandboxes at once from slots reserved when the runtime is built,
    /// each with a linear memory of at most the runtime's memory limit. More runs than
    /// slots wait for one.
    Pooled(u32),
}

impl Default for SandboxAllocation {
    /// Pooled, 64 slots: far above what a host runs at once (the CLI syncs tenants one
    /// after another; the benchmark's fleet 8 at a time), and only address space is
    /// reserved for idle slots.
    fn default() -> Self {
        SandboxAllocation::Pooled(64)
    }
}

/// Configures `config` for `allocation`, with memories of at most `memory_bytes`.
pub fn configure(config: &mut Config, allocation: SandboxAllocation, memory_bytes: usize) {
    let SandboxAllocation::Pooled(slots) = allocation else {
        return;
    };
    let slots = slots.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_SANDBOX)
        .total_memories(slots * MEMORIES_PER_SANDBOX)
        .total_tables(slots * TABLES_PER_SANDBOX)
        .total_stacks(slots)
        .max_memory_size(memory_bytes)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
}

/// Permits for the pool's slots (none to take for on-demand allocation).
#[derive(Clone)]
pub struct Slots(Option<Arc<Semaphore>>);

impl Slots {
    pub fn new(allocation: SandboxAllocation) -> Slots {
        match allocation {
            SandboxAllocation::OnDemand => Slots(None),
            SandboxAllocation::Pooled(n) => {
                Slots(Some(Arc::new(Semaphore::new(n.max(1) as usize))))
            }
        }
    }

    /// Waits for a free slot; the sandbox holds the permit until it is dropped.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        match &self.0 {
            // The semaphore is never closed, so acquiring only fails if it were.
            Some(semaphore) => semaphore.clone().acquire_owned().await.ok(),
            None => None,
        }
    }
}
