/**
 * Replicated data under a lock, updated with cbcast: whoever holds the
 * Oracle lock `/demo/shared/lock` may write. A writer first waits until it
 * has delivered everything the previous holder wrote (the previous holder
 * recorded its last version in a channel before unlocking); from then on
 * its cbcast updates come causally after the previous holder's, so every
 * member applies all updates in version order, without a sequencer.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read --allow-write examples/locked_data.ts
 * ```
 *
 * @module
 */

import { z } from "zod";
import {
  Actor,
  type GroupHandle,
  handler,
  Node,
  OracleClient,
} from "../mod.ts";

const LOCK = "/demo/shared/lock";
const VERSIONS = "/demo/shared/versions";
const Update = z.object({
  version: z.number().int().positive(),
  key: z.string(),
  value: z.number().int(),
});

interface SharedState {
  values: Record<string, number>;
  version: number;
}

class Shared extends Actor<SharedState> {
  state: SharedState = { values: {}, version: 0 };
  /** Updates that arrived out of version order (must stay 0). */
  outOfOrder = 0;

  @handler(Update, { order: "cbcast" })
  update(m: z.infer<typeof Update>): void {
    if (m.version !== this.state.version + 1) this.outOfOrder++;
    this.state.values[m.key] = m.value;
    this.state.version = m.version;
  }

  override checkpoint(): SharedState {
    return this.state;
  }

  override restore(state: SharedState): void {
    this.state = state;
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const node = await Node.start();
try {
  const members: GroupHandle<Shared>[] = [];
  for (let i = 0; i < 3; i++) {
    members.push(
      await node.join("/demo/shared", new Shared(), { label: `m${i}` }),
    );
  }
  for (let i = 0; i < 500 && members[2].view?.members.length !== 3; i++) {
    await delay(10);
  }
  const ROUNDS = 5;
  const WRITES = 10;
  await Promise.all(members.map(async (member, w) => {
    const client = await OracleClient.connect({ replicas: node.oracle });
    let from = 1;
    let released = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const { token } = await client.lock(LOCK);
      // The last version any holder released, then wait until it is here.
      for (let page = 0; page < 100; page++) {
        const read = await client.read(VERSIONS, from);
        if (read.events.length === 0) break;
        for (const e of read.events) {
          released = Math.max(
            released,
            (e.data as { version: number }).version,
          );
        }
        from = read.next;
      }
      for (let i = 0; i < 1000 && member.actor.state.version < released; i++) {
        await delay(1);
      }
      let version = member.actor.state.version;
      for (let i = 0; i < WRITES; i++) {
        await member.send(Update, {
          version: ++version,
          key: `k${i % 3}`,
          value: w * 1000 + round * 10 + i,
        });
      }
      await client.append(VERSIONS, { version });
      await client.unlock(LOCK, token);
    }
    await client.close();
  }));
  const total = members.length * ROUNDS * WRITES;
  for (
    let i = 0;
    i < 500 && members.some((m) => m.actor.state.version < total);
    i++
  ) {
    await delay(10);
  }
  const states = members.map((m) => JSON.stringify(m.actor.state));
  const outOfOrder = members.reduce((n, m) => n + m.actor.outOfOrder, 0);
  console.log(JSON.stringify({
    updates: total,
    versions: members.map((m) => m.actor.state.version),
    outOfOrder,
    statesAgree: states.every((s) => s === states[0]),
    ok: outOfOrder === 0 && states.every((s) => s === states[0]) &&
      members.every((m) => m.actor.state.version === total),
  }));
} finally {
  await node.close();
}
