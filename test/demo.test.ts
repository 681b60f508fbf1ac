import { describe, expect, it } from 'vitest';
import { runDemo } from '../dev/demo/main.js';

describe('npm run demo', () => {
  it('plays the DBA session and shows each change arriving in every environment', async () => {
    const lines: string[] = [];
    await runDemo({ once: true, out: (line) => lines.push(line) });
    const output = lines.join('\n');
    // Every environment reports an outcome for every step (none left pending).
    expect(output).not.toMatch(/\bpending\b/);
    for (const environment of ['dev', 'test', 'preprod', 'prod']) {
      expect(output).toMatch(new RegExp(`${environment}\\s+success`));
    }
    // Roles arrived, the login role with its password verifier carried.
    expect(output).toMatch(/dev\s+success.*now: app_owner, app_rw \(login\), reporting, tmp_contractor/);
    // prod's rule kept the tmp_ role and its grant out; the others have them.
    expect(output).toMatch(/prod\s+success.*now: app_owner, app_rw \(login\), reporting$/m);
    expect(output).toMatch(/prod\s+skipped.*matches exclude rule \(role_pattern \^tmp_\)/);
    // The CREATE TABLE of the mixed string stayed on the source.
    expect(output).toMatch(/dev\s+success.*scratch table: absent/);
    expect(output).toContain('(unchanged)');
  });
});
