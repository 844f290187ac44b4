// A few lines of DOM building instead of a framework.
type Child = Node | string | number | bigint | null | undefined | false;

export function h(tag: string, attrs: Record<string, string | boolean | EventListener> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (typeof value === "function") el.addEventListener(key.replace(/^on/, ""), value);
    else if (value === true) el.setAttribute(key, "");
    else if (value !== false) el.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "object" ? child : String(child));
  }
  return el;
}

let noticeTimer: number | undefined;

/** The banner under the header: an error that says what to do, or a short confirmation. */
export function notify(message: string, kind: "error" | "info" = "error"): void {
  const box = document.getElementById("notice")!;
  box.textContent = message;
  box.className = kind;
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (kind === "info") noticeTimer = window.setTimeout(() => (box.hidden = true), 8000);
}

export function clearNotice(): void {
  document.getElementById("notice")!.hidden = true;
}
