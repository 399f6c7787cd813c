//! Mail from outside in the town's own name: a message that arrives on the
//! MX with one of our domains as its envelope sender, From or Sender must
//! carry our own valid DKIM signature for that domain, or it is refused.
//!
//! Our users' mail reaches colleagues through submission, never through the
//! MX, so mail that claims our domain on the MX either went out signed and
//! came back (a list, a forward that kept it intact) or is forged: phishing
//! in the town's own name. The keys come from core, not from DNS, so neither
//! a DNS outage nor a forged DNS answer changes the outcome.

use std::sync::OnceLock;

use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
use rampart_core::{Access, Core, CoreError};

use crate::verify::{StaticTxt, offline_authenticator};

/// The claimed local domains of `raw` that lack a valid signature of ours:
/// empty when the message may be delivered.
pub async fn unsigned_claims(
    core: &Core,
    access: &Access,
    envelope_from: &str,
    raw: &[u8],
) -> Result<Vec<String>, CoreError> {
    let claimed = core.claimed_local_domains(envelope_from, raw).await?;
    if claimed.is_empty() {
        return Ok(claimed);
    }
    let mut records = Vec::new();
    for domain in &claimed {
        for key in core.dkim_public_keys(access, domain).await? {
            records.push((
                format!("{}._domainkey.{domain}", key.selector),
                crate::dkim::public_record(&key.algorithm, &key.public_key),
            ));
        }
    }
    let signed = signed_domains(raw, &StaticTxt::new(&records, true)).await;
    Ok(claimed
        .into_iter()
        .filter(|d| !signed.contains(d))
        .collect())
}

/// The domains (d=, lower case) of the DKIM signatures of `raw` that verify
/// with the keys in `keys` alone.
async fn signed_domains(raw: &[u8], keys: &StaticTxt) -> Vec<String> {
    static OFFLINE: OnceLock<Option<MessageAuthenticator>> = OnceLock::new();
    let Some(authenticator) = OFFLINE.get_or_init(|| offline_authenticator().ok()) else {
        tracing::error!("smtp: no offline DKIM verifier; mail in our own domains is refused");
        return Vec::new();
    };
    let Some(parsed) = AuthenticatedMessage::parse(raw) else {
        return Vec::new();
    };
    authenticator
        .verify_dkim(Parameters::new(&parsed).with_txt_cache(keys))
        .await
        .iter()
        .filter(|output| matches!(output.result(), DkimResult::Pass))
        .filter_map(|output| output.signature().map(|s| s.d.to_ascii_lowercase()))
        .collect()
}
