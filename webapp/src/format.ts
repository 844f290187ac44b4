// Amounts, durations and addresses as `dtm` prints them.
import { formatEther } from "viem";

/** Wei as ether, exact and without trailing zeros (`_eth` in offchain/cli.py). */
export const eth = (wei: bigint): string => `${formatEther(wei)} ETH`;

/** Seconds as their largest unit and the next one down: "4m 10s", "1h 0m", "2d 3h"; under a minute, "42s". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const parts = [[Math.floor(s / 86400), "d"], [Math.floor(s / 3600) % 24, "h"], [Math.floor(s / 60) % 60, "m"], [s % 60, "s"]] as const;
  const largest = parts.findIndex(([n]) => n > 0);
  const from = largest < 0 ? parts.length - 1 : largest;
  return parts.slice(from, from + 2).map(([n, unit]) => `${n}${unit}`).join(" ");
}

export const short = (address: string): string => `${address.slice(0, 6)}…${address.slice(-4)}`;

export const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";
