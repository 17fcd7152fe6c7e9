//! The runtime a config asks for: memory and time limits, sandbox allocation, the HTTP
//! sender, and a check that this host supports the component's WIT version.

use std::time::Duration;

use m365sync_config::HostSection;
use m365sync_runtime::{HttpSender, RunLimits, Runtime, SandboxAllocation, SetupError};

/// The run limits `[host]` asks for.
pub fn run_limits(host: &HostSection) -> RunLimits {
    let mut limits = RunLimits::default();
    if let Some(mib) = host.memory_limit_mib {
        limits.memory_bytes = (mib as usize) << 20;
    }
    if let Some(secs) = host.run_timeout_secs {
        limits.timeout = Duration::from_secs(secs);
    }
    limits.sandboxes = sandbox_allocation(host);
    limits
}

/// How sandboxes are allocated, per `sandboxes` (0: on demand; n: a pool of n slots).
pub fn sandbox_allocation(host: &HostSection) -> SandboxAllocation {
    match host.sandboxes {
        None => SandboxAllocation::default(),
        Some(0) => SandboxAllocation::OnDemand,
        Some(n) => SandboxAllocation::Pooled(n),
    }
}

/// The HTTP sender `http_keep_alive` asks for.
pub fn http_sender(host: &HostSection) -> HttpSender {
    match host.http_keep_alive {
        Some(false) => HttpSender::PerRequest,
        _ => HttpSender::Pooled,
    }
}

/// The embedded component's runtime as `[host]` configures it, refused when this host does
/// not support the component's WIT version.
pub async fn load_runtime(host: &HostSection) -> Result<Runtime, SetupError> {
    let runtime = Runtime::new(run_limits(host))?.with_http_sender(http_sender(host));
    runtime.checked_info().await?;
    Ok(runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandboxes_pick_the_pool_size_or_on_demand() {
        let with = |sandboxes| {
            sandbox_allocation(&HostSection {
                sandboxes,
                ..HostSection::default()
            })
        };
        assert_eq!(with(None), SandboxAllocation::Pooled(64));
        assert_eq!(with(Some(8)), SandboxAllocation::Pooled(8));
        assert_eq!(with(Some(0)), SandboxAllocation::OnDemand);
    }
}
