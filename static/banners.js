// What the page says: the status banner in the top bar (it fades once the call is well), the
// notice under the tiles, the toast, and the dialog for a choice, an error or the end of the
// call. An error or the end also clears the call from the page.

import { call, stage, ui } from "./page.js";
import { hasString, t } from "./strings.js";

/** @typedef {import("./strings.js").StringKey} StringKey */
/** @typedef {"connecting" | "connected" | "reconnecting" | "media" | "error" | "ended"} PageState */
/** @typedef {{label: StringKey, onClick: () => void, primary?: boolean}} Action */

const CALM_AFTER_MS = 3000;

/** @type {ReturnType<typeof setTimeout> | undefined} */
let calmTimer;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;

/**
 * The status banner; it fades a few seconds after the call is connected and well.
 * @param {PageState} state
 * @param {string} text
 */
export function setState(state, text) {
  document.body.dataset.state = state;
  ui.status.textContent = text;
  document.body.classList.remove("calm");
  clearTimeout(calmTimer);
  if (state === "connected") {
    calmTimer = setTimeout(() => document.body.classList.add("calm"), CALM_AFTER_MS);
  }
}

/**
 * @param {string} title
 * @param {string} text
 * @param {Action[]} [actions]
 */
export function showMessage(title, text, actions = []) {
  ui.messageTitle.textContent = title;
  ui.messageText.textContent = text;
  ui.messageActions.replaceChildren(
    ...actions.map((a) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = t(a.label);
      b.className = a.primary ? "primary" : "secondary";
      b.addEventListener("click", a.onClick);
      return b;
    }),
  );
  ui.message.hidden = false;
  /** @type {HTMLElement | null} */ (ui.messageActions.querySelector("button"))?.focus();
}

/** @param {string} text */
export function notice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}

/** @param {string} text */
export function toast(text) {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (ui.toast.hidden = true), 4000);
}

/** @param {string} code */
export function fail(code) {
  document.body.dataset.errorCode = code;
  const text = hasString(code) ? t(code) : t("UNKNOWN", { code });
  /** @type {Action[]} */
  const actions =
    code === "ROOM_FULL" || code === "UNREACHABLE" || code === "CLIENT_ERROR"
      ? [{ label: "tryAgain", onClick: () => location.reload(), primary: true }]
      : [];
  setState("error", t("errorTitle"));
  showMessage(t("errorTitle"), text, actions);
  teardown();
}

/**
 * @param {string} text
 * @param {boolean} canRejoin
 */
export function end(text, canRejoin) {
  setState("ended", t("endedTitle"));
  const actions = canRejoin ? [{ label: /** @type {StringKey} */ ("rejoin"), onClick: () => location.reload(), primary: true }] : [];
  showMessage(t("endedTitle"), text, actions);
  teardown();
}

/** Stop every local track (camera light off) and clear the call from the page. */
function teardown() {
  call.over = true;
  for (const track of Object.values(call.localTracks)) track?.stop();
  stage.hideSelf();
  stage.clear();
  call.peers.clear();
  ui.notice.hidden = true;
  ui.nameButton.hidden = true;
  for (const b of [ui.mic, ui.cam, ui.screen, ui.leave]) b.disabled = true;
}
