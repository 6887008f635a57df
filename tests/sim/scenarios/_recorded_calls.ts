/**
 * The recorded operations of the Oracle scenarios' workers: an append, a
 * lock cycle, a try-lock cycle and a read, each reported to the recorder
 * (call, then return or definite error) for the online checks and the
 * linearizability history. Shared by the single-group worker
 * (`OracleClient`) and the tree worker (`OracleTreeClient`).
 *
 * @module
 */

import type { SimNodeEnv } from "../../../sim/mod.ts";
import { OracleError, type OracleReadResult } from "../../../oracle/client.ts";
import type { Recorded, WorkerRecorder } from "./_oracle_worker.ts";

/** What the workload needs of a client: `OracleClient` and `OracleTreeClient` both fit. */
export interface WorkloadClient {
  readonly session: string;
  append(path: string, data: string): Promise<{ seq: number; rev: number }>;
  lock(path: string): Promise<{ token: number }>;
  tryLock(path: string): Promise<number | undefined>;
  unlock(path: string, token: number): Promise<void>;
  read(path: string, from: number, limit?: number): Promise<OracleReadResult>;
}

/** Runs recorded operations for one worker. */
export class RecordedCalls {
  readonly #recorder: WorkerRecorder;
  readonly #env: SimNodeEnv;
  readonly #holdMs: number;

  /** `holdMs`: a granted lock is held up to this long (drawn from the node's random). */
  constructor(recorder: WorkerRecorder, env: SimNodeEnv, holdMs: number) {
    this.#recorder = recorder;
    this.#env = env;
    this.#holdMs = holdMs;
  }

  /** Appends `data` to `path`. */
  async append(
    client: WorkloadClient,
    path: string,
    data: string,
  ): Promise<void> {
    const op = this.#recorder.call(client.session, "append", path, data);
    const result = await this.#attempt(op, () => client.append(path, data));
    if (result !== undefined) this.#recorder.ret(op, result);
  }

  /** Waits for the lock at `path`, holds it a random while, releases it. */
  async lockCycle(client: WorkloadClient, path: string): Promise<void> {
    const op = this.#recorder.call(client.session, "lock", path, undefined);
    const grant = await this.#attempt(op, () => client.lock(path));
    if (grant === undefined) return;
    this.#recorder.ret(op, grant);
    const hold = this.#env.random.int(this.#holdMs + 1);
    await new Promise<void>((resolve) =>
      this.#env.clock.setTimer(hold, resolve)
    );
    await this.#unlock(client, path, grant.token);
  }

  /** Tries the lock at `path` once; releases it if granted. */
  async tryLockCycle(client: WorkloadClient, path: string): Promise<void> {
    const op = this.#recorder.call(client.session, "trylock", path, undefined);
    const token = await this.#attempt(op, () => client.tryLock(path));
    if (token === undefined && op.error !== undefined) return;
    this.#recorder.ret(op, { token: token ?? 0 });
    if (token !== undefined) await this.#unlock(client, path, token);
  }

  /** Reads `path` from its first event. */
  async read(client: WorkloadClient, path: string): Promise<void> {
    const op = this.#recorder.call(client.session, "read", path, 1);
    const result = await this.#attempt(op, () => client.read(path, 1, 1000));
    if (result !== undefined) this.#recorder.ret(op, result);
  }

  async #unlock(
    client: WorkloadClient,
    path: string,
    token: number,
  ): Promise<void> {
    const op = this.#recorder.call(client.session, "unlock", path, token);
    const done = await this.#attempt(op, async () => {
      await client.unlock(path, token);
      return true;
    });
    if (done !== undefined) this.#recorder.ret(op, null);
  }

  /**
   * Runs one client call. A definite Oracle error is recorded as such; a
   * session expiry, timeout or close leaves the operation's outcome
   * unknown and is rethrown so the worker starts over with a new session.
   */
  async #attempt<T>(
    op: Recorded,
    call: () => Promise<T>,
  ): Promise<T | undefined> {
    try {
      return await call();
    } catch (caught) {
      const error = caught as unknown;
      if (!(error instanceof OracleError)) throw error;
      if (
        error.code === "session_expired" || error.code === "timeout" ||
        error.code === "closed"
      ) {
        throw error;
      }
      this.#recorder.ret(op, undefined, error.code);
      return undefined;
    }
  }
}
