//! The access ledger as the core's recorder: every entry the core makes
//! goes into the ledger's hash chain and is durable before the call returns.

use std::sync::Arc;

use async_trait::async_trait;
use rampart_ledger::{Ledger, Record, ranges};
use serde::Serialize;

use crate::{AccessEntry, AccessRecorder, Actor, CoreError, CoreResult, Outcome};

/// Records into the access ledger.
pub struct LedgerRecorder(pub Arc<Ledger>);

/// The serialized name of a unit variant (`read-body`, `app-password`).
fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

/// The ledger's form of an access entry.
pub fn to_record(entry: AccessEntry) -> Record {
    let access = &entry.access;
    Record {
        seq: 0,
        at: entry.at,
        node: entry.node,
        session: access.session().to_string(),
        principal: access.principal().to_string(),
        principal_id: match access.principal() {
            Actor::Account { id, .. } => Some(id.0),
            _ => None,
        },
        acting_as: access.acting_as().to_string(),
        auth: name(&access.auth_method()),
        client: access.client().map(|ip| ip.to_string()),
        client_software: access.client_software().map(|s| s.to_string()),
        protocol: name(&access.protocol()),
        operation: name(&entry.operation),
        owner: entry.owner.map(|o| o.0),
        container: entry.container,
        objects: ranges(&entry.objects),
        bytes: entry.bytes,
        outcome: match entry.outcome {
            Outcome::Ok => "ok".into(),
            Outcome::Denied => "denied".into(),
            Outcome::Failed(why) => format!("failed: {why}"),
        },
    }
}

#[async_trait]
impl AccessRecorder for LedgerRecorder {
    async fn record(&self, entry: AccessEntry) -> CoreResult<()> {
        self.0
            .append(to_record(entry))
            .await
            .map(|_| ())
            .map_err(|e| CoreError::Ledger(e.to_string()))
    }

    async fn record_metadata(&self, entry: AccessEntry) -> CoreResult<()> {
        self.0
            .append_unconfirmed(to_record(entry))
            .map_err(|e| CoreError::Ledger(e.to_string()))
    }
}
