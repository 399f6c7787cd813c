-- Rampart schema version 11: client addresses banned for failed logins,
-- kept so that a restart does not lift a ban (and, on PostgreSQL, so that
-- every node refuses the client). client is an IPv4 address or the /64 of
-- an IPv6 address; until is in Unix milliseconds.
CREATE TABLE login_bans (
    client TEXT PRIMARY KEY,
    until INTEGER NOT NULL
);
