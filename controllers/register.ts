/**
 * The list of controllers `dbtether run` starts. main.ts calls this once; each controller's
 * setup function creates its informers and queue through the shared dependencies.
 */
import type { Config } from "../config.ts";
import type { ControllerDeps } from "./runtime/shared.ts";

export interface RegisterContext {
  config: Readonly<Config>;
  env: Record<string, string>;
}

export async function registerControllers(
  _deps: ControllerDeps,
  _ctx: RegisterContext,
): Promise<void> {
  // Controllers are added here as they land.
}
