-- Rampart schema version 3 (PostgreSQL): DKIM signing keys per domain.
CREATE TABLE dkim_keys (
    id BIGSERIAL PRIMARY KEY,
    domain_id BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    private_key BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (domain_id, selector)
);
