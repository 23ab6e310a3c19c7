// The coordinator's admin dashboard: signs in, polls the admin API, and keeps the page's
// tables in step with it by updating rows in place (never by rebuilding a table), so that
// scroll position, focus, filters and sort survive every refresh.
//
// Every piece of text from the API reaches the page through textContent or an attribute,
// never through innerHTML, and the page's Content-Security-Policy forbids inline code.
"use strict";

(() => {
  const API = "/api/admin";
  const WORKER_LIMIT = 5000;
  const REFRESH_MS = (() => {
    const asked = Number(new URLSearchParams(window.location.search).get("refresh"));
    return Number.isFinite(asked) && asked > 0 ? Math.max(500, Math.round(asked)) : 5000;
  })();
  const SVG_NS = "http://www.w3.org/2000/svg";
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  const byId = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------------------------
  // State

  const state = {
    csrf: null,
    signedIn: false,
    /** Bumped whenever the session ends, so answers to older requests are dropped. */
    generation: 0,
    timer: 0,
    refreshing: null,
    refreshAgain: false,
    refreshes: 0,
    lastSuccess: 0,
    failing: null,
    /** Server clock minus browser clock, when they differ by more than a couple of seconds. */
    clockOffset: 0,
    overview: null,
    /** worker id → entry {w, raw, search, keys, sig} */
    entries: new Map(),
    workersTotal: 0,
    orderDirty: true,
    sort: { col: "name", dir: 1 },
    filter: { words: [], tier: "", liveness: "", schedulability: "" },
    /** Worker actions done here, so an older refresh in flight does not undo them. */
    changeSeq: 0,
    changedAt: new Map(),
    removedAt: new Map(),
    secretsSeq: 0,
    apiKeys: null,
    tokens: null,
  };

  // ---------------------------------------------------------------------------------------
  // Formatting

  function parseTime(text) {
    if (!text) return NaN;
    // A time without a zone would be read as local time; the API speaks UTC.
    const zoned = /([zZ]|[+-]\d\d:?\d\d)$/.test(text) ? text : `${text}Z`;
    return Date.parse(zoned);
  }

  function serverNow() {
    return Date.now() + state.clockOffset;
  }

  function ago(ms) {
    const seconds = Math.max(0, Math.round(ms / 1000));
    if (seconds < 1) return "just now";
    if (seconds < 60) return `${seconds} s ago`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ago`;
    return `${Math.floor(hours / 24)} d ago`;
  }

  function duration(seconds) {
    if (!Number.isFinite(seconds) || seconds <= 0) return "–";
    if (seconds < 90) return `${Math.round(seconds)} s`;
    const minutes = Math.round(seconds / 60);
    if (minutes < 90) return `${minutes} min`;
    return `${Math.round(minutes / 6) / 10} h`;
  }

  // One formatter each: Date.prototype.toLocaleString builds a new one on every call, which
  // was the largest cost of refreshing 2,000 rows.
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

  function localTime(ms) {
    return Number.isFinite(ms) ? dateTimeFormat.format(ms) : "unknown";
  }

  function shortDate(ms) {
    return Number.isFinite(ms) ? dateFormat.format(ms) : "–";
  }

  function bytes(value) {
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) return null;
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let size = value;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return `${size >= 10 || unit === 0 ? Math.round(size) : size.toFixed(1)} ${units[unit]}`;
  }

  function count(value) {
    return typeof value === "number" && Number.isFinite(value) ? String(value) : "–";
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  function workerLabel(w) {
    return w.name || `worker ${w.worker_id.slice(0, 8)}`;
  }

  function hardwareSummary(caps) {
    if (!caps) return "";
    const parts = [];
    if (caps.cpu_cores) parts.push(`${caps.cpu_cores} cores`);
    const ram = bytes(caps.ram);
    if (ram) parts.push(`${ram} RAM`);
    for (const gpu of caps.gpus || []) {
      const memory = bytes(gpu.memory);
      parts.push(memory ? `${gpu.name} (${memory})` : gpu.name);
    }
    if (caps.os) parts.push(caps.arch ? `${caps.os} ${caps.arch}` : caps.os);
    if (caps.docker && !caps.docker.usable) parts.push(`Docker ${caps.docker.status.replace(/_/g, " ")}`);
    return parts.join(" · ");
  }

  function hardwareDetails(w) {
    const caps = w.capabilities || {};
    const lines = [`${workerLabel(w)} (${w.worker_id})`];
    if (caps.cpu_model) lines.push(`CPU: ${caps.cpu_model}`);
    const summary = hardwareSummary(caps);
    if (summary) lines.push(summary);
    if (caps.docker && caps.docker.message) lines.push(caps.docker.message);
    if (w.reported_status) lines.push(`Agent says: ${w.reported_status}`);
    lines.push(`Joined ${localTime(parseTime(w.registered_at))}`);
    return lines.join("\n");
  }

  // ---------------------------------------------------------------------------------------
  // DOM helpers (text only: nothing from the API is ever parsed as markup)

  function el(tag, options = {}, children = []) {
    const node = document.createElement(tag);
    if (options.className) node.className = options.className;
    if (options.text !== undefined) node.textContent = options.text;
    if (options.title) node.title = options.title;
    if (options.attrs) for (const [name, value] of Object.entries(options.attrs)) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function show(node, visible) {
    if (node.hidden === visible) node.hidden = !visible;
  }

  /** Re-render one cell only when what it shows changed. */
  function setCell(row, col, sig, render) {
    if (row.sig[col] === sig) return;
    row.sig[col] = sig;
    render(row.cells[col]);
  }

  /**
   * Put ``rows`` into ``tbody`` in this order, moving only rows out of place and removing
   * the rest. Focus inside the table survives moves.
   */
  function placeRows(tbody, rows) {
    const focused = tbody.contains(document.activeElement) ? document.activeElement : null;
    if (!tbody.firstChild && rows.length) {
      const fragment = document.createDocumentFragment();
      for (const tr of rows) fragment.append(tr);
      tbody.append(fragment);
      return;
    }
    let cursor = tbody.firstChild;
    for (const tr of rows) {
      if (tr === cursor) cursor = cursor.nextSibling;
      else tbody.insertBefore(tr, cursor);
    }
    while (cursor) {
      const next = cursor.nextSibling;
      cursor.remove();
      cursor = next;
    }
    if (focused && focused.isConnected && document.activeElement !== focused) {
      focused.focus({ preventScroll: true });
    }
  }

  /** Rows of a small table kept by key and updated in place. */
  class KeyedRows {
    constructor(tbody, { key, create, update }) {
      this.tbody = tbody;
      this.key = key;
      this.create = create;
      this.update = update;
      this.rows = new Map();
    }

    render(items) {
      const seen = new Set();
      const ordered = [];
      for (const item of items) {
        const key = this.key(item);
        seen.add(key);
        let row = this.rows.get(key);
        if (!row) {
          row = this.create(item);
          this.rows.set(key, row);
        }
        this.update(row, item);
        ordered.push(row.tr);
      }
      for (const key of [...this.rows.keys()]) if (!seen.has(key)) this.rows.delete(key);
      placeRows(this.tbody, ordered);
    }

    get(key) {
      return this.rows.get(key);
    }

    clear() {
      this.rows.clear();
      this.tbody.replaceChildren();
    }
  }

  function makeRow(testid, columns, labels) {
    const tr = document.createElement("tr");
    tr.dataset.testid = testid;
    const cells = {};
    for (const col of columns) {
      const td = document.createElement("td");
      td.dataset.col = col;
      if (labels && labels[col]) td.dataset.label = labels[col];
      tr.append(td);
      cells[col] = td;
    }
    return { tr, cells, sig: {} };
  }

  // ---------------------------------------------------------------------------------------
  // The API

  class ApiFailure extends Error {
    constructor(status, code, detail) {
      super(detail);
      this.status = status;
      this.code = code;
      this.detail = detail;
    }
  }

  function plainDetail(status) {
    if (status === 404) return "The coordinator does not know this (it may have been removed already).";
    if (status === 429) return "Too many attempts. Wait a minute and try again.";
    if (status >= 500) return `The coordinator ran into a problem (error ${status}). Try again in a moment.`;
    return `The coordinator refused the request (error ${status}).`;
  }

  function noteServerClock(response) {
    const date = Date.parse(response.headers.get("Date") || "");
    if (!Number.isFinite(date)) return;
    // The Date header has whole seconds, so only a real skew is worth correcting.
    const offset = date + 500 - Date.now();
    state.clockOffset = Math.abs(offset) > 2000 ? offset : 0;
  }

  /**
   * Call the admin API and return its JSON answer.
   *
   * A 401 ends the session (the sign-in screen comes back) unless ``signingIn``; every
   * failure is thrown as an ApiFailure whose ``detail`` is a sentence for the admin.
   */
  async function api(method, path, body, { signingIn = false, retried = false } = {}) {
    const generation = state.generation;
    const headers = { Accept: "application/json" };
    // Under a no-referrer policy browsers send "Origin: null" with a POST, which the API
    // refuses as cross-site; "same-origin" (also the page's policy) sends the real origin
    // (and a Referer) to this coordinator only.
    const init = { method, headers, credentials: "same-origin", cache: "no-store", referrerPolicy: "same-origin" };
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    let data = null;
    try {
      response = await fetch(API + path, init);
      const text = await response.text();
      if (text) {
        try {
          data = JSON.parse(text);
        } catch {
          data = null;
        }
      }
    } catch {
      throw new ApiFailure(0, "network", "Cannot reach the coordinator. Check the connection; the page keeps trying.");
    }
    noteServerClock(response);
    if (response.ok) return data;
    const code = data && typeof data.code === "string" ? data.code : "";
    const detail = data && typeof data.detail === "string" && data.detail ? data.detail : plainDetail(response.status);
    if (response.status === 401 && !signingIn) {
      if (generation === state.generation) endSession("Your session has ended. Sign in again to go on.");
      throw new ApiFailure(401, code || "unauthorized", detail);
    }
    if (response.status === 403 && /csrf/i.test(code) && method !== "GET" && !retried) {
      // The CSRF token may have been renewed (e.g. in another tab): fetch it and try once more.
      const session = await api("GET", "/session");
      if (session && session.csrf_token) state.csrf = session.csrf_token;
      return api(method, path, body, { signingIn, retried: true });
    }
    throw new ApiFailure(response.status, code, detail);
  }

  function failureText(error) {
    if (error instanceof ApiFailure) return error.detail;
    console.error(error);
    return "Something went wrong in the page. Reload it and try again.";
  }

  // ---------------------------------------------------------------------------------------
  // Toast and confirmation dialog

  const toastNode = byId("toast");
  let toastTimer = 0;

  function toast(message, kind = "ok") {
    toastNode.textContent = message;
    toastNode.className = `toast ${kind}`;
    toastNode.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      toastNode.hidden = true;
    }, kind === "error" ? 9000 : 5000);
  }

  toastNode.addEventListener("click", () => {
    toastNode.hidden = true;
  });

  const dialog = byId("confirm-dialog");
  const dialogOk = byId("confirm-ok");
  let dialogResolve = null;

  function closeDialog(confirmed) {
    const resolve = dialogResolve;
    dialogResolve = null;
    if (dialog.open) dialog.close();
    if (resolve) resolve(confirmed);
  }

  /** Ask before doing something; resolves true when the admin confirms. */
  function confirmAction({ title, message, ok, danger = false }) {
    if (dialogResolve) closeDialog(false);
    setText(byId("confirm-title"), title);
    setText(byId("confirm-message"), message);
    setText(dialogOk, ok);
    dialogOk.classList.toggle("danger", danger);
    dialogOk.classList.toggle("primary", !danger);
    return new Promise((resolve) => {
      dialogResolve = resolve;
      dialog.showModal();
    });
  }

  dialogOk.addEventListener("click", () => closeDialog(true));
  byId("confirm-cancel").addEventListener("click", () => closeDialog(false));
  // Escape closes the dialog by itself; the promise must still settle.
  dialog.addEventListener("close", () => {
    if (!dialog.open) closeDialog(false);
  });

  // ---------------------------------------------------------------------------------------
  // Signing in and out

  const loading = byId("loading");
  const signinScreen = byId("signin");
  const dashboard = byId("dashboard");
  const signinForm = byId("signin-form");
  const tokenInput = byId("signin-token");
  const signinError = byId("signin-error");
  const signinNotice = byId("signin-notice");
  const signinSubmit = signinForm.querySelector("button[type=submit]");

  function showSignIn({ notice = "", error = "" } = {}) {
    loading.hidden = true;
    dashboard.hidden = true;
    signinScreen.hidden = false;
    signinNotice.textContent = notice;
    signinNotice.hidden = !notice;
    signinError.textContent = error;
    signinError.hidden = !error;
    tokenInput.removeAttribute("aria-invalid");
    signinSubmit.disabled = false;
    setText(signinSubmit, "Sign in");
    tokenInput.focus();
  }

  /** Forget everything the session showed, then show the sign-in screen. */
  function endSession(notice) {
    state.generation += 1;
    state.signedIn = false;
    state.csrf = null;
    clearTimeout(state.timer);
    state.timer = 0;
    state.refreshAgain = false;
    state.lastSuccess = 0;
    state.failing = null;
    state.overview = null;
    state.entries.clear();
    state.changedAt.clear();
    state.removedAt.clear();
    state.apiKeys = null;
    state.tokens = null;
    state.orderDirty = true;
    workerRows.clear();
    workersBody.replaceChildren();
    servicesRows.clear();
    apiKeysPanel.reset();
    tokensPanel.reset();
    closeDialog(false);
    toastNode.hidden = true;
    byId("refresh-warning").hidden = true;
    delete document.body.dataset.ready;
    delete document.body.dataset.signedIn;
    showSignIn({ notice });
  }

  function startSession(session) {
    state.csrf = session.csrf_token;
    state.signedIn = true;
    state.generation += 1;
    document.body.dataset.signedIn = "1";
    loading.hidden = true;
    signinScreen.hidden = true;
    dashboard.hidden = false;
    updateLastUpdated();
    refreshNow();
  }

  signinForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = tokenInput.value.trim();
    if (!token) {
      signinError.textContent = "Enter the admin token.";
      signinError.hidden = false;
      tokenInput.setAttribute("aria-invalid", "true");
      tokenInput.focus();
      return;
    }
    signinSubmit.disabled = true;
    setText(signinSubmit, "Signing in…");
    signinError.hidden = true;
    try {
      const session = await api("POST", "/session", { token }, { signingIn: true });
      tokenInput.value = "";
      signinNotice.hidden = true;
      startSession(session);
    } catch (error) {
      let message = failureText(error);
      if (error instanceof ApiFailure && error.status === 401 && !error.detail) {
        message = "That is not the admin token.";
      }
      signinError.textContent = message;
      signinError.hidden = false;
      tokenInput.setAttribute("aria-invalid", "true");
      tokenInput.focus();
      tokenInput.select();
    } finally {
      signinSubmit.disabled = false;
      setText(signinSubmit, "Sign in");
    }
  });

  byId("signout").addEventListener("click", async () => {
    try {
      // signingIn: a 401 here only means the server had already forgotten the session.
      await api("DELETE", "/session", undefined, { signingIn: true });
    } catch (error) {
      // Signed out here either way; a failure only means the server already forgot us.
      if (!(error instanceof ApiFailure)) console.error(error);
    }
    if (state.signedIn) endSession("You have signed out.");
  });

  // ---------------------------------------------------------------------------------------
  // Refreshing

  function scheduleRefresh() {
    clearTimeout(state.timer);
    state.timer = 0;
    if (!state.signedIn || document.hidden) return;
    state.timer = setTimeout(refreshNow, REFRESH_MS);
  }

  async function refreshNow() {
    if (!state.signedIn) return;
    if (state.refreshing) {
      state.refreshAgain = true;
      return;
    }
    clearTimeout(state.timer);
    state.timer = 0;
    const generation = state.generation;
    const seqAtStart = state.changeSeq;
    const secretsSeqAtStart = state.secretsSeq;
    state.refreshing = Promise.allSettled([
      api("GET", "/overview"),
      api("GET", `/workers?limit=${WORKER_LIMIT}`),
      api("GET", "/api-keys"),
      api("GET", "/enrollment-tokens"),
    ]);
    try {
      const [overview, workers, keys, tokens] = await state.refreshing;
      if (generation !== state.generation) return;
      if (overview.status === "fulfilled") {
        state.overview = overview.value;
        renderOverview();
      }
      if (workers.status === "fulfilled") {
        applyWorkers(workers.value, seqAtStart);
        renderWorkers();
      }
      if (state.secretsSeq === secretsSeqAtStart) {
        if (keys.status === "fulfilled") apiKeysPanel.setData(keys.value);
        else apiKeysPanel.loadFailed(keys.reason);
        if (tokens.status === "fulfilled") tokensPanel.setData(tokens.value);
        else tokensPanel.loadFailed(tokens.reason);
      }
      const failed = [overview, workers].find((result) => result.status === "rejected");
      if (failed) {
        state.failing = failureText(failed.reason);
      } else {
        state.failing = null;
        state.lastSuccess = Date.now();
        state.refreshes += 1;
        document.body.dataset.refreshes = String(state.refreshes);
        document.body.dataset.ready = "1";
      }
      updateLastUpdated();
    } catch (error) {
      // A bug in rendering: report it and keep polling with the data we have.
      console.error(error);
    } finally {
      state.refreshing = null;
      // A refresh asked for meanwhile runs now, even when the session changed under this
      // one (signed out and in again): the new session's first refresh waited for it.
      if (state.refreshAgain && state.signedIn) {
        state.refreshAgain = false;
        refreshNow();
      } else if (generation === state.generation) {
        scheduleRefresh();
      }
    }
  }

  function updateLastUpdated() {
    const node = byId("last-updated");
    const warning = byId("refresh-warning");
    if (!state.signedIn) return;
    const since = state.lastSuccess ? ago(Date.now() - state.lastSuccess) : null;
    setText(node, since ? `Updated ${since}` : "Loading…");
    node.classList.toggle("stale", Boolean(state.failing));
    if (state.failing) {
      const known = since && since !== "just now" ? ` Showing the data from ${since}.` : "";
      setText(warning, `Could not refresh: ${state.failing}${known}`);
      show(warning, true);
    } else {
      show(warning, false);
    }
  }

  setInterval(updateLastUpdated, 1000);

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(state.timer);
      state.timer = 0;
    } else if (state.signedIn) {
      refreshNow();
    }
  });

  // ---------------------------------------------------------------------------------------
  // Overview: stat cards, charts, services

  function renderOverview() {
    const overview = state.overview;
    const stats = overview.stats || {};
    const relay = overview.relay || {};
    setText(byId("version"), overview.version ? `v${overview.version}` : "");
    const stat = (name) => document.querySelector(`[data-testid=stat-${name}]`);
    setText(stat("online"), count(stats.online_workers));
    setText(stat("active"), count(stats.active_workers));
    setText(stat("offline"), count(stats.offline_workers));
    setText(stat("total"), count(stats.total_workers));
    setText(stat("requests"), count(relay.requests_total));
    setText(stat("errors"), count(relay.errors_total));
    setText(stat("tunnels"), count(relay.tunnels_open));
    setText(byId("sub-online"), `of ${plural(stats.total_workers || 0, "machine", "machines")}`);
    const total = relay.requests_total || 0;
    const errorShare = total ? ` (${((100 * (relay.errors_total || 0)) / total).toFixed(1)} %)` : "";
    setText(byId("sub-errors"), `answers with a 5xx status${errorShare}`);
    setText(byId("sub-requests"), `relayed since start · ${count(relay.in_flight)} in flight`);
    const banned = relay.workers_banned || 0;
    setText(byId("sub-tunnels"), banned ? `${plural(banned, "worker", "workers")} held back after failures` : "workers ready to relay");
    stat("errors").classList.toggle("bad", (relay.errors_total || 0) > 0);
    renderTiers(stats.tiers || {});
    renderCharts(overview);
    renderServices(overview.services || []);
  }

  function renderTiers(tiers) {
    const list = byId("stat-tiers");
    const names = Object.keys(tiers).sort(collator.compare);
    const sig = JSON.stringify(tiers);
    if (list.dataset.sig === sig) return;
    list.dataset.sig = sig;
    const fragment = document.createDocumentFragment();
    if (!names.length) fragment.append(el("dd", { className: "muted", text: "No workers yet" }));
    for (const name of names) {
      const counts = tiers[name] || {};
      const row = el("div", { className: "tier-row" }, [
        el("dt", { text: `Tier ${name}` }),
        el("dd", { text: `${count(counts.online)} / ${count(counts.total)}` }),
      ]);
      fragment.append(row);
    }
    list.replaceChildren(fragment);
  }

  // Charts ------------------------------------------------------------------------------

  const CHART_W = 300;
  const CHART_H = 100;
  const CHART_TOP = 6;
  const CHART_BOTTOM = 2;

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
      if (value <= step * magnitude) return step * magnitude;
    }
    return 10 * magnitude;
  }

  /** The persistent parts of one chart: grid lines and one path per series. */
  function chartParts(svg, seriesClasses) {
    if (svg.parts) return svg.parts;
    const grid = document.createElementNS(SVG_NS, "path");
    grid.setAttribute("class", "grid");
    svg.append(grid);
    const paths = seriesClasses.map((className) => {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("class", className);
      svg.append(path);
      return path;
    });
    svg.parts = { grid, paths };
    return svg.parts;
  }

  function chartY(value, max) {
    return CHART_H - CHART_BOTTOM - (value / max) * (CHART_H - CHART_TOP - CHART_BOTTOM);
  }

  /** An SVG path through the points; a null value breaks the line. */
  function linePath(times, values, max, t0, span) {
    let d = "";
    let open = false;
    for (let i = 0; i < values.length; i += 1) {
      const value = values[i];
      if (value === null || value === undefined || !Number.isFinite(value)) {
        open = false;
        continue;
      }
      const x = ((times[i] - t0) / span) * CHART_W;
      const y = chartY(value, max);
      const lone = !open && (i + 1 >= values.length || values[i + 1] === null || values[i + 1] === undefined);
      d += `${open ? "L" : "M"}${x.toFixed(2)} ${y.toFixed(2)}`;
      if (lone) d += "l0.01 0"; // a lone point still shows as a dot (round line caps)
      open = true;
    }
    return d;
  }

  function areaPath(times, values, max, t0, span) {
    const line = linePath(times, values, max, t0, span);
    if (!line || line.indexOf("M", 1) !== -1) return line;
    const base = (CHART_H - CHART_BOTTOM).toFixed(2);
    const first = ((times[0] - t0) / span) * CHART_W;
    const last = ((times[times.length - 1] - t0) / span) * CHART_W;
    return `${line}L${last.toFixed(2)} ${base}L${first.toFixed(2)} ${base}Z`;
  }

  function gridPath() {
    const lines = [0, 0.5, 1].map((share) => {
      const y = chartY(share, 1).toFixed(2);
      return `M0 ${y}H${CHART_W}`;
    });
    return lines.join("");
  }

  function drawChart(svg, { series, times, max, peakText, spanText, empty, label }) {
    const figure = svg.closest("figure");
    const parts = chartParts(svg, series.map((s) => s.className));
    show(figure.querySelector(".chart-empty"), empty);
    figure.classList.toggle("is-empty", empty);
    setText(figure.querySelector(".span-label"), spanText);
    setText(figure.querySelector(".chart-peak"), empty ? "" : peakText);
    svg.setAttribute("aria-label", label);
    if (empty) {
      parts.grid.setAttribute("d", "");
      for (const path of parts.paths) path.setAttribute("d", "");
      return;
    }
    parts.grid.setAttribute("d", gridPath());
    const t0 = times[0];
    const span = Math.max(1, times[times.length - 1] - t0);
    series.forEach((s, i) => {
      const build = s.area ? areaPath : linePath;
      parts.paths[i].setAttribute("d", build(times, s.values, max, t0, span));
    });
  }

  function renderCharts(overview) {
    const history = Array.isArray(overview.history) ? overview.history : [];
    const times = history.map((point) => parseTime(point.at));
    const empty = history.length < 2;
    const spanText = empty ? "–" : `last ${duration((times[times.length - 1] - times[0]) / 1000)}`;
    const lastPoint = history.length ? history[history.length - 1] : null;
    const stats = overview.stats || {};
    const interval = duration(overview.history_interval_seconds);
    for (const node of document.querySelectorAll(".interval-label")) setText(node, interval);

    const online = history.map((p) => p.online);
    const active = history.map((p) => p.active);
    const workersMax = niceMax(Math.max(0, ...online, ...active));
    setText(byId("now-online"), count(stats.online_workers));
    setText(byId("now-active"), count(stats.active_workers));
    drawChart(byId("chart-workers"), {
      series: [
        { className: "line line-online", values: online },
        { className: "line line-active", values: active },
      ],
      times,
      max: workersMax,
      peakText: String(workersMax),
      spanText,
      empty,
      label: `Workers over the ${spanText}: ${count(stats.online_workers)} online, ${count(stats.active_workers)} active now`,
    });

    const requests = history.map((p) => p.requests);
    const errors = history.map((p) => p.errors);
    const requestsMax = niceMax(Math.max(0, ...requests, ...errors));
    setText(byId("now-requests"), lastPoint ? count(lastPoint.requests) : "–");
    setText(byId("now-errors"), lastPoint ? count(lastPoint.errors) : "–");
    drawChart(byId("chart-requests"), {
      series: [
        { className: "area area-requests", values: requests, area: true },
        { className: "line line-errors", values: errors },
      ],
      times,
      max: requestsMax,
      peakText: String(requestsMax),
      spanText,
      empty,
      label: `Requests per ${interval} over the ${spanText}; last interval ${lastPoint ? lastPoint.requests : 0} requests, ${lastPoint ? lastPoint.errors : 0} errors`,
    });

    const latency = history.map((p) => (typeof p.mean_latency_ms === "number" ? p.mean_latency_ms : null));
    const known = latency.filter((v) => v !== null);
    const latencyMax = niceMax(Math.max(0, ...known));
    const latest = lastPoint && typeof lastPoint.mean_latency_ms === "number" ? `${Math.round(lastPoint.mean_latency_ms)} ms` : "–";
    setText(byId("now-latency"), latest);
    drawChart(byId("chart-latency"), {
      series: [{ className: "line line-latency", values: latency }],
      times,
      max: latencyMax,
      peakText: known.length ? `${latencyMax} ms` : "",
      spanText,
      empty,
      label: `Mean latency of relayed requests over the ${spanText}; last interval ${latest}`,
    });
  }

  // Services ----------------------------------------------------------------------------

  const SERVICE_COLUMNS = ["name", "desired", "placed", "running", "ready", "state"];
  const SERVICE_LABELS = { name: "Service", desired: "Desired", placed: "Placed", running: "Running", ready: "Ready", state: "State" };

  function serviceState(s) {
    if (!s.desired) return { text: "not wanted", level: "muted" };
    if (s.running < s.desired) {
      const missing = s.desired - s.running;
      return { text: `${missing} of ${s.desired} not running`, level: s.running === 0 ? "bad" : "warn" };
    }
    if (s.ready < s.running) return { text: `${s.running - s.ready} not ready yet`, level: "warn" };
    return { text: "all running", level: "good" };
  }

  const servicesRows = new KeyedRows(byId("services-body"), {
    key: (s) => s.name,
    create: (s) => {
      const row = makeRow("service-row", SERVICE_COLUMNS, SERVICE_LABELS);
      row.tr.dataset.service = s.name;
      for (const col of ["desired", "placed", "running", "ready"]) row.cells[col].classList.add("num");
      return row;
    },
    update: (row, s) => {
      setCell(row, "name", JSON.stringify([s.name, s.description, s.tiers, s.gpu, s.sensitive]), (td) => {
        const tags = el("span", { className: "tags" });
        if (Array.isArray(s.tiers) && s.tiers.length) tags.append(el("span", { className: "tag", text: `tier ${s.tiers.join(", ")}` }));
        if (s.gpu) tags.append(el("span", { className: "tag", text: "GPU" }));
        if (s.sensitive) tags.append(el("span", { className: "tag sensitive", text: "sensitive", title: "Handles personal data: runs only on trusted workers" }));
        td.replaceChildren(el("strong", { text: s.name }), tags);
        td.title = s.description || "";
      });
      for (const col of ["desired", "placed", "running", "ready"]) {
        setCell(row, col, String(s[col]), (td) => {
          td.textContent = count(s[col]);
        });
      }
      const status = serviceState(s);
      setCell(row, "state", `${status.level}|${status.text}`, (td) => {
        td.replaceChildren(el("span", { className: `pill ${status.level}`, text: status.text }));
      });
      row.tr.classList.toggle("short", s.desired > 0 && s.running < s.desired);
      row.cells.running.classList.toggle("bad-text", s.running < s.desired);
      row.cells.ready.classList.toggle("warn-text", s.ready < Math.min(s.running, s.desired));
    },
  });

  function renderServices(services) {
    servicesRows.render(services);
    show(byId("services-empty"), services.length === 0);
  }

  // ---------------------------------------------------------------------------------------
  // Workers

  const workersBody = byId("workers-body");
  const WORKER_COLUMNS = [
    "id", "name", "tier", "liveness", "schedulability", "trusted", "load", "containers",
    "last_heartbeat", "agent_version", "actions",
  ];
  const WORKER_LABELS = {
    id: "ID", name: "Name", tier: "Tier", liveness: "Liveness", schedulability: "Scheduling",
    trusted: "Trusted", load: "Load", containers: "Containers", last_heartbeat: "Heartbeat",
    agent_version: "Agent", actions: "",
  };
  const SCHEDULABILITY_ORDER = { active: 0, paused: 1, drained: 2 };
  const SCHEDULABILITY_TITLES = {
    active: "May take work",
    paused: "Its owner paused contribution",
    drained: "An admin drained it: no new work",
  };
  const CONTAINER_STATE_LEVELS = {
    running: "good", pulling: "busy", starting: "busy", unhealthy: "warn", exited: "bad", error: "bad",
  };

  function containerBadges(w) {
    const reported = Array.isArray(w.containers) ? w.containers : [];
    const badges = reported.map((c) => ({
      service: c.service,
      state: c.state,
      extra: c.state === "pulling" && typeof c.progress === "number" ? ` ${Math.round(c.progress * 100)} %` : "",
      title: [
        `${c.service}: ${c.state}`,
        c.image ? `image ${c.image}` : "",
        c.message || "",
        c.restarts ? `restarted ${plural(c.restarts, "time", "times")}` : "",
      ].filter(Boolean).join("\n"),
      level: CONTAINER_STATE_LEVELS[c.state] || "muted",
    }));
    const reportedNames = new Set(reported.map((c) => c.service));
    for (const service of w.assigned_services || []) {
      if (reportedNames.has(service)) continue;
      badges.push({
        service,
        state: "waiting",
        extra: "",
        title: `${service}: placed here; the worker has not reported its container yet`,
        level: "muted",
      });
    }
    return badges;
  }

  /** Everything about one worker the table needs, computed once per change of its data. */
  function workerEntry(w, raw) {
    const badges = containerBadges(w);
    const heartbeat = parseTime(w.last_heartbeat);
    const services = new Set([...(w.assigned_services || []), ...badges.map((b) => b.service)]);
    return {
      w,
      raw,
      badges,
      heartbeat,
      search: [w.worker_id, w.name || "", [...services].join(" "), w.agent_version || ""].join("\n").toLowerCase(),
      keys: {
        id: w.worker_id,
        name: w.name ? w.name.toLowerCase() : null,
        tier: w.tier,
        liveness: w.status === "online" ? 0 : 1,
        schedulability: SCHEDULABILITY_ORDER[w.schedulability] ?? 3,
        trusted: w.trusted ? 0 : 1,
        load: Number(w.current_load) || 0,
        containers: badges.filter((b) => b.state === "running").length * 1000 + badges.length,
        last_heartbeat: Number.isFinite(heartbeat) ? heartbeat : 0,
        agent_version: w.agent_version || "",
      },
      sig: {
        hardware: hardwareDetails(w),
        containers: JSON.stringify(badges),
      },
    };
  }

  function setWorker(w) {
    const raw = JSON.stringify(w);
    const existing = state.entries.get(w.worker_id);
    if (existing && existing.raw === raw) return;
    state.entries.set(w.worker_id, workerEntry(w, raw));
    state.orderDirty = true;
  }

  function removeWorker(id) {
    if (state.entries.delete(id)) state.orderDirty = true;
  }

  function applyWorkers(list, seqAtStart) {
    const workers = Array.isArray(list.workers) ? list.workers : [];
    state.workersTotal = typeof list.total === "number" ? list.total : workers.length;
    const seen = new Set();
    for (const w of workers) {
      seen.add(w.worker_id);
      if ((state.removedAt.get(w.worker_id) || 0) > seqAtStart) continue;
      if ((state.changedAt.get(w.worker_id) || 0) > seqAtStart) continue;
      setWorker(w);
    }
    for (const id of [...state.entries.keys()]) {
      if (!seen.has(id) && !((state.changedAt.get(id) || 0) > seqAtStart)) removeWorker(id);
    }
    // What this refresh saw already includes the actions done before it started.
    for (const [id, seq] of state.changedAt) if (seq <= seqAtStart) state.changedAt.delete(id);
    for (const [id, seq] of state.removedAt) if (seq <= seqAtStart) state.removedAt.delete(id);
  }

  function createWorkerRow(entry) {
    const row = makeRow("worker-row", WORKER_COLUMNS, WORKER_LABELS);
    row.tr.dataset.workerId = entry.w.worker_id;
    const drain = el("button", { className: "small", attrs: { type: "button" } });
    const trust = el("button", { className: "small", attrs: { type: "button" } });
    const remove = el("button", { className: "small danger-text", text: "Remove", attrs: { type: "button", "data-action": "remove" } });
    row.cells.actions.append(drain, trust, remove);
    row.buttons = { drain, trust, remove };
    row.cells.tier.classList.add("num");
    row.cells.load.classList.add("num");
    return row;
  }

  function updateWorkerRow(row, entry, now) {
    const w = entry.w;
    const label = workerLabel(w);
    setCell(row, "id", w.worker_id, (td) => {
      td.replaceChildren(el("code", { text: w.worker_id.slice(0, 8), title: w.worker_id }));
      td.title = w.worker_id;
    });
    setCell(row, "name", `${w.name}|${entry.sig.hardware}`, (td) => {
      td.textContent = w.name || "(no name)";
      td.classList.toggle("muted", !w.name);
      td.dataset.hw = hardwareSummary(w.capabilities);
      td.title = entry.sig.hardware;
    });
    setCell(row, "tier", String(w.tier), (td) => {
      td.textContent = String(w.tier);
    });
    setCell(row, "liveness", w.status, (td) => {
      td.replaceChildren(el("span", { className: `pill dot ${w.status === "online" ? "good" : "bad"}`, text: w.status }));
    });
    setCell(row, "schedulability", w.schedulability, (td) => {
      const level = w.schedulability === "active" ? "good" : w.schedulability === "drained" ? "warn" : "muted";
      td.replaceChildren(el("span", { className: `pill ${level}`, text: w.schedulability, title: SCHEDULABILITY_TITLES[w.schedulability] || "" }));
    });
    setCell(row, "trusted", String(Boolean(w.trusted)), (td) => {
      td.replaceChildren(
        el("span", {
          className: w.trusted ? "pill trusted" : "plain muted",
          text: w.trusted ? "yes" : "no",
          title: w.trusted ? "May run sensitive services" : "Runs no sensitive services",
        }),
      );
    });
    const load = Math.max(0, Number(w.current_load) || 0);
    const percent = Math.round(load * 100);
    setCell(row, "load", String(percent), (td) => {
      const bar = el("span", { className: "bar" }, [el("span", { className: "bar-fill" })]);
      bar.firstChild.style.width = `${Math.min(100, percent)}%`;
      bar.firstChild.classList.toggle("high", percent >= 85);
      td.replaceChildren(el("span", { className: "load-text", text: `${percent} %` }), bar);
    });
    setCell(row, "containers", entry.sig.containers, (td) => {
      if (!entry.badges.length) {
        td.replaceChildren(el("span", { className: "muted", text: "—" }));
        return;
      }
      const list = document.createDocumentFragment();
      for (const badge of entry.badges) {
        list.append(
          el("span", { className: `badge ${badge.level}`, title: badge.title }, [
            `${badge.service} `,
            el("span", { className: "badge-dot", text: badge.state === "waiting" ? "○" : "●", attrs: { "aria-hidden": "true" } }),
            ` ${badge.state}${badge.extra}`,
          ]),
        );
      }
      td.replaceChildren(list);
    });
    const since = Number.isFinite(entry.heartbeat) ? ago(now - entry.heartbeat) : "never";
    setCell(row, "last_heartbeat", `${w.last_heartbeat}|${since}`, (td) => {
      let time = td.firstChild;
      if (!time) {
        time = document.createElement("time");
        td.append(time);
      }
      time.textContent = since;
      // Its title (the local time) is filled in on hover: formatting 2,000 dates on every
      // refresh for tooltips nobody opens is most of a refresh's work.
      time.dateTime = w.last_heartbeat || "";
      time.removeAttribute("title");
    });
    setCell(row, "agent_version", `${w.agent_version}|${w.protocol_version}`, (td) => {
      td.textContent = w.agent_version || "—";
      td.title = `Protocol version ${w.protocol_version}`;
    });
    setCell(row, "actions", `${w.schedulability}|${w.trusted}|${label}`, () => {
      const drained = w.schedulability === "drained";
      const { drain, trust, remove } = row.buttons;
      drain.dataset.action = drained ? "undrain" : "drain";
      drain.textContent = drained ? "Undrain" : "Drain";
      drain.setAttribute("aria-label", `${drained ? "Undrain" : "Drain"} ${label}`);
      trust.dataset.action = w.trusted ? "untrust" : "trust";
      trust.textContent = w.trusted ? "Untrust" : "Trust";
      trust.setAttribute("aria-label", `${w.trusted ? "Untrust" : "Trust"} ${label}`);
      remove.setAttribute("aria-label", `Remove ${label}`);
    });
    row.tr.classList.toggle("offline", w.status !== "online");
    row.tr.classList.toggle("drained", w.schedulability === "drained");
  }

  const workerRows = {
    rows: new Map(),
    clear() {
      this.rows.clear();
    },
  };

  function matches(entry) {
    const f = state.filter;
    const w = entry.w;
    if (f.tier && String(w.tier) !== f.tier) return false;
    if (f.liveness && w.status !== f.liveness) return false;
    if (f.schedulability && w.schedulability !== f.schedulability) return false;
    for (const word of f.words) if (!entry.search.includes(word)) return false;
    return true;
  }

  /** Unnamed workers (null) sort after named ones. */
  function compareKeys(x, y) {
    if (x === y) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    return typeof x === "string" ? collator.compare(x, y) : x - y;
  }

  function compareEntries(a, b) {
    const { col, dir } = state.sort;
    const x = a.keys[col];
    const y = b.keys[col];
    // Unknown values (an unnamed worker) go last in either direction.
    if ((x === null) !== (y === null)) return x === null ? 1 : -1;
    let result = compareKeys(x, y);
    if (result === 0 && col !== "name") result = compareKeys(a.keys.name, b.keys.name);
    if (result === 0) result = a.keys.id < b.keys.id ? -1 : a.keys.id > b.keys.id ? 1 : 0;
    return result * dir;
  }

  let visibleEntries = [];

  function renderWorkers() {
    if (state.orderDirty) {
      visibleEntries = [];
      for (const entry of state.entries.values()) if (matches(entry)) visibleEntries.push(entry);
      visibleEntries.sort(compareEntries);
      state.orderDirty = false;
    }
    // Rows of workers that left the registry are dropped; rows filtered out stay cached.
    for (const id of workerRows.rows.keys()) if (!state.entries.has(id)) workerRows.rows.delete(id);
    const now = serverNow();
    const trs = new Array(visibleEntries.length);
    for (let i = 0; i < visibleEntries.length; i += 1) {
      const entry = visibleEntries[i];
      let row = workerRows.rows.get(entry.w.worker_id);
      if (!row) {
        row = createWorkerRow(entry);
        workerRows.rows.set(entry.w.worker_id, row);
      }
      updateWorkerRow(row, entry, now);
      trs[i] = row.tr;
    }
    placeRows(workersBody, trs);

    const known = state.entries.size;
    let text = `Showing ${visibleEntries.length} of ${plural(known, "worker", "workers")}`;
    if (state.workersTotal > known) text += ` (the coordinator lists the first ${known} of ${state.workersTotal})`;
    setText(byId("workers-count"), text);
    const empty = byId("workers-empty");
    if (!known) {
      setText(empty, "No machines have joined the pool yet. They appear here when a volunteer's program or rma-worker connects to this coordinator.");
    } else if (!visibleEntries.length) {
      setText(empty, "No workers match these filters.");
    }
    show(empty, visibleEntries.length === 0);
  }

  // Sorting and filtering ------------------------------------------------------------

  const workersTable = byId("workers-table");

  function updateSortHeaders() {
    for (const th of workersTable.querySelectorAll("th[data-sort]")) {
      const sorted = th.dataset.sort === state.sort.col;
      th.setAttribute("aria-sort", sorted ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
  }

  workersTable.querySelector("thead").addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (!th) return;
    const col = th.dataset.sort;
    state.sort = col === state.sort.col ? { col, dir: -state.sort.dir } : { col, dir: 1 };
    state.orderDirty = true;
    updateSortHeaders();
    renderWorkers();
  });

  let filterFrame = 0;

  function readFilters() {
    state.filter = {
      words: byId("workers-filter").value.toLowerCase().split(/\s+/).filter(Boolean),
      tier: byId("filter-tier").value,
      liveness: byId("filter-liveness").value,
      schedulability: byId("filter-schedulability").value,
    };
    state.orderDirty = true;
    cancelAnimationFrame(filterFrame);
    filterFrame = 0;
    renderWorkers();
  }

  byId("workers-filter").addEventListener("input", () => {
    // Typing fast re-filters once per frame, not once per key.
    if (!filterFrame) filterFrame = requestAnimationFrame(readFilters);
  });
  for (const id of ["filter-tier", "filter-liveness", "filter-schedulability"]) {
    byId(id).addEventListener("change", readFilters);
  }

  // Worker actions -------------------------------------------------------------------

  const WORKER_ACTIONS = {
    drain: {
      title: "Drain this worker?",
      ok: "Drain",
      message: (label) => `No new work goes to ${label}; its services move to other machines after the grace period. It stays drained until you undrain it; its owner cannot undo this.`,
      done: (label) => `${label} is drained.`,
    },
    undrain: {
      title: "Undrain this worker?",
      ok: "Undrain",
      message: (label) => `${label} may take work again; services are placed on it the next time the coordinator places them.`,
      done: (label) => `${label} may take work again.`,
    },
    trust: {
      title: "Trust this worker?",
      ok: "Trust",
      message: (label) => `${label} may then run sensitive services, which handle people's personal data. Trust only machines you or people you know look after.`,
      done: (label) => `${label} is trusted.`,
    },
    untrust: {
      title: "Stop trusting this worker?",
      ok: "Untrust",
      danger: true,
      message: (label) => `${label} is no longer trusted. Its sensitive services are taken away at once.`,
      done: (label) => `${label} is no longer trusted.`,
    },
    remove: {
      title: "Remove this worker?",
      ok: "Remove",
      danger: true,
      message: (label) => `${label} leaves the registry. If it is still running it joins again, unless its enrollment token is revoked.`,
      done: (label) => `${label} was removed.`,
    },
  };

  function setRowBusy(id, busy) {
    const row = workerRows.rows.get(id);
    if (!row) return;
    row.tr.classList.toggle("busy", busy);
    for (const button of Object.values(row.buttons)) button.disabled = busy;
  }

  async function runWorkerAction(id, action) {
    const entry = state.entries.get(id);
    const spec = WORKER_ACTIONS[action];
    if (!entry || !spec) return;
    const label = workerLabel(entry.w);
    const confirmed = await confirmAction({ title: spec.title, message: spec.message(label), ok: spec.ok, danger: spec.danger });
    if (!confirmed || !state.signedIn) return;
    const generation = state.generation;
    setRowBusy(id, true);
    try {
      const path = `/workers/${encodeURIComponent(id)}`;
      const answer = action === "remove" ? await api("DELETE", path) : await api("POST", `${path}/${action}`);
      if (generation !== state.generation) return;
      state.changeSeq += 1;
      if (action === "remove") {
        state.removedAt.set(id, state.changeSeq);
        removeWorker(id);
        renderWorkers();
        toast((answer && answer.message) || spec.done(label));
      } else {
        state.changedAt.set(id, state.changeSeq);
        if (answer && answer.worker_id) setWorker(answer);
        renderWorkers();
        toast(spec.done(answer && answer.worker_id ? workerLabel(answer) : label));
      }
      refreshNow();
    } catch (error) {
      if (generation === state.generation && !(error instanceof ApiFailure && error.status === 401)) {
        toast(failureText(error), "error");
      }
    } finally {
      setRowBusy(id, false);
    }
  }

  workersBody.addEventListener("pointerover", (event) => {
    const time = event.target.closest("time");
    if (time && !time.title && time.dateTime) time.title = localTime(parseTime(time.dateTime));
  });

  workersBody.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    const tr = button.closest("tr[data-worker-id]");
    if (tr) runWorkerAction(tr.dataset.workerId, button.dataset.action);
  });

  // ---------------------------------------------------------------------------------------
  // API keys and enrollment tokens

  /**
   * One panel of secrets (API keys or enrollment tokens): the list, the create form, the
   * new secret shown once, and revoking.
   */
  function secretsPanel(options) {
    const section = byId(options.sectionId);
    const form = byId(options.formId);
    const nameInput = section.querySelector(`[data-testid=${options.nameTestId}]`);
    const createButton = section.querySelector(`[data-testid=${options.createTestId}]`);
    const error = byId(options.errorId);
    const secretBox = byId(options.secretId);
    const secretCode = secretBox.querySelector("code[data-testid=new-secret]");
    const copyResult = secretBox.querySelector(".copy-result");
    const empty = byId(options.emptyId);
    let loaded = false;
    let items = [];

    const rows = new KeyedRows(byId(options.bodyId), {
      key: (item) => item.id,
      create: (item) => {
        const row = makeRow(options.rowTestId, options.columns, options.labels);
        row.tr.dataset[options.rowIdKey] = item.id;
        return row;
      },
      update: (row, item) => {
        setCell(row, "name", item.name, (td) => {
          td.textContent = item.name;
        });
        setCell(row, "prefix", item.prefix, (td) => {
          td.replaceChildren(el("code", { text: `${item.prefix}…` }));
        });
        setCell(row, "created", item.created_at, (td) => {
          const ms = parseTime(item.created_at);
          td.replaceChildren(el("time", { text: shortDate(ms), title: localTime(ms), attrs: { datetime: item.created_at } }));
        });
        if (options.columns.includes("joined")) {
          setCell(row, "joined", String(item.workers_enrolled), (td) => {
            td.textContent = count(item.workers_enrolled);
            td.classList.add("num");
          });
          const used = parseTime(item.last_used_at);
          const usedText = Number.isFinite(used) ? ago(serverNow() - used) : "never";
          setCell(row, "last_used", usedText, (td) => {
            td.textContent = usedText;
            td.title = Number.isFinite(used) ? localTime(used) : "No machine has joined with it";
          });
        }
        const status = item.active ? "active" : "revoked";
        setCell(row, "status", `${status}|${item.revoked_at}`, (td) => {
          td.replaceChildren(el("span", { className: `pill ${item.active ? "good" : "muted"}`, text: status }));
          td.title = item.revoked_at ? `Revoked ${localTime(parseTime(item.revoked_at))}` : "";
        });
        setCell(row, "actions", `${item.active}|${item.name}`, (td) => {
          if (!item.active) {
            td.replaceChildren();
            return;
          }
          const button = el("button", {
            className: "small danger-text",
            text: "Revoke",
            attrs: { type: "button", "data-action": "revoke", "aria-label": `Revoke ${item.name}` },
          });
          td.replaceChildren(button);
        });
        row.tr.classList.toggle("revoked", !item.active);
      },
    });

    function render() {
      rows.render(items);
      if (loaded) {
        if (!items.length) setText(empty, options.emptyText);
        show(empty, !items.length);
      }
    }

    function setData(data) {
      items = Array.isArray(data[options.listKey]) ? data[options.listKey] : [];
      loaded = true;
      if (options.onData) options.onData(data);
      render();
    }

    function loadFailed(reason) {
      if (loaded) return; // the list shown is still the last one known
      if (reason instanceof ApiFailure && reason.status === 401) return;
      setText(empty, `${options.loadFailedText} ${failureText(reason)}`);
      show(empty, true);
    }

    async function reload() {
      const generation = state.generation;
      try {
        const data = await api("GET", options.path);
        if (generation === state.generation) setData(data);
      } catch (reason) {
        loadFailed(reason);
      }
    }

    function showError(message) {
      error.textContent = message;
      error.hidden = !message;
      if (message) nameInput.setAttribute("aria-invalid", "true");
      else nameInput.removeAttribute("aria-invalid");
    }

    function hideSecret() {
      secretCode.textContent = "";
      copyResult.textContent = "";
      secretBox.hidden = true;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = nameInput.value.trim();
      if (!name) {
        showError(options.nameMissing);
        nameInput.focus();
        return;
      }
      showError("");
      createButton.disabled = true;
      const generation = state.generation;
      try {
        const created = await api("POST", options.path, { name });
        if (generation !== state.generation) return;
        state.secretsSeq += 1;
        nameInput.value = "";
        secretCode.textContent = created[options.secretKey];
        copyResult.textContent = "";
        secretBox.hidden = false;
        secretBox.querySelector("button.copy").focus({ preventScroll: true });
        secretBox.scrollIntoView({ block: "nearest" });
        toast(options.createdText(created.name || name));
        await reload();
      } catch (reason) {
        if (!(reason instanceof ApiFailure && reason.status === 401)) showError(failureText(reason));
      } finally {
        createButton.disabled = false;
      }
    });

    secretBox.querySelector("button.copy").addEventListener("click", async () => {
      const text = secretCode.textContent;
      let copied = false;
      try {
        await navigator.clipboard.writeText(text);
        copied = true;
      } catch {
        // The Clipboard API needs a secure context (HTTPS or localhost); select the text
        // so the older copy command can take it.
        const range = document.createRange();
        range.selectNodeContents(secretCode);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        try {
          copied = document.execCommand("copy");
        } catch {
          copied = false;
        }
      }
      copyResult.textContent = copied ? "Copied to the clipboard." : "Copying did not work here: select the text and copy it by hand.";
    });

    secretBox.querySelector("button.dismiss").addEventListener("click", () => {
      hideSecret();
      nameInput.focus();
    });

    nameInput.addEventListener("input", () => {
      if (!error.hidden) showError("");
    });

    byId(options.bodyId).addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-action=revoke]");
      if (!button) return;
      const tr = button.closest("tr");
      const item = items.find((candidate) => candidate.id === tr.dataset[options.rowIdKey]);
      if (!item) return;
      const confirmed = await confirmAction({
        title: options.revokeTitle,
        message: options.revokeMessage(item.name),
        ok: "Revoke",
        danger: true,
      });
      if (!confirmed || !state.signedIn) return;
      const generation = state.generation;
      button.disabled = true;
      try {
        const view = await api("DELETE", `${options.path}/${encodeURIComponent(item.id)}`);
        if (generation !== state.generation) return;
        state.secretsSeq += 1;
        if (view && view.id) items = items.map((candidate) => (candidate.id === view.id ? view : candidate));
        render();
        toast(options.revokedText(item.name));
        await reload();
      } catch (reason) {
        if (!(reason instanceof ApiFailure && reason.status === 401)) toast(failureText(reason), "error");
      } finally {
        button.disabled = false;
      }
    });

    return {
      setData,
      loadFailed,
      reset() {
        loaded = false;
        items = [];
        rows.clear();
        hideSecret();
        showError("");
        nameInput.value = "";
        show(empty, false);
        if (options.onReset) options.onReset();
      },
    };
  }

  const apiKeysPanel = secretsPanel({
    sectionId: "api-keys",
    formId: "apikey-form",
    nameTestId: "apikey-name",
    createTestId: "apikey-create",
    errorId: "apikey-error",
    secretId: "apikey-secret",
    emptyId: "apikeys-empty",
    bodyId: "apikeys-body",
    rowTestId: "apikey-row",
    rowIdKey: "keyId",
    path: "/api-keys",
    listKey: "keys",
    secretKey: "key",
    columns: ["name", "prefix", "created", "status", "actions"],
    labels: { name: "Name", prefix: "Prefix", created: "Created", status: "Status", actions: "" },
    emptyText: "No API keys yet. Create one for each program that uses the pool.",
    loadFailedText: "Could not load the API keys.",
    nameMissing: "Give the key a name that says what uses it, e.g. “adviser portal”.",
    createdText: (name) => `API key “${name}” created. Copy it now.`,
    revokeTitle: "Revoke this API key?",
    revokeMessage: (name) => `Programs using the key “${name}” are refused from now on. A revoked key cannot be restored; create a new one to replace it.`,
    revokedText: (name) => `API key “${name}” revoked.`,
  });

  const tokensPanel = secretsPanel({
    sectionId: "enrollment-tokens",
    formId: "enroll-form",
    nameTestId: "enroll-name",
    createTestId: "enroll-create",
    errorId: "enroll-error",
    secretId: "enroll-secret",
    emptyId: "enroll-empty",
    bodyId: "enroll-body",
    rowTestId: "enroll-row",
    rowIdKey: "tokenId",
    path: "/enrollment-tokens",
    listKey: "tokens",
    secretKey: "token",
    columns: ["name", "prefix", "created", "joined", "last_used", "status", "actions"],
    labels: {
      name: "Name", prefix: "Prefix", created: "Created", joined: "Machines joined",
      last_used: "Last used", status: "Status", actions: "",
    },
    emptyText: "No enrollment tokens yet.",
    loadFailedText: "Could not load the enrollment tokens.",
    nameMissing: "Give the token a name that says who it is for, e.g. “Leeds office volunteers”.",
    createdText: (name) => `Enrollment token “${name}” created. Copy it now.`,
    revokeTitle: "Revoke this enrollment token?",
    revokeMessage: (name) => `Machines can no longer join with the token “${name}”; machines already in the pool stay.`,
    revokedText: (name) => `Enrollment token “${name}” revoked.`,
    onData: (data) => {
      const mode = byId("enrollment-mode");
      setText(
        mode,
        data.required
          ? "Enrollment is required: a new machine needs an active token to join."
          : "Enrollment is open: any machine can join. Once you create a token, new machines need one.",
      );
      mode.classList.toggle("open", !data.required);
      show(byId("enrollment-settings-token"), Boolean(data.from_settings));
    },
    onReset: () => {
      setText(byId("enrollment-mode"), "");
      show(byId("enrollment-settings-token"), false);
    },
  });

  // ---------------------------------------------------------------------------------------
  // Start

  async function boot() {
    updateSortHeaders();
    try {
      const session = await api("GET", "/session", undefined, { signingIn: true });
      startSession(session);
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 401) showSignIn();
      else showSignIn({ error: failureText(error) });
    }
  }

  boot();
})();
