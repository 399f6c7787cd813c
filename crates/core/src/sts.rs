//! The MTA-STS policy cache (RFC 8461 §5) as the queue worker reaches it:
//! what other domains demand of mail sent to them, kept in the store so that
//! a restart does not forget it. Not user data, so nothing is recorded in
//! the ledger; only the worker may read or change it.

use rampart_store::StsPolicyRecord;

use crate::{Access, Core, CoreError, CoreResult};

/// Most MX patterns a stored policy may hold (a policy file is at most
/// 64 KB, RFC 8461 §3.2, so this is never reached by a real one).
const MAX_STORED_MX: usize = 1024;

impl Core {
    /// The policy cache is the queue worker's alone: no other service, and
    /// no account or operator, reads or plants policies (rule R10).
    fn require_queue_worker(&self, access: &Access) -> CoreResult<()> {
        match access.principal().service_role() {
            Some(crate::ServiceRole::QueueWorker) => Ok(()),
            _ => Err(CoreError::Denied(
                "only the queue worker keeps MTA-STS policies".into(),
            )),
        }
    }

    /// The stored MTA-STS policy of a recipient domain, expired or not
    /// (queue worker only).
    pub async fn sts_policy(
        &self,
        access: &Access,
        domain: &str,
    ) -> CoreResult<Option<StsPolicyRecord>> {
        self.require_queue_worker(access)?;
        let domain = crate::normalize_domain(domain)?;
        Ok(self.store.sts_policy(&domain).await?)
    }

    /// Keeps a recipient domain's MTA-STS policy in place of the one before
    /// (queue worker only).
    pub async fn store_sts_policy(
        &self,
        access: &Access,
        mut policy: StsPolicyRecord,
    ) -> CoreResult<()> {
        self.require_queue_worker(access)?;
        policy.domain = crate::normalize_domain(&policy.domain)?;
        if !matches!(policy.mode.as_str(), "enforce" | "testing" | "none") {
            return Err(CoreError::Invalid(format!(
                "MTA-STS mode {:?} is not enforce, testing or none",
                policy.mode
            )));
        }
        // RFC 8461 §3.1: an id is 1 to 32 letters and digits.
        let id = &policy.policy_id;
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CoreError::Invalid(format!(
                "MTA-STS id {id:?} is not valid"
            )));
        }
        if policy.mx.len() > MAX_STORED_MX {
            return Err(CoreError::Invalid(
                "MTA-STS policy too large to keep".into(),
            ));
        }
        if policy.expires_at < policy.fetched_at {
            return Err(CoreError::Invalid(
                "MTA-STS policy expires before it was fetched".into(),
            ));
        }
        Ok(self.store.put_sts_policy(policy).await?)
    }
}
