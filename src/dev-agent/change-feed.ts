// The dev agent's stand-in for Raft indexes and blocking queries (spec §1.4): every write takes
// the next global index and stamps the tables it touched; readers block on a set of tables.

interface Waiter {
  tables: readonly string[];
  wake: () => void;
}

/** Raft-like index counter with per-table indexes and change notification. */
export class ChangeFeed {
  private last = 1;
  private readonly tableIndex = new Map<string, number>();
  private readonly waiters = new Set<Waiter>();

  /** Takes the next index and stamps `tables` with it, waking their blocked readers. */
  bump(...tables: string[]): number {
    const index = ++this.last;
    for (const t of tables) this.tableIndex.set(t, index);
    for (const w of this.waiters) {
      if (w.tables.some((t) => tables.includes(t))) w.wake();
    }
    return index;
  }

  /** The highest index of `tables`; never 0 (spec §1.3: a 0 is rewritten to 1). */
  indexOf(...tables: string[]): number {
    let max = 1;
    for (const t of tables) max = Math.max(max, this.tableIndex.get(t) ?? 1);
    return max;
  }

  /** The index of the last write of any kind. */
  current(): number {
    return this.last;
  }

  /** Resolves at the next change to any of `tables`, at `deadline` (epoch ms), or on abort. No polling. */
  waitChange(tables: readonly string[], deadline: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.waiters.delete(waiter);
        resolve();
      };
      const waiter: Waiter = { tables, wake: done };
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      if (signal.aborted) return done();
      signal.addEventListener("abort", done, { once: true });
      this.waiters.add(waiter);
    });
  }

  /** How many readers are blocked right now (for tests and /debug). */
  blockedCount(): number {
    return this.waiters.size;
  }
}
