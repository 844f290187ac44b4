// The market as `dtm` reads it (offchain/cli.py, offchain/timeline.py), through viem.
import { createClient, custom, encodeFunctionData, http, parseEventLogs, type TransactionReceipt, type Address, type Chain, type Client, type EIP1193Provider, type Transport } from "viem";
import { getBlock, getBlockNumber, getContractEvents, getLogs, readContract, simulateContract, waitForTransactionReceipt } from "viem/actions";
import type { Deployment } from "./config";
import { disputeEnded, reductionPhase, type DisputeExtras } from "./dispute";
import { AppError } from "./errors";
import { eth } from "./format";
import { arbitrationAbi, marketAbi } from "./generated/abi";
import { viemChain, type Wallet } from "./wallet";

export const TaskState = {
  NONE: 0n, OPEN: 1n, CLAIMED: 2n, SUBMITTED: 4n, ACCEPTED: 8n, DISPUTED: 16n, FINALISED: 32n, CANCELLED: 64n, REFUNDED: 128n,
} as const;
export const TERMINAL = TaskState.FINALISED | TaskState.CANCELLED | TaskState.REFUNDED;
export const stateName = (state: bigint): string =>
  Object.entries(TaskState).find(([, v]) => v === state)?.[0].toLowerCase() ?? `state ${state}`;

export const Role = { SOLVER: 1n, VERIFIER: 2n, WHISTLEBLOWER: 4n } as const;
export const roleNames = (roles: bigint): string[] =>
  Object.entries(Role).filter(([, flag]) => roles & flag).map(([name]) => name.toLowerCase());

export type TaskView = Awaited<ReturnType<Market["task"]>>;
export type StakeView = Awaited<ReturnType<Market["stake"]>>;
export type Terms = Awaited<ReturnType<Market["terms"]>>;

/** The events of a task's history, in `offchain/timeline.py`'s order, with the fields it shows. */
const SHOWN: Record<string, readonly string[]> = {
  TaskCreated: ["submitter", "spec_cid"], TaskCancelled: [], TaskClaimed: ["solver"], EntropyDrawn: [],
  ProofSubmitted: ["proof_cid", "round"], VerifierDrawn: ["verifier"], ProofAccepted: ["verifier"],
  Challenged: ["challenger", "segment"], ForcedErrorDeclared: [], DisputeResolved: ["solver_won"],
  ForcedErrorRevealed: ["exposed_by"], TaskFinalised: ["solver_payment", "verifier_fee"], TaskExpired: ["culprit"],
  TaskReopened: [], TaskRefunded: ["amount"],
};
const ACCOUNT_EVENTS = marketAbi.filter((item) => item.type === "event" &&
  ["Deposited", "UnbondRequested", "StakeWithdrawn", "Withdrawn", "Credited", "StakeLocked", "StakeUnlocked", "StakeSlashed"].includes(item.name));
const JACKPOT_EVENTS = marketAbi.filter((item) => item.type === "event" && ["JackpotFunded", "JackpotPaid"].includes(item.name));
const AMOUNTS = new Set(["solver_payment", "verifier_fee", "amount"]);
const TASK_EVENTS = marketAbi.filter((item) => item.type === "event" && item.name in SHOWN);

export interface TimelineRow { block: bigint; logIndex: number; timestamp: bigint; event: string; detail: string }

export class Market {
  readonly client: Client<Transport, Chain>;
  readonly address: Address;

  constructor(readonly deployment: Deployment, wallet?: Wallet) {
    let transport;
    if (deployment.rpcUrl) transport = http(deployment.rpcUrl, { batch: true, retryCount: 1 });
    else if (wallet && wallet.chainId === deployment.chainId) transport = custom(wallet.source.provider as EIP1193Provider);
    else throw new AppError(`The app has no RPC URL for ${deployment.name}: connect a wallet on chain ${deployment.chainId} to read it.`);
    this.client = createClient({ chain: viemChain(deployment), transport });
    this.address = deployment.market;
  }

  private get contract() {
    return { address: this.address, abi: marketAbi } as const;
  }

  taskCount = () => readContract(this.client, { ...this.contract, functionName: "task_count" });
  pool = () => readContract(this.client, { ...this.contract, functionName: "pool" });
  credits = (account: Address) => readContract(this.client, { ...this.contract, functionName: "credits", args: [account] });
  stake = (account: Address) => readContract(this.client, { ...this.contract, functionName: "accounts", args: [account] });

  async task(id: bigint) {
    return { id, ...(await readContract(this.client, { ...this.contract, functionName: "tasks", args: [id] })) };
  }

  async tasks(): Promise<TaskView[]> {
    const count = await this.taskCount();
    return Promise.all(Array.from({ length: Number(count) }, (_, i) => this.task(BigInt(i + 1))));
  }

  async terms(id?: bigint) {
    const termsId = id ?? (await readContract(this.client, { ...this.contract, functionName: "current_terms" }));
    return readContract(this.client, { ...this.contract, functionName: "published", args: [termsId] });
  }

  blockNumber = () => getBlockNumber(this.client, { cacheTime: 0 });

  /** The time the next block will carry (`Market.now` in offchain/chain/client.py). */
  async now(): Promise<number> {
    const block = await getBlock(this.client, { blockTag: "latest" });
    return Math.max(Number(block.timestamp), Math.floor(Date.now() / 1000));
  }

  async timeline(id: bigint): Promise<TimelineRow[]> {
    const logs = await getLogs(this.client, { address: this.address, events: TASK_EVENTS, fromBlock: this.deployment.block });
    const mine = logs.filter((log) => (log.args as { task_id?: bigint }).task_id === id);
    const stamps = new Map<bigint, bigint>();
    await Promise.all([...new Set(mine.map((log) => log.blockNumber!))].map(async (block) => {
      stamps.set(block, (await getBlock(this.client, { blockNumber: block })).timestamp);
    }));
    return mine
      .map((log) => {
        const args = log.args as Record<string, unknown>;
        const detail = SHOWN[log.eventName].map((key) => `${key}=${AMOUNTS.has(key) ? eth(args[key] as bigint) : String(args[key])}`).join(" ");
        return { block: log.blockNumber!, logIndex: log.logIndex!, timestamp: stamps.get(log.blockNumber!)!, event: log.eventName, detail };
      })
      .sort((a, b) => (a.block === b.block ? a.logIndex - b.logIndex : a.block < b.block ? -1 : 1));
  }

  /** A dispute of the game (`Arbitration.disputes`), the node its reduction argues and how it ended. */
  async dispute(id: bigint) {
    const game = { address: this.deployment.arbiter, abi: arbitrationAbi } as const;
    const fields = await readContract(this.client, { ...game, functionName: "disputes", args: [id] });
    const extras: DisputeExtras = {};
    if (reductionPhase(fields.phase)) {
      extras.reductionNode = (await readContract(this.client, { ...game, functionName: "reductions", args: [id] })).node;
    }
    if (disputeEnded(fields.phase)) {
      const [ended] = await getContractEvents(this.client, { ...game, eventName: "DisputeEnded", args: { dispute_id: id },
        fromBlock: this.deployment.block });
      extras.endReason = ended?.args.reason;
    }
    return { fields, extras };
  }

  /** The arguments of every `name` event of task `id`, oldest first. */
  async events(name: string, id: bigint): Promise<Record<string, unknown>[]> {
    const logs = await getContractEvents(this.client, {
      ...this.contract, eventName: name, args: { task_id: id }, fromBlock: this.deployment.block,
    } as never);
    return (logs as { args: Record<string, unknown> }[]).map((log) => log.args);
  }

  /** The spec CID and escrow of the latest `limit` tasks posted, oldest first. */
  async created(limit: number): Promise<{ spec_cid: string; escrow: bigint }[]> {
    const logs = await getContractEvents(this.client, { ...this.contract, eventName: "TaskCreated", fromBlock: this.deployment.block });
    return logs.slice(-limit).map(({ args }) => ({ spec_cid: args.spec_cid!, escrow: args.escrow! }));
  }

  /** The jackpot's latest fundings and payouts, newest first (`dtm jackpot`). */
  async jackpotActivity(limit = 10): Promise<{ block: bigint; paid: boolean; amount: bigint; pool: bigint; winner?: Address }[]> {
    const logs = await getLogs(this.client, { address: this.address, events: JACKPOT_EVENTS, fromBlock: this.deployment.block });
    return logs
      .sort((a, b) => (a.blockNumber === b.blockNumber ? b.logIndex! - a.logIndex! : a.blockNumber! > b.blockNumber! ? -1 : 1))
      .slice(0, limit)
      .map((log) => {
        const args = log.args as { amount: bigint; pool: bigint; winner?: Address };
        return { block: log.blockNumber!, paid: log.eventName === "JackpotPaid", amount: args.amount, pool: args.pool, winner: args.winner };
      });
  }

  /** The account's latest stake and credit events, newest first. */
  async activity(account: Address, limit = 10): Promise<{ block: bigint; event: string; amount: bigint }[]> {
    const logs = await getLogs(this.client, { address: this.address, events: ACCOUNT_EVENTS, fromBlock: this.deployment.block });
    return logs
      .filter((log) => (log.args as { account?: Address }).account === account)
      .map((log) => ({ block: log.blockNumber!, logIndex: log.logIndex!, event: log.eventName, amount: (log.args as { amount: bigint }).amount }))
      .sort((a, b) => (a.block === b.block ? b.logIndex - a.logIndex : a.block > b.block ? -1 : 1))
      .slice(0, limit)
      .map(({ block, event, amount }) => ({ block, event, amount }));
  }

  /** Simulates `functionName` as the wallet's account (a revert is reported and nothing is sent),
   *  then has the wallet sign and send it and waits for it to be mined. */
  async send(wallet: Wallet, functionName: string, args: readonly unknown[], value = 0n): Promise<TransactionReceipt> {
    const { request } = await simulateContract(this.client, {
      address: this.address, abi: marketAbi, functionName, args, value, account: wallet.account,
    } as never);
    const hash = await wallet.sendTransaction(this.address, encodeFunctionData(request as never), value);
    const receipt = await waitForTransactionReceipt(this.client, { hash });
    if (receipt.status !== "success") throw new AppError(`${functionName} was mined but reverted (transaction ${hash}).`);
    return receipt;
  }

  /** Posts a task, escrowing `payment`; its id. */
  async createTask(wallet: Wallet, specCid: string, commitments: readonly unknown[], solverStake: bigint, expires: bigint,
    trainWindow: bigint, payment: bigint): Promise<bigint> {
    const receipt = await this.send(wallet, "create_task", [specCid, commitments, solverStake, expires, trainWindow], payment);
    const [created] = parseEventLogs({ abi: marketAbi, eventName: "TaskCreated", logs: receipt.logs });
    return created.args.task_id;
  }
}
