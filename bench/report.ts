import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/paths.js';

/** One line of the table. `met` is null where there is no goal, or nothing was measured. */
export interface Row {
  id: string;
  measurement: string;
  figure: string;
  goal: string;
  met: boolean | null;
}

export const ms = (value: number) => `${value < 10 ? value.toFixed(2) : value.toFixed(0)} ms`;
export const ratio = (value: number) => `${value.toFixed(2)}x`;
export const rate = (value: number) => `${Math.round(value)}/s`;
export const seconds = (value: number) => `${value.toFixed(1)} s`;
export const mb = (value: number) => `${value.toFixed(0)} MB`;

export function printTable(rows: Row[], out: (line: string) => void): void {
  const headers = ['#', 'measurement', 'figure', 'goal', 'met'];
  const cells = rows.map((r) => [r.id, r.measurement, r.figure, r.goal, r.met === null ? '-' : r.met ? 'yes' : 'NO']);
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  out(line(headers));
  out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) out(line(c));
}

/** A timestamp that is also a file name. */
export const stamp = (date: Date) => date.toISOString().replace(/[:.]/g, '-');

/** bench/results/<timestamp>.json, to compare runs across versions. */
export async function writeResults(startedAt: Date, content: unknown): Promise<string> {
  const dir = join(PACKAGE_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${stamp(startedAt)}.json`);
  await writeFile(file, `${JSON.stringify(content, null, 2)}\n`);
  return file;
}
