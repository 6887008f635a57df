/**
 * The simulator's event queue: a binary min-heap ordered by (virtual time,
 * insertion sequence), so events at the same instant run in the order they
 * were scheduled.
 *
 * @module
 */

/** What an event is, for trace and crash accounting. */
export const EventKind = {
  script: 0,
  timer: 1,
  deliver: 2,
  sync: 3,
  peer: 4,
  drain: 5,
} as const;

/** One of {@linkcode EventKind}'s values. */
export type EventKindCode = typeof EventKind[keyof typeof EventKind];

/** One scheduled event. Its object doubles as the handle of a timer. */
export class QueuedEvent {
  cancelled = false;
  constructor(
    readonly time: number,
    readonly seq: number,
    readonly kind: EventKindCode,
    /** The node the event belongs to (cancelled when it crashes), or -1. */
    readonly node: number,
    readonly run: () => void,
    /** Called instead of `run` when a crash cancels the event. */
    readonly onCancel: (() => void) | undefined,
  ) {}
}

function before(a: QueuedEvent, b: QueuedEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/** A binary min-heap of events. */
export class EventQueue {
  readonly #heap: QueuedEvent[] = [];

  /** Number of queued events, including cancelled ones not yet popped. */
  get size(): number {
    return this.#heap.length;
  }

  /** Adds an event. */
  push(event: QueuedEvent): void {
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(event, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = event;
  }

  /** The earliest event that is not cancelled, without removing it. */
  peek(): QueuedEvent | undefined {
    const heap = this.#heap;
    while (heap.length > 0 && heap[0].cancelled) this.#popTop();
    return heap[0];
  }

  /** Removes and returns the earliest event that is not cancelled. */
  pop(): QueuedEvent | undefined {
    const top = this.peek();
    if (top !== undefined) this.#popTop();
    return top;
  }

  /** Calls `visit` on every queued event, in no particular order. */
  forEach(visit: (event: QueuedEvent) => void): void {
    for (const event of this.#heap) visit(event);
  }

  #popTop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(heap[r], heap[l]) ? r : l;
      if (!before(heap[child], last)) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = last;
  }
}
