/**
 * Headless Chromium for the admin tests: Debian's `/usr/bin/chromium`
 * (installed by `.ci/setup-browser`; Playwright's own browser download cannot
 * work on these machines) driven by playwright-core in a child Deno process,
 * `_browser_driver.ts`, which needs `--allow-all` (playwright-core reads
 * `/proc/sys/...` when it loads). The tests talk to it through the small
 * {@linkcode BrowserPage} interface and need only `--allow-run`.
 *
 * @module
 */
import type { DriverOptions, DriverResponse } from "./_browser_driver.ts";

/** Where `.ci/setup-browser` puts Debian's chromium. */
const CHROMIUM_PATH = "/usr/bin/chromium";

/** A page of the browser. Selectors are Playwright selectors (CSS works). */
export interface BrowserPage {
  /** Navigates and waits for the load event. */
  goto(url: string): Promise<void>;
  /** The page's current URL. */
  url(): Promise<string>;
  /** `textContent` of every element matching, now (no waiting): maybe `[]`. */
  texts(selector: string): Promise<string[]>;
  /** The attribute `name` of every element matching, now (no waiting). */
  attributes(selector: string, name: string): Promise<(string | null)[]>;
  /** Whether the (one) element matching is visible; false if none. */
  isVisible(selector: string): Promise<boolean>;
  /** Types `value` into the (one) input matching, waiting for it. */
  fill(selector: string, value: string): Promise<void>;
  /** Clicks the (one) element matching, waiting for it. */
  click(selector: string): Promise<void>;
  /** Evaluates a JavaScript expression in the page; returns its JSON value. */
  evaluate(expression: string): Promise<unknown>;
  /** Writes a full-page PNG to `path`. */
  screenshot(path: string): Promise<void>;
  /** Opens another tab (its own `sessionStorage`) in the same browser. */
  newPage(): Promise<BrowserPage>;
  /** Closes this tab. */
  close(): Promise<void>;
}

/** Options of {@linkcode withChromium}. */
export interface WithChromiumOptions {
  /** Milliseconds for launching and for closing the browser. Default 60 000. */
  launchTimeoutMs?: number | undefined;
  /** Timeout of each page action and navigation. Default 10 000. */
  pageTimeoutMs?: number | undefined;
  /** Viewport of the pages. Default 1280x800. */
  viewport?: { width: number; height: number } | undefined;
}

/**
 * Launches Chromium with a fresh temporary profile, runs `fn` with its first
 * page, and always closes the browser, even when `fn` throws: the driver
 * closes it (killing its processes if closing hangs), and the driver itself
 * is SIGKILLed if it does not exit in time (Chromium exits with it).
 *
 * @param fn The test body; it gets a blank page.
 * @param options Timeouts and viewport.
 * @returns Once the browser and its driver are gone.
 * @throws {Error} If `/usr/bin/chromium` is missing (run `.ci/setup-browser`),
 * if the browser cannot be launched or had to be killed, if `fn` throws, or if
 * a page had uncaught errors.
 *
 * @example Reading a page's heading
 * ```ts ignore
 * await withChromium(async (page) => {
 *   await page.goto("data:text/html,<h1>hi</h1>");
 *   assert.deepEqual(await page.texts("h1"), ["hi"]);
 * });
 * ```
 */
export async function withChromium(
  fn: (page: BrowserPage) => Promise<void>,
  options: WithChromiumOptions = {},
): Promise<void> {
  await assertChromiumInstalled();
  const driverOptions: DriverOptions = {
    executablePath: CHROMIUM_PATH,
    launchTimeoutMs: options.launchTimeoutMs ?? 60_000,
    pageTimeoutMs: options.pageTimeoutMs ?? 10_000,
    viewport: options.viewport ?? { width: 1280, height: 800 },
  };
  const driver = new Driver(driverOptions);
  let failed = true;
  try {
    await driver.ready;
    await fn(pageOf(driver, 0));
    const errors = await driver.call(0, "pageErrors") as string[];
    if (errors.length > 0) {
      throw new Error(`The page had uncaught errors: ${errors.join("; ")}`);
    }
    failed = false;
  } finally {
    const stopped = driver.stop();
    // An error of fn (or of launching) wins over one of stopping.
    if (failed) await stopped.catch(() => {});
    else await stopped;
  }
}

/**
 * Polls `probe` every 50 ms until it returns a value that `done` accepts.
 *
 * @param what What is awaited, for the error message.
 * @param probe Reads the current value (for example a cell's text).
 * @param done Whether the value is the awaited one.
 * @param timeoutMs How long to poll. Default 5 000.
 * @returns The accepted value.
 * @throws {Error} If no accepted value came in time; says the last one seen.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() >= deadline) {
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${
          JSON.stringify(value)
        }`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function assertChromiumInstalled(): Promise<void> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch (cause) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM_PATH}: run \`bash .ci/setup-browser\` (or \`deno task setup\`) to install Debian's chromium`,
      { cause },
    );
  }
}

function pageOf(driver: Driver, index: number): BrowserPage {
  const call = (op: string, ...args: unknown[]) =>
    driver.call(index, op, ...args);
  return {
    goto: async (url) => void await call("goto", url),
    url: async () => String(await call("url")),
    texts: async (selector) => await call("texts", selector) as string[],
    attributes: async (selector, name) =>
      await call("attributes", selector, name) as (string | null)[],
    isVisible: async (selector) => await call("isVisible", selector) === true,
    fill: async (selector, value) => void await call("fill", selector, value),
    click: async (selector) => void await call("click", selector),
    evaluate: (expression) => call("evaluate", expression),
    screenshot: async (path) => void await call("screenshot", path),
    newPage: async () => pageOf(driver, await call("newPage") as number),
    close: async () => void await call("close"),
  };
}

/** The child process running `_browser_driver.ts`, and its requests. */
class Driver {
  readonly ready: Promise<void>;
  #options: DriverOptions;
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<number, PromiseWithResolvers<unknown>>();
  #nextId = 1;
  #stderr = "";
  #reading: Promise<void>;
  #readingErr: Promise<void>;

  constructor(options: DriverOptions) {
    this.#options = options;
    const driver = new URL("./_browser_driver.ts", import.meta.url);
    const config = new URL("../../deno.json", import.meta.url);
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--quiet",
        `--config=${config.pathname}`,
        driver.pathname,
        JSON.stringify(options),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    const ready = Promise.withResolvers<unknown>();
    this.#pending.set(0, ready);
    this.ready = this.#bounded(
      ready.promise,
      options.launchTimeoutMs,
      "launching chromium",
    ).then(() => {});
    this.#reading = this.#readResponses();
    this.#readingErr = this.#readStderr();
  }

  /** Sends one request and waits (bounded) for its response. */
  async call(page: number, op: string, ...args: unknown[]): Promise<unknown> {
    const id = this.#nextId++;
    const response = Promise.withResolvers<unknown>();
    this.#pending.set(id, response);
    const line = JSON.stringify({ id, page, op, args }) + "\n";
    await this.#stdin.write(new TextEncoder().encode(line));
    return await this.#bounded(
      response.promise,
      this.#options.pageTimeoutMs + 5_000,
      `${op} ${JSON.stringify(args)}`,
    );
  }

  /** Ends stdin (the driver closes the browser) and waits for the exit. */
  async stop(): Promise<void> {
    await this.#stdin.close().catch(() => {}); // already closed if it died
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(
        () => resolve("timeout"),
        this.#options.launchTimeoutMs,
      );
    });
    const outcome = await Promise.race([this.#child.status, timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") this.#child.kill("SIGKILL");
    const status = await this.#child.status;
    await Promise.all([this.#reading, this.#readingErr]);
    if (outcome === "timeout" || !status.success) {
      throw new Error(
        `The browser driver ${
          outcome === "timeout"
            ? "did not exit in time and was killed"
            : `exited with ${status.code}`
        }; its stderr: ${this.#stderr || "(empty)"}`,
      );
    }
  }

  async #bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`The browser driver took over ${ms} ms for ${what}`),
          ),
        ms,
      );
    });
    try {
      return await Promise.race([promise, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #readResponses(): Promise<void> {
    let buffer = "";
    for await (
      const text of this.#child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buffer += text;
      for (
        let end = buffer.indexOf("\n");
        end >= 0;
        end = buffer.indexOf("\n")
      ) {
        this.#settle(buffer.slice(0, end));
        buffer = buffer.slice(end + 1);
      }
    }
    const gone = new Error(
      `The browser driver exited; its stderr: ${this.#stderr || "(empty)"}`,
    );
    for (const pending of this.#pending.values()) pending.reject(gone);
    this.#pending.clear();
  }

  #settle(line: string): void {
    let response: DriverResponse;
    try {
      response = JSON.parse(line);
    } catch {
      this.#stderr += `\n(not a response on stdout: ${line})`;
      return;
    }
    const pending = this.#pending.get(response.id);
    this.#pending.delete(response.id);
    if (!pending) return;
    if (response.ok) pending.resolve(response.value);
    else pending.reject(new Error(`Browser: ${response.error}`));
  }

  async #readStderr(): Promise<void> {
    for await (
      const text of this.#child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      this.#stderr = (this.#stderr + text).slice(-4_000);
    }
  }
}
