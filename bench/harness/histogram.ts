// A log-linear (HDR-style) latency histogram: values below 2^SUB_BITS nanoseconds are exact; above,
// each power-of-two octave is split into 2^(SUB_BITS-1) equal buckets, so a reported percentile is
// within 1/128 (0.8 %) of the recorded value. Fixed memory, O(1) record, mergeable across processes.

const SUB_BITS = 8;
const EXACT = 1 << SUB_BITS; // 256: values 0..255 ns get a bucket each
const PER_OCTAVE = EXACT >> 1; // 128 buckets per power of two above that
const MAX_MSB = 43; // 2^44 ns ≈ 4.9 h: anything longer is clamped into the last bucket
const BUCKETS = EXACT + (MAX_MSB - SUB_BITS + 1) * PER_OCTAVE;
const TWO_32 = 2 ** 32;

/** Serialized form: sparse [bucket index, count] pairs plus the exact extremes. */
export interface HistogramJson { counts: Array<[number, number]>; min: number; max: number; total: number; sumNs: number }

function msbOf(v: number): number {
  const hi = Math.floor(v / TWO_32);
  return hi > 0 ? 63 - Math.clz32(hi) : 31 - Math.clz32(v);
}

/** The bucket holding `ns` (a non-negative integer number of nanoseconds). */
export function bucketOf(ns: number): number {
  const v = ns < 0 ? 0 : Math.floor(ns);
  if (v < EXACT) return v;
  const msb = Math.min(msbOf(v), MAX_MSB);
  const shift = msb - (SUB_BITS - 1);
  const mantissa = Math.min(Math.floor(v / 2 ** shift), EXACT - 1); // in [128, 256)
  return EXACT + (msb - SUB_BITS) * PER_OCTAVE + (mantissa - PER_OCTAVE);
}

/** The largest value that lands in `bucket` (what HdrHistogram calls the highest equivalent value). */
export function bucketHighNs(bucket: number): number {
  if (bucket < EXACT) return bucket;
  const octave = Math.floor((bucket - EXACT) / PER_OCTAVE);
  const msb = octave + SUB_BITS;
  const shift = msb - (SUB_BITS - 1);
  const mantissa = PER_OCTAVE + ((bucket - EXACT) % PER_OCTAVE);
  return (mantissa + 1) * 2 ** shift - 1;
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  total = 0;
  min = Number.POSITIVE_INFINITY;
  max = 0;
  sumNs = 0;

  /** Records one value in nanoseconds. */
  record(ns: number): void {
    this.counts[bucketOf(ns)]! += 1;
    this.total++;
    this.sumNs += ns;
    if (ns < this.min) this.min = ns;
    if (ns > this.max) this.max = ns;
  }

  /** The value at percentile `p` (0..100), in nanoseconds; NaN when empty. Never above the recorded max. */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.max(this.min, Math.min(bucketHighNs(i), this.max));
    }
    return this.max;
  }

  meanNs(): number {
    return this.total === 0 ? Number.NaN : this.sumNs / this.total;
  }

  /** Adds another histogram's counts into this one. */
  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.total += other.total;
    this.sumNs += other.sumNs;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  toJSON(): HistogramJson {
    const counts: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0) counts.push([i, this.counts[i]!]);
    return { counts, min: this.total === 0 ? 0 : this.min, max: this.max, total: this.total, sumNs: this.sumNs };
  }

  static fromJSON(j: HistogramJson): Histogram {
    const h = new Histogram();
    for (const [i, c] of j.counts) if (i >= 0 && i < BUCKETS) h.counts[i] = c;
    h.total = j.total;
    h.sumNs = j.sumNs;
    h.min = j.total === 0 ? Number.POSITIVE_INFINITY : j.min;
    h.max = j.max;
    return h;
  }
}
