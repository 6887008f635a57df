/**
 * Path-named locks with fencing tokens guarding a shared resource.
 *
 * Three workers take turns holding `/demo/locks/counter` to update a
 * shared counter. The resource refuses any write whose fencing token is
 * lower than one it has seen: a worker that lost its lock (here: its
 * session ended while it was paused) and writes anyway is refused.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read --allow-write examples/locks.ts
 * ```
 *
 * Prints one JSON line: the updates made, the stale write refused, and
 * whether two workers ever held the lock at once.
 *
 * @module
 */

import { OracleClient, startOracleGroup } from "../mod.ts";

const LOCK = "/demo/locks/counter";

/** A resource that checks fencing tokens, as a storage service would. */
class FencedCounter {
  value = 0;
  #highestToken = 0;
  refused = 0;

  /** Adds one, if `token` is not older than any token seen. */
  increment(token: number): boolean {
    if (token < this.#highestToken) {
      this.refused++;
      return false;
    }
    this.#highestToken = token;
    this.value++;
    return true;
  }
}

const oracle = await startOracleGroup({ size: 3 });
const counter = new FencedCounter();
let holders = 0;
let mostHolders = 0;
try {
  const workers = await Promise.all(
    [1, 2, 3].map(() => OracleClient.connect({ replicas: oracle.replicas })),
  );
  const work = async (client: OracleClient, rounds: number) => {
    for (let i = 0; i < rounds; i++) {
      const { token } = await client.lock(LOCK); // waits in FIFO order
      mostHolders = Math.max(mostHolders, ++holders);
      counter.increment(token);
      await new Promise((r) => setTimeout(r, 1));
      holders--;
      await client.unlock(LOCK, token);
    }
  };
  await Promise.all(workers.map((w) => work(w, 20)));

  // A worker takes the lock, then pauses; meanwhile its session ends (the
  // Oracle releases its lock) and another worker takes it and writes.
  const paused = workers[0];
  const { token: old } = await paused.lock(LOCK);
  await paused.close();
  const { token: fresh } = await workers[1].lock(LOCK);
  counter.increment(fresh);
  await workers[1].unlock(LOCK, fresh);
  // The paused worker wakes up and writes with its old token: refused.
  const staleAccepted = counter.increment(old);

  for (const w of workers.slice(1)) await w.close();
  console.log(JSON.stringify({
    updates: counter.value,
    staleWriteRefused: !staleAccepted,
    mostHoldersAtOnce: mostHolders,
    ok: counter.value === 61 && !staleAccepted && mostHolders === 1,
  }));
} finally {
  await oracle.stop();
}
