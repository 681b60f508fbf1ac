import type { OperatorControls } from './controls.js';

/**
 * The safety net under LISTEN: every interval the controls are read, and the read wakes
 * the appliers, whether or not a notification came.
 */
export function startPoll(intervalMs: number, controls: OperatorControls): { stop(): void } {
  const timer = setInterval(() => controls.request(), intervalMs);
  return { stop: () => clearInterval(timer) };
}
