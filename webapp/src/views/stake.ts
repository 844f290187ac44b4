// The connected account's stake and credits (`dtm balance`) with deposit, unbond and both withdrawals.
import { parseEther } from "viem";
import { h } from "../dom";
import { AppError } from "../errors";
import { eth } from "../format";
import type { Context, View } from "../context";
import { Role, roleNames, TERMINAL } from "../market";
import { act } from "./act";
import { countdown, setChainTime } from "./countdown";

const EVENT_NAMES: Record<string, string> = {
  Deposited: "staked", UnbondRequested: "started unbonding", StakeWithdrawn: "withdrew stake", Withdrawn: "withdrew credits",
  Credited: "credited", StakeLocked: "stake locked", StakeUnlocked: "stake unlocked", StakeSlashed: "stake slashed",
};

function amount(input: HTMLInputElement): bigint {
  let wei: bigint;
  try {
    wei = parseEther(input.value.trim());
  } catch {
    throw new AppError(`"${input.value}" is not an amount of ether: enter a number such as 1.5.`);
  }
  if (wei <= 0n) throw new AppError("Enter an amount above zero.");
  return wei;
}

export function stakePage(ctx: Context): View {
  const { wallet, market } = ctx;
  if (!wallet) {
    const el = h("section", {}, h("h1", {}, "Stake"),
      h("p", { id: "stake-needs-wallet" }, "Connect a wallet on a network the market is deployed on to see and manage your stake."));
    return { el, refresh: async () => {} };
  }
  const me = wallet.account;
  const cards = h("div", { class: "cards", id: "balances" });
  const roles = h("p", { id: "roles" });
  const depositAmount = h("input", { type: "text", id: "deposit-amount", placeholder: "ETH" }) as HTMLInputElement;
  const roleBoxes = Object.keys(Role).map((name) => h("input", { type: "checkbox", value: name, id: `role-${name.toLowerCase()}` }) as HTMLInputElement);
  const unbondAmount = h("input", { type: "text", id: "unbond-amount", placeholder: "ETH" }) as HTMLInputElement;
  const withdrawStake = h("button", { type: "button", id: "withdraw-stake" }, "Withdraw unbonded stake") as HTMLButtonElement;
  const withdrawCredits = h("button", { type: "button", id: "withdraw-credits" }, "Withdraw credits") as HTMLButtonElement;

  const depositButton = h("button", { type: "submit", id: "deposit" }, "Deposit") as HTMLButtonElement;
  const depositForm = h("form", { id: "deposit-form" }, h("strong", {}, "Stake"), depositAmount, "ETH as",
    ...roleBoxes.flatMap((box) => [h("label", {}, box, ` ${box.value.toLowerCase()}`)]), depositButton);
  depositForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(depositButton, "Deposit", async () => {
      const value = amount(depositAmount);
      const chosen = roleBoxes.filter((box) => box.checked);
      if (!chosen.length) throw new AppError("Choose at least one role to stake for: solver, verifier or whistleblower.");
      const flags = chosen.reduce((all, box) => all | Role[box.value as keyof typeof Role], 0n);
      await market.send(wallet, "deposit", [flags], value);
      return `Staked ${eth(value)} as ${roleNames(flags).join(", ")}.`;
    }, refresh);
  });

  const unbondButton = h("button", { type: "submit", id: "unbond" }, "Unbond") as HTMLButtonElement;
  const unbondForm = h("form", { id: "unbond-form" }, h("strong", {}, "Unbond"), unbondAmount, "ETH of free stake", unbondButton);
  unbondForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(unbondButton, "Unbond", async () => {
      const value = amount(unbondAmount);
      await market.send(wallet, "unbond", [value]);
      return `Unbonding ${eth(value)}: withdraw it here once the unbonding delay has passed.`;
    }, refresh);
  });

  withdrawStake.addEventListener("click", () => void act(withdrawStake, "Withdrawing stake", async () => {
    const { unbonding } = await market.stake(me);
    await market.send(wallet, "withdraw_stake", []);
    return `Withdrew ${eth(unbonding)} of stake into your credits: "Withdraw credits" sends them to your wallet.`;
  }, refresh));
  withdrawCredits.addEventListener("click", () => void act(withdrawCredits, "Withdrawing credits", async () => {
    const credits = await market.credits(me);
    if (!credits) throw new AppError("No credits to withdraw: payments, fees, refunds and rewards appear here once earned.");
    await market.send(wallet, "withdraw", [me]);
    return `Withdrew ${eth(credits)}.`;
  }, refresh));

  const activity = h("tbody");
  const el = h("section", {}, h("h1", {}, "Stake"), h("p", { class: "mono" }, me), roles, cards,
    depositForm, unbondForm, h("form", {}, withdrawStake, withdrawCredits),
    h("h2", {}, "Recent activity"), h("table", { id: "activity" }, activity));

  async function refresh(): Promise<void> {
    const [stake, credits, tasks, now, events] = await Promise.all([market.stake(me), market.credits(me), market.tasks(),
      market.now(), market.activity(me)]);
    setChainTime(now);
    const escrow = tasks.filter((t) => t.submitter === me && !(t.state & TERMINAL)).reduce((sum, t) => sum + t.escrow + t.tax, 0n);
    const card = (id: string, name: string, value: bigint, ...extra: (HTMLElement | string)[]) =>
      h("div", { class: "card", id }, name, h("b", {}, eth(value)), ...extra);
    roles.textContent = `roles: ${roleNames(stake.roles).join(", ") || "none"}`;
    const ready = stake.unbonding > 0n ? countdown(stake.ready_at, "unbonding delay", "withdraw it now") : "";
    cards.replaceChildren(
      card("bonded", "Bonded", stake.bonded),
      card("locked", "Locked", stake.locked),
      card("free", "Free", stake.bonded - stake.locked),
      card("unbonding", "Unbonding", stake.unbonding, ready),
      card("credits", "Credits", credits),
      card("escrow", "Escrow of your unfinished tasks", escrow),
    );
    activity.replaceChildren(...events.map((e) => h("tr", {}, h("td", {}, `block ${e.block}`), h("td", {}, EVENT_NAMES[e.event] ?? e.event), h("td", {}, eth(e.amount)))));
    if (!events.length) activity.replaceChildren(h("tr", {}, h("td", { class: "muted" }, "nothing yet")));
    withdrawStake.disabled = stake.unbonding === 0n || BigInt(now) < stake.ready_at;
    withdrawCredits.disabled = credits === 0n;
  }

  return { el, refresh };
}
