-- Run before every install: the version table that records applied migrations.
CREATE SCHEMA IF NOT EXISTS permsync;
CREATE TABLE IF NOT EXISTS permsync.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
