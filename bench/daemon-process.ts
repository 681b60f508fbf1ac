import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/paths.js';
import { unitNodeOptions } from './service-options.js';
import { sleep, waitUntil } from './stats.js';

/**
 * The daemon as operators run it, `permsync run --config FILE` with the service's node
 * options (deploy/permsync.service), in a process of its own so that its memory is its own
 * to measure.
 */
export interface DaemonProcess {
  readonly pid: number;
  /** Resident memory now, in MB (VmRSS). */
  rssMb(): number;
  /** Highest resident memory so far, in MB (VmHWM). */
  peakRssMb(): number;
  /** Samples VmRSS every few ms until the returned function is called; it gives the peak in MB. */
  sampleRss(everyMs?: number): () => number;
  /** SIGTERM, and wait for a clean exit (which also writes a CPU profile when asked for). */
  stop(): Promise<void>;
  /** Where its log goes (JSON lines), for a look when something went wrong. */
  readonly logFile: string;
  /** Its configuration file, for the CLI's other commands. */
  readonly configFile: string;
}

export interface DaemonOptions {
  /** The configuration file's content (JSON is YAML). */
  config: Record<string, unknown>;
  dir: string;
  /** node --cpu-prof into this folder. */
  profileDir?: string;
}

export async function spawnDaemon(options: DaemonOptions): Promise<DaemonProcess> {
  const port = await freePort();
  const configFile = join(options.dir, 'permsync.yaml');
  await writeFile(configFile, JSON.stringify({ ...options.config, http: { host: '127.0.0.1', port } }, null, 2));
  const logFile = join(options.dir, 'daemon.log');
  const log = await open(logFile, 'a');
  const profile = options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`] : [];
  const child = spawn(process.execPath, [...profile, join(PACKAGE_ROOT, 'bin/permsync.js'), 'run', '--config', configFile], {
    stdio: ['ignore', log.fd, log.fd],
    // With the node options the systemd unit and the image give it.
    env: { ...process.env, PERMSYNC_LOG_FORMAT: 'json', NODE_OPTIONS: await unitNodeOptions() },
  });
  await log.close();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  const pid = child.pid as number;

  const status = (field: 'VmRSS' | 'VmHWM'): number => {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]);
    return kb / 1024;
  };

  await waitUntil(
    async () => {
      if (gone) throw new Error(`the daemon exited at start; see ${logFile}`);
      try {
        // Ready as a standby is not enough: measurements start once it applies.
        const response = await fetch(`http://127.0.0.1:${port}/readyz`);
        return response.ok && ((await response.json()) as { role?: string }).role === 'leader';
      } catch {
        return false;
      }
    },
    30_000,
    'the daemon to be ready as the leader',
    100,
  );

  return {
    pid,
    logFile,
    configFile,
    rssMb: () => status('VmRSS'),
    peakRssMb: () => status('VmHWM'),
    sampleRss(everyMs = 50) {
      let peak = status('VmRSS');
      const timer = setInterval(() => {
        if (!gone) peak = Math.max(peak, status('VmRSS'));
      }, everyMs);
      return () => {
        clearInterval(timer);
        return gone ? peak : Math.max(peak, status('VmRSS'));
      };
    },
    async stop() {
      if (gone) return;
      child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
      if (code === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
