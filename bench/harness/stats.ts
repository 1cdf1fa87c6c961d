// Medians and spread over the rounds of one figure.

/** One figure over the rounds: the median, the extremes and the spread ((max − min) / |median|). */
export interface Summary { median: number; min: number; max: number; spreadPct: number | null; n: number; values: number[] }

/** Summarizes the finite values; null when there are none. Spread is null with fewer than two values. */
export function summarize(values: Array<number | null | undefined>): Summary | null {
  const xs = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  const spreadPct = xs.length < 2 || median === 0 ? null : ((max - min) / Math.abs(median)) * 100;
  return { median, min, max, spreadPct, n: xs.length, values: xs };
}
