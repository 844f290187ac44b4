// What the app hands every view, and what a view gives back.
import type { Config } from "./config";
import type { Market } from "./market";
import type { Wallet } from "./wallet";

/** What every view gets: the config, the market it reads and the wallet, if one is connected on it. */
export interface Context {
  config: Config;
  market: Market;
  wallet: Wallet | null;
}

export interface View { el: HTMLElement; refresh: () => Promise<void> }
