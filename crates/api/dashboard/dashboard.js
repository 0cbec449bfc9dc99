// The dashboard: a client of this node's public API. Pages are chosen by the URL's fragment
// (#/providers, #/jobs/7, ...); every list is read one bounded page at a time, and the live
// parts follow the node's event stream (/v1/events). Text from the chain is only ever set as
// text (never parsed as HTML).
"use strict";
(() => {
  /** Rows per page of a list, unless the page's address asks for 1 to MAX_PAGE (`?rows=N`). */
  const PAGE = 50;
  const MAX_PAGE = 100;
  /** Points of the finality chart. */
  const CHART_POINTS = 120;
  /** Finalized blocks kept for the block list and the committee's count of proposals. */
  const BLOCK_WINDOW = 64;
  /** Blocks read at start, before the event stream has any. */
  const BACKFILL = 16;
  /** Units of a job read per request, and the most a job page reads in all. */
  const UNIT_PAGE = 100;
  const MAX_FRAME_UNITS = 400;
  /** Tiles downloaded at once. */
  const TILE_FETCHES = 3;
  /** Assignment events kept on a job's page. */
  const EVENT_LOG = 50;
  /** Lists refresh on new blocks at most this often (ms). */
  const REFRESH_MS = 2000;

  const chain = {
    status: null,
    /** Recent finalized blocks, newest last: {height, proposer, txs, time}. */
    blocks: [],
    /** [height, ms from the block's timestamp to its arrival here, finalized]. */
    latencies: [],
    /** Milliseconds between the timestamps of consecutive finalized blocks. */
    intervals: [],
    backfilled: false,
  };

  // ---- DOM and formatting ----------------------------------------------------------------

  /** An element with attributes and children (strings become text nodes). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const card = (title, ...body) => h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...body);
  const stat = (label, value, id, small) =>
    h("div", { class: "card stat" }, h("div", { class: "label" }, label),
      h("div", { class: small ? "value small" : "value", id }, value));
  const pill = (text) => h("span", { class: `pill ${String(text).toLowerCase()}` }, text);
  const short = (hex) => (hex && hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex || "–");
  const mono = (hex, full) => h("span", { class: "mono", title: hex }, full ? hex : short(hex));
  const link = (href, text) => h("a", { href }, text);
  const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

  /** Base units (10^9 per EXO, a decimal string) as EXO. */
  function exo(base) {
    if (base === null || base === undefined) return "–";
    const units = BigInt(base);
    const whole = units / 1000000000n;
    // Six decimals (a micro-EXO) are enough to read; the API has the exact amount.
    const frac = (units % 1000000000n).toString().padStart(9, "0").slice(0, 6).replace(/0+$/, "");
    return `${whole.toLocaleString("en-US")}${frac ? "." + frac : ""} EXO`;
  }

  /** A table of `headers` (a label, or `{label, num}` for a right-aligned column) over `body`. */
  function table(headers, body) {
    return h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.num ? "num" : null }, x.label || x)))),
      body);
  }

  const cell = (value, numeric) => h("td", { class: numeric ? "num" : null }, value);

  /** A bar of a job's units: accepted, running and failed among all. */
  function progress(counts, total) {
    const part = (n, cls) => {
      const span = h("span", { class: cls, title: `${n} ${cls}` });
      span.style.width = `${total ? (100 * n) / total : 0}%`;
      return span;
    };
    return h("div", { class: "bar", role: "progressbar", "aria-valuenow": counts.accepted, "aria-valuemax": total },
      part(counts.accepted, "accepted"), part(counts.running, "running"), part(counts.failed, "failed"));
  }

  function notice(message) {
    const el = document.getElementById("notice");
    el.textContent = message || "";
    el.hidden = !message;
  }

  // ---- the API -------------------------------------------------------------------------

  /** GET `path`; an answer other than 2xx throws with the API's own message. */
  async function get(path) {
    const response = await fetch(path, { headers: { accept: "application/json" } });
    if (!response.ok) {
      let body = {};
      try { body = await response.json(); } catch (_) { /* not JSON: use the status */ }
      const err = new Error(body.message || `${response.status} ${response.statusText}`);
      err.status = response.status;
      err.code = body.error;
      throw err;
    }
    return response;
  }
  const json = async (path) => (await get(path)).json();

  // ---- the chain, live -----------------------------------------------------------------

  /** Functions the current page wants called on each event. */
  const listeners = { block: new Set(), assignment: new Set() };

  function remember(block) {
    if (chain.blocks.some((b) => b.height === block.height)) return;
    chain.blocks.push({ height: block.height, proposer: block.proposer, txs: block.tx_hashes.length, time: block.timestamp_ms });
    chain.blocks.sort((a, b) => a.height - b.height);
    if (chain.blocks.length > BLOCK_WINDOW) chain.blocks.splice(0, chain.blocks.length - BLOCK_WINDOW);
  }

  /** Keeps the newest CHART_POINTS entries of `list`. */
  function keepRecent(list, entry) {
    list.push(entry);
    if (list.length > CHART_POINTS) list.shift();
  }

  function onBlock(block) {
    // Finality latency: from the block's timestamp (its proposer's clock, which the validators
    // bound) to its arrival here, finalized; as exact as this browser's clock is close to the
    // validators' (the same machine for a devnet).
    keepRecent(chain.latencies, [block.height, Math.max(0, Date.now() - block.timestamp_ms)]);
    const previous = chain.blocks[chain.blocks.length - 1];
    if (previous && block.height === previous.height + 1) {
      keepRecent(chain.intervals, block.timestamp_ms - previous.time);
    }
    remember(block);
    if (chain.status) {
      chain.status.finalized_height = Math.max(chain.status.finalized_height, block.height);
    }
    showHeight();
    for (const fn of listeners.block) fn(block);
  }

  function showHeight() {
    if (!chain.status) return;
    document.getElementById("live-chain").textContent = chain.status.chain_id;
    document.getElementById("live-height").textContent = num(chain.status.finalized_height);
  }

  async function refreshStatus() {
    try {
      chain.status = await json("/v1/status");
      showHeight();
      notice("");
    } catch (err) {
      notice(`This node does not answer: ${err.message}`);
    }
  }

  /** Reads the last blocks once, so that the committee and block list are not empty at first. */
  async function backfill() {
    if (chain.backfilled || !chain.status) return;
    chain.backfilled = true;
    const top = chain.status.finalized_height;
    const heights = [];
    for (let height = top; height >= 1 && heights.length < BACKFILL; height--) heights.push(height);
    const blocks = await Promise.all(heights.map((height) => json(`/v1/blocks/${height}`).catch(() => null)));
    for (const block of blocks) if (block) remember(block);
  }

  function connect() {
    const dot = document.getElementById("live-dot");
    const source = new EventSource("/v1/events");
    source.addEventListener("open", () => dot.classList.add("on"));
    source.addEventListener("block", (e) => onBlock(JSON.parse(e.data)));
    source.addEventListener("assignment", (e) => {
      const assignment = JSON.parse(e.data);
      for (const fn of listeners.assignment) fn(assignment);
    });
    // The browser reconnects on its own; until then the header polls.
    source.addEventListener("error", () => {
      dot.classList.remove("on");
      refreshStatus();
    });
  }

  // ---- pages ---------------------------------------------------------------------------

  /**
   * What a page may subscribe to; everything it subscribed ends when the page is left. `rows`
   * is how many rows a page of a list has.
   */
  function session(rows) {
    const mine = [];
    const view = {
      alive: true,
      rows,
      on(kind, fn) { listeners[kind].add(fn); mine.push([kind, fn]); },
      /** Calls `fn` now and on new blocks, at most once per REFRESH_MS, one run at a time. */
      live(fn) {
        let running = false;
        let last = 0;
        const run = async () => {
          if (running || !view.alive) return;
          running = true;
          last = Date.now();
          try { await fn(); notice(""); } catch (err) { notice(err.message); } finally { running = false; }
        };
        view.on("block", () => { if (Date.now() - last >= REFRESH_MS) run(); });
        return run();
      },
      end() {
        view.alive = false;
        for (const [kind, fn] of mine) listeners[kind].delete(fn);
      },
    };
    return view;
  }

  /** `from` (left out on a first page, `null`) and `limit` of a page of `rows` items. */
  const pageQuery = (from, rows) => (from === null ? `limit=${rows}` : `from=${from}&limit=${rows}`);

  /**
   * A list read one page of `view.rows` at a time, with Previous and Next: `path(query)` names
   * a page (given its `from` and `limit`), `items(page)` its items, `next(page)` where the
   * following page starts (the API's `next` by default); `empty` (or `empty(page, next)`) says
   * why a page has no rows. The current page is read again as blocks arrive.
   */
  function pagedList(view, { path, items, next = (page) => page.next, headers, row, empty, id }) {
    const body = h("tbody");
    const status = h("span", { class: "muted page-status" });
    const starts = [];
    let from = null;
    let following = null;
    /** Loads started; only the latest may draw (a refresh begun before a click is stale). */
    let loads = 0;
    async function load() {
      const mine = ++loads;
      const page = await json(path(pageQuery(from, view.rows)));
      if (mine !== loads || !view.alive) return;
      const list = items(page);
      following = next(page) ?? null;
      body.replaceChildren(...(list.length ? list.map(row) : [h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, typeof empty === "function" ? empty(page, following) : empty))]));
      prev.disabled = starts.length === 0;
      more.disabled = following === null;
      status.textContent = `page ${starts.length + 1} · ${list.length} shown, ${view.rows} per page`;
    }
    /** Shows the page from `start`; the buttons wait for it, so a second click cannot skip. */
    function go(start) {
      from = start;
      prev.disabled = more.disabled = true;
      load().catch((err) => notice(err.message));
    }
    const prev = h("button", { class: "prev", onclick: () => go(starts.pop() ?? null) }, "← Previous");
    const more = h("button", { class: "next", onclick: () => { starts.push(from); go(following); } }, "Next →");
    const element = h("div", { id },
      table(headers, body),
      h("div", { class: "pager" }, prev, more, status));
    return { element, load: () => view.live(load) };
  }

  function chart(container, series, xLabel, yLabel) {
    const width = Math.max(320, container.clientWidth - 8);
    const options = {
      width,
      height: 220,
      scales: { x: { time: false } },
      legend: { show: false },
      cursor: { show: true },
      axes: [{ label: xLabel }, { label: yLabel }],
      series: [{}, {
        stroke: "#3b5bdb",
        fill: "rgba(59,91,219,0.12)",
        width: 2,
        points: { show: true, size: 4 },
      }],
    };
    return new uPlot(options, series, container);
  }

  /** How many of the blocks this page keeps each validator proposed, and its latest. */
  function proposals() {
    const counts = new Map();
    for (const block of chain.blocks) {
      const c = counts.get(block.proposer) || { count: 0, last: 0 };
      c.count += 1;
      c.last = Math.max(c.last, block.height);
      counts.set(block.proposer, c);
    }
    return counts;
  }

  /**
   * The staking module's view of the committee: every candidate (`/v1/validators`), the
   * committee of `epoch` and that of the epoch before, whose members' votes, points and rewards
   * are paid (`/v1/epochs/{n}`, null if the chain keeps none for it).
   */
  async function readCommittee(epoch) {
    const epochRecord = (n) => n < 0 ? null :
      json(`/v1/epochs/${n}`).catch((err) => { if (err.status === 404) return null; throw err; });
    const [candidates, committee, previous] = await Promise.all([
      json("/v1/validators"), epochRecord(epoch), epochRecord(epoch - 1),
    ]);
    return { epoch, validators: candidates.validators, committee, previous };
  }

  /** What each member of the last paid epoch earned, by validator address. */
  function lastEarned(previous) {
    const earned = new Map();
    for (const m of previous ? previous.members : []) {
      if (m.earned) earned.set(m.validator, m.earned);
    }
    return earned;
  }

  /**
   * One row per validator the staking module knows, a candidate or a member of the epoch's
   * committee (a member may have left the candidates since its election): members first, by
   * backing, then the others by address.
   */
  function committeeRows({ validators, committee }) {
    const rows = new Map(validators.map((v) => [v.address, { address: v.address, validator: v, member: null }]));
    for (const m of committee ? committee.members : []) {
      const r = rows.get(m.validator) || { address: m.validator, validator: null };
      rows.set(m.validator, { ...r, member: m });
    }
    const backing = (r) => BigInt(r.member.backing);
    return [...rows.values()].sort((a, b) => {
      if (!a.member !== !b.member) return a.member ? -1 : 1;
      if (a.member && backing(a) !== backing(b)) return backing(a) > backing(b) ? -1 : 1;
      return a.address < b.address ? -1 : 1;
    });
  }

  const COMMITTEE_HEADERS = ["Validator", "Status", "In committee", { label: "Self-bond", num: true },
    { label: "Backing", num: true }, { label: "Nominators", num: true }, { label: "Commission", num: true },
    { label: "Blocks proposed", num: true }, { label: "Last epoch: votes", num: true },
    { label: "Points", num: true }, { label: "Reward", num: true }];

  /** A member's votes, points and reward in the last paid epoch, as three cells. */
  function earnedCells(earned, certificates) {
    if (!earned) return [cell("–", true), cell("–", true), cell("–", true)];
    const votes = certificates ? `${num(earned.votes)} of ${num(certificates)}` : num(earned.votes);
    return [
      cell(earned.jailed ? h("span", {}, votes, " ", pill("jailed")) : votes, true),
      cell(num(earned.points), true),
      cell(exo(earned.reward), true),
    ];
  }

  function committeeRow(r, proposed, earned, certificates) {
    const v = r.validator;
    const seen = proposed.get(r.address);
    return h("tr", { class: r.member ? "member" : "candidate", "data-address": r.address },
      cell(link(`#/account/${r.address}`, mono(r.address))),
      cell(v ? pill(v.status) : h("span", { class: "muted" }, "not a candidate")),
      cell(pill(r.member ? "yes" : "no")),
      cell(v ? exo(v.self_bond) : "–", true),
      cell(r.member ? exo(r.member.backing) : "–", true),
      cell(v ? num(v.nominators) : "–", true),
      cell(v ? `${(v.commission_bps / 100).toFixed(2)} %` : "–", true),
      cell(seen ? `${num(seen.count)} (last ${num(seen.last)})` : "–", true),
      ...earnedCells(earned.get(r.address), certificates));
  }

  /** Without registered validators: the proposers of the last blocks (the genesis committee). */
  function proposerRow(address, seen) {
    return h("tr", { class: "member proposer", "data-address": address },
      cell(link(`#/account/${address}`, mono(address))), cell("–"), cell(pill("yes")), cell("–", true),
      cell("–", true), cell("–", true), cell("–", true), cell(`${num(seen.count)} (last ${num(seen.last)})`, true),
      ...earnedCells(null));
  }

  /** What the committee table shows, as one sentence above it. */
  function committeeSummary(staking, rows) {
    const { epoch, committee: c } = staking;
    if (!rows.length) {
      return "Staking has no registered validator: shown is the genesis committee, as the validators that proposed the last blocks this page has seen.";
    }
    if (!c) return `The chain keeps no committee for epoch ${num(epoch)}; shown are the registered candidates.`;
    const how = c.elected ? "elected two epochs before" : "not elected (written by genesis, or kept when too few candidates were backed)";
    return `Epoch ${num(epoch)}: ${c.members.length} members, ${how}; the least backing of a member, what a newcomer must beat, is ${exo(c.minimum_backing)}. ` +
      "Backing is the stake the election gave a member, its own and its nominators'; blocks proposed are among the last this page has seen. " +
      `Votes, points and rewards are those of epoch ${num(epoch - 1)}, the last paid: the certificates of its blocks that hold the member's vote, 20 points per block proposed plus 1 per vote.`;
  }

  async function overviewPage(view, main) {
    const finalized = h("span", {}, "–");
    const proposed = h("span", {}, "–");
    const epoch = h("span", {}, "–");
    const peers = h("span", {}, "–");
    const fee = h("span", {}, "–");
    const median = h("span", {}, "–");
    const chartBox = h("div", { class: "chart", id: "finality-chart" });
    const committee = h("tbody");
    const summary = h("p", { class: "muted", id: "committee-summary" });
    const blocks = h("tbody");
    main.replaceChildren(
      h("h1", {}, "Chain"),
      h("div", { class: "grid" },
        stat("Finalized height", finalized, "finalized-height"),
        stat("Seen height", proposed),
        stat("Epoch", epoch, "epoch"),
        stat("Peers", peers),
        stat("Median block interval", median),
        stat("Minimum fee", fee, null, true)),
      h("div", { class: "cols" },
        card("Finality latency",
          chartBox,
          h("div", { class: "legend" }, "Each point is a finalized block (x: height) and the milliseconds from its timestamp to its arrival here on the event stream, finalized.")),
        card("Recent blocks", table(["Height", "Proposer", { label: "Transactions", num: true }], blocks))),
      card("Committee", summary, h("div", { id: "committee" }, table(COMMITTEE_HEADERS, committee))));
    await backfill();
    const plot = chart(chartBox, [[], []], "height", "ms");
    /** Staking's candidates and committee, once read. */
    let staking = null;
    const draw = () => {
      const s = chain.status;
      if (!s) return;
      finalized.textContent = num(s.finalized_height);
      proposed.textContent = num(s.height);
      epoch.textContent = num(s.epoch);
      peers.textContent = num(s.peers);
      fee.textContent = exo(s.min_fee);
      const ms = [...chain.intervals].sort((a, b) => a - b);
      median.textContent = ms.length ? `${ms[Math.floor(ms.length / 2)]} ms` : "–";
      plot.setData([chain.latencies.map((p) => p[0]), chain.latencies.map((p) => p[1])]);
      drawCommittee();

      blocks.replaceChildren(...chain.blocks.slice(-8).reverse().map((b) =>
        h("tr", {}, cell(num(b.height)), cell(mono(b.proposer)), cell(num(b.txs), true))));
    };
    const drawCommittee = () => {
      if (!staking) {
        summary.textContent = "Reading the committee…";
        return;
      }
      const seen = proposals();
      const rows = committeeRows(staking);
      summary.textContent = committeeSummary(staking, rows);
      const earned = lastEarned(staking.previous);
      const certificates = staking.previous && staking.previous.payout ? staking.previous.payout.certificates : null;
      committee.replaceChildren(...(rows.length
        ? rows.map((r) => committeeRow(r, seen, earned, certificates))
        : [...seen.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([address, c]) => proposerRow(address, c))));
    };
    draw();
    view.on("block", async () => { await refreshStatus(); if (view.alive) draw(); });
    // The committee changes at most once an epoch, its candidates with staking's transactions.
    return view.live(async () => {
      if (!chain.status) return;
      staking = await readCommittee(chain.status.epoch);
      draw();
    });
  }

  function resources(r) {
    const gpu = r.gpu ? ` · ${r.gpu.count}× ${r.gpu.model}` : "";
    return h("div", {},
      h("div", {}, `${r.cores} cores · ${(r.memory_mib / 1024).toFixed(1)} GiB${gpu}`),
      h("div", { class: "muted" }, `${r.class} · ${r.region} · ${(r.cpu_score / 1e9).toFixed(2)} G fuel/s per core · ${r.runtimes.join(", ")}`));
  }

  function reputation(value, max) {
    const fill = h("span");
    fill.style.width = `${max ? (100 * value) / max : 0}%`;
    return h("span", { class: "nowrap", title: `${value} of ${max}` }, h("span", { class: "rep" }, fill), `${num(value)} / ${num(max)}`);
  }

  function providersPage(view, main) {
    const list = pagedList(view, {
      path: (page) => `/v1/providers?${page}`,
      items: (page) => page.providers,
      headers: ["Id", "Owner", "Resources", { label: "Bond", num: true }, "Reputation", { label: "Replicas running", num: true }, "Valid / invalid / missed", "State"],
      empty: "No provider has registered yet.",
      row: (p) => h("tr", { class: "provider" },
        cell(`#${p.id}`), cell(link(`#/account/${p.owner}`, mono(p.owner))), cell(resources(p.resources)),
        cell(exo(p.bond), true), cell(reputation(p.reputation, p.reputation_max)), cell(num(p.active), true),
        cell(`${num(p.valid)} / ${num(p.invalid)} / ${num(p.missed)}`),
        cell(p.retired ? pill("retired") : p.trusted ? pill("trusted") : pill("probation"))),
    });
    main.replaceChildren(h("h1", {}, "Providers"), card(null, list.element));
    return list.load();
  }

  function marketPage(view, main) {
    const chartBox = h("div", { class: "chart", id: "depth-chart" });
    const levels = h("tbody");
    const summary = h("p", { class: "muted" });
    let plot = null;
    const offers = pagedList(view, {
      path: (page) => `/v1/market/offers?${page}`,
      items: (page) => page.offers,
      headers: ["Offer", "Provider", { label: "Price per unit", num: true }, { label: "Free slots", num: true }, "Resources", "Reputation when posted", "Expires"],
      empty: "The book is empty.",
      row: (o) => h("tr", {}, cell(`#${o.id}`), cell(link(`#/account/${o.owner}`, `#${o.provider}`)), cell(exo(o.price_per_unit), true), cell(num(o.slots), true),
        cell(resources(o.resources)), cell(num(o.reputation)), cell(h("span", { class: "nowrap" }, new Date(o.expiry_secs * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"))),
    });
    main.replaceChildren(h("h1", {}, "Market"),
      h("div", { class: "cols" },
        card("Depth: free slots at or under each price", chartBox, summary),
        card("Price levels", h("table", {}, h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Price per unit"), h("th", { class: "num" }, "Free slots"), h("th", { class: "num" }, "Offers"))), levels))),
      card("Offers", offers.element));
    const depth = async () => {
      const book = await json("/v1/market/depth");
      // A staircase: at each price the slots offered at or under it, from zero at the best ask.
      let cumulative = 0;
      const xs = [];
      const ys = [];
      for (const level of book.levels) {
        const price = Number(BigInt(level.price_per_unit)) / 1e9;
        xs.push(price, price);
        ys.push(cumulative, cumulative + level.slots);
        cumulative += level.slots;
      }
      if (xs.length) {
        xs.push(xs[xs.length - 1] * 1.25);
        ys.push(cumulative);
      }
      summary.textContent = book.levels.length
        ? `${num(cumulative)} free slots in ${book.levels.length} price level${book.levels.length === 1 ? "" : "s"} at height ${num(book.height)}; best ask ${exo(book.levels[0].price_per_unit)}.`
        : `No live offer at height ${num(book.height)}.`;
      levels.replaceChildren(...book.levels.map((l) => h("tr", { class: "level" }, cell(exo(l.price_per_unit), true), cell(num(l.slots), true), cell(num(l.offers), true))));
      if (!plot) plot = chart(chartBox, [xs, ys], "EXO per unit", "slots");
      else plot.setData([xs, ys]);
    };
    return Promise.all([view.live(depth), offers.load()]);
  }

  function jobRow(job) {
    return h("tr", { class: "job" },
      cell(link(`#/jobs/${job.id}`, `#${job.id}`)), cell(pill(job.state)), cell(mono(job.app)),
      cell(h("a", { class: "requester", href: `#/account/${job.requester}` }, mono(job.requester))), cell(num(job.submitted_height), true),
      cell(h("div", {}, progress(job.counts, job.unit_count),
        h("div", { class: "muted" }, `${job.counts.accepted} of ${job.unit_count} accepted · ${job.counts.running} running · ${job.counts.failed} failed`))));
  }
  const JOB_HEADERS = ["Job", "State", "App", "Requester", { label: "Submitted", num: true }, "Units"];

  /** A list of jobs, newest first, a page at a time (`requester` only, if given). */
  function jobList(view, requester) {
    const filter = requester ? `requester=${encodeURIComponent(requester)}&` : "";
    return pagedList(view, {
      id: "jobs",
      path: (page) => `/v1/jobs?${filter}height=0&${page}`,
      items: (page) => page.jobs,
      headers: JOB_HEADERS,
      row: jobRow,
      // A page reads `rows` jobs of every requester: one of them may hold none of this account's.
      empty: (page, following) => {
        if (!requester) return "No job yet.";
        return following === null ? "No job of this account." : "None of this account's jobs on this page; Next reads older ones.";
      },
    });
  }

  function jobsPage(view, main) {
    const list = jobList(view, null);
    main.replaceChildren(h("h1", {}, "Jobs"), card("Every job, newest first", list.element));
    return list.load();
  }

  // ---- a job, and the frames its tiles make ---------------------------------------------

  /**
   * Where a render unit draws, from its argument line `W H x y w h samples [frame]` (render's
   * `TileParams`, frame 0 when absent): its frame's size, the tile's place and the frame's
   * number; else null.
   */
  function tileOf(args) {
    if (!args || args.length < 7 || args.length > 8) return null;
    const n = args.map((a) => (/^[0-9]{1,10}$/.test(a) ? Number(a) : NaN));
    if (!n.every(Number.isSafeInteger)) return null;
    const [W, H, x, y, w, hh, , frame = 0] = n;
    const fits = W > 0 && H > 0 && W <= 16384 && H <= 16384 && w > 0 && hh > 0 && x + w <= W && y + hh <= H;
    return fits ? { W, H, x, y, w, h: hh, frame } : null;
  }

  /**
   * A render job's units by frame, `[[frame, units], ...]` in frame order, each unit with its
   * `tile`; null unless every unit is a tile of frames of one size (then it is not a render).
   */
  function framesOf(units) {
    const tiles = units.map((u) => tileOf(u.args));
    const first = tiles[0];
    if (!first || !tiles.every((t) => t && t.W === first.W && t.H === first.H)) return null;
    const frames = new Map();
    units.forEach((u, i) => {
      if (!frames.has(tiles[i].frame)) frames.set(tiles[i].frame, []);
      frames.get(tiles[i].frame).push({ ...u, tile: tiles[i] });
    });
    return [...frames.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** The files of an outputs archive (format EXOOUT01, see the API's `outputs` module). */
  function unpack(bytes) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    const need = (n) => { if (at + n > bytes.length) throw new Error("the outputs archive is truncated"); };
    const take = (n) => { need(n); const out = bytes.subarray(at, at + n); at += n; return out; };
    const u16 = () => { need(2); const v = view.getUint16(at); at += 2; return v; };
    const u32 = () => { need(4); const v = view.getUint32(at); at += 4; return v; };
    const u64 = () => { need(8); const v = view.getBigUint64(at); at += 8; if (v > BigInt(bytes.length)) throw new Error("the outputs archive is truncated"); return Number(v); };
    if (new TextDecoder().decode(take(8)) !== "EXOOUT01") throw new Error("not an outputs archive");
    take(u16());
    take(u64());
    for (let dirs = u32(); dirs > 0; dirs--) take(u16());
    const files = [];
    const text = new TextDecoder();
    for (let count = u32(); count > 0; count--) {
      const path = text.decode(take(u16()));
      files.push({ path, data: take(u64()) });
    }
    return files;
  }

  /** A binary PPM (P6, 8 bits) as ImageData. */
  function ppm(data) {
    const fields = [];
    let at = 0;
    while (fields.length < 4 && at < data.length) {
      while (at < data.length && /\s/.test(String.fromCharCode(data[at]))) at++;
      if (data[at] === 35) { while (at < data.length && data[at] !== 10) at++; continue; }
      let token = "";
      while (at < data.length && !/\s/.test(String.fromCharCode(data[at]))) token += String.fromCharCode(data[at++]);
      fields.push(token);
    }
    at++;
    const [magic, w, hh, max] = [fields[0], Number(fields[1]), Number(fields[2]), Number(fields[3])];
    if (magic !== "P6" || !(w > 0) || !(hh > 0) || max !== 255 || data.length - at < w * hh * 3) throw new Error("the tile is not an 8-bit PPM");
    const image = new ImageData(w, hh);
    for (let i = 0; i < w * hh; i++) {
      image.data[4 * i] = data[at + 3 * i];
      image.data[4 * i + 1] = data[at + 3 * i + 1];
      image.data[4 * i + 2] = data[at + 3 * i + 2];
      image.data[4 * i + 3] = 255;
    }
    return image;
  }

  /** Downloads an accepted unit's outputs and draws its image at its tile. */
  async function drawTile(context, jobId, unit, tile) {
    const outputs = await json(`/v1/outputs/${jobId}/${unit}`);
    const archive = new Uint8Array(await (await get(`/v1/blobs/${outputs.archive}`)).arrayBuffer());
    const image = unpack(archive).find((f) => /\.(ppm|png)$/i.test(f.path));
    if (!image) throw new Error(`unit ${unit} has no image among its outputs`);
    if (/\.png$/i.test(image.path)) {
      const bitmap = await createImageBitmap(new Blob([image.data], { type: "image/png" }));
      context.drawImage(bitmap, tile.x, tile.y, tile.w, tile.h);
    } else {
      const pixels = ppm(image.data);
      if (pixels.width !== tile.w || pixels.height !== tile.h) {
        throw new Error(`unit ${unit}'s image is ${pixels.width}x${pixels.height}, its tile ${tile.w}x${tile.h}`);
      }
      context.putImageData(pixels, tile.x, tile.y);
    }
  }

  /** A canvas of `width x height` shown at a whole multiple of its size up to `most` pixels wide. */
  function frameCanvas(frame, width, height, most) {
    const canvas = h("canvas", { class: "frame", id: `frame-${frame}`, "data-frame": frame, width, height, "data-drawn": 0 });
    canvas.style.width = `${Math.min(most, width * Math.max(1, Math.floor(most / width)))}px`;
    return canvas;
  }

  /**
   * The frames of a render job: one canvas per frame, its accepted tiles drawn at their place,
   * and beside each a map of its units. Tiles are downloaded at most TILE_FETCHES at a time
   * across frames.
   */
  function frameViews(jobId, width, height) {
    const element = h("div", { class: "frames", id: "frames", "data-drawn": 0 });
    /** Per frame number: its canvas, drawing context, unit map and caption. */
    const shown = new Map();
    const drawn = new Set();
    const failed = new Map();
    const fetching = new Set();
    let latest = { frames: [], total: 0 };

    function figure(frame, count) {
      if (shown.has(frame)) return shown.get(frame);
      const canvas = frameCanvas(frame, width, height, count > 1 ? 300 : 640);
      const grid = h("div", { class: "tiles", id: `tiles-${frame}` });
      const caption = h("figcaption", { class: "muted" });
      const f = { canvas, context: canvas.getContext("2d"), grid, caption, element: h("figure", { class: "frame-fig" }, canvas, h("div", {}, grid, caption)) };
      shown.set(frame, f);
      return f;
    }

    /**
     * Shows the latest units and starts downloading accepted tiles not yet drawn; those that
     * failed (outputs not uploaded yet, say) only when `retry`, once per refresh of the job.
     */
    function render(retry) {
      const { frames, total } = latest;
      element.classList.toggle("many", frames.length > 1);
      element.replaceChildren(...frames.map(([frame, units]) => {
        const f = figure(frame, frames.length);
        const done = units.filter((u) => drawn.has(u.unit)).length;
        f.grid.replaceChildren(...units.map((u) => {
          const cls = drawn.has(u.unit) ? "drawn" : u.state;
          return h("span", { class: cls, "data-unit": u.unit, title: `unit ${u.unit}, tile at ${u.tile.x},${u.tile.y}: ${cls}` });
        }));
        f.caption.textContent = `Frame ${frame}: ${done} of ${units.length} tiles`;
        f.canvas.setAttribute("data-drawn", done);
        return f.element;
      }), h("p", { class: "muted", id: "frame-caption" },
        `${drawn.size} of ${total} tiles drawn` + (failed.size ? ` · ${failed.size} not downloadable yet` : "")));
      element.setAttribute("data-drawn", drawn.size);
      const wanted = frames.flatMap(([, units]) => units).filter((u) => u.state === "accepted" &&
        !drawn.has(u.unit) && !fetching.has(u.unit) && (retry || !failed.has(u.unit)));
      for (const u of wanted.slice(0, Math.max(0, TILE_FETCHES - fetching.size))) {
        fetching.add(u.unit);
        drawTile(figure(u.tile.frame).context, jobId, u.unit, u.tile)
          .then(() => { drawn.add(u.unit); failed.delete(u.unit); })
          .catch((err) => failed.set(u.unit, err.message))
          .finally(() => { fetching.delete(u.unit); render(false); });
      }
    }

    function update(frames, total) {
      latest = { frames, total };
      render(true);
    }
    return { element, update };
  }

  /** The job's units, a page of UNIT_PAGE at a time, at most MAX_FRAME_UNITS; and its record. */
  async function readJob(id) {
    let job = null;
    const units = [];
    for (let from = 0; from !== null && from !== undefined && units.length < MAX_FRAME_UNITS;) {
      const page = await json(`/v1/jobs/${encodeURIComponent(id)}?from=${from}&limit=${UNIT_PAGE}`);
      job = job || page;
      units.push(...page.units);
      from = page.next_unit;
    }
    return { job, units };
  }

  /** Why a job's units wait, in words, with prices in EXO (the API's sentence has base units). */
  function waitText(r) {
    const passed = `${r.passed_exact ? "" : "at least "}${num(r.passed)} of ${num(r.live_offers)} offers meet the requirements`;
    switch (r.code) {
      case "price_too_low":
        return `Waiting: the best ask, ${exo(r.best_ask)}, is above the job's limit of ${exo(r.max_price_per_unit)} per unit (${passed}).`;
      case "slots_taken":
        return `Waiting: every matching slot is taken (${passed}; the best ask, ${exo(r.best_ask)}, is within the job's limit of ${exo(r.max_price_per_unit)}).`;
      default:
        return `Waiting: ${r.sentence}.`;
    }
  }

  /** The app a job runs, as published by its developer; null when the module was not published. */
  async function appOf(job) {
    return json(`/v1/apps/${job.app}/${job.developer}`).catch((err) => {
      if (err.status === 404) return null;
      throw err;
    });
  }

  /** `job`'s figures; `app` is its published app, if any. */
  function jobStats(job, app) {
    const a = job.accounts;
    return [
      stat("State", pill(job.state), "job-state"),
      stat("Units accepted", `${job.counts.accepted} / ${job.unit_count}`, "job-units"),
      stat("Trust", `${job.trust} replicas`),
      stat("Escrowed", exo(a.escrowed), null, true),
      stat("Paid to providers", exo(a.paid_total), null, true),
      stat("Refunded", exo(a.refunded), null, true),
      stat("App", app ? h("span", { title: job.app }, `${app.name} ${app.version}`) : mono(job.app), "job-app", true),
      stat("Requester", link(`#/account/${job.requester}`, mono(job.requester)), null, true),
    ];
  }

  async function jobPage(view, main, id) {
    const head = h("div", { class: "grid" });
    const bar = h("div");
    const frameBox = h("div");
    const log = h("div", { class: "events", id: "assignments" });
    const unitList = pagedList(view, {
      id: "units",
      path: (page) => `/v1/jobs/${encodeURIComponent(id)}?${page}`,
      items: (page) => page.units,
      next: (page) => page.next_unit,
      headers: ["Unit", "State", "Replicas", { label: "Fuel", num: true }, "Arguments"],
      empty: "This job has no unit on this page.",
      row: (u) => h("tr", {}, cell(u.unit), cell(pill(u.state)),
        cell(u.replicas.map((r) => `#${r.provider} ${r.status}`).join(", ") || "–"), cell(num(u.accepted_fuel), true),
        cell(h("span", { class: "mono" }, (u.args || []).join(" ").slice(0, 80)))),
    });
    main.replaceChildren(h("h1", {}, `Job #${id}`), frameBox, head, card("Progress", bar),
      h("div", { class: "cols" }, card("Units", unitList.element), card("Assignments, live", log)));
    view.on("assignment", (a) => {
      if (String(a.job) !== String(id)) return;
      log.prepend(h("div", {}, `height ${num(a.height)}: unit ${a.unit} replica ${a.replica} → provider #${a.provider} at ${exo(a.price_per_unit)}`));
      while (log.childElementCount > EVENT_LOG) log.lastChild.remove();
    });
    let tiles = null;
    let app;
    const progressNow = view.live(async () => {
      const { job, units } = await readJob(id);
      // A job's app never changes: asked once.
      if (app === undefined) app = await appOf(job);
      head.replaceChildren(...jobStats(job, app));
      bar.replaceChildren(progress(job.counts, job.unit_count),
        h("p", { class: "muted" }, `${job.counts.waiting} waiting · ${job.counts.running} running · ${job.counts.accepted} accepted · ${job.counts.failed} failed. ` +
          (job.wait_reason ? waitText(job.wait_reason) : "")));
      const frames = framesOf(units);
      if (frames && !tiles) {
        const { W, H } = frames[0][1][0].tile;
        tiles = frameViews(id, W, H);
        const some = units.length < job.unit_count ? ` (the frames of its first ${num(units.length)} units)` : "";
        const title = frames.length > 1 ? `${frames.length} frames, tile by tile as units are accepted` : "Frame, tile by tile as units are accepted";
        frameBox.replaceChildren(card(title + some, tiles.element));
      }
      if (tiles && frames) tiles.update(frames, units.length);
    });
    return Promise.all([progressNow, unitList.load()]);
  }

  function appsPage(view, main) {
    const list = pagedList(view, {
      path: (page) => `/v1/apps?${page}`,
      items: (page) => page.apps,
      headers: ["Name", "Version", "Module", "Developer", { label: "Royalty per unit", num: true }, { label: "Published", num: true }],
      empty: "No app has been published yet. Jobs may still run any module by its hash.",
      row: (a) => h("tr", { class: "app" }, cell(h("strong", {}, a.name)), cell(a.version), cell(mono(a.module_hash)),
        cell(link(`#/account/${a.developer}`, mono(a.developer))), cell(exo(a.royalty_per_unit), true), cell(num(a.published_height), true)),
    });
    main.replaceChildren(h("h1", {}, "Apps"), card(null, list.element));
    return list.load();
  }

  async function accountPage(view, main, address) {
    const input = h("input", { type: "text", name: "address", placeholder: "An address: 64 hex digits", value: address || "", spellcheck: "false" });
    const form = h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); location.hash = `#/account/${input.value.trim()}`; } },
      input, h("button", { type: "submit" }, "Show"));
    main.replaceChildren(h("h1", {}, "Account"), form);
    if (!address) {
      main.append(h("p", { class: "muted" }, "Enter an account's address to see its balance, its provider and its jobs."));
      return;
    }
    const head = h("div", { class: "grid" });
    const jobs = jobList(view, address);
    main.append(head, card(`Its jobs, newest first (a page reads ${view.rows} jobs of every requester)`, jobs.element));
    const encoded = encodeURIComponent(address);
    return Promise.all([jobs.load(), view.live(async () => {
      const account = await json(`/v1/accounts/${encoded}`);
      const provider = await json(`/v1/accounts/${encoded}/provider`).catch((err) => { if (err.status === 404) return null; throw err; });
      head.replaceChildren(
        stat("Balance", exo(account.balance), "balance"),
        stat("Next nonce", num(account.nonce)),
        stat("Provider", provider ? link("#/providers", `#${provider.provider}`) : "none"),
        stat("Address", mono(account.address, true), null, true));
    })]);
  }

  // ---- routing -------------------------------------------------------------------------

  const PAGES = {
    "": overviewPage,
    providers: providersPage,
    market: marketPage,
    jobs: jobsPage,
    apps: appsPage,
    account: accountPage,
  };
  let current = null;

  /** Rows per page that the address asks for (`#/jobs?rows=10`), within 1 to MAX_PAGE. */
  function rowsAsked(search) {
    const rows = Number(new URLSearchParams(search).get("rows"));
    return Number.isInteger(rows) && rows >= 1 ? Math.min(rows, MAX_PAGE) : PAGE;
  }

  function route() {
    if (current) current.end();
    const [place, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
    current = session(rowsAsked(search));
    const [name, arg] = place.split("/");
    const page = name === "jobs" && arg ? jobPage : PAGES[name] || overviewPage;
    for (const a of document.querySelectorAll("header nav a")) {
      a.classList.toggle("active", a.dataset.page === (name || "overview"));
    }
    const main = document.getElementById("main");
    Promise.resolve(page(current, main, arg && decodeURIComponent(arg))).catch((err) => {
      main.replaceChildren(h("p", { class: "error" }, err.message));
    });
  }

  window.addEventListener("hashchange", route);
  refreshStatus().then(() => { connect(); route(); });
})();
