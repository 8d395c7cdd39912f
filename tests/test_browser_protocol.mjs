// static/protocol.js without a browser: room lookup (contract C3), backoff, and the
// reconnect decisions (C2 server-shutdown, WRONG_NODE redirects, final codes), with fake
// WebSocket, fetch and timers. Run by tests/test_browser_protocol.py (node --test).

import assert from "node:assert/strict";
import { test } from "node:test";

import { KaamosClient, MAX_REDIRECTS, backoffMs, lookupRoom, signalingUrl } from "../static/protocol.js";

const LOC = { protocol: "https:", host: "kaamos.example:8443" };
const ROOM = "AbCdEf1234";

/** A fetch that answers every request with `status` and `body`; it records the URLs. */
function fakeFetch(status, body, urls = []) {
  return async (url) => {
    urls.push(url);
    return { ok: status < 300, status, json: async () => body };
  };
}

test("lookupRoom takes signaling_url, else falls back to the same origin", async () => {
  const urls = [];
  const there = { signaling_url: "wss://node2.example/ws/AbCdEf1234" };
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(200, there, urls)), {
    signalingUrl: "wss://node2.example/ws/AbCdEf1234",
  });
  assert.deepEqual(urls, ["https://kaamos.example:8443/api/rooms/AbCdEf1234"]);
  const same = { signalingUrl: "wss://kaamos.example:8443/ws/AbCdEf1234" };
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(200, { room_id: ROOM })), same);
  // Anything but a ws:// or wss:// URL is ignored.
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(200, { signaling_url: "http://x/" })), same);
  assert.equal(signalingUrl({ protocol: "http:", host: "h:1" }, ROOM), "ws://h:1/ws/AbCdEf1234");
});

test("lookupRoom: 404 and 410 are final, a 5xx or a network error throws", async () => {
  const notFound = { error: { code: "ROOM_NOT_FOUND", message: "no" } };
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(404, notFound)), { error: "ROOM_NOT_FOUND" });
  const expired = { error: { code: "ROOM_EXPIRED", message: "old" } };
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(410, expired)), { error: "ROOM_EXPIRED" });
  await assert.rejects(lookupRoom(LOC, ROOM, fakeFetch(502, null)));
  await assert.rejects(lookupRoom(LOC, ROOM, async () => Promise.reject(new TypeError("offline"))));
});

test("backoffMs doubles from 0.5 s to 10 s with +-25 % jitter", () => {
  assert.equal(backoffMs(1, () => 0.5), 500);
  assert.equal(backoffMs(2, () => 0.5), 1000);
  assert.equal(backoffMs(5, () => 0.5), 8000);
  assert.equal(backoffMs(50, () => 0.5), 10_000);
  assert.equal(backoffMs(1, () => 0), 375);
  assert.equal(backoffMs(1, () => 1), 625);
});

/** Fake WebSocket: records instances; tests open it, feed messages and close it. */
class FakeSocket {
  static OPEN = 1;
  /** @type {FakeSocket[]} */
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.listeners = {};
    FakeSocket.all.push(this);
  }
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  fire(type, event) {
    for (const fn of this.listeners[type] ?? []) fn(event);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {}
  open() {
    this.readyState = 1;
    this.fire("open", {});
  }
  message(msg) {
    this.fire("message", { data: JSON.stringify(msg) });
  }
  closeWith(code) {
    this.readyState = 3;
    this.fire("close", { code, reason: "" });
  }
}

/** Run `fn` with fake globals; returns the delays the client asked setTimeout for. */
async function withFakes(lookupBody, fn) {
  const saved = { WebSocket: globalThis.WebSocket, fetch: globalThis.fetch, setTimeout: globalThis.setTimeout };
  const delays = [];
  /** @type {Array<() => void>} */
  const timers = [];
  FakeSocket.all = [];
  globalThis.WebSocket = FakeSocket;
  globalThis.fetch = fakeFetch(200, lookupBody);
  globalThis.setTimeout = (cb, ms) => {
    // The 10 s join timeout is not under test here; reconnect waits are.
    if (ms !== 10_000) {
      delays.push(ms);
      timers.push(cb);
    }
    return 0;
  };
  try {
    await fn({ delays, runTimers: () => timers.splice(0).forEach((cb) => cb()) });
  } finally {
    Object.assign(globalThis, saved);
  }
}

/** Let pending promises (the lookup, the inbox) run; setImmediate is not faked. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function newClient() {
  const client = new KaamosClient({ roomId: ROOM, name: "Ann", localTracks: {}, location: LOC });
  const events = [];
  for (const type of ["state", "closed"]) client.addEventListener(type, (e) => events.push([type, e.detail]));
  return { client, events };
}

test("WRONG_NODE is followed at most MAX_REDIRECTS times per attempt", async () => {
  await withFakes({ signaling_url: "wss://a.example/ws/AbCdEf1234" }, async ({ delays }) => {
    const { client } = newClient();
    client.connect();
    await settle();
    for (let i = 0; i <= MAX_REDIRECTS; i++) {
      const ws = FakeSocket.all.at(-1);
      ws.open();
      assert.deepEqual(ws.sent, [{ type: "join", name: "Ann", publish: [] }]);
      ws.message({ type: "error", code: "WRONG_NODE", message: "", signaling_url: `wss://n${i}.example/ws/x` });
      ws.closeWith(4421);
      await settle();
    }
    assert.deepEqual(
      FakeSocket.all.map((w) => w.url),
      ["wss://a.example/ws/AbCdEf1234", "wss://n0.example/ws/x", "wss://n1.example/ws/x", "wss://n2.example/ws/x"],
    );
    // The fourth redirect is not followed: the attempt failed and waits its backoff.
    assert.equal(delays.length, 1);
    assert.ok(delays[0] >= 375 && delays[0] <= 625, delays);
  });
});

test("server-shutdown waits retry_after plus jitter, then looks the room up again", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    const { client, events } = newClient();
    client.connect();
    await settle();
    const ws = FakeSocket.all[0];
    assert.equal(ws.url, "wss://kaamos.example:8443/ws/AbCdEf1234");
    ws.open();
    ws.message({ type: "server-shutdown", retry_after: 7 });
    ws.closeWith(1001);
    await settle();
    assert.equal(delays.length, 1);
    assert.ok(delays[0] >= 7000 && delays[0] <= 8000, delays);
    assert.equal(events.at(-1)[1].state, "reconnecting");
    runTimers();
    await settle();
    assert.equal(FakeSocket.all.length, 2);
  });
});

test("RATE_LIMITED waits its retry_after before the next attempt", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays }) => {
    const { client } = newClient();
    client.connect();
    await settle();
    const ws = FakeSocket.all[0];
    ws.open();
    ws.message({ type: "error", code: "RATE_LIMITED", message: "", retry_after: 17 });
    ws.closeWith(4429);
    await settle();
    assert.equal(delays.length, 1);
    assert.ok(delays[0] >= 17000 && delays[0] <= 18000, delays);
  });
});

test("final refusals end the call without reconnecting", async () => {
  for (const [code, close] of [["ROOM_FULL", 4409], ["ROOM_NOT_FOUND", 4404]]) {
    await withFakes({ room_id: ROOM }, async ({ delays }) => {
      const { client, events } = newClient();
      client.connect();
      await settle();
      const ws = FakeSocket.all[0];
      ws.open();
      ws.message({ type: "error", code, message: "" });
      ws.closeWith(close);
      await settle();
      assert.deepEqual(events.at(-1), ["closed", { code: close, error: code }]);
      assert.deepEqual(delays, []);
    });
  }
});

test("a dropped socket reconnects with growing backoff, then gives up", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    const { client, events } = newClient();
    client.connect();
    await settle();
    for (let i = 0; i < 3; i++) {
      FakeSocket.all.at(-1).closeWith(1006);
      await settle();
      runTimers();
      await settle();
    }
    assert.equal(FakeSocket.all.length, 4);
    assert.ok(delays[0] <= 625 && delays[1] >= 750 && delays[1] <= 1250 && delays[2] >= 1500, delays);
    // Never in the call: the fourth failure in a row gives up.
    FakeSocket.all.at(-1).closeWith(1006);
    await settle();
    assert.deepEqual(events.at(-1), ["closed", { code: 1006, error: "UNREACHABLE" }]);
  });
});

/** Fake RTCPeerConnection: only what a session touches before an offer. */
class FakePeerConnection {
  /** @type {FakePeerConnection[]} */
  static all = [];
  constructor() {
    this.connectionState = "new";
    this.listeners = {};
    this.closed = false;
    FakePeerConnection.all.push(this);
  }
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  set(state) {
    this.connectionState = state;
    for (const fn of this.listeners.connectionstatechange ?? []) fn({});
  }
  close() {
    this.closed = true;
  }
}

test("a media connection that fails after working is a rejoin at once (no ICE restart)", async () => {
  const saved = globalThis.RTCPeerConnection;
  globalThis.RTCPeerConnection = FakePeerConnection;
  try {
    await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
      const { client } = newClient();
      client.connect();
      await settle();
      const ws = FakeSocket.all[0];
      let closedWith = null;
      ws.close = (code) => (closedWith = code);
      ws.open();
      ws.message({ type: "joined", peer_id: "Pp1", room_id: ROOM, peers: [], ice_servers: [] });
      await settle();
      const pc = FakePeerConnection.all.at(-1);
      pc.set("connected");
      pc.set("failed");
      await settle();
      assert.equal(closedWith, 4000);
      assert.ok(pc.closed);
      assert.deepEqual(delays, [0]);
      runTimers();
      await settle();
      assert.equal(FakeSocket.all.length, 2);
    });
  } finally {
    globalThis.RTCPeerConnection = saved;
  }
});
