import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { TestProcess } from './support/child.js';

const node = (script: string) => new TestProcess(spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] }));

describe('a process a test starts', () => {
  it('that exits at once is reported at once, with its exit code and what it wrote', async () => {
    const child = node(`console.error('cannot start: no such file'); process.exit(3)`);
    const started = Date.now();
    await expect(child.until(() => false, 60_000, 'the daemon to start')).rejects.toThrow(
      /exited with code 3 before the daemon to start; its output:\ncannot start: no such file/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('that already exited is not waited for: stop() gives its exit', async () => {
    const child = node('process.exit(4)');
    await child.exited;
    expect(child.running).toBe(false);
    expect(await child.stop()).toEqual({ code: 4, signal: null });
  });

  it('that runs is stopped by the signal given', async () => {
    const child = node(`console.log('up'); setInterval(() => {}, 1000)`);
    await child.until(() => child.output.includes('up'), 5000, 'it to start');
    expect(await child.stop('SIGINT')).toEqual({ code: null, signal: 'SIGINT' });
  });
});
