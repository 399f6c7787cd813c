-- Rampart schema version 8: app passwords, one per device, revocable. Only
-- a hash of each is kept; they are long random strings, so a fast hash is
-- as safe for them as argon2 is for chosen passwords.
CREATE TABLE app_passwords (
    id BIGSERIAL PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (principal_id, name)
);
CREATE INDEX app_passwords_by_hash ON app_passwords(principal_id, secret_hash);
