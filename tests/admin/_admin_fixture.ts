/**
 * A node with two members of `/apps/kv` (labels `a` and `b`, the `kv`
 * example actor of `cohort node`), a held lock
 * and a channel with events, served by an admin endpoint; and small HTTP
 * helpers for the admin tests.
 *
 * @module
 */

import { until } from "../_until.ts";
import { KvActor, Put } from "../../actors/_cli_actors.ts";
import type { GroupHandle } from "../../actors/group_handle.ts";
import { Node } from "../../actors/node.ts";
import {
  type AdminOptions,
  type AdminServer,
  serveAdmin,
} from "../../admin/mod.ts";

/** The token the fixture's endpoint wants. */
export const TOKEN = "test-token-0123456789abcdef";

/** The fixture (see the module documentation). */
export interface AdminFixture {
  /** The node. */
  node: Node;
  /** Member `a` of `/apps/kv`. */
  a: GroupHandle<KvActor>;
  /** Member `b` of `/apps/kv`. */
  b: GroupHandle<KvActor>;
  /** The endpoint. */
  admin: AdminServer;
  /** GET or POST with the token (or `token` given, or none with `null`). */
  call(
    path: string,
    init?: {
      method?: string;
      body?: unknown;
      token?: string | null;
      headers?: Record<string, string>;
    },
  ): Promise<{ status: number; json: unknown; text: string; headers: Headers }>;
  /** Stops the endpoint and the node. */
  close(): Promise<void>;
}

/** Starts the fixture; `options` tune the endpoint. */
export async function adminFixture(
  options: Partial<AdminOptions> = {},
): Promise<AdminFixture> {
  const node = await Node.start();
  let admin: AdminServer | undefined;
  try {
    const a = await node.join("/apps/kv", new KvActor(), { label: "a" });
    const b = await node.join("/apps/kv", new KvActor(), { label: "b" });
    await until(
      "a view of a and b",
      () => a.view?.members.length === 2 && b.view?.members.length === 2,
      10_000,
    );
    for (let i = 0; i < 20; i++) {
      await a.send(Put, { key: `k${i}`, value: "v" });
    }
    await until(
      "b to have every put",
      () => Object.keys(b.actor.data).length === 20,
      10_000,
    );
    const client = await node.oracleClient();
    await client.lock("/locks/leader");
    await client.append("/chan/events", { n: 1 });
    await client.append("/chan/events", { n: 2 });
    admin = await serveAdmin({ node, token: TOKEN, ...options });
    const base = admin.url;
    const served = admin;
    return {
      node,
      a,
      b,
      admin: served,
      async call(path, init = {}) {
        const headers: Record<string, string> = { ...init.headers };
        const token = init.token === undefined ? TOKEN : init.token;
        if (token !== null) headers.authorization = `Bearer ${token}`;
        let body: string | undefined;
        if (init.body !== undefined) {
          body = typeof init.body === "string"
            ? init.body
            : JSON.stringify(init.body);
          headers["content-type"] ??= "application/json";
        }
        const response = await fetch(new URL(path.replace(/^\//, ""), base), {
          method: init.method ?? (body === undefined ? "GET" : "POST"),
          headers,
          body,
        });
        const text = await response.text();
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        return {
          status: response.status,
          json,
          text,
          headers: response.headers,
        };
      },
      async close() {
        await served.close();
        await node.close();
      },
    };
  } catch (error) {
    await admin?.close();
    await node.close();
    throw error;
  }
}
