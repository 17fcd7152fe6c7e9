//! The memory store's share of onboarding ([`Onboarding`]): consent requests by state and
//! registered tenants by directory id, each call one step under the store's lock.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::MemoryStore;
use crate::StoreError;
use crate::onboarding::{ConsentRequest, Onboarding, RegisteredTenant, name_held, state_held};

/// What onboarding keeps.
#[derive(Default)]
pub(super) struct OnboardingRows {
    /// Consent requests by state.
    requests: BTreeMap<String, ConsentRequest>,
    /// Registered tenants by directory id.
    tenants: BTreeMap<String, RegisteredTenant>,
}

#[async_trait]
impl Onboarding for MemoryStore {
    async fn put_consent_request(&self, request: &ConsentRequest) -> Result<(), StoreError> {
        let mut shared = self.shared()?;
        let requests = &mut shared.onboarding.requests;
        if requests.contains_key(&request.state) {
            return Err(state_held());
        }
        requests.insert(request.state.clone(), request.clone());
        Ok(())
    }

    async fn take_consent_request(
        &self,
        state: &str,
        now_ms: i64,
    ) -> Result<Option<ConsentRequest>, StoreError> {
        let mut shared = self.shared()?;
        let requests = &mut shared.onboarding.requests;
        let taken = requests.remove(state);
        requests.retain(|_, r| r.expires_ms > now_ms);
        Ok(taken.filter(|r| r.expires_ms > now_ms))
    }

    async fn register_tenant(&self, tenant: &RegisteredTenant) -> Result<(), StoreError> {
        let mut shared = self.shared()?;
        let tenants = &mut shared.onboarding.tenants;
        let held =
            (tenants.values()).any(|t| t.name == tenant.name && t.tenant_id != tenant.tenant_id);
        if held {
            return Err(name_held(tenant));
        }
        tenants.insert(tenant.tenant_id.clone(), tenant.clone());
        Ok(())
    }

    async fn registered_tenants(&self) -> Result<Vec<RegisteredTenant>, StoreError> {
        let shared = self.shared()?;
        let mut all: Vec<RegisteredTenant> = shared.onboarding.tenants.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }
}
