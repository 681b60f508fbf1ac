#!/usr/bin/env bash
# Targets only: the login permsync applies changes as. Its password comes from the
# container's environment (PERMSYNC_SYNC_PASSWORD), never from this file.
#
# SUPERUSER because the changes replayed here may touch any object, run as any role
# (SET ROLE) and, later, manage roles: these are disposable demo servers. Real
# targets get the role their DBAs decide on (docs/deploy.md).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=password="$PERMSYNC_SYNC_PASSWORD" <<'SQL'
CREATE ROLE permsync_sync LOGIN SUPERUSER PASSWORD :'password';
SQL
