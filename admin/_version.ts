/**
 * Cohort's version, as the admin endpoint reports it (kept equal to
 * `deno.json`'s by a test).
 *
 * @module
 */

/** The package version. */
export const VERSION = "0.1.0";
