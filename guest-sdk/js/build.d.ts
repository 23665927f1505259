// Types of `@aether/guest/build` (src/build.js).

export const STATE_SCHEMA_SECTION: 'aether:state-schema';

export interface BuildOptions {
  /** The module that exports `handler = exportAggregate(...)`. */
  entry: string | URL;
  /** Where to write the component. */
  out: string | URL;
  /** The folder of the WIT package (the workspace's `wit/`). */
  wit: string | URL;
  /** The app's own pinned tools. */
  tools: {
    componentize: (options: object) => Promise<{ component: Uint8Array }>;
    rolldown: (options: object) => Promise<unknown>;
  };
  /** More componentize-js features to disable (`http` and `fetch-event` always are). */
  features?: string[];
}

export function buildComponent(options: BuildOptions): Promise<{ out: string; bytes: Uint8Array; stateSchema: string }>;
export function withCustomSection(component: Uint8Array, name: string, data: string | Uint8Array): Uint8Array;
