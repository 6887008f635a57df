/**
 * The schema shape handlers are declared with: the Standard Schema
 * interface (https://standardschema.dev), which zod 4 schemas implement as
 * they are. Cohort types its API against this small interface rather than
 * against zod's own types, so that `deno doc --lint` stays clean and any
 * Standard Schema library works.
 *
 * @example A zod schema is a schema
 * ```ts
 * import { z } from "zod";
 * import { validate, type Schema } from "./schema.ts";
 * import assert from "node:assert/strict";
 *
 * const Put: Schema<unknown, { key: string }> = z.object({ key: z.string() });
 * assert.deepEqual(validate(Put, { key: "a" }), { value: { key: "a" } });
 * assert.ok("issues" in validate(Put, { key: 1 }));
 * ```
 *
 * @module
 */

/** One problem a schema found. */
export interface SchemaIssue {
  /** What is wrong. */
  readonly message: string;
  /** Where: the keys from the root to the offending value. */
  readonly path?:
    | ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>
    | undefined;
}

/** What a schema's `validate` returns. */
export type SchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<SchemaIssue> };

/** A Standard Schema (version 1): zod 4, valibot and arktype schemas are ones. */
export interface Schema<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": {
    /** The Standard Schema version: 1. */
    readonly version: 1;
    /** The library that made the schema. */
    readonly vendor: string;
    /** Checks a value; returns it (possibly transformed) or the issues. */
    readonly validate: (
      value: unknown,
    ) => SchemaResult<Output> | Promise<SchemaResult<Output>>;
    /** The input and output types, for inference only. */
    readonly types?:
      | { readonly input: Input; readonly output: Output }
      | undefined;
  };
}

/** The type a schema accepts. */
export type InferInput<S extends Schema> = NonNullable<
  S["~standard"]["types"]
>["input"];

/** The type a schema produces. */
export type InferOutput<S extends Schema> = NonNullable<
  S["~standard"]["types"]
>["output"];

/**
 * Validates `value` against `schema`, synchronously: messages are handled
 * in delivery order, so their schemas may not refine asynchronously.
 *
 * @returns `{ value }` (the schema's output) or `{ issues }`.
 * @throws {TypeError} if the schema validates asynchronously.
 */
export function validate<Output>(
  schema: Schema<unknown, Output>,
  value: unknown,
): SchemaResult<Output> {
  const result = schema["~standard"].validate(value);
  if (result instanceof Promise) {
    throw new TypeError(
      "Handler schemas must validate synchronously (no async refinements): messages are handled in delivery order",
    );
  }
  return result;
}

/** The issues as one line: `path: message; ...`. */
export function describeIssues(issues: ReadonlyArray<SchemaIssue>): string {
  return issues.map((issue) => {
    const path = (issue.path ?? []).map((p) =>
      typeof p === "object" ? String(p.key) : String(p)
    ).join(".");
    return path === "" ? issue.message : `${path}: ${issue.message}`;
  }).join("; ");
}
