// The client against a fake API (a fetch that answers as the contract says), with fake Web
// Locks and a fake BroadcastChannel shared by several "tabs" (clients), and fake timers.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { ApiError, type Channel, type Client, type ClientOptions, type Locks, createClient } from "../src/index.js";

const BASE = "https://api.test/v1";

/** The API as far as the client sees it: one refresh cookie per browser (a cookie jar). */
class FakeApi {
  refreshes = 0;
  cookie: string | null = null;
  spent = new Set<string>();
  issued = 0;
  valid = new Set<string>();
  calls: { method: string; path: string; authorization: string | null; body: unknown }[] = [];
  /** Overrides by path, tried first: an answer, or undefined to go on. */
  answer: (method: string, path: string) => Response | undefined = () => undefined;

  pair(expiresIn = 900) {
    this.issued += 1;
    const access = `access-${this.issued}`;
    this.valid.add(access);
    this.cookie = `refresh-${this.issued}`;
    return { access_token: access, token_type: "Bearer", expires_in: expiresIn, refresh_expires_in: 2_592_000 };
  }

  fetch: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    const path = url.pathname.replace("/v1", "") + url.search;
    const headers = new Headers(init?.headers);
    const authorization = headers.get("Authorization");
    const body = init?.body ? JSON.parse(String(init.body)) : null;
    this.calls.push({ method: init?.method ?? "GET", path, authorization, body });
    expect(headers.get("X-Requested-With") ?? (authorization ? "bearer" : null)).toBeTruthy();
    const override = this.answer(init?.method ?? "GET", path);
    if (override) return override;
    const json = (status: number, value: unknown) =>
      new Response(value === null ? null : JSON.stringify(value), { status, headers: { "Content-Type": "application/json" } });
    const error = (status: number, code: string) => json(status, { error: code, error_description: code });
    if (path === "/auth/refresh?cookie=true") {
      this.refreshes += 1;
      if (!this.cookie || this.spent.has(this.cookie)) return error(401, "invalid_grant");
      this.spent.add(this.cookie);
      return json(200, this.pair());
    }
    if (path === "/auth/login?cookie=true") {
      if (body.password !== "right") return error(401, "invalid_grant");
      if (body.username === "two-step") return json(403, { error: "mfa_required", error_description: "code", mfa_token: "mfa-1" });
      return json(200, { ...this.pair(), device_token: "device" });
    }
    if (path === "/auth/login/mfa?cookie=true") {
      return body.mfa_token === "mfa-1" && body.code === "123456" ? json(200, this.pair()) : error(401, "invalid_grant");
    }
    const bearer = authorization?.replace("Bearer ", "") ?? "";
    if (!this.valid.has(bearer)) return error(401, "invalid_token");
    if (path === "/auth/me") return json(200, { id: "u", username: "alice", amr: ["pwd"] });
    if (path.startsWith("/auth/logout")) {
      this.valid.clear();
      this.cookie = null;
      return new Response(null, { status: 204 });
    }
    if (path === "/things") return json(200, { ok: true });
    return error(404, "not_found");
  };
}

/** Web Locks for several tabs of one browser: one holder at a time, in order. */
class FakeLocks implements Locks {
  private tail: Promise<unknown> = Promise.resolve();
  granted = 0;
  stuck = false;
  request<T>(_name: string, options: { signal?: AbortSignal }, callback: () => Promise<T>): Promise<T> {
    if (this.stuck) {
      return new Promise<T>((_, reject) =>
        options.signal?.addEventListener("abort", () => reject(new DOMException("timed out", "TimeoutError"))),
      );
    }
    const run = this.tail.then(() => {
      this.granted += 1;
      return callback();
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/** BroadcastChannel between the tabs of one browser: a message reaches every other one. */
class Bus {
  members = new Set<FakeChannel>();
  delayMs = 0;
  channel() {
    const c = new FakeChannel(this);
    this.members.add(c);
    return c;
  }
}

class FakeChannel implements Channel {
  listeners: ((event: { data: unknown }) => void)[] = [];
  constructor(private bus: Bus) {}
  postMessage(message: unknown) {
    for (const other of this.bus.members) {
      if (other === this) continue;
      for (const l of other.listeners) {
        const deliver = () => l({ data: structuredClone(message) });
        // A slow bus: messages arrive after the lock has passed to the next tab.
        if (this.bus.delayMs) setTimeout(deliver, this.bus.delayMs);
        else queueMicrotask(deliver);
      }
    }
  }
  addEventListener(_type: "message", listener: (event: { data: unknown }) => void) {
    this.listeners.push(listener);
  }
  close() {
    this.bus.members.delete(this);
  }
}

let api: FakeApi;
let locks: FakeLocks;
let bus: Bus;
const clients: Client[] = [];

function tab(extra: Partial<ClientOptions> = {}): Client {
  const client = createClient({ baseUrl: BASE, fetch: api.fetch, locks, channel: bus.channel(), raceRetryMs: 50, ...extra });
  clients.push(client);
  return client;
}

beforeEach(() => {
  api = new FakeApi();
  locks = new FakeLocks();
  bus = new Bus();
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  vi.useRealTimers();
});

describe("signing in", () => {
  it("keeps the access token in memory and sends it as a bearer token", async () => {
    const client = tab();
    expect(await client.login("alice", "right")).toEqual({ status: "signed-in" });
    expect(client.signedIn).toBe(true);
    expect((await client.me()).username).toBe("alice");
    const me = api.calls.find((c) => c.path === "/auth/me");
    expect(me?.authorization).toBe("Bearer access-1");
  });

  it("answers a wrong password with the contract's error", async () => {
    const client = tab();
    const error = await client.login("alice", "wrong").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).code).toBe("invalid_grant");
    expect((error as ApiError).status).toBe(401);
    expect(client.signedIn).toBe(false);
  });

  it("returns the multi-factor challenge, and the second step signs in", async () => {
    const client = tab();
    const result = await client.login("two-step", "right");
    expect(result).toEqual({ status: "mfa-required", mfaToken: "mfa-1" });
    expect(client.signedIn).toBe(false);
    await expect(client.completeLogin("mfa-1", { code: "000000" })).rejects.toMatchObject({ code: "invalid_grant" });
    await client.completeLogin("mfa-1", { code: "123456" });
    expect(client.signedIn).toBe(true);
  });

  it("tells listeners, in this tab and the others", async () => {
    const [a, b] = [tab(), tab()];
    const seen: string[] = [];
    a.onChange((s) => seen.push(`a:${s.signedIn}`));
    b.onChange((s) => seen.push(`b:${s.signedIn}`));
    await a.login("alice", "right");
    await vi.waitFor(() => expect(seen).toEqual(["a:true", "b:true"]));
    expect(b.signedIn).toBe(true);
    await b.logout();
    await vi.waitFor(() => expect(seen).toEqual(["a:true", "b:true", "b:false", "a:false"]));
  });

  it("reports an unreachable API as network_error", async () => {
    const client = tab({ fetch: async () => Promise.reject(new TypeError("failed to fetch")) });
    await expect(client.login("alice", "right")).rejects.toMatchObject({ code: "network_error", status: 0 });
  });
});

describe("refresh", () => {
  it("restores a session from the cookie, or says there is none", async () => {
    api.cookie = "refresh-0";
    const client = tab();
    expect(await client.restore()).toBe(true);
    expect(client.signedIn).toBe(true);
    // Another browser (its own tabs, its own cookie jar).
    const none = tab({ channel: new Bus().channel(), locks: new FakeLocks() });
    api.cookie = null;
    expect(await none.restore()).toBe(false);
  });

  it("refreshes once per browser when several tabs restore at once", async () => {
    api.cookie = "refresh-0";
    const tabs = [tab(), tab(), tab()];
    expect(await Promise.all(tabs.map((t) => t.restore()))).toEqual([true, true, true]);
    expect(api.refreshes).toBe(1);
    expect(api.spent.size).toBe(1);
    for (const t of tabs) expect(t.signedIn).toBe(true);
    expect(locks.granted).toBeLessThanOrEqual(3);
  });

  it("refreshes once even when the lock passes on before the new token's message arrives", async () => {
    api.cookie = "refresh-0";
    bus.delayMs = 150; // longer than a tab waits for an answer to its "ask"
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    const tabs = [tab({ storage }), tab({ storage }), tab({ storage })];
    expect(await Promise.all(tabs.map((t) => t.restore()))).toEqual([true, true, true]);
    expect(api.refreshes).toBe(1);
    expect([...store.keys()]).toEqual(["jwt-auth:refreshed-at"]);
  });

  it("lets a tab that opens later take another tab's token, with no refresh at all", async () => {
    const first = tab();
    await first.login("alice", "right");
    const later = tab();
    expect(await later.restore()).toBe(true);
    expect(api.refreshes).toBe(0);
    expect((await later.me()).username).toBe("alice");
    expect(api.calls.at(-1)?.authorization).toBe("Bearer access-1");
  });

  it("refreshes once per tab for simultaneous calls in one tab", async () => {
    api.cookie = "refresh-0";
    const client = tab();
    await Promise.all([client.refresh(), client.refresh(), client.refresh()]);
    expect(api.refreshes).toBe(1);
  });

  it("tries a refused refresh once more: another tab may have taken the new cookie", async () => {
    api.cookie = "refresh-0";
    let first = true;
    api.answer = (_m, path) => {
      if (path !== "/auth/refresh?cookie=true" || !first) return undefined;
      first = false;
      api.refreshes += 1;
      // The cookie rotated under this tab: another browsing context spent it.
      api.cookie = "refresh-elsewhere";
      return new Response(JSON.stringify({ error: "invalid_grant", error_description: "x" }), { status: 401 });
    };
    const client = tab();
    expect(await client.restore()).toBe(true);
    expect(api.refreshes).toBe(2);
  });

  it("signs every tab out when the session is over", async () => {
    const [a, b] = [tab(), tab()];
    await a.login("alice", "right");
    await vi.waitFor(() => expect(b.signedIn).toBe(true));
    api.cookie = null;
    await expect(a.refresh()).rejects.toMatchObject({ status: 401 });
    expect(api.refreshes).toBe(2);
    expect(a.signedIn).toBe(false);
    await vi.waitFor(() => expect(b.signedIn).toBe(false));
  });

  it("refreshes ahead of expiry, one tab for all", async () => {
    vi.useFakeTimers();
    const [a, b] = [tab(), tab()];
    await a.login("alice", "right");
    await vi.advanceTimersByTimeAsync(0);
    expect(b.signedIn).toBe(true);
    // 900 s tokens, refreshed 60 s (and up to 2 s of jitter) before they expire.
    await vi.advanceTimersByTimeAsync(830_000);
    expect(api.refreshes).toBe(0);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(api.refreshes).toBe(1);
    expect((await b.me()).username).toBe("alice");
    const me = api.calls.filter((c) => c.path === "/auth/me").at(-1);
    expect(me?.authorization).toBe("Bearer access-2");
  });

  it("refreshes a short-lived token halfway through, not over and over", async () => {
    vi.useFakeTimers();
    const client = tab();
    api.pair = ((original) => (expiresIn?: number) => original(expiresIn ?? 60))(api.pair.bind(api));
    await client.login("alice", "right");
    await vi.advanceTimersByTimeAsync(25_000);
    expect(api.refreshes).toBe(0);
    await vi.advanceTimersByTimeAsync(6_000);
    expect(api.refreshes).toBe(1);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(api.refreshes).toBe(1);
    expect(client.signedIn).toBe(true);
  });

  it("refreshes without the lock when it is not granted in time", async () => {
    api.cookie = "refresh-0";
    locks.stuck = true;
    const client = tab({ lockTimeoutMs: 20 });
    expect(await client.restore()).toBe(true);
    expect(api.refreshes).toBe(1);
  });

  it("works without Web Locks and BroadcastChannel", async () => {
    api.cookie = "refresh-0";
    const client = tab({ locks: null, channel: null });
    expect(await client.restore()).toBe(true);
    expect((await client.me()).username).toBe("alice");
  });
});

describe("after a review", () => {
  it("a token another tab sends again is no new token: a refused refresh still ends the session", async () => {
    const [a, b] = [tab(), tab()];
    await a.login("alice", "right");
    await vi.waitFor(() => expect(b.signedIn).toBe(true));
    api.cookie = null; // the session is over
    const refreshing = a.refresh().catch((e: unknown) => e);
    // While a waits to try again, a new tab asks, and b answers with the old token.
    const c = tab();
    await c.restore().catch(() => undefined);
    expect(await refreshing).toMatchObject({ status: 401 });
    expect(api.refreshes).toBe(2);
    await vi.waitFor(() => expect([a.signedIn, b.signedIn, c.signedIn]).toEqual([false, false, false]));
  });

  it("a sign-out waits for a refresh under way, and stays signed out", async () => {
    const [a, b] = [tab(), tab()];
    await a.login("alice", "right");
    await vi.waitFor(() => expect(b.signedIn).toBe(true));
    let release!: () => void;
    const slow = new Promise<void>((resolve) => (release = resolve));
    const original = api.fetch;
    api.fetch = async (input, init) => {
      if (String(input).includes("/auth/refresh")) await slow;
      return original(input, init);
    };
    const refreshing = a.refresh();
    const loggingOut = a.logout();
    release();
    await refreshing;
    await loggingOut;
    await vi.waitFor(() => expect([a.signedIn, b.signedIn]).toEqual([false, false]));
    expect(api.calls.at(-1)?.path).toBe("/auth/logout?cookie=true");
  });

  it("a listener that throws breaks neither the sign-in nor the other tabs", async () => {
    const [a, b] = [tab(), tab()];
    a.onChange(() => {
      throw new Error("a page's bug");
    });
    await expect(a.login("alice", "right")).resolves.toEqual({ status: "signed-in" });
    await vi.waitFor(() => expect(b.signedIn).toBe(true));
  });

  it("a sign-out the API did not take leaves the session as it was", async () => {
    const client = tab();
    await client.login("alice", "right");
    api.answer = (_m, path) =>
      path.startsWith("/auth/logout") ? new Response(JSON.stringify({ error: "temporarily_unavailable", error_description: "x" }), { status: 503 }) : undefined;
    await expect(client.logout()).rejects.toMatchObject({ status: 503 });
    expect(client.signedIn).toBe(true);
  });

  it("a sign-out from a tab with no token yet uses the cookie's session and tells no tab a token", async () => {
    api.cookie = "refresh-0";
    const [a, b] = [tab(), tab()];
    const seen: boolean[] = [];
    b.onChange((s) => seen.push(s.signedIn));
    await a.logout();
    expect(api.calls.map((c) => c.path)).toEqual(["/auth/refresh?cookie=true", "/auth/logout?cookie=true"]);
    expect(api.calls.at(-1)?.authorization).toBe("Bearer access-1");
    expect(seen).toEqual([]);
  });

  it("registration says whether it signed in, and keeps the token to itself", async () => {
    api.answer = (_m, path) =>
      path.startsWith("/auth/register")
        ? new Response(JSON.stringify({ user: { id: "u", username: "bob", roles: ["user"], email: "b@x.test", email_verified: false } }), { status: 201 })
        : undefined;
    const client = tab();
    const registered = await client.register({ username: "bob", password: "right", email: "b@x.test" });
    expect(registered).toEqual({ user: expect.objectContaining({ username: "bob" }), signedIn: false });
    expect(client.signedIn).toBe(false);
  });
});

describe("fetch", () => {
  it("sends the access token to the API only", async () => {
    const client = tab();
    await client.login("alice", "right");
    await expect(client.fetch("https://elsewhere.test/things")).rejects.toThrow(TypeError);
    await expect(client.fetch("https://api.test/v10/things")).rejects.toThrow(TypeError);
    expect(api.calls.some((c) => c.path.includes("elsewhere"))).toBe(false);
    // A path is the API's.
    expect((await client.fetch("/things")).status).toBe(200);
    expect(api.calls.at(-1)?.path).toBe("/things");
  });

  it("adds the bearer token", async () => {
    const client = tab();
    await client.login("alice", "right");
    const res = await client.fetch(`${BASE}/things`);
    expect(res.status).toBe(200);
    expect(api.calls.at(-1)?.authorization).toBe("Bearer access-1");
  });

  it("refreshes once on 401 invalid_token and sends the request again", async () => {
    const client = tab();
    await client.login("alice", "right");
    api.valid.delete("access-1"); // expired, say
    const res = await client.fetch(`${BASE}/things`, { method: "POST", headers: { "X-Trace": "1" } });
    expect(res.status).toBe(200);
    expect(api.refreshes).toBe(1);
    const last = api.calls.at(-1);
    expect([last?.method, last?.authorization]).toEqual(["POST", "Bearer access-2"]);
  });

  it("gives up cleanly after a second 401", async () => {
    const client = tab();
    await client.login("alice", "right");
    api.answer = (_m, path) =>
      path === "/things" ? new Response(JSON.stringify({ error: "invalid_token", error_description: "x" }), { status: 401 }) : undefined;
    const res = await client.fetch(`${BASE}/things`);
    expect(res.status).toBe(401);
    expect(api.calls.filter((c) => c.path === "/things")).toHaveLength(2);
    expect(api.refreshes).toBe(1);
  });

  it("does not refresh for a 401 that is not about the token", async () => {
    const client = tab();
    await client.login("alice", "right");
    api.answer = (_m, path) =>
      path === "/things" ? new Response(JSON.stringify({ error: "invalid_grant", error_description: "x" }), { status: 401 }) : undefined;
    expect((await client.fetch(`${BASE}/things`)).status).toBe(401);
    expect(api.refreshes).toBe(0);
  });
});
