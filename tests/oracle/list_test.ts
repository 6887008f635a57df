import assert from "node:assert/strict";
import { OracleClient, OracleError } from "../../oracle/client.ts";
import type { ListedLock, ReadOp } from "../../oracle/commands.ts";
import { startOracleGroup } from "../../oracle/server.ts";
import { delay } from "./_oracle_processes.ts";

Deno.test("OracleClient.list pages through the locks, channels and groups of a three-replica group over TCP", async (t) => {
  const group = await startOracleGroup({ size: 3 });
  const client = await OracleClient.connect({ replicas: group.replicas });
  try {
    const locks = ["/apps/l/3", "/apps/l/1", "/apps/l/5", "/apps/l/2"];
    const tokens = new Map<string, number>();
    for (const path of locks) {
      tokens.set(path, (await client.lock(path)).token);
    }
    for (let i = 0; i < 3; i++) await client.append("/apps/ch/a", i);
    await client.append("/apps/ch/b", "b");
    await client.truncate("/apps/ch/a", 3);
    await client.join("/apps/g", "m1");

    await t.step("locks, two at a time, until next is null", async () => {
      const seen: ListedLock[] = [];
      let after: string | undefined;
      const nexts: (string | null)[] = [];
      do {
        const page = await client.list("locks", "/apps", { after, limit: 2 });
        seen.push(...page.items);
        nexts.push(page.next);
        after = page.next ?? undefined;
      } while (after !== undefined);
      assert.deepEqual(nexts, ["/apps/l/2", null]);
      assert.deepEqual(
        seen,
        [...locks].sort().map((path) => ({
          path,
          holder: client.session,
          token: tokens.get(path)!,
          waiters: 0,
        })),
      );
    });

    await t.step("channels: first retained and last appended", async () => {
      assert.deepEqual(await client.list("channels", "/apps"), {
        items: [
          { path: "/apps/ch/a", first: 3, last: 3 },
          { path: "/apps/ch/b", first: 1, last: 1 },
        ],
        next: null,
      });
    });

    await t.step("groups: the view and no proposal", async () => {
      assert.deepEqual(await client.list("groups", "/apps"), {
        items: [{
          group: "/apps/g",
          viewId: 1,
          members: [{ member: "m1", session: client.session }],
          proposal: null,
        }],
        next: null,
      });
    });

    await t.step("the Oracle refuses a malformed prefix", async () => {
      await assert.rejects(
        client.list("locks", "/apps//l"),
        (e) => e instanceof OracleError && e.code === "invalid_path",
      );
    });
  } finally {
    await client.close();
    await group.stop();
  }
});

Deno.test("OracleServer.inspect answers list and other reads from each replica's applied state, follower or leader, with no session", async (t) => {
  const group = await startOracleGroup({ size: 3 });
  const client = await OracleClient.connect({ replicas: group.replicas });
  try {
    await client.lock("/apps/primary");
    await client.append("/apps/log", 1);
    const op: ReadOp = { op: "list", kind: "locks", prefix: "/" };
    const expected = { ok: await client.list("locks", "/") };

    await t.step(
      "every replica answers once it applied the writes",
      async () => {
        const deadline = performance.now() + 5_000;
        for (const [id, server] of group.servers) {
          while (
            JSON.stringify(server.inspect(op)) !== JSON.stringify(expected) &&
            performance.now() < deadline
          ) {
            await delay(20);
          }
          assert.deepEqual(server.inspect(op), expected, `replica ${id}`);
        }
      },
    );

    await t.step(
      "other reads, and refusals, as the state machine gives them",
      () => {
        const server = group.servers.get("1")!;
        const { holder, token, waiters } = expected.ok.items[0];
        assert.deepEqual(
          server.inspect({ op: "get_lock", path: "/apps/primary" }),
          { ok: { holder, token, waiters } },
        );
        assert.deepEqual(
          server.inspect({ op: "read", path: "/apps/log", from: 1, limit: 10 }),
          {
            ok: {
              events: [{ path: "/apps/log", seq: 1, rev: 1, data: 1 }],
              first: 1,
              next: 2,
            },
          },
        );
        const bad = server.inspect(
          { op: "list", kind: "files", prefix: "/" } as unknown as ReadOp,
        );
        assert.ok("error" in bad && bad.error.code === "invalid");
        const write = server.inspect(
          { op: "append", path: "/x", data: 1 } as unknown as ReadOp,
        );
        assert.ok("error" in write && write.error.code === "unknown_op");
      },
    );
  } finally {
    await client.close();
    await group.stop();
  }
});
