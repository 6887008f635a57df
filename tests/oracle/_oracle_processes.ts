/**
 * Oracle replicas in their own OS processes, for the multi-process tests
 * and the Oracle benchmark: free ports, one temporary data directory per
 * replica, the JSON log lines each process writes on stderr, kill and
 * restart by PID, and a cleanup that always stops every process it started
 * and removes the data directories.
 *
 * Every wait is bounded in time.
 *
 * @module
 */

import {
  OracleClient,
  type OracleConnectOptions,
} from "../../oracle/client.ts";

const CLI = new URL("../../cli.ts", import.meta.url);
const ROOT = new URL("../../", import.meta.url);
/** The permissions of `deno task oracle`. */
const PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
];
/** Lines kept per process (older ones are dropped). */
const MAX_LINES = 20_000;

/** One line a replica process wrote on stderr. */
export interface LogLine {
  /** The replica that wrote it. */
  readonly replica: string;
  /** The parsed JSON object, or `undefined` when the line is not JSON. */
  readonly json: Record<string, unknown> | undefined;
  /** The raw text. */
  readonly text: string;
}

/** Options of {@linkcode OracleProcesses.start}. */
export interface OracleProcessesOptions {
  /** Number of replicas. Default 3. */
  size?: number | undefined;
  /** Replica ids are this and 1, 2, ... Default `""`. */
  idPrefix?: string | undefined;
  /** More `cohort oracle` flags for every replica, for example `--tree-name`. */
  args?: readonly string[] | undefined;
  /** Sync before acknowledging (the default); `false` passes `--no-sync`. */
  sync?: boolean | undefined;
  /** `--log-level` of the replicas. Default `"info"`. */
  logLevel?: "debug" | "info" | "warn" | "error" | undefined;
  /** Extra `deno run` flags (before the script), for example `--cpu-prof`. */
  denoFlags?: readonly string[] | undefined;
  /** Called for every line any replica writes on stderr. */
  onLine?: ((line: LogLine) => void) | undefined;
  /** Echo every non-JSON stderr line (crashes) to this process's stderr. Default `true`. */
  echoErrors?: boolean | undefined;
  /** Bound on waiting for each replica's `oracle.listening` line. Default 20 s. */
  startTimeoutMs?: number | undefined;
}

interface Running {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  /** Resolves once stderr is fully read and the process has exited. */
  done: Promise<Deno.CommandStatus>;
  status: Deno.CommandStatus | undefined;
}

/**
 * Picks `count` distinct free TCP ports on 127.0.0.1 (listens on port 0,
 * reads the port, closes). Another process could take one before it is
 * used; the tests accept that small risk.
 *
 * @param count How many ports.
 * @returns The ports.
 */
export function freePorts(count: number): number[] {
  const listeners: Deno.TcpListener[] = [];
  try {
    for (let i = 0; i < count; i++) {
      listeners.push(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
    }
    return listeners.map((l) => (l.addr as Deno.NetAddr).port);
  } finally {
    for (const l of listeners) l.close();
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Races `promise` against a timer; the timer is always cleared.
 *
 * @throws {Error} naming `what` when `ms` pass first.
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: timed out after ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A group of Oracle replicas, each in its own `deno run cli.ts oracle`
 * process with its own temporary data directory.
 */
export class OracleProcesses {
  /** Replica id to `"host:port"`: what clients connect with. */
  readonly replicas: Readonly<Record<string, string>>;
  /** Replica id to data directory. */
  readonly dataDirs: Readonly<Record<string, string>>;
  readonly #root: string;
  readonly #options: OracleProcessesOptions;
  readonly #running = new Map<string, Running>();
  readonly #lines = new Map<string, LogLine[]>();
  readonly #waiters = new Set<() => void>();
  #closed = false;

  private constructor(
    root: string,
    replicas: Record<string, string>,
    dataDirs: Record<string, string>,
    options: OracleProcessesOptions,
  ) {
    this.#root = root;
    this.replicas = replicas;
    this.dataDirs = dataDirs;
    this.#options = options;
  }

  /**
   * Starts every replica and waits until each logs `oracle.listening`.
   * On failure everything started is stopped and removed before the error
   * is thrown.
   *
   * @param options Size, sync, logging.
   * @returns The running group.
   */
  static async start(
    options: OracleProcessesOptions = {},
  ): Promise<OracleProcesses> {
    const size = options.size ?? 3;
    const root = await Deno.makeTempDir({ prefix: "cohort-oracle-procs-" });
    const prefix = options.idPrefix ?? "";
    const ids = Array.from({ length: size }, (_, i) => `${prefix}${i + 1}`);
    const ports = freePorts(size);
    const replicas: Record<string, string> = {};
    const dataDirs: Record<string, string> = {};
    ids.forEach((id, i) => {
      replicas[id] = `127.0.0.1:${ports[i]}`;
      dataDirs[id] = `${root}/${id}`;
    });
    const group = new OracleProcesses(root, replicas, dataDirs, options);
    try {
      await Promise.all(ids.map((id) => group.startReplica(id)));
    } catch (error) {
      await group.stop();
      throw error;
    }
    return group;
  }

  /** Replica ids, in order. */
  get ids(): string[] {
    return Object.keys(this.replicas);
  }

  /**
   * Starts (or restarts, on the same data directory and port) replica `id`
   * and waits for its `oracle.listening` line.
   *
   * @throws {Error} if it is running, exits first, or does not listen in time.
   */
  async startReplica(id: string): Promise<void> {
    if (this.#closed) throw new Error("OracleProcesses is stopped");
    if (this.isRunning(id)) throw new Error(`replica ${id} is running`);
    const peers = Object.entries(this.replicas).map(([k, v]) => `${k}=${v}`)
      .join(",");
    const args = [
      "run",
      "--quiet",
      ...PERMISSIONS,
      ...(this.#options.denoFlags ?? []),
      CLI.pathname,
      "oracle",
      "--id",
      id,
      "--peers",
      peers,
      "--data",
      this.dataDirs[id],
      "--log-level",
      this.#options.logLevel ?? "info",
      ...(this.#options.sync === false ? ["--no-sync"] : []),
      ...(this.#options.args ?? []),
    ];
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT.pathname,
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const startIndex = this.#linesOf(id).length;
    const running: Running = {
      child,
      pid: child.pid,
      done: child.status,
      status: undefined,
    };
    const reading = this.#readLines(id, child.stderr);
    running.done = (async () => {
      const [status] = await Promise.all([child.status, reading]);
      running.status = status;
      this.#notify();
      return status;
    })();
    this.#running.set(id, running);
    const listening = (line: LogLine) =>
      line.json?.event === "oracle.listening";
    try {
      await this.waitFor(
        () => {
          if (running.status !== undefined) {
            throw new Error(
              `replica ${id} exited with code ${running.status.code} before listening:\n${
                this.#linesOf(id).slice(startIndex).map((l) => l.text).join(
                  "\n",
                )
              }`,
            );
          }
          return this.#linesOf(id).slice(startIndex).some(listening);
        },
        this.#options.startTimeoutMs ?? 20_000,
        `replica ${id} to listen`,
      );
    } catch (error) {
      await this.kill(id, "SIGKILL");
      throw error;
    }
  }

  /** Whether replica `id` has a process that has not exited. */
  isRunning(id: string): boolean {
    const running = this.#running.get(id);
    return running !== undefined && running.status === undefined;
  }

  /** The PID of replica `id`'s process, if it runs. */
  pid(id: string): number | undefined {
    return this.isRunning(id) ? this.#running.get(id)!.pid : undefined;
  }

  /**
   * Sends `signal` to replica `id`'s process (by PID) without waiting,
   * for example `SIGSTOP` and `SIGCONT`.
   */
  signal(id: string, signal: Deno.Signal): void {
    const pid = this.pid(id);
    if (pid === undefined) throw new Error(`replica ${id} is not running`);
    Deno.kill(pid, signal);
  }

  /**
   * Sends `signal` to replica `id` (by PID) and waits for it to exit
   * (bounded: after `timeoutMs`, SIGKILL).
   *
   * @returns Its exit status, or `undefined` if it was not running.
   */
  async kill(
    id: string,
    signal: Deno.Signal = "SIGKILL",
    timeoutMs = 10_000,
  ): Promise<Deno.CommandStatus | undefined> {
    const running = this.#running.get(id);
    if (running === undefined) return undefined;
    if (running.status !== undefined) return running.status;
    try {
      // A stopped process handles nothing until it is continued.
      if (signal !== "SIGKILL") Deno.kill(running.pid, "SIGCONT");
      Deno.kill(running.pid, signal);
    } catch { /* exited meanwhile */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (signal !== "SIGKILL") {
      timer = setTimeout(() => {
        try {
          Deno.kill(running.pid, "SIGKILL");
        } catch { /* exited */ }
      }, timeoutMs);
    }
    try {
      return await withTimeout(
        running.done,
        timeoutMs + 5_000,
        `replica ${id} (pid ${running.pid}) to exit after ${signal}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Every stderr line of replica `id` (or of every replica), oldest first,
   * across restarts.
   */
  lines(id?: string): LogLine[] {
    if (id !== undefined) return [...this.#linesOf(id)];
    return [...this.#lines.values()].flat();
  }

  /** The JSON log lines whose `event` is `event`. */
  events(event: string, id?: string): Record<string, unknown>[] {
    return this.lines(id).flatMap((l) =>
      l.json?.event === event ? [l.json] : []
    );
  }

  /** The last `count` lines of every replica, for a failure message. */
  tail(count = 20): string {
    return this.ids.map((id) =>
      `--- replica ${id} (${this.isRunning(id) ? "running" : "down"})\n` +
      this.#linesOf(id).slice(-count).map((l) => l.text).join("\n")
    ).join("\n");
  }

  /**
   * Waits until `condition` holds, re-checked whenever a log line arrives
   * or a process exits, and at least every 50 ms.
   *
   * @throws {Error} after `timeoutMs`, naming `what`; or what `condition` throws.
   */
  async waitFor(
    condition: () => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
      }
      const wake = Promise.withResolvers<void>();
      this.#waiters.add(wake.resolve);
      const timer = setTimeout(wake.resolve, Math.min(50, left));
      await wake.promise;
      clearTimeout(timer);
      this.#waiters.delete(wake.resolve);
    }
  }

  /**
   * Stops every process (SIGTERM, then SIGKILL after `timeoutMs`), waits
   * for each to exit and removes the data directories. Safe to call twice.
   *
   * @returns The exit status of every process that was running.
   */
  async stop(timeoutMs = 10_000): Promise<Record<string, Deno.CommandStatus>> {
    const statuses: Record<string, Deno.CommandStatus> = {};
    await Promise.all(this.ids.map(async (id) => {
      if (!this.isRunning(id)) return;
      const status = await this.kill(id, "SIGTERM", timeoutMs);
      if (status !== undefined) statuses[id] = status;
    }));
    if (!this.#closed) {
      this.#closed = true;
      await Deno.remove(this.#root, { recursive: true }).catch(() => {});
    }
    return statuses;
  }

  /**
   * Stops every replica process (SIGTERM) and waits for each to exit,
   * keeping the data directories, so that {@linkcode startReplica} can
   * bring them back.
   */
  async stopReplicas(
    signal: Deno.Signal = "SIGTERM",
  ): Promise<Record<string, Deno.CommandStatus>> {
    const statuses: Record<string, Deno.CommandStatus> = {};
    await Promise.all(this.ids.map(async (id) => {
      const status = await this.kill(id, signal);
      if (status !== undefined) statuses[id] = status;
    }));
    return statuses;
  }

  /** Same as {@linkcode stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #linesOf(id: string): LogLine[] {
    let lines = this.#lines.get(id);
    if (lines === undefined) {
      lines = [];
      this.#lines.set(id, lines);
    }
    return lines;
  }

  #notify(): void {
    for (const wake of this.#waiters) wake();
  }

  async #readLines(
    id: string,
    stream: ReadableStream<Uint8Array>,
  ): Promise<void> {
    const lines = this.#linesOf(id);
    let rest = "";
    const push = (text: string) => {
      if (text === "") return;
      let json: Record<string, unknown> | undefined;
      if (text.startsWith("{")) {
        try {
          json = JSON.parse(text);
        } catch { /* not JSON */ }
      }
      const line: LogLine = { replica: id, json, text };
      if (json === undefined && (this.#options.echoErrors ?? true)) {
        console.error(`[replica ${id}] ${text}`);
      }
      lines.push(line);
      if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
      this.#options.onLine?.(line);
    };
    try {
      for await (
        const chunk of stream.pipeThrough(new TextDecoderStream())
      ) {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
          push(rest.slice(0, nl));
          rest = rest.slice(nl + 1);
        }
        this.#notify();
      }
      push(rest);
    } catch { /* the stream broke: the process is gone */ }
    this.#notify();
  }
}

/**
 * Connects a client to `replicas` and waits until the group has a leader
 * that acknowledges a write (an append to `probePath`), retrying within
 * `timeoutMs`. The client is closed if that fails.
 *
 * @returns The client and the leader that acknowledged the write.
 * @throws {Error} if no leader acknowledged a write in time.
 */
export async function connectWhenReady(
  replicas: Record<string, string>,
  timeoutMs = 20_000,
  probePath = "/test/ready",
  options: Omit<OracleConnectOptions, "replicas"> = {},
): Promise<{ client: OracleClient; leader: string }> {
  const deadline = performance.now() + timeoutMs;
  const client = await OracleClient.connect({
    deadlineMs: timeoutMs,
    ...options,
    replicas,
  });
  try {
    const leader = await waitForLeader(
      client,
      Math.max(1, deadline - performance.now()),
      probePath,
    );
    return { client, leader };
  } catch (error) {
    await client.close();
    throw error;
  }
}

/**
 * Appends to `probePath` until a write is acknowledged (bounded by
 * `timeoutMs` and 1,000 attempts), then returns the leader the client
 * learned.
 *
 * @throws {Error} with the last failure if none succeeded in time.
 */
export async function waitForLeader(
  client: OracleClient,
  timeoutMs: number,
  probePath = "/test/ready",
): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (let attempt = 0; attempt < 1_000; attempt++) {
    try {
      await client.append(probePath, { probe: attempt });
      const leader = client.status().leader;
      if (leader !== undefined) return leader;
    } catch (error) {
      last = error;
    }
    if (performance.now() > deadline) break;
    await delay(50);
  }
  throw new Error(
    `No leader acknowledged a write within ${timeoutMs} ms: ${
      last instanceof Error ? last.message : String(last)
    }`,
  );
}
