/**
 * A linearizability checker in the style of Knossos and Porcupine: given a
 * history of operations as clients observed them (when each was called,
 * when it returned, with what result) and a sequential model of the
 * object, decide whether some total order of the operations, consistent
 * with real time, explains every observed result.
 *
 * The search is Wing & Gong's, with Lowe's memoization as Porcupine does
 * it: calls and returns form one time-ordered list; the checker tries to
 * linearize each call that precedes the first unreturned return, lifts
 * the operation out of the list when the model accepts its output, and
 * backtracks when it reaches a return whose operation could not be placed.
 * Every (set of linearized operations, model state) pair is visited at
 * most once. A model can split a history into independent parts
 * (P-compositionality, for example one part per key), which are checked
 * separately and make large histories cheap.
 *
 * Operations that never returned (a crashed or timed-out client) may take
 * effect at any point after their call, or never.
 *
 * The search is bounded: past `maxSteps` it answers `"unknown"`, never a
 * silent pass. It does no I/O and uses no randomness: the same history
 * always gets the same answer and the same explanation.
 *
 * @module
 */

/**
 * One operation of a history, as its client observed it.
 *
 * Times come from one clock (virtual time in the simulator). Two events
 * at the same time are treated as concurrent: a return at `t` does not
 * precede a call at `t`. To order events that share a virtual instant,
 * record a finer clock (for example virtual time plus a per-instant event
 * counter divided by a large constant).
 *
 * An operation is *pending* when its `output` is `undefined` or its `ret`
 * is not finite: it may have taken effect at any time after `call`, or
 * never. Its `ret` is then ignored (treated as +Infinity).
 *
 * @typeParam I The operation's input.
 * @typeParam O The operation's output.
 *
 * @example A completed write and a read that never returned
 * ```ts
 * import type { HistoryOperation } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * const history: HistoryOperation<{ write?: number }, number | null>[] = [
 *   { client: "a", input: { write: 1 }, output: null, call: 0, ret: 10 },
 *   { client: "b", input: {}, output: undefined, call: 5, ret: Infinity },
 * ];
 * assert.equal(history.length, 2);
 * ```
 */
export interface HistoryOperation<I, O> {
  /** Who issued the operation (for explanations only). */
  readonly client: string;
  /** What the operation asked for. */
  readonly input: I;
  /** What it returned; `undefined` if it never returned (its effect is unknown). */
  readonly output: O | undefined;
  /** When it was called. */
  readonly call: number;
  /** When it returned; `Infinity` if it never did. */
  readonly ret: number;
}

/**
 * The sequential specification a history is checked against.
 *
 * States are treated as immutable values: `step` must return a new state
 * (or the same one, unchanged) and never modify its argument.
 *
 * @typeParam S The model's state.
 * @typeParam I An operation's input.
 * @typeParam O An operation's output.
 *
 * @example A read/write register
 * ```ts
 * import type { LinearizabilityModel } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * type Input = { op: "write"; value: number } | { op: "read" };
 * const register: LinearizabilityModel<number, Input, number | null> = {
 *   init: () => 0,
 *   step(state, input, output) {
 *     if (input.op === "write") return input.value;
 *     return output === undefined || output === state ? state : undefined;
 *   },
 *   key: (state) => String(state),
 * };
 * assert.equal(register.step(1, { op: "read" }, 2), undefined);
 * ```
 */
export interface LinearizabilityModel<S, I, O> {
  /** The initial state. */
  init(): S;
  /**
   * Applies one operation.
   *
   * @param state The state before the operation.
   * @param input The operation's input.
   * @param output What it returned, or `undefined` when it never returned:
   * then it took effect with whatever result it would have had.
   * @returns The state after the operation, or `undefined` if `output` is
   * impossible in `state`.
   */
  step(state: S, input: I, output: O | undefined): S | undefined;
  /**
   * Splits a history into parts that are linearizable independently (for
   * example one part per key). Every operation should appear in exactly
   * one part. Without it, the whole history is one part.
   *
   * @param ops The whole history.
   * @returns The parts.
   */
  partition?(
    ops: readonly HistoryOperation<I, O>[],
  ): readonly (readonly HistoryOperation<I, O>[])[];
  /**
   * A string that is equal for two states exactly when they are equal:
   * the memoization key of the search. Equal keys for different states
   * can make the checker miss a linearization.
   *
   * @param state A state.
   * @returns Its key.
   */
  key(state: S): string;
  /**
   * Describes an operation for explanations.
   *
   * @param op The operation.
   * @returns A short human-readable description (the checker adds its times).
   */
  describe?(op: HistoryOperation<I, O>): string;
}

/**
 * Options of {@linkcode checkLinearizable}.
 *
 * @example Bound the search
 * ```ts
 * import type { LinearizabilityOptions } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * const options: LinearizabilityOptions = { maxSteps: 100_000 };
 * assert.equal(options.maxSteps, 100_000);
 * ```
 */
export interface LinearizabilityOptions {
  /**
   * Search steps allowed per part before the answer is `"unknown"`
   * (default 2,000,000). A step is one attempt to linearize an operation
   * or one backtrack.
   */
  readonly maxSteps?: number | undefined;
}

/**
 * The answer of {@linkcode checkLinearizable}.
 *
 * - `ok: true`: every part is linearizable.
 * - `ok: false`: part `partition` (its index in the model's partition, 0
 *   without one) is not; `prefix` is the longest linearizable prefix the
 *   search found, `stuck` the operation that could then not be placed, and
 *   `explanation` says so in words.
 * - `ok: "unknown"`: the search of part `partition` ran out of steps and no
 *   part was found non-linearizable.
 *
 * `steps` counts search steps over all parts that were checked.
 *
 * @typeParam I An operation's input.
 * @typeParam O An operation's output.
 *
 * @example Read a result
 * ```ts
 * import type { LinearizabilityResult } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * function summary(result: LinearizabilityResult<unknown, unknown>): string {
 *   if (result.ok === true) return "linearizable";
 *   if (result.ok === false) return result.explanation;
 *   return `unknown: ${result.reason}`;
 * }
 * assert.equal(summary({ ok: true, partitions: 1, steps: 3 }), "linearizable");
 * ```
 */
export type LinearizabilityResult<I, O> =
  | {
    readonly ok: true;
    /** How many parts were checked. */
    readonly partitions: number;
    readonly steps: number;
  }
  | {
    readonly ok: false;
    /** Index of the failing part. */
    readonly partition: number;
    /** The failing part's operations, as given. */
    readonly operations: readonly HistoryOperation<I, O>[];
    /** The longest linearizable prefix found, in linearization order. */
    readonly prefix: readonly HistoryOperation<I, O>[];
    /** The operation that returned but could not be linearized after `prefix`. */
    readonly stuck: HistoryOperation<I, O> | undefined;
    /** A human-readable account of the failure. */
    readonly explanation: string;
    readonly steps: number;
  }
  | {
    readonly ok: "unknown";
    /** Index of the first part whose search ran out of steps. */
    readonly partition: number;
    /** Why there is no answer. */
    readonly reason: string;
    readonly steps: number;
  };

const DEFAULT_MAX_STEPS = 2_000_000;
/** Operations of the prefix listed in an explanation (the last ones). */
const EXPLAIN_PREFIX_OPS = 20;
const EXPLAIN_STATE_CHARS = 300;

/**
 * Checks that a history is linearizable with respect to a model.
 *
 * @param history The operations, in any order.
 * @param model The sequential specification.
 * @param options The search bound.
 * @returns Whether the history is linearizable, with an explanation if
 * not; `"unknown"` if the search ran out of steps.
 * @throws {RangeError} if an operation's `call` is not finite, its `ret`
 * is before its `call`, or `maxSteps` is not a positive integer.
 *
 * @example A stale read is caught, overlapping operations are not
 * ```ts
 * import { checkLinearizable, type LinearizabilityModel } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * type Input = { op: "write"; value: number } | { op: "read" };
 * const register: LinearizabilityModel<number, Input, number | null> = {
 *   init: () => 0,
 *   step(state, input, output) {
 *     if (input.op === "write") return input.value;
 *     return output === undefined || output === state ? state : undefined;
 *   },
 *   key: (state) => String(state),
 * };
 *
 * // The read overlaps the write: it may see either value.
 * const overlapping = checkLinearizable([
 *   { client: "a", input: { op: "write", value: 1 }, output: null, call: 0, ret: 10 },
 *   { client: "b", input: { op: "read" }, output: 0, call: 5, ret: 15 },
 * ], register);
 * assert.equal(overlapping.ok, true);
 *
 * // The read starts after the write returned: seeing 0 is stale.
 * const stale = checkLinearizable([
 *   { client: "a", input: { op: "write", value: 1 }, output: null, call: 0, ret: 10 },
 *   { client: "b", input: { op: "read" }, output: 0, call: 20, ret: 30 },
 * ], register);
 * assert.equal(stale.ok, false);
 * if (stale.ok === false) assert.match(stale.explanation, /could not be linearized/);
 * ```
 */
export function checkLinearizable<S, I, O>(
  history: readonly HistoryOperation<I, O>[],
  model: LinearizabilityModel<S, I, O>,
  options: LinearizabilityOptions = {},
): LinearizabilityResult<I, O> {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!Number.isSafeInteger(maxSteps) || maxSteps < 1) {
    throw new RangeError(
      `Invalid maxSteps ${maxSteps}: must be a positive integer`,
    );
  }
  history.forEach(validate);
  const parts = model.partition ? model.partition(history) : [history];
  let steps = 0;
  let unknown: { partition: number; reason: string } | undefined;
  for (let p = 0; p < parts.length; p++) {
    const ops = parts[p];
    ops.forEach(validate);
    const search = searchPart(ops, model, maxSteps);
    steps += search.steps;
    if (search.outcome === "fail") {
      return {
        ok: false,
        partition: p,
        operations: ops,
        ...explain(ops, model, search.best, p, parts.length),
        steps,
      };
    }
    if (search.outcome === "unknown" && unknown === undefined) {
      unknown = {
        partition: p,
        reason: `Search of part ${p} (${ops.length} operations) ` +
          `exceeded ${maxSteps} steps; the longest linearizable prefix ` +
          `found has ${search.best.length} operations`,
      };
    }
  }
  if (unknown !== undefined) return { ok: "unknown", ...unknown, steps };
  return { ok: true, partitions: parts.length, steps };
}

function validate(op: HistoryOperation<unknown, unknown>, index: number): void {
  if (!Number.isFinite(op.call)) {
    throw new RangeError(
      `Invalid operation ${index} of client "${op.client}": call time ${op.call} is not finite`,
    );
  }
  if (!(op.ret >= op.call)) {
    throw new RangeError(
      `Invalid operation ${index} of client "${op.client}": returns at ${op.ret}, before its call at ${op.call}`,
    );
  }
}

function isPending(op: HistoryOperation<unknown, unknown>): boolean {
  return op.output === undefined || !Number.isFinite(op.ret);
}

/** A call or return event in the doubly linked event list. */
interface Entry {
  readonly op: number;
  /** For a call: its return entry; for a return: null. */
  readonly match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

interface SearchOutcome {
  readonly outcome: "ok" | "fail" | "unknown";
  readonly steps: number;
  /** Operation indexes of the longest linearized prefix, in order. */
  readonly best: readonly number[];
}

/** Deterministic 32-bit mix of an integer (splitmix32 finalizer). */
function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function buildEntries(ops: readonly HistoryOperation<unknown, unknown>[]): {
  head: Entry;
  pending: boolean[];
} {
  const pending = ops.map(isPending);
  const events: { time: number; kind: 0 | 1; op: number }[] = [];
  ops.forEach((op, i) => {
    events.push({ time: op.call, kind: 0, op: i });
    events.push({ time: pending[i] ? Infinity : op.ret, kind: 1, op: i });
  });
  // Calls before returns at equal times (concurrent), then by index.
  events.sort((a, b) =>
    a.time !== b.time
      ? (a.time < b.time ? -1 : 1)
      : a.kind !== b.kind
      ? a.kind - b.kind
      : a.op - b.op
  );
  const returns = new Map<number, Entry>();
  const head: Entry = { op: -1, match: null, prev: null, next: null };
  // Build back to front so each call can point at its (later) return.
  let next: Entry | null = null;
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i];
    let entry: Entry;
    if (event.kind === 1) {
      entry = { op: event.op, match: null, prev: null, next };
      returns.set(event.op, entry);
    } else {
      entry = {
        op: event.op,
        match: returns.get(event.op)!,
        prev: null,
        next,
      };
    }
    if (next !== null) next.prev = entry;
    next = entry;
  }
  head.next = next;
  if (next !== null) next.prev = head;
  return { head, pending };
}

function lift(call: Entry): void {
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

function searchPart<S, I, O>(
  ops: readonly HistoryOperation<I, O>[],
  model: LinearizabilityModel<S, I, O>,
  maxSteps: number,
): SearchOutcome {
  const { head, pending } = buildEntries(ops);
  const words = Math.ceil(ops.length / 32) || 1;
  const bits = new Uint32Array(words);
  const zobrist1 = ops.map((_, i) => mix32(2 * i));
  const zobrist2 = ops.map((_, i) => mix32(2 * i + 1));
  let h1 = 0;
  let h2 = 0;
  // (bitset hash, state key) -> bitsets seen with that hash and state.
  const cache = new Map<string, Uint32Array[]>();
  const stack: { entry: Entry; state: S }[] = [];
  let best: number[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;

  const toggle = (op: number): void => {
    bits[op >>> 5] ^= 1 << (op & 31);
    h1 ^= zobrist1[op];
    h2 ^= zobrist2[op];
  };
  const remember = (stateKey: string): boolean => {
    const key = `${h1}:${h2}:${stateKey}`;
    const seen = cache.get(key);
    if (seen === undefined) {
      cache.set(key, [bits.slice()]);
      return true;
    }
    for (const other of seen) {
      let same = true;
      for (let w = 0; w < words; w++) {
        if (other[w] !== bits[w]) {
          same = false;
          break;
        }
      }
      if (same) return false;
    }
    seen.push(bits.slice());
    return true;
  };

  while (entry !== null) {
    if (++steps > maxSteps) return { outcome: "unknown", steps, best };
    if (entry.match !== null) {
      const op = ops[entry.op];
      const next = model.step(state, op.input, op.output);
      if (next !== undefined) {
        toggle(entry.op);
        if (remember(model.key(next))) {
          stack.push({ entry, state });
          state = next;
          lift(entry);
          if (stack.length > best.length) best = stack.map((f) => f.entry.op);
          entry = head.next;
          continue;
        }
        toggle(entry.op);
      }
      entry = entry.next;
    } else {
      // Reaching a pending operation's return (they come last) means every
      // completed operation is linearized: leave the remaining ones out.
      if (pending[entry.op]) return { outcome: "ok", steps, best };
      const top = stack.pop();
      if (top === undefined) return { outcome: "fail", steps, best };
      state = top.state;
      toggle(top.entry.op);
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return { outcome: "ok", steps, best };
}

function formatValue(value: unknown): string {
  if (value === undefined) return "undefined";
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text;
  } catch {
    return String(value);
  }
}

function describeOp<S, I, O>(
  model: LinearizabilityModel<S, I, O>,
  op: HistoryOperation<I, O>,
): string {
  const what = model.describe
    ? model.describe(op)
    : `${formatValue(op.input)} -> ${
      op.output === undefined ? "(no reply)" : formatValue(op.output)
    }`;
  const when = isPending(op)
    ? `called ${op.call}, never returned`
    : `called ${op.call}, returned ${op.ret}`;
  return `[${op.client}] ${what} (${when})`;
}

function clip(text: string, max: number): string {
  return text.length <= max
    ? text
    : `${text.slice(0, max)}... (${text.length} chars)`;
}

function explain<S, I, O>(
  ops: readonly HistoryOperation<I, O>[],
  model: LinearizabilityModel<S, I, O>,
  best: readonly number[],
  partition: number,
  partitions: number,
): {
  prefix: HistoryOperation<I, O>[];
  stuck: HistoryOperation<I, O> | undefined;
  explanation: string;
} {
  const prefix = best.map((i) => ops[i]);
  let state = model.init();
  for (const op of prefix) state = model.step(state, op.input, op.output)!;
  const done = new Set(best);

  // Replay the event order without the prefix: the calls before the first
  // remaining return are the candidates; that return's operation is stuck.
  const { head, pending } = buildEntries(ops);
  const candidates: number[] = [];
  let stuckIndex: number | undefined;
  for (let e = head.next; e !== null; e = e.next) {
    if (done.has(e.op)) continue;
    if (e.match !== null) {
      candidates.push(e.op);
    } else if (!pending[e.op]) {
      stuckIndex = e.op;
      break;
    }
  }
  const stuck = stuckIndex === undefined ? undefined : ops[stuckIndex];

  const lines: string[] = [];
  const where = partitions > 1 ? ` (part ${partition} of ${partitions})` : "";
  lines.push(
    `History of ${ops.length} operations is not linearizable${where}.`,
  );
  if (prefix.length === 0) {
    lines.push("No operation can be linearized first.");
  } else {
    lines.push(
      `Longest linearizable prefix: ${prefix.length} of ${ops.length} operations, in order:`,
    );
    const from = Math.max(0, prefix.length - EXPLAIN_PREFIX_OPS);
    if (from > 0) lines.push(`  ... ${from} earlier operations`);
    for (let i = from; i < prefix.length; i++) {
      lines.push(`  ${i + 1}. ${describeOp(model, prefix[i])}`);
    }
  }
  lines.push(
    `State after it: ${clip(model.key(state), EXPLAIN_STATE_CHARS)}`,
  );
  if (stuck !== undefined) {
    lines.push(
      `Operation that could not be linearized next: ${
        describeOp(model, stuck)
      }`,
    );
    lines.push(
      "It returned, so it must be linearized before any operation called after that;",
    );
    lines.push("the operations that could come next were:");
    for (const i of candidates) {
      const op = ops[i];
      const possible = model.step(state, op.input, op.output) !== undefined;
      lines.push(
        `  - ${describeOp(model, op)}: ${
          possible
            ? "its result is possible here, but nothing after it worked"
            : "its result is impossible in this state"
        }`,
      );
    }
  }
  return { prefix, stuck, explanation: lines.join("\n") };
}
