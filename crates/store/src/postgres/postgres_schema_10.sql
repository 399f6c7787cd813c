-- Rampart schema version 10: recipient domains' MTA-STS policies (RFC 8461
-- §5), so that a restart does not forget them and an attacker who blocks
-- the policy fetch afterwards cannot downgrade delivery. One row per policy
-- domain; mx holds the host patterns, one per line.
CREATE TABLE mta_sts_policies (
    domain TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('enforce', 'testing', 'none')),
    mx TEXT NOT NULL,
    max_age BIGINT NOT NULL,
    fetched_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mta_sts_policies_expiry ON mta_sts_policies (expires_at);
