// The sayso web page: sign in (with a token, or with the organisation's identity provider), chat, confirm,
// and follow the audit timeline.
// Text from people and systems only ever reaches the page through text nodes (never innerHTML).
"use strict";

(() => {
  const TOKEN_KEY = "sayso.token";
  const CONVERSATION_KEY = "sayso.conversation";
  const VIA_KEY = "sayso.via";  // "token" or "oidc": how the stored token was obtained
  const OIDC_KEY = "sayso.oidc";  // a sign-in under way: state, nonce and PKCE code_verifier, this tab only
  const CALLBACK_PATH = "/auth/callback";
  const APPROVAL_KEY = "sayso.approval";  // an approval link opened (?approval=...&sig=...), kept across sign-in
  // Keys a table leaves out: long text and bookkeeping (the CLI hides the same ones).
  const HIDDEN_KEYS = new Set(["description", "version", "type", "name", "origin", "words"]);
  const LONG_CELL = 120;

  const state = { token: null, via: null, oidc: null, me: null, conversation: null, pendingConfirmation: null,
    busy: false, titles: new Map() };
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  // el("p", {className: "x"}, "text", child): strings become text nodes, never markup.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "className") node.className = value;
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A turn that ends in an error comes back as a 4xx whose body is still a turn: { status: "error", reply, error }.
  const isTurn = (data) => Boolean(data) && typeof data.status === "string" && typeof data.reply === "string";

  async function api(method, path, body, { turn = false } = {}) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiError("network", "The server could not be reached.", 0);
    }
    const raw = await response.text();
    let data = null;
    if (raw) {
      try { data = JSON.parse(raw); } catch (err) { data = null; }
    }
    if (!response.ok && !(turn && response.status !== 401 && isTurn(data))) {
      const error = (data && data.error) || {};
      const failure = new ApiError(error.code || `http_${response.status}`,
        error.message || `The server answered ${response.status}.`, response.status);
      if (response.status === 401 && state.token) signOut(endedMessage(state.token, state.via));
      throw failure;
    }
    return data;
  }

  function notify(message) {
    const notice = $("notice");
    notice.textContent = message || "";
    notice.hidden = !message;
  }

  function formatValue(value) {
    if (value === null || value === undefined) return "";
    if (Array.isArray(value)) return value.map(formatValue).join(", ");
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function formatArgs(args) {
    return Object.entries(args || {}).map(([key, value]) => `${key}=${formatValue(value)}`).join(", ");
  }

  function formatTime(at, options = { dateStyle: "medium", timeStyle: "short" }) {
    if (!at) return "";
    const when = new Date(at);
    if (Number.isNaN(when.getTime())) return String(at);
    try {
      return when.toLocaleString(undefined, { ...options, timeZone: (state.me && state.me.timezone) || undefined });
    } catch (err) {
      return when.toLocaleString(undefined, options);
    }
  }

  // "D-102 Kestrel Aerospace Platform: stage negotiation → closed_won, amount 240000"
  function describeChange(change) {
    const head = [change.record_id, change.title].filter(Boolean).join(" ");
    const before = change.before || null;
    const after = change.after || null;
    if (!before && after) return `${head}: new ${formatArgs(after)}`;
    if (before && !after) return `${head}: deleted`;
    const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])];
    const parts = keys.map((key) => {
      const old = formatValue(before[key]);
      const now = formatValue(after[key]);
      return old === now ? `${key} ${now}` : `${key} ${old} → ${now}`;
    });
    return `${head}: ${parts.join(", ")}`;
  }

  // ---- sign in -------------------------------------------------------------

  // via: "token" (pasted) or "oidc" (from the identity provider); restored: taken back from sessionStorage.
  async function signIn(token, { via = "token", restored = false } = {}) {
    state.token = token;
    state.via = via;
    try {
      state.me = await api("GET", "/v1/me");
    } catch (err) {
      state.token = null;
      state.via = null;
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(VIA_KEY);
      let message = err.message;
      if (err.status === 401 && restored) message = endedMessage(token, via);
      else if (err.status === 401 && via === "oidc") {
        message = `${oidcHost()} signed you in, but sayso did not accept its token: ${err.message}`;
      } else if (err.status === 401) message = "That token was not accepted.";
      notify(message);
      return false;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(VIA_KEY, via);
    notify("");
    $("who-name").textContent = state.me.name || state.me.id;
    $("who-role").textContent = (state.me.role || "").replaceAll("_", " ");
    $("who").hidden = false;
    $("signin").hidden = true;
    $("app").hidden = false;
    await loadConversations(sessionStorage.getItem(CONVERSATION_KEY));
    $("message").focus();
    await openApprovalLink();
    return true;
  }

  // ---- approval links (an email asked the person to approve someone's request) -----------------------------

  function rememberApprovalLink() {
    const params = new URLSearchParams(location.search);
    if (!params.get("approval") || !params.get("sig")) return;
    sessionStorage.setItem(APPROVAL_KEY, JSON.stringify({ id: params.get("approval"), sig: params.get("sig") }));
    history.replaceState(null, "", location.pathname);
  }

  async function openApprovalLink() {
    const saved = sessionStorage.getItem(APPROVAL_KEY);
    if (!saved) return;
    sessionStorage.removeItem(APPROVAL_KEY);
    let link;
    try { link = JSON.parse(saved); } catch (err) { return; }
    const path = `/v1/approvals/${encodeURIComponent(link.id)}`;
    const query = `?sig=${encodeURIComponent(link.sig)}`;
    const item = el("li", { className: "message sayso approval", "data-approval": link.id });
    $("messages").append(item);
    try {
      item.append(approvalCard(await api("GET", path + query), path, query));
    } catch (err) {
      item.append(el("p", { className: "reply", role: "alert" }, err.message));
    }
    scrollToEnd();
  }

  function approvalCard(shown, path, query) {
    const headingId = `approval-${shown.id}`;
    const card = el("section", { className: "card", "aria-labelledby": headingId, "data-approval": shown.id });
    card.append(el("h3", { id: headingId }, `${shown.requester.name} asks you to approve`));
    card.append(el("p", { className: "words" }, `“${shown.words}”`));
    for (const step of shown.steps || []) {
      card.append(el("p", { className: "step" }, `${step.label}: ${step.args}`, step.risk ? ` (risk ${step.risk})` : ""));
    }
    if ((shown.changes || []).length) card.append(el("ul", { className: "changes" }, shown.changes.map((c) => el("li", {}, c))));
    if (shown.why) card.append(el("p", { className: "hint" }, `It needs you because it was not theirs to do: ${shown.why}`));
    card.append(el("p", { className: "hint" }, `Expires ${formatTime(shown.expires_at)}.`));
    const outcome = el("p", { className: "outcome", role: "status" });
    const approve = el("button", { type: "button", className: "approve" }, "Approve");
    const decline = el("button", { type: "button", className: "decline" }, "Decline");
    const settle = (verb) => async () => {
      approve.disabled = decline.disabled = true;
      outcome.textContent = verb === "approve" ? "Approving…" : "Declining…";
      try {
        const result = await api("POST", `${path}/${verb}${query}`, undefined, { turn: true });
        outcome.textContent = result.reply;
        if (result.status === "needs_confirmation") showTurn(result);  // it changed since: a new card
      } catch (err) {
        outcome.textContent = err.message;
      }
    };
    approve.addEventListener("click", settle("approve"));
    decline.addEventListener("click", settle("decline"));
    card.append(el("div", { className: "actions" }, approve, decline), outcome);
    return card;
  }

  function signOut(message) {
    state.token = null;
    state.via = null;
    state.me = null;
    state.conversation = null;
    state.pendingConfirmation = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(VIA_KEY);
    sessionStorage.removeItem(CONVERSATION_KEY);
    $("who").hidden = true;
    $("app").hidden = true;
    $("signin").hidden = false;
    $("messages").replaceChildren();
    $("timeline").replaceChildren();
    $("conversation-list").replaceChildren();
    $("token").value = "";
    $("oidc-signin").disabled = false;
    notify(message || "");
    focusSignIn();
  }

  function focusSignIn() {
    ($("oidc").hidden ? $("token") : $("oidc-signin")).focus();
  }

  // Why a token stopped working: an identity provider's token says when it expires.
  function endedMessage(token, via) {
    if (via !== "oidc") return "Your session has ended: sign in again.";
    const claims = jwtClaims(token);
    const expired = claims && typeof claims.exp === "number" && claims.exp * 1000 <= Date.now();
    return expired ? `Your sign-in with ${oidcHost()} has expired: sign in again.`
      : `Your sign-in with ${oidcHost()} is no longer accepted: sign in again.`;
  }

  // ---- sign in with the identity provider (OIDC: authorization code + PKCE, a public client) ----------
  // The page holds no secret. A random state, nonce and code_verifier are kept in this tab's sessionStorage
  // while the identity provider's page is open; the answer must bring back the same state, the code is
  // exchanged with the code_verifier, and the ID token must carry the same nonce.

  function base64url(bytes) {
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomValue() {
    return base64url(crypto.getRandomValues(new Uint8Array(32)));  // 43 characters, 256 bits
  }

  async function s256(verifier) {
    return base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  }

  // A JWT's claims, read without checking the signature: only to compare the nonce and read the expiry
  // (the server verifies every token it is sent).
  function jwtClaims(token) {
    const part = String(token || "").split(".")[1];
    if (!part) return null;
    try {
      const padded = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
      const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))));
      return claims && typeof claims === "object" ? claims : null;
    } catch (err) {
      return null;
    }
  }

  function oidcHost() {
    try {
      return new URL(state.oidc.issuer).host;
    } catch (err) {
      return "your identity provider";
    }
  }

  // An error code from a URL or an identity provider, shown as a short code only: never free text from a link.
  const safeCode = (value) => String(value || "").replace(/[^A-Za-z0-9_.-]/g, "").slice(0, 60);

  async function loadAuth() {
    try {
      state.oidc = (await api("GET", "/v1/auth/config")).oidc || null;
    } catch (err) {
      state.oidc = null;
      $("sso").textContent = `Sign in with your identity provider is unavailable right now: ${err.message}`;
      $("sso").hidden = false;
      return;
    }
    if (state.oidc) {
      $("oidc-host").textContent = oidcHost();
      $("oidc").hidden = false;
      return;
    }
    let auth = null;  // tokens from an identity provider may still be accepted when pasted
    try {
      auth = await api("GET", "/v1/auth");
    } catch (err) {
      return;
    }
    if (auth && auth.oidc) {
      $("sso").textContent = `Tokens from ${auth.oidc.issuer} are accepted too: paste one.`;
      $("sso").hidden = false;
    }
  }

  async function startOidc() {
    const oidc = state.oidc;
    if (!oidc) return;
    if (!window.isSecureContext || !window.crypto || !crypto.subtle) {
      notify(`Sign in with ${oidcHost()} needs this page over https.`);
      return;
    }
    $("oidc-signin").disabled = true;
    const pending = { state: randomValue(), nonce: randomValue(), verifier: randomValue(), issuer: oidc.issuer,
      redirect_uri: new URL(oidc.redirect_path || CALLBACK_PATH, location.origin).href };
    const url = new URL(oidc.authorization_endpoint);
    for (const [key, value] of Object.entries(oidc.params || {})) url.searchParams.set(key, String(value));
    const flow = { response_type: "code", client_id: oidc.client_id, redirect_uri: pending.redirect_uri,
      scope: oidc.scopes, state: pending.state, nonce: pending.nonce, code_challenge: await s256(pending.verifier),
      code_challenge_method: "S256" };
    for (const [key, value] of Object.entries(flow)) url.searchParams.set(key, value);
    sessionStorage.setItem(OIDC_KEY, JSON.stringify(pending));
    location.assign(url.href);
  }

  // Back from the identity provider at /auth/callback?code=...&state=... (or ?error=...).
  async function finishOidc() {
    const params = new URLSearchParams(location.search);
    history.replaceState(null, "", "/");  // the code leaves the address bar and the history at once
    let pending = null;
    try {
      pending = JSON.parse(sessionStorage.getItem(OIDC_KEY) || "null");
    } catch (err) {
      pending = null;
    }
    sessionStorage.removeItem(OIDC_KEY);  // one answer per sign-in, whatever happens next
    const oidc = state.oidc;
    const fail = (message) => {
      signOut(message);
      return false;
    };
    if (!oidc) return fail("Sign in with your identity provider is not available on this server right now.");
    const where = oidcHost();
    if (params.get("error")) return fail(`${where} did not sign you in (${safeCode(params.get("error"))}).`);
    if (!pending || !params.get("state") || params.get("state") !== pending.state) {
      return fail("That sign-in answer does not match the sign-in this tab started (its state differs), "
        + "so it was refused. Sign in again.");
    }
    if (pending.issuer !== oidc.issuer || (params.has("iss") && params.get("iss") !== oidc.issuer)) {
      return fail("That sign-in answer came from another identity provider, so it was refused. Sign in again.");
    }
    if (!params.get("code")) return fail(`${where} sent no authorization code. Sign in again.`);
    let tokens = null;
    try {
      const response = await fetch(oidc.token_endpoint, {
        method: "POST",
        headers: { Accept: "application/json" },
        body: new URLSearchParams({ grant_type: "authorization_code", code: params.get("code"),
          redirect_uri: pending.redirect_uri, client_id: oidc.client_id, code_verifier: pending.verifier }),
        credentials: "omit",
        cache: "no-store",
      });
      tokens = await response.json().catch(() => null);
      if (!response.ok) {
        const code = safeCode(tokens && tokens.error) || `HTTP ${response.status}`;
        return fail(`${where} refused the sign-in (${code}). Sign in again.`);
      }
    } catch (err) {
      return fail(`${where} could not be reached to finish signing in. Sign in again.`);
    }
    const claims = jwtClaims(tokens && tokens.id_token);
    if (!claims || claims.nonce !== pending.nonce) {
      return fail(`${where}'s answer does not carry this sign-in's nonce, so it was refused. Sign in again.`);
    }
    const bearer = oidc.token === "access_token" ? tokens.access_token : tokens.id_token;
    if (typeof bearer !== "string" || !bearer) return fail(`${where} sent no ${oidc.token}. Sign in again.`);
    return signIn(bearer, { via: "oidc" });
  }

  // ---- conversations -------------------------------------------------------

  async function loadConversations(preferred) {
    const list = await api("GET", "/v1/conversations");
    const sorted = [...(list || [])].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
    renderConversationList(sorted);
    const pick = sorted.find((c) => c.id === (preferred || state.conversation)) || sorted[0];
    if (pick) await selectConversation(pick.id);
    else clearConversation();
  }

  function renderConversationList(list) {
    state.titles = new Map(list.map((c) => [c.id, c.title]));
    const items = list.map((c) => el("li", {},
      el("button", {
        type: "button",
        className: "conversation",
        "data-id": c.id,
        "aria-current": c.id === state.conversation ? "true" : null,
        onclick: () => selectConversation(c.id).catch((err) => notify(err.message)),
        title: c.id,
      }, el("span", { className: "title" }, c.title || "New conversation"),
      el("time", { className: "when", datetime: c.created_at }, formatTime(c.created_at || c.updated_at)))));
    if (!items.length) items.push(el("li", { className: "empty" }, "No conversations yet: say something to start one."));
    $("conversation-list").replaceChildren(...items);
  }

  // The chat's heading: the open conversation's title (its first request, from GET /v1/conversations).
  function showHeading() {
    const title = state.conversation ? state.titles.get(state.conversation) : null;
    $("chat-heading").textContent = title || (state.conversation ? "New conversation" : "Conversation");
  }

  function markCurrent() {
    for (const button of $("conversation-list").querySelectorAll("button.conversation")) {
      if (button.dataset.id === state.conversation) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  function clearConversation() {
    state.conversation = null;
    state.pendingConfirmation = null;
    sessionStorage.removeItem(CONVERSATION_KEY);
    $("messages").replaceChildren();
    $("timeline").replaceChildren();
    $("chat-heading").textContent = "Conversation";
  }

  async function newConversation() {
    const created = await api("POST", "/v1/conversations");
    clearConversation();
    state.conversation = created.id;
    sessionStorage.setItem(CONVERSATION_KEY, created.id);
    await refreshConversationList();
    $("message").focus();
  }

  async function refreshConversationList() {
    const list = await api("GET", "/v1/conversations");
    renderConversationList([...(list || [])].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at))));
    showHeading();
  }

  async function selectConversation(id) {
    const conversation = await api("GET", `/v1/conversations/${encodeURIComponent(id)}`);
    state.conversation = conversation.id;
    sessionStorage.setItem(CONVERSATION_KEY, conversation.id);
    state.pendingConfirmation = pendingConfirmationId(conversation.pending);
    showHeading();
    const messages = $("messages");
    messages.setAttribute("aria-busy", "true");
    messages.replaceChildren(...(conversation.messages || []).map(renderStoredMessage));
    messages.setAttribute("aria-busy", "false");
    markCurrent();
    scrollToEnd();
    await refreshTimeline();
  }

  function pendingConfirmationId(pending) {
    if (!pending) return null;
    const confirmation = pending.confirmation;
    if (typeof confirmation === "string") return confirmation;
    if (confirmation && confirmation.id) return confirmation.id;
    return pending.kind === "confirmation" ? pending.id || null : null;
  }

  // ---- messages ------------------------------------------------------------

  function renderStoredMessage(message) {
    if (message.role === "person") return personMessage(message.text, message.at);
    if (message.data) return turnMessage(message.data, message.at);
    return el("li", { className: "message sayso" }, el("p", { className: "speaker" }, "sayso"),
      el("p", { className: "reply" }, message.text || ""));
  }

  function personMessage(text, at) {
    return el("li", { className: "message person" },
      el("p", { className: "speaker" }, "You", at ? el("time", { datetime: at }, ` · ${formatTime(at)}`) : null),
      el("p", { className: "text" }, text));
  }

  function noteMessage(text) {
    return el("li", { className: "message note" }, el("p", {}, text));
  }

  function turnMessage(turn, at) {
    const status = turn.status || "error";
    const item = el("li", { className: `message sayso status-${status}`, "data-status": status, "data-turn": turn.turn });
    item.append(el("p", { className: "speaker" }, "sayso ",
      el("span", { className: "badge" }, status.replaceAll("_", " ")),
      at ? el("time", { datetime: at }, ` · ${formatTime(at)}`) : null));

    const steps = turn.steps || [];
    const reads = steps.filter((step) => Array.isArray(step.records));
    const onlyReads = status === "answered" && reads.length > 0 && reads.length === steps.length;
    if (status === "needs_confirmation" && turn.confirmation && turn.confirmation.requester) {
      // asked of someone else: their card has the buttons; this one says whom it waits for
      item.append(el("p", { className: "reply" }, turn.reply || ""),
        el("p", { className: "hint" }, `Waiting for ${turn.confirmation.approver}.`));
    } else if (status === "needs_confirmation") {
      item.append(confirmationCard(turn));
    } else if (!onlyReads) {
      item.append(el("p", { className: "reply" }, turn.reply || ""));
    }
    for (const step of reads) item.append(recordsTable(step));
    if (turn.rule) item.append(el("p", { className: "rule" }, "Rule: ", el("code", {}, turn.rule)));
    if (turn.error && turn.error.code) item.append(el("p", { className: "rule" }, "Error: ", el("code", {}, turn.error.code)));
    if (turn.options && turn.options.length) item.append(optionButtons(turn.options));
    return item;
  }

  function recordsTable(step) {
    const records = step.records || [];
    const kinds = [...new Set(records.map((r) => r.type || "record"))];
    const noun = (kinds.length === 1 ? kinds[0] : "record").replace(/_/g, " ").toLowerCase();
    const caption = records.length ? `Found ${records.length} ${noun}${records.length === 1 ? "" : "s"}` : "I found nothing that matches.";
    if (!records.length) return el("p", { className: "reply" }, caption);
    const keys = [...new Set(["id", "title", ...records.flatMap((r) => Object.keys(r))])]
      .filter((key) => !HIDDEN_KEYS.has(key) && records.some((r) => r[key] !== undefined));
    const cell = (value) => {
      const text = formatValue(value);
      return text.length > LONG_CELL ? el("td", { title: text }, `${text.slice(0, LONG_CELL)}…`) : el("td", {}, text);
    };
    const table = el("table", {},
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, keys.map((key) => el("th", { scope: "col" }, key.replaceAll("_", " "))))),
      el("tbody", {}, records.map((record) => el("tr", {}, keys.map((key) => cell(record[key]))))));
    return el("div", { className: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" }, table);
  }

  function confirmationCard(turn) {
    const confirmation = turn.confirmation || {};
    const headingId = `card-${confirmation.id || turn.turn || Math.random().toString(36).slice(2)}`;
    const card = el("section", { className: "card", "aria-labelledby": headingId, "data-confirmation": confirmation.id });
    card.append(el("h3", { id: headingId }, "Needs your confirmation"));
    // The reply says it in words: what changed since the last card, then one line per step ("- Close a deal
    // as won or lost: deal D-102, outcome won (high risk)"); action names stay in the API's fields.
    const lines = String(turn.reply || "").split("\n");
    const head = lines.findIndex((line) => /needs your confirmation:?$/i.test(line));
    for (const line of lines.slice(0, Math.max(head, 0))) card.append(el("p", { className: "changed" }, line));
    const said = lines.filter((line) => line.startsWith("- ")).map((line) => line.slice(2));
    (turn.steps || []).forEach((step, i) => {
      card.append(el("p", { className: "step" }, said[i] || formatArgs(step.args)));
      const preview = (step.effect && step.effect.preview) || [];
      if (preview.length) card.append(el("ul", { className: "changes" }, preview.map((c) => el("li", {}, describeChange(c)))));
    });
    if (confirmation.expires_at) card.append(el("p", { className: "hint" }, `Expires ${formatTime(confirmation.expires_at)}.`));
    const outcome = el("p", { className: "outcome", role: "status" });
    const approve = el("button", { type: "button", className: "approve" }, "Approve");
    const decline = el("button", { type: "button", className: "decline" }, "Decline");
    // Whether it expired is the server's to say (its clock decides, not this browser's): a click on an expired
    // card is answered with the reason, in words (UNUSABLE).
    const active = Boolean(confirmation.id) && confirmation.id === state.pendingConfirmation;
    approve.disabled = decline.disabled = !active;
    if (!active) outcome.textContent = "No longer waiting: see the activity for what happened.";
    const settle = (verb) => async () => {
      approve.disabled = decline.disabled = true;
      outcome.textContent = verb === "approve" ? "Approving…" : "Declining…";
      try {
        const result = await api("POST", `/v1/confirmations/${encodeURIComponent(confirmation.id)}/${verb}`,
          undefined, { turn: true });
        const settled = result.status !== "error";
        outcome.textContent = settled ? (verb === "approve" ? "You approved this." : "You declined this.")
          : UNUSABLE[result.error && result.error.code] || result.reply;
        state.pendingConfirmation = null;
        showTurn(result);
      } catch (err) {
        outcome.textContent = err.message;
        if (err.status === 0 || err.status >= 500) approve.disabled = decline.disabled = false;
      }
      $("message").focus();
      await refreshTimeline();
    };
    approve.addEventListener("click", settle("approve"));
    decline.addEventListener("click", settle("decline"));
    card.append(el("div", { className: "actions" }, approve, decline), outcome);
    return card;
  }

  // Why a card's buttons no longer work, in words, by the error code the server answered with.
  const UNUSABLE = {
    confirmation_expired: "This card expired: ask again for a new one.",
    confirmation_used: "This card was already answered, or replaced by a changed request: use the newest card.",
    confirmation_not_yours: "This card is not yours to answer.",
  };

  function optionButtons(options) {
    const group = el("div", { className: "options", role: "group", "aria-label": "Choose one" });
    for (const option of options) {
      group.append(el("button", {
        type: "button",
        className: "option",
        onclick: (event) => {
          if (state.busy) return;
          for (const button of group.querySelectorAll("button")) button.disabled = true;
          event.currentTarget.setAttribute("aria-pressed", "true");
          send(option.value);
        },
      }, option.label));
    }
    return group;
  }

  // Show a turn the server just returned; earlier confirmation cards stop waiting.
  function showTurn(turn) {
    state.pendingConfirmation = turn.status === "needs_confirmation" && turn.confirmation && !turn.confirmation.requester
      ? turn.confirmation.id : null;
    for (const card of $("messages").querySelectorAll(".card")) {
      if (card.dataset.confirmation === state.pendingConfirmation) continue;
      for (const button of card.querySelectorAll("button")) button.disabled = true;
    }
    $("messages").append(turnMessage(turn));
    scrollToEnd();
  }

  function scrollToEnd() {
    const messages = $("messages");
    messages.scrollTop = messages.scrollHeight;
  }

  async function send(text) {
    const message = (text || "").trim();
    if (!message || state.busy) return;
    state.busy = true;
    $("send").disabled = true;
    try {
      if (!state.conversation) {
        const created = await api("POST", "/v1/conversations");
        state.conversation = created.id;
        sessionStorage.setItem(CONVERSATION_KEY, created.id);
      }
      $("messages").append(personMessage(message));
      scrollToEnd();
      const turn = await api("POST", `/v1/conversations/${encodeURIComponent(state.conversation)}/messages`,
        { text: message }, { turn: true });
      showTurn(turn);
    } catch (err) {
      if (state.token) $("messages").append(noteMessage(`Not sent: ${err.message}`));
    } finally {
      state.busy = false;
      $("send").disabled = false;
    }
    if (!state.token) return;
    await refreshTimeline();
    try {
      await refreshConversationList();
    } catch (err) {
      notify(err.message);
    }
  }

  // ---- timeline ------------------------------------------------------------

  const EVENT_LABELS = {
    turn: "Asked", interpretation: "Understood", grounding: "Found", decision: "Decided",
    confirmation: "Confirmation", call: "Called", effect: "Changed", error: "Error",
  };

  function describeEvent(item) {
    const detail = item.detail || {};
    const status = item.status || "";
    switch (item.event) {
      case "turn":
        if (status === "received") return ["Asked", detail.request ? formatValue(detail.request.text) : ""];
        return ["Result", status.replaceAll("_", " ")];
      case "interpretation":
        if (detail.kind === "plan") {
          return ["Understood", (detail.steps || []).map((s) => `${s.action} ${formatArgs(s.args)}`.trim()).join("; ")];
        }
        if (detail.kind === "question") return ["Asked back", formatValue(detail.question)];
        if (detail.kind === "reply") return ["Understood", `an answer: ${detail.reason || ""} ${formatValue(detail.value)}`.trim()];
        return ["Understood", `no action${detail.reason ? ` (${detail.reason})` : ""}`];
      case "grounding": {
        const found = { ...(detail.records || {}), ...(detail.people || {}), ...(detail.channels || {}) };
        return ["Found", Object.keys(found).length ? formatArgs(found) : "nothing to look up"];
      }
      case "decision": {
        const rule = detail.rule ? `rule ${detail.rule}` : "no rule";
        return ["Decided", `${status} by ${rule}${detail.reason ? `: ${detail.reason}` : ""}`];
      }
      case "confirmation": {
        const who = detail.approver || item.actor || "";
        const verbs = { pending: `asked of ${who}`, approved: `approved by ${item.actor || who}`,
          cancelled: `declined by ${item.actor || who}`, superseded: "superseded" };
        return ["Confirmation", verbs[status] || status];
      }
      case "call":
        return ["Called", `${detail.connector || ""}${detail.operation ? `.${detail.operation}` : ""} (${status})`];
      case "effect": {
        const where = detail.connector ? `in ${detail.connector}: ` : "";
        const what = detail.summary || (detail.changes || []).map(describeChange).join("; ");
        return ["Changed", `${where}${what}`];
      }
      case "error":
        return ["Error", [detail.code, detail.message].filter(Boolean).join(": ") || status];
      default:
        return [EVENT_LABELS[item.event] || item.event, status];
    }
  }

  let timelineRequest = 0;

  async function refreshTimeline() {
    if (!state.conversation) return;
    const ticket = ++timelineRequest;  // only the latest request may draw: answers can arrive out of order
    let events;
    try {
      events = await api("GET", `/v1/conversations/${encodeURIComponent(state.conversation)}/timeline`);
    } catch (err) {
      if (ticket === timelineRequest) {
        $("timeline").replaceChildren(el("li", { className: "empty" }, `The activity could not be loaded: ${err.message}`));
      }
      return;
    }
    if (ticket !== timelineRequest) return;
    const items = (events || []).map((item) => {
      const [label, text] = describeEvent(item);
      return el("li", { className: `event event-${item.event}`, "data-event": item.event },
        el("p", { className: "event-head" },
          el("strong", {}, label),
          item.action ? el("code", {}, item.action) : null,
          el("time", { datetime: item.at, title: formatTime(item.at) }, formatTime(item.at, { timeStyle: "short" })),
          item.actor ? el("span", { className: "actor" }, item.actor) : null),
        text ? el("p", { className: "event-text" }, text) : null);
    });
    if (!items.length) items.push(el("li", { className: "empty" }, "Nothing yet."));
    const timeline = $("timeline");
    timeline.replaceChildren(...items);
    timeline.scrollTop = timeline.scrollHeight;  // the newest activity in view
    settleCards(events || []);
  }

  // A confirmation the audit shows as settled no longer offers its buttons, whatever the page thought.
  function settleCards(events) {
    const settled = new Map();
    for (const item of events) {
      const id = item.event === "confirmation" && item.detail && item.detail.id;
      if (id && ["approved", "cancelled", "superseded", "expired"].includes(item.status)) settled.set(id, item);
    }
    for (const card of $("messages").querySelectorAll(".card[data-confirmation]")) {
      const item = settled.get(card.dataset.confirmation);
      if (!item) continue;
      for (const button of card.querySelectorAll("button")) button.disabled = true;
      if (state.pendingConfirmation === card.dataset.confirmation) state.pendingConfirmation = null;
      const [, text] = describeEvent(item);
      const outcome = card.querySelector(".outcome");
      const line = item.status === "superseded" ? "Replaced by a changed request: use the newest card."
        : `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
      if (outcome && outcome.textContent !== line) outcome.textContent = line;
    }
  }

  // ---- wiring --------------------------------------------------------------

  async function start() {
    rememberApprovalLink();
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (token) signIn(token);
    });
    $("oidc-signin").addEventListener("click", () => startOidc().catch((err) => {
      $("oidc-signin").disabled = false;
      notify(`Sign in with ${oidcHost()} could not start: ${err.message}`);
    }));
    $("signout").addEventListener("click", () => signOut("You are signed out."));
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("message");
      const text = input.value;
      if (!text.trim() || state.busy) return;
      input.value = "";
      send(text);
    });
    $("new-conversation").addEventListener("click", () => newConversation().catch((err) => notify(err.message)));
    $("refresh-timeline").addEventListener("click", () => refreshTimeline());
    await loadAuth();
    if (location.pathname === CALLBACK_PATH) {
      await finishOidc();
      return;
    }
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) await signIn(saved, { via: sessionStorage.getItem(VIA_KEY) || "token", restored: true });
    else focusSignIn();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
