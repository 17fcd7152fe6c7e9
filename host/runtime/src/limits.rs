//! Per-run resource limits: a memory ceiling that fails the run (rather than letting a
//! denied `memory.grow` return -1 and the guest spin), recording why it stopped.

use wasmtime::ResourceLimiter;

/// Memory and table limits of one sandbox.
pub struct RunLimiter {
    memory_limit: usize,
    exceeded: bool,
}

impl RunLimiter {
    pub fn new(memory_limit: usize) -> Self {
        RunLimiter {
            memory_limit,
            exceeded: false,
        }
    }

    /// True once the guest asked for more memory than its limit.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.exceeded = true;
            wasmtime::bail!(
                "the component asked for {desired} bytes of memory, over its limit of {} bytes",
                self.memory_limit
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
