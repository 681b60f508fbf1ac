import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MASKED_PASSWORD, redactUrl } from '../src/redact.js';
import { createLogger } from '../src/log.js';
import { planChange } from '../src/plan/changes.js';
import type { RoleState } from '../src/catalog/catalog.js';

const SECRET = 's3cr3t';

describe('a connection URL as permsync shows it', () => {
  it('hides its password, in the user-info part or a parameter', () => {
    expect(redactUrl(`postgres://sync:${SECRET}@db.example:5432/app`)).toBe('postgres://sync:***@db.example:5432/app');
    expect(redactUrl(`postgres://sync@db.example/app?password=${SECRET}&sslmode=require`)).toBe(
      'postgres://sync@db.example/app?password=***&sslmode=require',
    );
    expect(redactUrl('postgresql://db.example/app')).toBe('postgresql://db.example/app');
    expect(redactUrl(`not a url ${SECRET}`)).toBe('[unparseable URL]');
  });
});

describe('a log line', () => {
  it('never holds a URL, a password or a verifier, at the top or one level down', () => {
    let written = '';
    const destination = new Writable({
      write(chunk, _encoding, done) {
        written += String(chunk);
        done();
      },
    });
    createLogger('info', destination).info(
      {
        url: `postgres://sync:${SECRET}@db/app`,
        password: SECRET,
        environment: { connectionString: `host=db password=${SECRET}`, verifier: `SCRAM-SHA-256$${SECRET}` },
      },
      'connecting',
    );
    expect(written).toContain('"msg":"connecting"');
    expect(written).toContain('[redacted]');
    expect(written).not.toContain(SECRET);
  });
});

describe('a statement that sets a password', () => {
  it('shows the verifier masked, and runs it as it is', () => {
    const role = (password: string | null): RoleState => ({
      name: 'app',
      superuser: false,
      inherit: true,
      createrole: false,
      createdb: false,
      login: true,
      replication: false,
      bypassrls: false,
      connlimit: -1,
      validUntil: null,
      comment: null,
      password,
    });
    const [set] = planChange({ type: 'role attributes', from: role(null), to: role(`SCRAM-SHA-256$${SECRET}`) }, { targetVersionNum: 170000 });
    expect(set?.statement).toMatchObject({
      sql: `ALTER ROLE "app" WITH PASSWORD 'SCRAM-SHA-256$${SECRET}'`,
      display: `ALTER ROLE "app" WITH PASSWORD ${MASKED_PASSWORD}`,
    });
    const [unset] = planChange({ type: 'role attributes', from: role('x'), to: role(null) }, { targetVersionNum: 170000 });
    expect(unset?.statement.display).toBe('ALTER ROLE "app" WITH PASSWORD NULL');
  });
});
