-- Removes every object permsync installed on the source, the event trigger first so
-- that nothing is captured half-way through.
DROP EVENT TRIGGER IF EXISTS permsync_capture;
DROP SCHEMA IF EXISTS permsync_capture CASCADE;
DROP SCHEMA IF EXISTS permsync CASCADE;
