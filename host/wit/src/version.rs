//! The versions of the `m365sync:engine` WIT package this host supports. A component reports
//! the version it was built from in `engine.info`; a runtime refuses one outside this range
//! before running anything, with an error that names both.

/// The package version this host's bindings were generated from (wit/engine.wit).
pub const WIT_VERSION: &str = "0.6.0";

/// Versions a component may report and still run on this host: this minor version only (a
/// 0.x minor bump changes the interface).
pub fn supports(component_version: &str) -> bool {
    let minor = |v: &str| {
        let mut parts = v.split('.');
        Some((parts.next()?.to_string(), parts.next()?.to_string()))
    };
    matches!((minor(component_version), minor(WIT_VERSION)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_minor_version_is_supported_others_are_not() {
        assert!(supports(WIT_VERSION));
        assert!(!supports("0.1.0"));
        assert!(!supports("1.3.0"));
        assert!(!supports("garbage"));
    }
}
