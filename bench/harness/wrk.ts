// wrk as the keep-alive throughput and connection-rate generator (pinned with the app, -t1).
import type { ProcessGroup } from "./children.js";
import type { Target } from "./http-conn.js";
import type { RateResult } from "./loadgen.js";

export interface WrkJob { target: Target; path: string; conns: number; durationS: number; close: boolean }

/** Runs wrk once; requests/s from its summary, socket errors and non-2xx counted as errors. Throws when wrk fails. */
export async function runWrk(group: ProcessGroup, wrkPath: string, cpus: string | undefined, job: WrkJob): Promise<RateResult & { raw: string }> {
  const args = ["-t1", `-c${job.conns}`, `-d${job.durationS}s`, "--timeout", "5s"];
  if (job.close) args.push("-H", "Connection: close");
  args.push(`http://${job.target.host}:${job.target.port}${job.path}`);
  const child = group.spawn({ name: "wrk", cmd: wrkPath, args, cpus });
  const { code } = await child.exited;
  await new Promise<void>((resolve) => (child.proc.stdout!.readableEnded ? resolve() : child.proc.once("close", () => resolve())));
  const raw = child.tail();
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(raw);
  if (code !== 0 || !rps) throw new Error(`wrk failed (exit ${code}):\n${raw}`);
  const total = /(\d+) requests in/.exec(raw);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(raw);
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  const completed = total ? Number(total[1]) : 0;
  return {
    mode: job.close ? "connrate" : "rate",
    perSecond: Number(rps[1]),
    completed,
    errors,
    seconds: job.durationS,
    answered: completed, // wrk has no warm-up
    raw,
  };
}
