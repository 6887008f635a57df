/**
 * Child processes in tests: the lines a stream carries, stopping a process
 * with a signal (SIGKILL if it lingers), and a child `deno run` process that
 * prints one JSON object per line on stdout, with everything it printed:
 * what the group, CLI and dashboard tests and the group benchmark start
 * their processes with.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url).pathname;

/**
 * The lines of `stream`, decoded as UTF-8, without their `\n`. A last
 * line without one is left out.
 */
export async function* lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
      yield buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
    }
  }
}

/** Calls `onLine` with each line of `stream`; settles at its end. */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  for await (const line of lines(stream)) onLine(line);
}

/**
 * Sends `signal` to `child` (if it still runs) and waits for its exit,
 * sending SIGKILL if it has not exited after `graceMs`.
 */
export async function stopChild(
  child: Deno.ChildProcess,
  signal: Deno.Signal,
  graceMs: number,
): Promise<Deno.CommandStatus> {
  const send = (s: Deno.Signal) => {
    try {
      child.kill(s);
    } catch {
      // Exited already.
    }
  };
  send(signal);
  const timer = setTimeout(() => send("SIGKILL"), graceMs);
  try {
    return await child.status;
  } finally {
    clearTimeout(timer);
  }
}

/** One line a process printed: an object with an `event` name. */
export interface Line {
  readonly event: string;
  readonly [key: string]: unknown;
}

/** Options of {@linkcode JsonLinesProcess}. */
export interface JsonLinesProcessOptions {
  /** The `deno run` permission flags. Default `--allow-net --allow-env`. */
  permissions?: readonly string[] | undefined;
  /**
   * `"inherit"` (the default): stderr is this process's; `"lines"`: its
   * lines are collected in {@linkcode JsonLinesProcess.logs}.
   */
  stderr?: "inherit" | "lines" | undefined;
}

/** A process running a script, its stdout read as JSON lines. */
export class JsonLinesProcess {
  /** Every line printed on stdout so far, parsed. */
  readonly lines: Line[] = [];
  /** Every line printed on stderr so far, with `stderr: "lines"`. */
  readonly logs: string[] = [];
  readonly #child: Deno.ChildProcess;
  /** Settles once stdout (and a collected stderr) is read to its end and the process exited. */
  readonly done: Promise<Deno.CommandStatus>;

  /** Starts `script` (a path) with `args`. */
  constructor(
    script: string,
    args: readonly string[],
    options: JsonLinesProcessOptions = {},
  ) {
    const permissions = options.permissions ?? ["--allow-net", "--allow-env"];
    const stderr = options.stderr ?? "inherit";
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...permissions, script, ...args],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: stderr === "lines" ? "piped" : "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#child = child;
    const reading = [
      readLines(child.stdout, (line) => this.lines.push(JSON.parse(line))),
    ];
    if (stderr === "lines") {
      reading.push(readLines(child.stderr, (line) => this.logs.push(line)));
    }
    this.done = Promise.all(reading).then(() => child.status);
  }

  /** The lines of one event, in order. */
  events(event: string): Line[] {
    return this.lines.filter((l) => l.event === event);
  }

  /** The first line of one event, if any. */
  find(event: string): Line | undefined {
    return this.lines.find((l) => l.event === event);
  }

  /** Sends `signal` (if the process still runs) and waits for its end. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited.
    }
    await this.done;
  }

  /**
   * Sends `signal` (if the process still runs) and waits for its end,
   * sending SIGKILL if it has not exited after `graceMs` (default 10 s).
   */
  async stop(signal: Deno.Signal, graceMs = 10_000): Promise<void> {
    await stopChild(this.#child, signal, graceMs);
    await this.done;
  }
}
