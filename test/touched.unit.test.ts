import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../src/capture/statements.js';
import { touchesOfText } from '../src/capture/touched.js';

describe('what a permission command touched, read from its text', () => {
  beforeAll(() => loadParser());
  const context = { actors: ['app'], currentUser: 'app', searchPaths: [['app', 'public']] };

  it('reads a schema an ON ALL ... IN SCHEMA names twice once: each names every object in it', () => {
    const [touch] = touchesOfText(`GRANT SELECT ON ALL TABLES IN SCHEMA a, b, a, "A", b TO reader`, context);
    expect(touch?.touched).toEqual({ on: 'all in schema', kinds: ['table', 'view', 'materialized view', 'foreign table'], schemas: ['a', 'b', 'A'] });
  });
});
