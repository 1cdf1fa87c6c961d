/**
 * The one back-off of the code base: the delay before retry number `failures` (≥ 1), initialMs
 * doubling per failure up to maxMs, with "equal jitter" (uniformly in [step/2, step)) so that many
 * sidecars retrying one agent do not retry in step.
 */
export function backoffDelayMs(failures: number, o: { initialMs: number; maxMs: number }, random: () => number = Math.random): number {
  const step = Math.min(o.maxMs, o.initialMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return step / 2 + (random() * step) / 2;
}
