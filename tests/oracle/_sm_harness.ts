/**
 * A driver of one Oracle state machine for tests: numbered entries, one
 * request per entry, and helpers to read replies and view events.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type ApplyOutput,
  OracleStateMachine,
  type StateMachineOptions,
} from "../../oracle/state_machine.ts";
import type {
  ChannelEvent,
  ClientRequest,
  EntryCommand,
  OpResult,
  ViewEvent,
  WriteOp,
} from "../../oracle/commands.ts";
import { viewChannel } from "../../oracle/commands.ts";

/** Drives a state machine: numbers entries and, per session, requests. */
export class Harness {
  sm: OracleStateMachine;
  index = 0;
  #next = new Map<string, number>();

  constructor(options?: StateMachineOptions) {
    this.sm = new OracleStateMachine(options);
  }

  entry(command: EntryCommand): ApplyOutput[] {
    return this.sm.apply(++this.index, command);
  }

  /** Builds the next request of a session (acked 0 unless given: nothing forgotten). */
  request(session: string, op: WriteOp, acked = 0): ClientRequest {
    const n = this.#next.get(session) ?? 1;
    this.#next.set(session, n + 1);
    return { session, req: n, acked, op };
  }

  /** Applies one request in its own entry; returns all outputs. */
  send(session: string, op: WriteOp): ApplyOutput[] {
    return this.entry({ batch: [this.request(session, op)] });
  }

  /** Applies one request and returns its own reply's result (throws if none). */
  call(session: string, op: WriteOp): OpResult {
    const request = this.request(session, op);
    const out = this.entry({ batch: [request] });
    const reply = replyTo(out, session, request.req);
    assert.ok(reply, `no reply to ${session}#${request.req} ${op.op}`);
    return reply;
  }

  open(session: string, ttlMs = 5_000): void {
    assert.deepEqual(this.call(session, { op: "open_session", ttlMs }), {
      ok: { session, ttlMs },
    });
  }

  views(group: string): ViewEvent[] {
    const read = this.sm.eventsFrom(viewChannel(group), 1, 1000);
    assert.ok(!("compacted" in read));
    return read.events.map((e) => e.data as unknown as ViewEvent);
  }
}

export function replyTo(
  out: ApplyOutput[],
  session: string,
  req: number,
): OpResult | undefined {
  for (const o of out) {
    if (o.kind === "reply" && o.session === session && o.req === req) {
      return o.result;
    }
  }
  return undefined;
}

export function replies(out: ApplyOutput[]) {
  return out.filter((o) => o.kind === "reply");
}

export function events(out: ApplyOutput[]): ChannelEvent[] {
  return out.flatMap((o) => o.kind === "event" ? [o.event] : []);
}

export function code(result: OpResult | undefined): string | undefined {
  return result !== undefined && "error" in result
    ? result.error.code
    : undefined;
}

export function ok(result: OpResult | undefined): unknown {
  assert.ok(result !== undefined && "ok" in result, JSON.stringify(result));
  return result.ok;
}
