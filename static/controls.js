// The call's controls: microphone and camera (also by the M and V keys), screen share, copy
// link and leave.

import { end, toast } from "./banners.js";
import { showSelf } from "./devices.js";
import { call, ui } from "./page.js";
import { t } from "./strings.js";

/** Make the buttons work; called once the client exists. */
export function bindControls() {
  bindToggle(ui.mic, "microphone");
  bindToggle(ui.cam, "camera");
  ui.screen.hidden = !navigator.mediaDevices?.getDisplayMedia;
  ui.screen.addEventListener("click", toggleScreen);
  ui.copyLink.addEventListener("click", copyLink);
  ui.leave.addEventListener("click", () => {
    if (!call.client || call.over) return;
    call.client.leave();
    end(t("left"), true);
  });
}

/**
 * @param {HTMLButtonElement} button
 * @param {"camera" | "microphone"} source
 */
function bindToggle(button, source) {
  button.disabled = !call.localTracks[source];
  button.addEventListener("click", () => {
    if (!call.client || !call.localTracks[source]) return;
    const muted = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(muted));
    call.client.mute(source, muted);
    showSelf();
  });
}

async function toggleScreen() {
  const client = call.client;
  if (!client) return;
  const current = call.localTracks.screen;
  if (current) {
    current.stop();
    delete call.localTracks.screen;
    ui.screen.setAttribute("aria-pressed", "false");
    await client.setTrack("screen", null);
    return;
  }
  let track;
  try {
    track = (await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { max: 15 } } })).getVideoTracks()[0];
  } catch (err) {
    console.info("kaamos: screen share:", err);
    return;
  }
  if (call.over) return track.stop();
  call.localTracks.screen = track;
  ui.screen.setAttribute("aria-pressed", "true");
  // The browser's own "stop sharing" ends the track.
  track.addEventListener("ended", () => {
    if (call.localTracks.screen === track) toggleScreen();
  });
  await client.setTrack("screen", track);
}

async function copyLink() {
  const url = `${location.origin}${location.pathname}`;
  try {
    await navigator.clipboard.writeText(url);
    toast(t("linkCopied"));
  } catch {
    // No clipboard API (http page, old browser): show it to copy by hand.
    toast(t("linkShown", { url }));
  }
}

/** M toggles the microphone and V the camera (by key position, so any layout works). */
export function bindShortcuts() {
  document.addEventListener("keydown", (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (target.closest("input, textarea, select, [contenteditable]")) return;
    const button = event.code === "KeyM" ? ui.mic : event.code === "KeyV" ? ui.cam : null;
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  });
}
