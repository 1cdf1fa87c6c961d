// The started parts of one sidecar, in the order they started, so that teardown is written once:
// close() tells peers we are leaving, drains the parts in reverse order under one deadline (cutting a
// part that overruns it), then releases them; destroy() releases them at once. A part added after the end is destroyed on arrival,
// so a start still in flight when the sidecar stops cannot leak a socket.
import { settlesWithin } from "../net/index.js";

export interface Part {
  /** For the log line when it has to be cut. */
  readonly name: string;
  /** Tells peers to stop choosing us, before any part drains (within the deadline; not a cut if it overruns). */
  leave?(): Promise<void>;
  /** Keeps serving as usual until this settles (the shutdown grace period); bounded by the deadline, never a cut. */
  linger?(): Promise<void>;
  /** Stops taking new work; resolves when live work has ended. */
  drain?(): Promise<void>;
  /** Releases the part once drained (or straight away when it has no drain). Default: destroy(). */
  close?(): Promise<void> | void;
  /** Releases it now, work in flight or not. */
  destroy(): void;
}

export class PartStack {
  readonly #parts: Part[] = [];
  #ended = false;

  add(part: Part): void {
    if (this.#ended) part.destroy();
    else this.#parts.push(part);
  }

  /**
   * Lets every part leave, then drains them, last started first (each after its linger), within what
   * is left of `remainingMs()`: a part whose drain does not settle in time is destroyed and `onCut`
   * told. Then closes the others, in the same order. Resolves true when nothing was cut.
   */
  async close(remainingMs: () => number, onCut: (part: Part) => void): Promise<boolean> {
    const parts = this.#end();
    for (const p of parts) if (p.leave !== undefined) await settlesWithin(p.leave(), remainingMs());
    const cut = new Set<Part>();
    for (const p of parts) {
      if (p.linger !== undefined) await settlesWithin(p.linger(), remainingMs());
      if (p.drain === undefined || (await settlesWithin(p.drain(), remainingMs()))) continue;
      onCut(p);
      p.destroy();
      cut.add(p);
    }
    for (const p of parts) {
      if (cut.has(p)) continue;
      if (p.close !== undefined) await p.close();
      else p.destroy();
    }
    return cut.size === 0;
  }

  destroy(): void {
    for (const p of this.#end()) p.destroy();
  }

  #end(): Part[] {
    this.#ended = true;
    return this.#parts.splice(0).reverse();
  }
}
