// The call as it goes: the client's events on the page. The banner while it connects or
// waits to reconnect (and why), the others' tiles and tracks, and the end of the call.

import { end, fail, notice, setState } from "./banners.js";
import { call, stage, ui } from "./page.js";
import { t } from "./strings.js";

/** @typedef {import("./protocol.js").KaamosClient} KaamosClient */
/** @typedef {import("./protocol.js").PeerInfo} PeerInfo */
/** @typedef {import("./protocol.js").RemoteTrack} RemoteTrack */
/** @typedef {import("./protocol.js").CallState} CallState */
/** @typedef {import("./protocol.js").RetryReason} RetryReason */
/** @typedef {import("./protocol.js").Closed} Closed */
/** @typedef {import("./strings.js").StringKey} StringKey */

/** @type {Partial<Record<RetryReason, StringKey>>} the banner while the service, not the network, is the trouble */
const RETRY_TEXT = { restart: "restartingIn", unavailable: "unavailableIn", "wrong-node": "wrongNodeIn" };

let restartNoticeShown = false; // server-shutdown's notice, taken down at the next join

function updatePresence() {
  if (document.body.dataset.state !== "connected") return;
  const { peers } = call;
  const text = peers.size === 0 ? t("alone") : t("inCall", { n: peers.size + 1 });
  if (ui.status.textContent !== text) setState("connected", text);
}

/**
 * Show what the client says on the page, from now until the call ends.
 * @param {KaamosClient} c
 */
export function wire(c) {
  const { peers } = call;
  c.addEventListener("state", (e) => {
    const { state, retryInMs, reason } = /** @type {CustomEvent<CallState>} */ (e).detail;
    if (c.lastCloseCode !== null) document.body.dataset.closeCode = String(c.lastCloseCode);
    const retryText = state === "reconnecting" && reason ? RETRY_TEXT[reason] : undefined;
    if (retryText) {
      const s = Math.max(1, Math.round((retryInMs ?? 0) / 1000));
      setState(c.everJoined ? "reconnecting" : "connecting", t(retryText, { s }));
    } else if (state === "reconnecting" && !c.everJoined) {
      setState("connecting", t("connecting"));
    } else if (state === "reconnecting") {
      const s = Math.round((retryInMs ?? 0) / 1000);
      setState("reconnecting", s >= 1 ? t("reconnectingIn", { s }) : t("reconnecting"));
    } else if (state === "connecting") {
      setState("connecting", t("connecting"));
    }
  });
  c.addEventListener("server-shutdown", () => {
    // The call goes on for now (the server drains); say so before the socket closes.
    notice(t("restartingSoon"));
    restartNoticeShown = true;
  });
  c.addEventListener("joined", (e) => {
    const msg = /** @type {CustomEvent<import("./protocol.js").JoinedMessage>} */ (e).detail;
    performance.mark("kaamos:joined");
    if (restartNoticeShown) ui.notice.hidden = true; // back on the restarted server
    restartNoticeShown = false;
    // Every join starts from the server's list: after a reconnect the old tiles are stale.
    stage.clear();
    peers.clear();
    for (const peer of msg.peers) {
      peers.set(peer.peer_id, peer);
      stage.renderPeer(peer);
    }
    ui.leave.disabled = false;
    ui.screen.disabled = false;
    setState("connected", "");
    updatePresence();
  });
  c.addEventListener("peer-joined", (e) => {
    const peer = /** @type {CustomEvent<PeerInfo>} */ (e).detail;
    peers.set(peer.peer_id, peer);
    stage.renderPeer(peer);
    updatePresence();
  });
  c.addEventListener("peer-updated", (e) => {
    const peer = /** @type {CustomEvent<PeerInfo>} */ (e).detail;
    peers.set(peer.peer_id, peer);
    stage.renderPeer(peer);
  });
  c.addEventListener("peer-left", (e) => {
    const { peer_id } = /** @type {CustomEvent<{peer_id: string}>} */ (e).detail;
    peers.delete(peer_id);
    stage.removePeer(peer_id);
    updatePresence();
  });
  c.addEventListener("track", (e) => {
    const rt = /** @type {CustomEvent<RemoteTrack>} */ (e).detail;
    performance.mark(`kaamos:track-${rt.source}`);
    stage.addTrack(rt, peers.get(rt.peer_id)?.name);
  });
  c.addEventListener("track-removed", (e) => stage.removeTrack(/** @type {CustomEvent<RemoteTrack>} */ (e).detail));
  c.addEventListener("connection-state", (e) => {
    const state = /** @type {CustomEvent<RTCPeerConnectionState>} */ (e).detail;
    document.body.dataset.mediaState = state;
    performance.mark(`kaamos:pc-${state}`);
    if (state === "failed") setState("reconnecting", t("mediaFailed"));
  });
  c.addEventListener("closed", (e) => {
    const { code, error } = /** @type {CustomEvent<Closed>} */ (e).detail;
    if (code !== null) document.body.dataset.closeCode = String(code);
    if (call.over) return;
    if (error) fail(error);
    else if (code === 4001) end(t("roomEnded"), false);
    else end(t("left"), true);
  });
}
