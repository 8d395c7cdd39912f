// static/protocol.js without a browser: room lookup (contract C3), backoff, and the
// reconnect decisions (C2 server-shutdown, WRONG_NODE redirects, final codes, what counts
// towards giving up), with fake WebSocket, fetch, timers and RTCPeerConnection. Run by
// tests/test_browser_protocol.py (node --test).

import assert from "node:assert/strict";
import { test } from "node:test";

import { KaamosClient, LookupError, MAX_REDIRECTS, backoffMs, lookupRoom, signalingUrl } from "../static/protocol.js";

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
  const down = { error: { code: "REGISTRY_UNAVAILABLE", message: "redis" } };
  await assert.rejects(lookupRoom(LOC, ROOM, fakeFetch(503, down)), { name: "LookupError", status: 503 });
  await assert.rejects(lookupRoom(LOC, ROOM, fakeFetch(502, null)), LookupError);
  await assert.rejects(lookupRoom(LOC, ROOM, async () => Promise.reject(new TypeError("offline"))), TypeError);
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

/** Fake RTCPeerConnection: only what a session touches before an offer. Like a browser, it
 * throws on an ICE server URL that is not stun:, stuns:, turn: or turns:. */
class FakePeerConnection {
  /** @type {FakePeerConnection[]} */
  static all = [];
  constructor(config) {
    for (const server of config.iceServers) {
      for (const url of [server.urls].flat()) {
        if (!/^(stuns?|turns?):/.test(url)) throw new SyntaxError(`'${url}' is not a valid URL`);
      }
    }
    this.config = config;
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

/**
 * Run `fn` with fake globals (sockets, fetch, timers, peer connections; console.info
 * silenced); it gets the delays the client asked setTimeout for, and can run those timers.
 * Whatever `fn` replaces of these globals or of console is put back afterwards.
 */
async function withFakes(lookupBody, fn) {
  const saved = {
    WebSocket: globalThis.WebSocket,
    fetch: globalThis.fetch,
    setTimeout: globalThis.setTimeout,
    RTCPeerConnection: globalThis.RTCPeerConnection,
  };
  const savedConsole = { info: console.info, warn: console.warn, error: console.error };
  const delays = [];
  /** @type {Array<() => void>} */
  const timers = [];
  FakeSocket.all = [];
  globalThis.WebSocket = FakeSocket;
  globalThis.fetch = fakeFetch(200, lookupBody);
  globalThis.RTCPeerConnection = FakePeerConnection;
  globalThis.setTimeout = (cb, ms) => {
    // The 10 s join timeout is not under test here; reconnect waits are.
    if (ms !== 10_000) {
      delays.push(ms);
      timers.push(cb);
    }
    return 0;
  };
  console.info = () => {};
  try {
    await fn({ delays, runTimers: () => timers.splice(0).forEach((cb) => cb()) });
  } finally {
    Object.assign(globalThis, saved);
    Object.assign(console, savedConsole);
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

/** A new client, connected: its first socket is open and has sent `join`. */
async function opened() {
  const { client, events } = newClient();
  client.connect();
  await settle();
  const ws = FakeSocket.all[0];
  ws.open();
  return { client, events, ws };
}

/** @param {FakeSocket} ws  the server answers `join` */
function joined(ws, peerId = "Pp1", iceServers = []) {
  ws.message({ type: "joined", peer_id: peerId, room_id: ROOM, peers: [], ice_servers: iceServers });
}

test("WRONG_NODE is followed at most MAX_REDIRECTS times per attempt", async () => {
  await withFakes({ signaling_url: "wss://a.example/ws/AbCdEf1234" }, async ({ delays }) => {
    const { client, events } = newClient();
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
    assert.equal(events.at(-1)[1].reason, "wrong-node");
  });
});

test("server-shutdown waits retry_after plus jitter, then looks the room up again", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    const { events, ws } = await opened();
    assert.equal(ws.url, "wss://kaamos.example:8443/ws/AbCdEf1234");
    ws.message({ type: "server-shutdown", retry_after: 7 });
    ws.closeWith(1001);
    await settle();
    assert.equal(delays.length, 1);
    assert.ok(delays[0] >= 7000 && delays[0] <= 8000, delays);
    assert.deepEqual(events.at(-1)[1], { state: "reconnecting", retryInMs: delays[0], attempt: 0, reason: "restart" });
    runTimers();
    await settle();
    assert.equal(FakeSocket.all.length, 2);
  });
});

test("RATE_LIMITED waits its retry_after before the next attempt", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays }) => {
    const { events, ws } = await opened();
    ws.message({ type: "error", code: "RATE_LIMITED", message: "", retry_after: 17 });
    ws.closeWith(4429);
    await settle();
    assert.equal(delays.length, 1);
    assert.ok(delays[0] >= 17000 && delays[0] <= 18000, delays);
    assert.equal(events.at(-1)[1].reason, "unavailable");
  });
});

test("final refusals end the call without reconnecting", async () => {
  for (const [code, close] of [["ROOM_FULL", 4409], ["ROOM_NOT_FOUND", 4404]]) {
    await withFakes({ room_id: ROOM }, async ({ delays }) => {
      const { events, ws } = await opened();
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
    assert.deepEqual(new Set(events.slice(1).map(([, d]) => d.reason)), new Set(["lost"]));
    // Never in the call: the fourth failure in a row gives up.
    FakeSocket.all.at(-1).closeWith(1006);
    await settle();
    assert.deepEqual(events.at(-1), ["closed", { code: 1006, error: "UNREACHABLE" }]);
  });
});

const REGISTRY_DOWN = { error: { code: "REGISTRY_UNAVAILABLE", message: "The room registry is unavailable." } };

test("the service unavailable (lookup 503, REGISTRY_UNAVAILABLE, 1013) never gives up as UNREACHABLE", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    globalThis.fetch = fakeFetch(503, REGISTRY_DOWN);
    const { client, events } = newClient();
    client.connect();
    await settle();
    for (let i = 0; i < 8; i++) {
      const ws = FakeSocket.all.at(-1);
      ws.open();
      if (i % 2 === 0) ws.message({ type: "error", code: "REGISTRY_UNAVAILABLE", message: "" });
      // A socket that dies on a lookup that got 503 is the service too: the user's network works.
      ws.closeWith(i % 4 === 3 ? 1006 : 1013);
      await settle();
      runTimers();
      await settle();
    }
    // The lookup answers again, but the node still cannot reach the registry: 1013 alone.
    globalThis.fetch = fakeFetch(200, { room_id: ROOM });
    FakeSocket.all.at(-1).closeWith(1013);
    await settle();
    assert.equal(FakeSocket.all.length, 9);
    assert.ok(!events.some(([type]) => type === "closed"), events);
    const retries = events.filter(([, d]) => d.state === "reconnecting").map(([, d]) => d.reason);
    assert.deepEqual(retries, Array(9).fill("unavailable"));
    // Still backing off, up to 10 s.
    assert.ok(delays[1] >= 750 && delays.at(-1) >= 7500 && delays.at(-1) <= 12_500, delays);
  });
});

test("lookup failing: back to the socket that last joined, then the page's own origin", async () => {
  await withFakes({ signaling_url: "wss://node2.example/ws/AbCdEf1234" }, async ({ runTimers }) => {
    const { events, ws: first } = await opened();
    joined(first);
    await settle();
    /** The current socket drops; the next attempt runs. */
    const drop = async () => {
      FakeSocket.all.at(-1).closeWith(1006);
      await settle();
      runTimers();
      await settle();
    };
    globalThis.fetch = fakeFetch(503, REGISTRY_DOWN);
    for (let i = 0; i < 3; i++) await drop();
    // The network fails the lookup: the same order.
    globalThis.fetch = async () => Promise.reject(new TypeError("Failed to fetch"));
    await drop();
    const own = "wss://kaamos.example:8443/ws/AbCdEf1234";
    assert.deepEqual(
      FakeSocket.all.map((w) => w.url),
      [first.url, first.url, own, first.url, own],
    );
    const reasons = events.filter(([, d]) => d.state === "reconnecting").map(([, d]) => d.reason);
    assert.deepEqual(reasons, ["lost", "unavailable", "unavailable", "unavailable"]);
    // Joined through the page's own origin: that socket is now the one to go back to.
    FakeSocket.all.at(-1).open();
    joined(FakeSocket.all.at(-1), "Pp2");
    await settle();
    await drop();
    assert.equal(FakeSocket.all.at(-1).url, own);
    assert.equal(FakeSocket.all.length, 6);
  });
});

test("a media connection that fails after working is a rejoin at once (no ICE restart)", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    const { ws } = await opened();
    let closedWith = null;
    ws.close = (code) => (closedWith = code);
    joined(ws);
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
});

test("ice_servers the browser refuses are left out, not a page stuck on Connecting", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays }) => {
    const warnings = [];
    console.warn = (...args) => warnings.push(args.join(" "));
    const { client, events, ws } = await opened();
    const peers = [];
    client.addEventListener("joined", (e) => peers.push(e.detail.peer_id));
    const good = { urls: ["turn:turn.example:3478"], username: "u", credential: "secret" };
    joined(ws, "Pp1", [{ urls: "stun.example.org" }, good, { urls: ["stun:ok.example", "ok2.example"] }]);
    await settle();
    assert.deepEqual(peers, ["Pp1"]);
    assert.deepEqual(FakePeerConnection.all.at(-1).config, { iceServers: [good], bundlePolicy: "max-bundle" });
    assert.equal(events.at(-1)[1].state, "connected");
    assert.ok(warnings.some((w) => w.includes('"stun.example.org"')), warnings);
    assert.ok(!warnings.some((w) => w.includes("secret")), warnings);
    assert.deepEqual(delays, []);
  });
});

test("a browser that cannot make an RTCPeerConnection at all ends the call with NO_WEBRTC", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays }) => {
    globalThis.RTCPeerConnection = class {
      constructor() {
        throw new DOMException("WebRTC is disabled", "NotSupportedError");
      }
    };
    console.error = console.warn = () => {};
    const { events, ws } = await opened();
    joined(ws, "Pp1", [{ urls: "stun:a" }]);
    await settle();
    assert.deepEqual(events.at(-1), ["closed", { code: null, error: "NO_WEBRTC" }]);
    assert.deepEqual(delays, []);
  });
});
