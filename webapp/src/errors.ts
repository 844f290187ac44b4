// Every failure the user sees is one sentence that says what happened and what to do.
import { BaseError, ContractFunctionRevertedError, HttpRequestError, UserRejectedRequestError } from "viem";

/** A failure whose message is already written for the user. */
export class AppError extends Error {
  readonly forUser = true; // known by this across bundles (data.js, result.js), where `instanceof` fails
}

export const REJECTED = 4001;
export const UNKNOWN_CHAIN = 4902;

/** The message to show for `error`, raised while doing `action` (e.g. "Deposit"). */
export function describe(error: unknown, action: string): string {
  if ((error as AppError)?.forUser) return (error as AppError).message;
  const code = (error as { code?: number })?.code;
  if (error instanceof BaseError) {
    if (error.walk((e) => e instanceof UserRejectedRequestError) || code === REJECTED) {
      return `${action} cancelled: the wallet rejected the request. Press the button again and approve it in your wallet to retry.`;
    }
    const revert = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (revert instanceof ContractFunctionRevertedError) {
      const reason = revert.reason ?? revert.shortMessage;
      return `${action} refused by the market: ${reason}. Nothing was sent; change the input and try again.`;
    }
    const http = error.walk((e) => e instanceof HttpRequestError);
    if (http instanceof HttpRequestError) {
      return `${action} failed: the chain at ${http.url.replace(/\/$/, "")} does not answer. Start it (\`dtm node up\`) and reload.`;
    }
    return `${action} failed: ${error.shortMessage}`;
  }
  if (code === REJECTED) {
    return `${action} cancelled: the wallet rejected the request. Press the button again and approve it in your wallet to retry.`;
  }
  return `${action} failed: ${error instanceof Error ? error.message : String(error)}`;
}
