// The dashboard: a client of this node's public API. Pages are chosen by the URL's fragment
// (#/providers, #/jobs/7, ...); every list is read one bounded page at a time, and the live
// parts follow the node's event stream (/v1/events). Text from the chain is only ever set as
// text (never parsed as HTML).
"use strict";
(() => {
  /** Rows per page of a list. */
  const PAGE = 50;
  /** Points of the finality chart. */
  const CHART_POINTS = 120;
  /** Finalized blocks kept for the committee and the block list. */
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

  function table(headers, rows) {
    return h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.num ? "num" : null }, x.label || x)))),
      h("tbody", {}, rows));
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

  /** What a page may subscribe to; everything it subscribed ends when the page is left. */
  function session() {
    const mine = [];
    const view = {
      alive: true,
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

  /** A list read a page at a time: `path(from)` names a page, `rows(body)` its items. */
  function pagedList(view, { path, items, headers, row, empty }) {
    const body = h("tbody");
    const status = h("span", { class: "muted" });
    const stack = [];
    let from = 0;
    let next = null;
    const prev = h("button", { onclick: () => { from = stack.pop() ?? 0; load(); } }, "← Previous");
    const more = h("button", { onclick: () => { stack.push(from); from = next; load(); } }, "Next →");
    async function load() {
      const page = await json(path(from));
      const list = items(page);
      next = page.next ?? null;
      body.replaceChildren(...(list.length ? list.map(row) : [h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, empty))]));
      prev.disabled = stack.length === 0;
      more.disabled = next === null;
      status.textContent = list.length ? `${list.length} shown` : "";
    }
    const element = h("div", {},
      h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.num ? "num" : null }, x.label || x)))), body),
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

  async function overviewPage(view, main) {
    const finalized = h("span", {}, "–");
    const proposed = h("span", {}, "–");
    const epoch = h("span", {}, "–");
    const peers = h("span", {}, "–");
    const fee = h("span", {}, "–");
    const median = h("span", {}, "–");
    const chartBox = h("div", { class: "chart", id: "finality-chart" });
    const committee = h("tbody");
    const blocks = h("tbody");
    main.replaceChildren(
      h("h1", {}, "Chain"),
      h("div", { class: "grid" },
        stat("Finalized height", finalized, "finalized-height"),
        stat("Seen height", proposed),
        stat("Epoch", epoch),
        stat("Peers", peers),
        stat("Median block interval", median),
        stat("Minimum fee", fee, null, true)),
      card("Finality latency",
        chartBox,
        h("div", { class: "legend" }, "Each point is a finalized block (x: height) and the milliseconds from its timestamp to its arrival here on the event stream, finalized.")),
      h("div", { class: "cols" },
        card("Committee",
          h("p", { class: "muted" }, "Validators that proposed among the last finalized blocks this page has seen."),
          h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Validator"), h("th", { class: "num" }, "Blocks proposed"), h("th", { class: "num" }, "Last"))), committee)),
        card("Recent blocks",
          h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Height"), h("th", {}, "Proposer"), h("th", { class: "num" }, "Transactions"))), blocks))));
    await backfill();
    const plot = chart(chartBox, [[], []], "height", "ms");
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
      const members = new Map();
      for (const block of chain.blocks) {
        const m = members.get(block.proposer) || { count: 0, last: 0 };
        m.count += 1;
        m.last = Math.max(m.last, block.height);
        members.set(block.proposer, m);
      }
      committee.replaceChildren(...[...members.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([address, m]) =>
        h("tr", { class: "member" }, cell(link(`#/account/${address}`, mono(address))), cell(num(m.count), true), cell(num(m.last), true))));
      blocks.replaceChildren(...chain.blocks.slice(-12).reverse().map((b) =>
        h("tr", {}, cell(num(b.height)), cell(mono(b.proposer)), cell(num(b.txs), true))));
    };
    draw();
    view.on("block", async () => { await refreshStatus(); if (view.alive) draw(); });
  }

  function resources(r) {
    const gpu = r.gpu ? ` · ${r.gpu.count}× ${r.gpu.model}` : "";
    return h("div", {},
      h("div", {}, `${r.cores} cores · ${(r.memory_mib / 1024).toFixed(1)} GiB${gpu}`),
      h("div", { class: "muted" }, `${r.class} · ${r.region} · score ${num(r.cpu_score)} · ${r.runtimes.join(", ")}`));
  }

  function reputation(value, max) {
    const fill = h("span");
    fill.style.width = `${max ? (100 * value) / max : 0}%`;
    return h("span", { title: `${value} of ${max}` }, h("span", { class: "rep" }, fill), `${num(value)}`);
  }

  function providersPage(view, main) {
    const list = pagedList(view, {
      path: (from) => `/v1/providers?from=${from}&limit=${PAGE}`,
      items: (page) => page.providers,
      headers: ["Id", "Owner", "Resources", { label: "Bond", num: true }, "Reputation", { label: "Active", num: true }, "Valid / invalid / missed", "State"],
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
      path: (from) => `/v1/market/offers?from=${from}&limit=${PAGE}`,
      items: (page) => page.offers,
      headers: ["Offer", "Provider", { label: "Price per unit", num: true }, { label: "Free slots", num: true }, "Resources", "Reputation", "Expires"],
      empty: "The book is empty.",
      row: (o) => h("tr", {}, cell(`#${o.id}`), cell(`#${o.provider}`), cell(exo(o.price_per_unit), true), cell(num(o.slots), true),
        cell(resources(o.resources)), cell(num(o.reputation)), cell(new Date(o.expiry_secs * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC")),
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
        ? `${num(cumulative)} free slots in ${book.levels.length} price levels at height ${num(book.height)}; best ask ${exo(book.levels[0].price_per_unit)}.`
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

  function jobsPage(view, main) {
    const body = h("tbody");
    main.replaceChildren(h("h1", {}, "Jobs"),
      card(`The ${PAGE} newest jobs`, h("table", {}, h("thead", {}, h("tr", {}, JOB_HEADERS.map((x) => h("th", {}, x.label || x)))), body)));
    return view.live(async () => {
      const page = await json(`/v1/jobs?height=0&limit=${PAGE}`);
      body.replaceChildren(...(page.jobs.length ? page.jobs.map(jobRow) : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No job yet."))]));
    });
  }

  // ---- a job, and the frame its tiles make ----------------------------------------------

  /** The tile a render unit draws, from its argument line `W H x y w h ...`; else null. */
  function tileOf(args) {
    if (!args || args.length < 6) return null;
    const n = args.slice(0, 6).map(Number);
    if (!n.every((v) => Number.isInteger(v) && v >= 0)) return null;
    const [W, H, x, y, w, hh] = n;
    const fits = W > 0 && H > 0 && W <= 16384 && H <= 16384 && w > 0 && hh > 0 && x + w <= W && y + hh <= H;
    return fits ? { W, H, x, y, w, h: hh } : null;
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

  /** The frame of a render job: a canvas its accepted tiles are drawn on, and a map of units. */
  function frame(jobId, width, height) {
    const canvas = h("canvas", { class: "frame", id: "frame", width, height, "data-drawn": 0 });
    canvas.style.width = `${Math.min(640, width * Math.max(1, Math.floor(640 / width)))}px`;
    const context = canvas.getContext("2d");
    const grid = h("div", { class: "tiles", id: "tiles" });
    const caption = h("p", { class: "muted", id: "frame-caption" });
    const drawn = new Set();
    const failed = new Map();
    const fetching = new Set();
    const element = h("div", { class: "frame-wrap" }, canvas, h("div", {}, grid, caption));

    let latest = { units: [], total: 0 };

    /**
     * Shows the latest units and starts downloading accepted tiles not yet drawn; those that
     * failed (outputs not uploaded yet, say) only when `retry`, once per refresh of the job.
     */
    function render(retry) {
      const { units, total } = latest;
      grid.replaceChildren(...units.map((u) => {
        const cls = drawn.has(u.unit) ? "drawn" : u.state;
        return h("span", { class: cls, "data-unit": u.unit, title: `unit ${u.unit}: ${cls}` });
      }));
      caption.textContent = `${drawn.size} of ${total} tiles on the frame` +
        (failed.size ? ` · ${failed.size} not downloadable yet` : "");
      canvas.setAttribute("data-drawn", drawn.size);
      const wanted = units.filter((u) => u.state === "accepted" && !drawn.has(u.unit) && !fetching.has(u.unit) && (retry || !failed.has(u.unit)));
      for (const u of wanted.slice(0, Math.max(0, TILE_FETCHES - fetching.size))) {
        fetching.add(u.unit);
        drawTile(context, jobId, u.unit, tileOf(u.args))
          .then(() => { drawn.add(u.unit); failed.delete(u.unit); })
          .catch((err) => failed.set(u.unit, err.message))
          .finally(() => { fetching.delete(u.unit); render(false); });
      }
    }

    function update(units, total) {
      latest = { units, total };
      render(true);
    }
    return { element, update };
  }

  async function jobPage(view, main, id) {
    const head = h("div", { class: "grid" });
    const bar = h("div");
    const frameBox = h("div");
    const unitsBody = h("tbody");
    const log = h("div", { class: "events", id: "assignments" });
    main.replaceChildren(h("h1", {}, `Job #${id}`), frameBox, head, card("Progress", bar),
      h("div", { class: "cols" },
        card(`Units (the first ${PAGE})`, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Unit"), h("th", {}, "State"), h("th", {}, "Replicas"), h("th", { class: "num" }, "Fuel"))), unitsBody)),
        card("Assignments, live", log)));
    view.on("assignment", (a) => {
      if (String(a.job) !== String(id)) return;
      log.prepend(h("div", {}, `height ${num(a.height)}: unit ${a.unit} replica ${a.replica} → provider #${a.provider} at ${exo(a.price_per_unit)}`));
      while (log.childElementCount > EVENT_LOG) log.lastChild.remove();
    });
    let tiles = null;
    return view.live(async () => {
      let job = null;
      const units = [];
      for (let from = 0; from !== null && from !== undefined && units.length < MAX_FRAME_UNITS;) {
        const page = await json(`/v1/jobs/${encodeURIComponent(id)}?from=${from}&limit=${UNIT_PAGE}`);
        job = job || page;
        units.push(...page.units);
        from = page.next_unit;
      }
      const a = job.accounts;
      head.replaceChildren(
        stat("State", pill(job.state), "job-state"),
        stat("Units accepted", `${job.counts.accepted} / ${job.unit_count}`, "job-units"),
        stat("Trust", `${job.trust} replicas`),
        stat("Escrowed", exo(a.escrowed), null, true),
        stat("Paid to providers", exo(a.paid_total), null, true),
        stat("Refunded", exo(a.refunded), null, true),
        stat("App", mono(job.app), null, true),
        stat("Requester", link(`#/account/${job.requester}`, mono(job.requester)), null, true));
      bar.replaceChildren(progress(job.counts, job.unit_count),
        h("p", { class: "muted" }, `${job.counts.waiting} waiting · ${job.counts.running} running · ${job.counts.accepted} accepted · ${job.counts.failed} failed. ` +
          (job.wait_reason ? job.wait_reason.sentence : "")));
      unitsBody.replaceChildren(...units.slice(0, PAGE).map((u) => h("tr", {},
        cell(u.unit), cell(pill(u.state)), cell(u.replicas.map((r) => `#${r.provider} ${r.status}`).join(", ") || "–"), cell(num(u.accepted_fuel), true))));
      const geometry = units.map((u) => tileOf(u.args));
      const isFrame = units.length > 0 && geometry.every((t) => t && t.W === geometry[0].W && t.H === geometry[0].H);
      if (isFrame && !tiles) {
        tiles = frame(id, geometry[0].W, geometry[0].H);
        frameBox.replaceChildren(card("Frame, tile by tile as units are accepted", tiles.element));
      }
      if (tiles) tiles.update(units, job.unit_count);
    });
  }

  function appsPage(view, main) {
    const list = pagedList(view, {
      path: (from) => `/v1/apps?from=${from}&limit=${PAGE}`,
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
    const jobs = h("tbody");
    main.append(head, card(`Its jobs among the ${2 * PAGE} newest`, h("table", {}, h("thead", {}, h("tr", {}, JOB_HEADERS.map((x) => h("th", {}, x.label || x)))), jobs)));
    const encoded = encodeURIComponent(address);
    return view.live(async () => {
      const account = await json(`/v1/accounts/${encoded}`);
      const provider = await json(`/v1/accounts/${encoded}/provider`).catch((err) => { if (err.status === 404) return null; throw err; });
      const page = await json(`/v1/jobs?requester=${encoded}&height=0&limit=${2 * PAGE}`);
      head.replaceChildren(
        stat("Balance", exo(account.balance), "balance"),
        stat("Next nonce", num(account.nonce)),
        stat("Provider", provider ? link("#/providers", `#${provider.provider}`) : "none"),
        stat("Address", mono(account.address, true), null, true));
      jobs.replaceChildren(...(page.jobs.length ? page.jobs.map(jobRow) : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No recent job."))]));
    });
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

  function route() {
    if (current) current.end();
    current = session();
    const [name, arg] = location.hash.replace(/^#\/?/, "").split("/");
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
