/**
 * The programming model: an {@linkcode Actor} subclass declares typed
 * message handlers with {@linkcode handler} (over a schema) and view
 * callbacks with {@linkcode onView}; its `checkpoint()`/`restore()` give
 * state transfer to new members.
 *
 * The decorators are TC39 (standard) decorators: do not set
 * `experimentalDecorators`. Handlers are public methods; a subclass
 * inherits its parent's handlers and may add or override them.
 *
 * @example A replicated key-value store
 * ```ts
 * import { z } from "zod";
 * import { Actor, handler, type MessageContext } from "./actor.ts";
 *
 * const Put = z.object({ key: z.string(), value: z.string() });
 *
 * class Kv extends Actor<Record<string, string>> {
 *   data: Record<string, string> = {};
 *
 *   @handler(Put, { order: "abcast" })
 *   put(m: z.infer<typeof Put>, _context: MessageContext): void {
 *     this.data[m.key] = m.value;
 *   }
 *
 *   override checkpoint(): Record<string, string> {
 *     return this.data;
 *   }
 *
 *   override restore(state: Record<string, string>): void {
 *     this.data = state;
 *   }
 * }
 * new Kv();
 * ```
 *
 * @module
 */

import type { InferOutput, Schema } from "./schema.ts";

/** The orderings a handler or a send may ask for. */
export type Ordering = "fbcast" | "cbcast" | "abcast" | "gbcast";

/** The orderings, as values. */
export const ORDERINGS: readonly Ordering[] = [
  "fbcast",
  "cbcast",
  "abcast",
  "gbcast",
];

/**
 * Checks an ordering's name.
 *
 * @param order The name given.
 * @returns It, as an {@linkcode Ordering}.
 * @throws {RangeError} if it is none of {@linkcode ORDERINGS}.
 */
export function checkOrdering(order: unknown): Ordering {
  if (!ORDERINGS.includes(order as Ordering)) {
    throw new RangeError(
      `Invalid order ${JSON.stringify(order)}: use one of ${
        ORDERINGS.join(", ")
      }`,
    );
  }
  return order as Ordering;
}

/** A group view as an actor sees it. */
export interface View {
  /** The view's id; views come in increasing order. */
  readonly viewId: number;
  /** The members, in the same order everywhere (the first is the oldest). */
  readonly members: readonly string[];
  /** This member's name. */
  readonly me: string;
}

/** What a handler is told besides its message. */
export interface MessageContext {
  /** The member that sent the message. */
  readonly sender: string;
  /** The view it is delivered in. */
  readonly view: View;
  /** A unique id: `viewId/sender/seq` (point to point: `direct/sender/n`). */
  readonly id: string;
  /** How it was sent: an ordering, or `"direct"` (point to point). */
  readonly order: Ordering | "direct";
}

/** Options of {@linkcode handler}. */
export interface HandlerOptions {
  /** The ordering a send uses unless it names another. Default `"fbcast"`. */
  readonly order?: Ordering | undefined;
}

/** A handler as the runtime dispatches it. */
export interface HandlerEntry {
  /** The method's name: it names the handler on the wire. */
  readonly name: string;
  /** The schema its messages are validated with (before sending, and on arrival). */
  readonly schema: Schema;
  /** Its default ordering. */
  readonly order: Ordering;
}

/** An actor class's handlers and view callbacks, inherited ones included. */
export interface DispatchTable {
  /** By method name. */
  readonly handlers: ReadonlyMap<string, HandlerEntry>;
  /** By schema: the handler a send of that schema goes to. */
  readonly bySchema: ReadonlyMap<Schema, HandlerEntry>;
  /** The `@onView` methods' names. */
  readonly views: readonly string[];
}

/**
 * The base class of replicated actors. `State` is what
 * {@linkcode Actor.checkpoint} returns and {@linkcode Actor.restore}
 * takes: plain JSON data, sent to new members when they join.
 */
export abstract class Actor<State = null> {
  /**
   * The state to hand a new member, taken at the exact point of the view
   * that adds it (after every message of the previous view). Default:
   * `null` (no state).
   */
  checkpoint(): State {
    return null as State;
  }

  /** Replaces this member's state with a checkpoint, before it delivers anything of its first view. */
  restore(_state: State): void {}
}

const HANDLERS = Symbol("cohort.handlers");
const VIEWS = Symbol("cohort.views");

type Metadata = Record<PropertyKey, unknown>;

/** The entries a class declared itself (not inherited), made on first write. */
function own<T>(metadata: Metadata, key: symbol): T[] {
  if (!Object.hasOwn(metadata, key)) metadata[key] = [];
  return metadata[key] as T[];
}

function checkContext(
  what: string,
  context: unknown,
): asserts context is ClassMethodDecoratorContext {
  if (
    typeof context !== "object" || context === null ||
    (context as { kind?: unknown }).kind !== "method"
  ) {
    throw new TypeError(
      `${what} is a standard (TC39) method decorator: remove "experimentalDecorators" from the compilerOptions of your deno.json`,
    );
  }
  const method = context as ClassMethodDecoratorContext;
  if (method.private || method.static || typeof method.name !== "string") {
    throw new TypeError(
      `${what} must decorate a public instance method with a string name, not ${
        String(method.name)
      }`,
    );
  }
  if (method.metadata === undefined) {
    throw new TypeError(
      `${what} needs decorator metadata (Symbol.metadata): use Deno 2.9.6 or later`,
    );
  }
}

/**
 * Declares a typed message handler: messages of `schema` sent to the
 * group call it, in the ordering `options.order` (default fbcast) unless
 * a send names another. The method's first parameter must accept the
 * schema's output type (`deno check` refuses one that does not); the
 * second is the {@linkcode MessageContext}; what it returns is its reply
 * to a query.
 *
 * @throws {TypeError} if used as a legacy decorator, or on a private,
 * static or symbol-named method.
 */
export function handler<S extends Schema>(
  schema: S,
  options?: HandlerOptions,
): <This extends object>(
  method: (
    this: This,
    message: InferOutput<S>,
    context: MessageContext,
  ) => unknown,
  context: ClassMethodDecoratorContext<This>,
) => void {
  if (
    typeof schema !== "object" || schema === null ||
    typeof schema["~standard"]?.validate !== "function"
  ) {
    throw new TypeError(
      "handler() takes a Standard Schema (a zod 4 schema, for example)",
    );
  }
  const order = checkOrdering(options?.order ?? "fbcast");
  return (_method, context) => {
    checkContext("@handler", context);
    own<HandlerEntry>(context.metadata as Metadata, HANDLERS).push({
      name: context.name as string,
      schema,
      order,
    });
  };
}

/**
 * Declares a view callback: called with each new view, after every
 * message of the previous view was delivered.
 *
 * @throws {TypeError} if used as a legacy decorator, or on a private,
 * static or symbol-named method.
 */
export function onView<This extends object>(
  _method: (this: This, view: View) => unknown,
  context: ClassMethodDecoratorContext<This>,
): void {
  checkContext("@onView", context);
  own<string>(context.metadata as Metadata, VIEWS).push(
    context.name as string,
  );
}

const tables = new WeakMap<object, DispatchTable>();

/**
 * The dispatch table of an actor class: its handlers and view callbacks
 * with its ancestors', a subclass's overriding its parent's of the same
 * name. Built on first use and cached.
 *
 * @throws {TypeError} if two handlers of the class take the same schema.
 */
export function dispatchTable(
  actorClass: abstract new (...args: never[]) => object,
): DispatchTable {
  const cached = tables.get(actorClass);
  if (cached !== undefined) return cached;
  const chain: object[] = [];
  for (
    let c: unknown = actorClass;
    typeof c === "function" && c !== Function.prototype;
    c = Object.getPrototypeOf(c)
  ) {
    chain.unshift(c as object);
  }
  const handlers = new Map<string, HandlerEntry>();
  const views: string[] = [];
  const metadataKey = Symbol.metadata ?? Symbol.for("Symbol.metadata");
  for (const c of chain) {
    if (!Object.hasOwn(c, metadataKey)) continue;
    const metadata = (c as Record<symbol, Metadata>)[metadataKey];
    if (metadata === null || metadata === undefined) continue;
    if (Object.hasOwn(metadata, HANDLERS)) {
      for (const entry of metadata[HANDLERS] as HandlerEntry[]) {
        handlers.set(entry.name, entry);
      }
    }
    if (Object.hasOwn(metadata, VIEWS)) {
      for (const name of metadata[VIEWS] as string[]) {
        if (!views.includes(name)) views.push(name);
      }
    }
  }
  const bySchema = new Map<Schema, HandlerEntry>();
  for (const entry of handlers.values()) {
    const other = bySchema.get(entry.schema);
    if (other !== undefined) {
      throw new TypeError(
        `Handlers ${other.name} and ${entry.name} of ${
          (actorClass as { name?: string }).name ?? "an actor"
        } take the same schema: a send could not tell which to call`,
      );
    }
    bySchema.set(entry.schema, entry);
  }
  const table = { handlers, bySchema, views };
  tables.set(actorClass, table);
  return table;
}
