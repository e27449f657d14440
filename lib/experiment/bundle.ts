/**
 * Result bundles (manifest, verification, durable writes): they live in `lib/bundle.ts`, below
 * every layer, because the stage cache under lib/tasks writes bundles too. Re-exported here
 * for the experiment layer's users.
 * @module
 */
export * from "../bundle.ts";
