-- permsync 0022: what the daemon's role may lock. Idempotent: safe to run again.
--
-- An UPDATE on a whole table lets its holder LOCK it in any mode, ACCESS EXCLUSIVE
-- included: a holder of permsync_daemon could lock permsync.config, which every role check
-- on a DBA's path reads, and stall them all. The daemon mirrors its settings into the
-- table's value column only; an UPDATE on columns allows no LOCK TABLE.
REVOKE UPDATE ON permsync.config FROM permsync_daemon;
GRANT UPDATE (value, updated_at) ON permsync.config TO permsync_daemon;
