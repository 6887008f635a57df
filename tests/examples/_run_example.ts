/**
 * Runs an example as its README says (`deno run` with the demo task's
 * permissions) and reads the JSON line it ends with.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SCRIPT_PERMISSIONS } from "../../_cli_script.ts";

/**
 * Runs `examples/<name>.ts` with `args`; asserts it exits 0.
 *
 * @returns Its last stdout line, parsed, and its stderr.
 */
export async function runExample(
  name: string,
  args: string[] = [],
): Promise<{ result: Record<string, unknown>; stderr: string }> {
  const path = new URL(`../../examples/${name}.ts`, import.meta.url).pathname;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...SCRIPT_PERMISSIONS, path, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `${name} exited ${output.code}: ${stderr}`);
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  const result = JSON.parse(lines.at(-1)!);
  console.log(`${name}: ${JSON.stringify(result)}`);
  return { result, stderr };
}
