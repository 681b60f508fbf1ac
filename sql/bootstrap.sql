-- Run before every install: the version table that records the schema's version and the
-- migrations applied above it, and the lock the install takes.
CREATE SCHEMA IF NOT EXISTS permsync;
CREATE TABLE IF NOT EXISTS permsync.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
-- The rows permsync serialises on (SELECT ... FOR UPDATE), which only a role that may
-- update this table can lock: nobody is granted anything on it. Here, not in schema.sql,
-- since the install locks its row before it runs schema.sql and each migration.
CREATE TABLE IF NOT EXISTS permsync.locks (
    name text PRIMARY KEY
);
REVOKE ALL ON permsync.locks FROM PUBLIC;
INSERT INTO permsync.locks (name) VALUES ('install') ON CONFLICT (name) DO NOTHING;
