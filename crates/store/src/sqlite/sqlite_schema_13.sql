-- Rampart schema version 13: nothing for SQLite. (PostgreSQL moved its
-- mailbox counters to statement-level triggers; SQLite's row triggers run
-- in the process and cost no round trip.)
SELECT 1;
