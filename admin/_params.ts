/**
 * The zod schemas of every admin path parameter, query and body: a
 * request that does not fit gets a 400 with the first problem named.
 *
 * @module
 */

import { z } from "zod";
import { pathError } from "../oracle/path.ts";
import { MAX_MEMBER_LENGTH } from "../oracle/_sm_sessions.ts";
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from "../oracle/commands.ts";

/** A group, lock or channel path, as the Oracle accepts it. */
const path = z.string().superRefine((value, ctx) => {
  const error = pathError(value);
  if (error !== undefined) ctx.addIssue({ code: "custom", message: error });
});

/** A list prefix: a path, or `/`. */
const prefix = z.string().superRefine((value, ctx) => {
  const error = pathError(value, { root: true });
  if (error !== undefined) ctx.addIssue({ code: "custom", message: error });
});

/** The query of `/v1/locks`, `/v1/channels` and `/v1/views`. */
export const ListQuery = z.strictObject({
  prefix: prefix.default("/"),
  after: path.optional(),
  limit: z.string().regex(/^[0-9]{1,4}$/, "limit must be an integer")
    .transform(Number)
    .pipe(z.number().int().min(1).max(MAX_LIST_LIMIT))
    .default(DEFAULT_LIST_LIMIT),
});

/** The group path of `/v1/groups/{path}` (the URL's rest, with its leading slash). */
export const GroupPath = path;

/** The body of `POST /v1/actions/leave`. */
export const LeaveBody = z.strictObject({ group: path });

/** The body of `POST /v1/actions/exclude`. */
export const ExcludeBody = z.strictObject({
  group: path,
  member: z.string().min(1).max(MAX_MEMBER_LENGTH),
  reason: z.string().max(256).default("excluded by an operator"),
});

/** The first problem of a failed parse, as one line naming the field. */
export function firstProblem(error: z.ZodError): string {
  const issue = error.issues[0];
  const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  return `${where}${issue?.message ?? "invalid request"}`;
}
