// The browser client of the jwt-auth API (cookie mode).
//
// - The access token lives in this module's memory only: never in localStorage,
//   sessionStorage or a cookie. A reload forgets it and `restore()` gets a new one.
// - The refresh token never reaches JavaScript: the API keeps it in an HttpOnly cookie
//   (`?cookie=true`), which the browser sends back by itself (`credentials: "include"`).
//   Every call sends `X-Requested-With`, the header the API requires of cookie-mode
//   requests (a plain cross-site form cannot send it).
// - One refresh at a time per browser, not per tab: a refresh spends the cookie's token,
//   so tabs that refreshed together would present one token several times. The tab that
//   refreshes holds a Web Lock; the others wait for it and take the new access token it
//   broadcasts (BroadcastChannel) instead of refreshing again. Where Web Locks are missing
//   (or the lock is not granted in time), tabs refresh on their own: the API answers a
//   token presented again by the same client within its grace window with the same pair.
// - A refresh refused with 401 is tried once more after a moment: another tab (or another
//   browser context of the same cookie jar) may have spent the token and received the new
//   cookie meanwhile. Refused again, the session is over: every tab is signed out.

import type { components, paths } from "./openapi.js";

type Schemas = components["schemas"];

// Every path this client calls, checked against openapi.yaml when it is built (the types
// are generated from it): a route renamed there breaks the build, not a user's page.
const ROUTES = {
  register: "/auth/register",
  login: "/auth/login",
  loginMfa: "/auth/login/mfa",
  refresh: "/auth/refresh",
  logout: "/auth/logout",
  me: "/auth/me",
  password: "/auth/password",
  email: "/auth/email",
  account: "/auth/account",
  sessions: "/auth/sessions",
  session: "/auth/sessions/{id}",
  mfaSetup: "/auth/mfa/totp/setup",
  mfaConfirm: "/auth/mfa/totp/confirm",
  mfaRecoveryCodes: "/auth/mfa/recovery-codes",
  mfaTotp: "/auth/mfa/totp",
  verifyEmail: "/auth/email/verify",
  resendVerification: "/auth/email/resend",
  forgotPassword: "/auth/password/forgot",
  resetPassword: "/auth/password/reset",
} as const satisfies Record<string, keyof paths>;

const COOKIE = "?cookie=true";

export type Me = Schemas["Me"];
export type PublicUser = Schemas["PublicUser"];
export type Session = Schemas["Session"];
export type TokenPair = Schemas["TokenPair"];
export type Registration = Schemas["Registration"];
export type MfaEnrolment = Schemas["MfaEnrolment"];
export type RecoveryCodes = Schemas["RecoveryCodes"];
export type RegisterRequest = Schemas["RegisterRequest"];
export type LoginRequest = Schemas["LoginRequest"];
/** Every `error` code the API answers. */
export type ErrorCode = Schemas["Error"]["error"];

/** An answer that was not a success, or no answer at all (`status` 0). */
export class ApiError extends Error {
  readonly status: number;
  /** The contract's `error` code; `network_error` when the API could not be reached (or CORS hid its answer). */
  readonly code: ErrorCode | "network_error" | "unexpected_answer";
  readonly description: string;
  /** Seconds, from `Retry-After` (readable when the API exposes it), if any. */
  readonly retryAfter: number | null;
  /** The answer's JSON body, if it had one. */
  readonly body: unknown;

  constructor(status: number, body: unknown, retryAfter: number | null) {
    const parsed = body as { error?: unknown; error_description?: unknown } | null;
    const code = typeof parsed?.error === "string" ? (parsed.error as ErrorCode) : status ? "unexpected_answer" : "network_error";
    const description =
      typeof parsed?.error_description === "string"
        ? parsed.error_description
        : status
          ? `the API answered ${status} without the contract's error body`
          : "the API could not be reached, or it does not allow this page's origin (CORS)";
    super(`${code}: ${description}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.description = description;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

/** The subset of the Web Locks API the client uses (`navigator.locks`). */
export interface Locks {
  request<T>(name: string, options: { signal?: AbortSignal }, callback: () => Promise<T>): Promise<T>;
}

/** The subset of `BroadcastChannel` the client uses. */
export interface Channel {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  close(): void;
}

export interface ClientOptions {
  /** The API's base URL, e.g. `https://abc123.execute-api.eu-west-1.amazonaws.com/v1`. */
  baseUrl: string;
  /** Refresh this long before the access token expires (default 60 s). */
  refreshAheadSeconds?: number;
  /** How long a tab waits for another tab's refresh before refreshing itself (default 10 s). */
  lockTimeoutMs?: number;
  /** How long to wait before trying a refused refresh once more (default 500 ms). */
  raceRetryMs?: number;
  /** How long a tab that holds no token waits for another tab to share one before refreshing (default 100 ms). */
  askMs?: number;
  /** Names the Web Lock and the BroadcastChannel: one per API a page talks to (default `jwt-auth`). */
  name?: string;
  /** For tests and other runtimes; the defaults are the browser's. `null`: none. */
  fetch?: typeof fetch;
  locks?: Locks | null;
  channel?: Channel | null;
  /** Where the tab that refreshed notes when (no token: a time), for the tabs waiting for the lock. */
  storage?: Pick<Storage, "getItem" | "setItem"> | null;
  now?: () => number;
}

/** What a login answered: signed in, or the second step's challenge. */
export type LoginResult = { status: "signed-in" } | { status: "mfa-required"; mfaToken: string };

/** The second step's proof: a code of the authenticator app, or a recovery code. */
export type SecondFactor = { code: string } | { recoveryCode: string };

export interface AuthState {
  signedIn: boolean;
}

type Message =
  | { type: "token"; accessToken: string; expiresAt: number }
  | { type: "signed-out" }
  /** A tab that holds no token yet (it just opened) asks the others for theirs. */
  | { type: "ask" };

interface Held {
  token: string;
  /** Epoch ms. */
  expiresAt: number;
  /** When it was received (epoch ms): how long it lives says how early to refresh it. */
  receivedAt: number;
}

interface Call {
  json?: unknown;
  /** An access token to send (for a call outside this tab's own token). */
  bearer?: string;
}

export interface Client {
  /** A new access token from the refresh cookie (at a page's start: is there a session?). `false`: none. */
  restore(): Promise<boolean>;
  /** Creates the user, and signs it in unless the API requires a verified address first (`signedIn: false`). */
  register(body: RegisterRequest): Promise<{ user: PublicUser; signedIn: boolean }>;
  login(username: string, password: string): Promise<LoginResult>;
  /** The second step of a multi-factor login. */
  completeLogin(mfaToken: string, proof: SecondFactor): Promise<void>;
  logout(options?: { all?: boolean }): Promise<void>;
  me(): Promise<Me>;
  /**
   * `fetch` with the access token: refreshed first if it is missing or about to expire, and
   * once more (then the request again) if the answer is 401 `invalid_token`. A second 401
   * is returned as it is.
   */
  fetch(input: string | URL, init?: RequestInit): Promise<Response>;
  /** A new access token now (one per browser: other tabs take this one). */
  refresh(): Promise<void>;
  /** Called on every sign-in and sign-out, in this tab or another. Returns the unsubscribe. */
  onChange(listener: (state: AuthState) => void): () => void;
  readonly signedIn: boolean;
  account: {
    changePassword(currentPassword: string, newPassword: string): Promise<void>;
    changeEmail(email: string, password: string): Promise<void>;
    delete(password: string): Promise<void>;
    sessions(): Promise<Session[]>;
    endSession(id: string): Promise<void>;
    mfaSetup(password: string): Promise<MfaEnrolment>;
    mfaConfirm(code: string): Promise<string[]>;
    mfaRecoveryCodes(code: string): Promise<string[]>;
    mfaDisable(password: string, code: string): Promise<void>;
  };
  /** The public email routes: no session needed. */
  email: {
    /** The token of a verification link. */
    verify(token: string): Promise<Schemas["EmailVerified"]>;
    resendVerification(email: string): Promise<void>;
    /** The same answer whether or not an account matches. */
    forgotPassword(who: { email: string } | { username: string }): Promise<void>;
    /** The token of a reset link; no session: sign in with the new password. */
    resetPassword(token: string, newPassword: string): Promise<void>;
  };
  /** Stops the timers and the channel (a page that goes away needs nothing of it). */
  close(): void;
}

function browserLocks(): Locks | null {
  const nav = (globalThis as { navigator?: { locks?: Locks } }).navigator;
  return nav?.locks ?? null;
}

function browserStorage(): Pick<Storage, "getItem" | "setItem"> | null {
  try {
    return (globalThis as { localStorage?: Storage }).localStorage ?? null;
  } catch {
    return null; // storage blocked by the browser's settings
  }
}

function browserChannel(name: string): Channel | null {
  const Ctor = (globalThis as { BroadcastChannel?: new (name: string) => Channel }).BroadcastChannel;
  return Ctor ? new Ctor(name) : null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createClient(options: ClientOptions): Client {
  const base = options.baseUrl.replace(/\/+$/, "");
  const name = options.name ?? "jwt-auth";
  const refreshAheadMs = (options.refreshAheadSeconds ?? 60) * 1000;
  const lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
  const raceRetryMs = options.raceRetryMs ?? 500;
  const askMs = options.askMs ?? 100;
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const locks = options.locks === undefined ? browserLocks() : options.locks;
  const channel = options.channel === undefined ? browserChannel(name) : options.channel;
  const now = options.now ?? Date.now;
  const storage = options.storage === undefined ? browserStorage() : options.storage;
  const lockName = `${name}:refresh`;
  const refreshedKey = `${name}:refreshed-at`;

  let held: Held | null = null;
  /** Counts the tokens received: a refresh asked for before the count moved is done already. */
  let generation = 0;
  /** Counts the sign-outs: a refresh asked for before one must not sign the user back in. */
  let epoch = 0;
  /** Who waits for the next token (`shared`). */
  let waiters: (() => void)[] = [];
  let inflight: Promise<void> | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const listeners = new Set<(state: AuthState) => void>();

  function notify() {
    const state = { signedIn: held !== null };
    for (const listener of [...listeners]) {
      // A listener that throws must not break a sign-in (nor the other listeners).
      try {
        listener(state);
      } catch (e) {
        (globalThis as { reportError?: (e: unknown) => void }).reportError?.(e);
      }
    }
  }

  function schedule() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!held) return;
    // Ahead of expiry (at most half its lifetime ahead: a short-lived token is not refreshed
    // over and over), with a little jitter so that tabs do not all wake at once (the lock
    // would sort them out anyway).
    const ahead = Math.min(refreshAheadMs, (held.expiresAt - held.receivedAt) / 2);
    const jitter = Math.floor(Math.random() * Math.min(2000, ahead / 4));
    const delay = Math.max(1000, held.expiresAt - ahead - now() - jitter);
    timer = setTimeout(() => {
      timer = null;
      refresh().catch(() => {
        // Signed out (or the API unreachable): the listeners were told, or the next call retries.
      });
    }, delay);
  }

  /** Holds `token`. The same token again (another tab's answer to an ask) changes nothing. */
  function hold(token: string, expiresAt: number) {
    if (held?.token === token) return;
    const was = held !== null;
    held = { token, expiresAt, receivedAt: now() };
    generation += 1;
    for (const wake of waiters.splice(0)) wake();
    schedule();
    if (!was) notify();
  }

  function adopt(pair: { access_token: string; expires_in: number }) {
    const expiresAt = now() + pair.expires_in * 1000;
    // The other tabs first: a listener of this one may take its time.
    channel?.postMessage({ type: "token", accessToken: pair.access_token, expiresAt } satisfies Message);
    hold(pair.access_token, expiresAt);
  }

  function forget(broadcast: boolean) {
    const was = held !== null;
    held = null;
    epoch += 1;
    if (timer) clearTimeout(timer);
    timer = null;
    if (broadcast) channel?.postMessage({ type: "signed-out" } satisfies Message);
    if (was) notify();
  }

  channel?.addEventListener("message", (event) => {
    const message = event.data as Message | null;
    if (message?.type === "token" && typeof message.accessToken === "string" && Number.isFinite(message.expiresAt)) {
      if (!held || message.expiresAt > held.expiresAt) hold(message.accessToken, message.expiresAt);
    } else if (message?.type === "signed-out") {
      forget(false);
    } else if (message?.type === "ask" && held && held.expiresAt - now() > 5_000) {
      channel?.postMessage({ type: "token", accessToken: held.token, expiresAt: held.expiresAt } satisfies Message);
    }
  });

  /** Waits up to `ms` for a token newer than generation `since` (another tab's answer). */
  async function shared(since: number, ms: number): Promise<boolean> {
    if (generation === since) {
      await new Promise<void>((resolve) => {
        const timeout = setTimeout(resolve, ms);
        waiters.push(() => {
          clearTimeout(timeout);
          resolve();
        });
      });
    }
    return generation !== since;
  }

  /** A request to the API as this client sends them: cookie mode's header, the cookie. */
  function apiInit(method: string, json: unknown): RequestInit {
    const headers: Record<string, string> = { "X-Requested-With": "fetch" };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    const init: RequestInit = { method, headers, credentials: "include", cache: "no-store" };
    if (json !== undefined) init.body = JSON.stringify(json);
    return init;
  }

  async function call<T>(method: string, path: string, { json, bearer }: Call = {}): Promise<T> {
    let res: Response;
    const init = apiInit(method, json);
    if (bearer) (init.headers as Record<string, string>)["Authorization"] = `Bearer ${bearer}`;
    try {
      res = await doFetch(base + path, init);
    } catch {
      throw new ApiError(0, null, null);
    }
    return answer<T>(res);
  }

  /** The answer's JSON body, or the `ApiError` it stands for. */
  async function answer<T>(res: Response): Promise<T> {
    const text = await res.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!res.ok) {
      const retryAfter = res.headers.get("Retry-After");
      throw new ApiError(res.status, body, retryAfter === null ? null : Number(retryAfter));
    }
    return body as T;
  }

  /** One refresh over the network, tried once more after a 401 that another tab may have caused. */
  async function refreshOnce(asked: number, askedAt: number, signedOut: number): Promise<void> {
    // The tab that held the lock before this one refreshed after this one asked: its token
    // is on its way (the lock can be granted before its message arrives).
    const refreshedAt = Number(storage?.getItem(refreshedKey) ?? 0);
    if (refreshedAt >= askedAt && !(held && generation !== asked)) await shared(asked, 1_000);
    for (let attempt = 0; ; attempt++) {
      // Another tab refreshed since this one asked: its token is ours too.
      if (held && generation !== asked) return;
      try {
        const pair = await call<TokenPair>("POST", ROUTES.refresh + COOKIE);
        // Signed out meanwhile (a logout while this refresh was under way): not back in.
        if (epoch !== signedOut) throw new ApiError(401, { error: "invalid_grant", error_description: "signed out" }, null);
        adopt(pair);
        try {
          storage?.setItem(refreshedKey, String(now()));
        } catch {
          // Storage full or blocked: the other tabs refresh on their own.
        }
        return;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 401 || attempt > 0) throw e;
      }
      await sleep(raceRetryMs);
    }
  }

  async function refreshShared(): Promise<void> {
    const asked = generation;
    // When this tab asked: a refresh by another tab since then is this one's too.
    const askedAt = now();
    // A tab that just opened: another tab may hold a live token already (no refresh at all).
    if (!held && channel) {
      channel.postMessage({ type: "ask" } satisfies Message);
      if (await shared(asked, askMs)) return;
    }
    const signedOut = epoch;
    const run = () => refreshOnce(asked, askedAt, signedOut);
    try {
      if (!locks) return await run();
      let ran = false;
      // (AbortSignal.timeout is missing from some browsers that have Web Locks.)
      const abort = new AbortController();
      const timeout = setTimeout(() => abort.abort(new DOMException("lock not granted in time", "TimeoutError")), lockTimeoutMs);
      try {
        return await locks.request(lockName, { signal: abort.signal }, () => {
          ran = true;
          clearTimeout(timeout);
          return run();
        });
      } catch (e) {
        // Not granted in time (a tab stuck holding it): refresh without it.
        if (ran || !(e instanceof DOMException && (e.name === "TimeoutError" || e.name === "AbortError"))) throw e;
        return await run();
      } finally {
        clearTimeout(timeout);
      }
    } catch (e) {
      // The session is over, unless another tab signed in (or refreshed) meanwhile: its
      // new session is not this refusal's to end.
      if (e instanceof ApiError && e.status === 401 && generation === asked) forget(true);
      throw e;
    }
  }

  function refresh(): Promise<void> {
    inflight ??= refreshShared().finally(() => {
      inflight = null;
    });
    return inflight;
  }

  async function token(): Promise<string> {
    if (!held || held.expiresAt - now() < 5_000) await refresh();
    if (!held) throw new ApiError(401, { error: "invalid_token", error_description: "not signed in" }, null);
    return held.token;
  }

  /** A call of the API with the access token: `fetch` (below), then its answer read. */
  async function authed<T>(method: string, path: string, json?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await authedFetch(base + path, apiInit(method, json));
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw new ApiError(0, null, null);
    }
    return answer<T>(res);
  }

  async function authedFetch(input: string | URL, init: RequestInit = {}): Promise<Response> {
    // The access token goes to the API only: a path is the API's (`/orders`), a URL must be
    // under its base URL.
    const url = typeof input === "string" && input.startsWith("/") ? base + input : String(input);
    if (url !== base && !url.startsWith(`${base}/`) && !url.startsWith(`${base}?`)) {
      throw new TypeError(`fetch() sends the access token only to the API (${base}), not to ${url}`);
    }
    const send = async (bearer: string) => {
      const headers = new Headers(init.headers);
      headers.set("Authorization", `Bearer ${bearer}`);
      return doFetch(url, { ...init, headers });
    };
    const first = await send(await token());
    if (first.status !== 401) return first;
    let code: unknown = null;
    try {
      code = ((await first.clone().json()) as { error?: unknown }).error;
    } catch {
      code = null;
    }
    if (code !== "invalid_token") return first;
    try {
      await refresh();
    } catch {
      return first;
    }
    return send(await token());
  }

  return {
    get signedIn() {
      return held !== null;
    },

    async restore() {
      try {
        await refresh();
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return false;
        throw e;
      }
    },

    async register(body) {
      const registered = await call<Registration>("POST", ROUTES.register + COOKIE, { json: body });
      // (The token stays in here: the caller gets the user.)
      if (registered.access_token && registered.expires_in) {
        adopt({ access_token: registered.access_token, expires_in: registered.expires_in });
      }
      return { user: registered.user, signedIn: Boolean(registered.access_token) };
    },

    async login(username, password) {
      try {
        adopt(await call<TokenPair>("POST", ROUTES.login + COOKIE, { json: { username, password } }));
        return { status: "signed-in" };
      } catch (e) {
        const body = e instanceof ApiError ? (e.body as Schemas["MfaRequired"] | null) : null;
        if (body?.error === "mfa_required" && typeof body.mfa_token === "string") {
          return { status: "mfa-required", mfaToken: body.mfa_token };
        }
        throw e;
      }
    },

    async completeLogin(mfaToken, proof) {
      const json = "code" in proof ? { mfa_token: mfaToken, code: proof.code } : { mfa_token: mfaToken, recovery_code: proof.recoveryCode };
      adopt(await call<TokenPair>("POST", ROUTES.loginMfa + COOKIE, { json }));
    },

    async logout({ all = false } = {}) {
      // A refresh under way finishes first (it would otherwise hand the session back).
      await inflight?.catch(() => undefined);
      const path = `${ROUTES.logout}${COOKIE}${all ? "&all=true" : ""}`;
      try {
        if (held) {
          await authed<null>("POST", path);
        } else {
          // No token in this tab (a page that has not restored yet): the cookie's session,
          // if there is one, signs out with a token of its own, shown to no other tab.
          const pair = await call<TokenPair>("POST", ROUTES.refresh + COOKIE);
          await call<null>("POST", path, { bearer: pair.access_token });
        }
      } catch (e) {
        // A session that has already ended is as good as signed out; anything else (the API
        // unreachable, 503) leaves the session, and this client, as they were.
        if (!(e instanceof ApiError) || e.status !== 401) throw e;
      }
      forget(true);
    },

    me: () => authed<Me>("GET", ROUTES.me),
    fetch: authedFetch,
    refresh,

    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    account: {
      async changePassword(currentPassword, newPassword) {
        const json = { current_password: currentPassword, new_password: newPassword };
        // A new session: every other one (other browsers) is over; this browser's tabs get the new token.
        adopt(await authed<TokenPair>("POST", ROUTES.password + COOKIE, json));
      },
      async changeEmail(email, password) {
        await authed<unknown>("POST", ROUTES.email, { email, password });
      },
      async delete(password) {
        await authed<null>("DELETE", ROUTES.account + COOKIE, { password });
        forget(true);
      },
      async sessions() {
        return (await authed<Schemas["Sessions"]>("GET", ROUTES.sessions)).sessions;
      },
      async endSession(id) {
        await authed<null>("DELETE", ROUTES.session.replace("{id}", encodeURIComponent(id)));
      },
      mfaSetup: (password) => authed<MfaEnrolment>("POST", ROUTES.mfaSetup, { password }),
      async mfaConfirm(code) {
        return (await authed<RecoveryCodes>("POST", ROUTES.mfaConfirm, { code })).recovery_codes;
      },
      async mfaRecoveryCodes(code) {
        return (await authed<RecoveryCodes>("POST", ROUTES.mfaRecoveryCodes, { code })).recovery_codes;
      },
      async mfaDisable(password, code) {
        await authed<null>("DELETE", ROUTES.mfaTotp, { password, code });
      },
    },

    email: {
      verify: (token) => call<Schemas["EmailVerified"]>("POST", ROUTES.verifyEmail, { json: { token } }),
      async resendVerification(email) {
        await call<unknown>("POST", ROUTES.resendVerification, { json: { email } });
      },
      async forgotPassword(who) {
        await call<unknown>("POST", ROUTES.forgotPassword, { json: who });
      },
      async resetPassword(token, newPassword) {
        await call<null>("POST", ROUTES.resetPassword, { json: { token, new_password: newPassword } });
      },
    },

    close() {
      if (timer) clearTimeout(timer);
      timer = null;
      channel?.close();
    },
  };
}
