/**
 * Preloaded (node --import) into a process whose peak memory a measurement wants: at exit
 * it writes the process's maximum resident set size, in kB, to BENCH_PEAK_RSS_FILE. Exact,
 * where sampling /proc from outside could miss a peak just before the process ends.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_PEAK_RSS_FILE;
if (file) process.on('exit', () => writeFileSync(file, String(process.resourceUsage().maxRSS)));
