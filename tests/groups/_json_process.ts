/**
 * A child `deno run` process that prints one JSON object per line on
 * stdout, and everything it printed: what the group tests and the group
 * benchmark start their member processes with.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url).pathname;

/** One line a process printed: an object with an `event` name. */
export interface Line {
  readonly event: string;
  readonly [key: string]: unknown;
}

/** A process running `script` with `--allow-net --allow-env`. */
export class JsonLinesProcess {
  /** Every line printed so far, parsed. */
  readonly lines: Line[] = [];
  readonly #child: Deno.ChildProcess;
  /** Settles once stdout is read to its end and the process exited. */
  readonly done: Promise<Deno.CommandStatus>;

  /** Starts `script` (a path) with `args`. */
  constructor(script: string, args: readonly string[]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-net", "--allow-env", script, ...args],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#child = child;
    this.done = (async () => {
      let rest = "";
      for await (
        const text of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        rest += text;
        const parts = rest.split("\n");
        rest = parts.pop()!;
        for (const part of parts) this.lines.push(JSON.parse(part));
      }
      return await child.status;
    })();
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
}
