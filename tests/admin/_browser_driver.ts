/**
 * The child process behind `withChromium` (`_browser.ts`): it drives Debian's
 * chromium with playwright-core and answers one JSON request per stdin line
 * with one JSON line on stdout. It runs with `--allow-all` because
 * playwright-core reads `/proc/sys/...` when it loads and Deno gives such
 * paths only to `--allow-all`; the tests themselves keep the narrower flags of
 * `deno task test`. It closes the browser when stdin ends; if closing hangs it
 * SIGKILLs the browser's processes (found by their profile directory).
 *
 * Usage: `deno run -A _browser_driver.ts '<DriverOptions as JSON>'`.
 *
 * @module
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { lines } from "../_process.ts";

/** What `_browser.ts` passes as the one argument, as JSON. */
export interface DriverOptions {
  /** Path of the chromium binary. */
  executablePath: string;
  /** Milliseconds for launching and for closing the browser. */
  launchTimeoutMs: number;
  /** Default timeout of page actions and navigations. */
  pageTimeoutMs: number;
  /** Viewport of every page. */
  viewport: { width: number; height: number };
}

/** One request line: `op` on page `page` (0 is the first page). */
export interface DriverRequest {
  /** Echoed in the response. */
  id: number;
  /** Index of the page, as returned by `newPage`. */
  page: number;
  /** The operation: a key of `OPS`. */
  op: string;
  /** Its arguments, JSON values. */
  args: unknown[];
}

/** One response line; the first line is `{ id: 0, ok, value: "ready" }`. */
export type DriverResponse =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: string };

/**
 * Flags that keep Chromium quiet on a closed network: without the
 * background-networking ones its connections to the outside are refused and
 * it stalls.
 */
const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

type Op = (page: Page, args: unknown[]) => Promise<unknown>;
const str = (args: unknown[], i: number) => String(args[i]);

/** The operations a request can name; each returns a JSON value. */
const OPS: Record<string, Op> = {
  goto: async (page, args) => void await page.goto(str(args, 0)),
  url: (page) => Promise.resolve(page.url()),
  texts: (page, args) => page.locator(str(args, 0)).allTextContents(),
  attributes: (page, args) =>
    page.locator(str(args, 0)).evaluateAll(
      (nodes, name) => nodes.map((node) => node.getAttribute(name)),
      str(args, 1),
    ),
  isVisible: (page, args) => page.locator(str(args, 0)).isVisible(),
  fill: (page, args) => page.locator(str(args, 0)).fill(str(args, 1)),
  click: (page, args) => page.locator(str(args, 0)).click(),
  evaluate: (page, args) => page.evaluate(str(args, 0)),
  screenshot: async (page, args) =>
    void await page.screenshot({ path: str(args, 0), fullPage: true }),
};

/** Runs the driver until stdin ends; 1 if the browser had to be killed. */
async function main(options: DriverOptions): Promise<number> {
  const profile = await Deno.makeTempDir({ prefix: "cohort-chromium-" });
  let context: BrowserContext | undefined;
  let closed = true;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: options.executablePath,
      args: [...CHROMIUM_ARGS],
      timeout: options.launchTimeoutMs,
      viewport: options.viewport,
    });
    context.setDefaultTimeout(options.pageTimeoutMs);
    const pageErrors: string[] = [];
    context.on("weberror", (e) => pageErrors.push(String(e.error())));
    const pages = [context.pages()[0] ?? await context.newPage()];
    await reply({ id: 0, ok: true, value: "ready" });
    for await (const line of lines(Deno.stdin.readable)) {
      const request = JSON.parse(line) as DriverRequest;
      await reply(await serve(request, context, pages, pageErrors));
    }
  } catch (error) {
    await reply({ id: 0, ok: false, error: describe(error) });
  } finally {
    if (context) {
      closed = await closeOrKill(context, profile, options.launchTimeoutMs);
    }
    await Deno.remove(profile, { recursive: true });
  }
  return closed ? 0 : 1;
}

async function serve(
  request: DriverRequest,
  context: BrowserContext,
  pages: Page[],
  pageErrors: string[],
): Promise<DriverResponse> {
  const { id, op, args } = request;
  try {
    if (op === "newPage") {
      pages.push(await context.newPage());
      return { id, ok: true, value: pages.length - 1 };
    }
    if (op === "pageErrors") return { id, ok: true, value: pageErrors };
    const page = pages[request.page];
    if (!page) throw new RangeError(`No page ${request.page}`);
    if (op === "close") return { id, ok: true, value: void await page.close() };
    const run = OPS[op];
    if (!run) throw new TypeError(`Unknown operation ${JSON.stringify(op)}`);
    return { id, ok: true, value: (await run(page, args)) ?? null };
  } catch (error) {
    return { id, ok: false, error: describe(error) };
  }
}

const encoder = new TextEncoder();
async function reply(response: DriverResponse): Promise<void> {
  const bytes = encoder.encode(JSON.stringify(response) + "\n");
  for (let written = 0; written < bytes.length;) {
    written += await Deno.stdout.write(bytes.subarray(written));
  }
}

function describe(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}`
    : String(error);
}

/**
 * Closes the browser; if that hangs, SIGKILLs the processes of `profile` and
 * returns false.
 */
async function closeOrKill(
  context: BrowserContext,
  profile: string,
  timeoutMs: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const closed = context.close().then(() => "closed" as const);
  const outcome = await Promise.race([closed, timedOut]);
  clearTimeout(timer);
  if (outcome === "closed") return true;
  const killed: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`)
      .catch(() => "");
    if (!cmdline.includes(`--user-data-dir=${profile}`)) continue;
    try {
      Deno.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // It exited between the read and the kill.
    }
  }
  console.error(
    `_browser_driver: chromium did not close within ${timeoutMs} ms; killed pids ${
      killed.join(", ") || "(none found)"
    }`,
  );
  return false;
}

if (import.meta.main) {
  Deno.exit(await main(JSON.parse(Deno.args[0]) as DriverOptions));
}
