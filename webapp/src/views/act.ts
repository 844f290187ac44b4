// One transaction started from a button: the button disabled meanwhile, the outcome in the notice.
import { clearNotice, notify } from "../dom";
import { describe } from "../errors";

export async function act(button: HTMLButtonElement, action: string, send: () => Promise<string>, after: () => Promise<void>): Promise<void> {
  button.disabled = true;
  clearNotice();
  try {
    notify(await send(), "info");
    await after();
  } catch (error) {
    notify(describe(error, action));
  } finally {
    button.disabled = false;
  }
}
