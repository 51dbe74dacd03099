// The leaderboard page: draws the table and charts from the embedded snapshot, then redraws on
// every update pushed over /ws/leaderboard/. Model names are set with textContent (or as attribute
// values) only.
(function () {
  "use strict";
  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
  const SVG = "http://www.w3.org/2000/svg";
  const fmt = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
  let current = null;  // the snapshot drawn last
  const view = JSON.parse(document.getElementById("leaderboard-view").textContent);

  function cell(tag, text, cls) {
    const el = document.createElement(tag);
    el.textContent = text;
    if (cls) el.className = cls;
    return el;
  }

  function svgEl(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function rankChange(row) {
    const change = row.rank_change;
    const td = cell("td", change === null || change === undefined ? "–" : change > 0 ? `▲${change}` : change < 0 ? `▼${-change}` : "0",
      "num style-col" + (change > 0 ? " rank-up" : change < 0 ? " rank-down" : ""));
    td.setAttribute("data-testid", "rank-change");
    if (row.rating_plain !== undefined) td.title = `Without style control: rank ${fmt(row.rank_plain)}, rating ${fmt(row.rating_plain)}`;
    return td;
  }

  function speedCells(speed) {
    const s = speed || {};
    const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
    const ms = (x) => (x === null || x === undefined ? "–" : `${fmt(x)} ms`);
    return [
      cell("td", ms(s.ttft_p50_ms), "num speed-col"), cell("td", ms(s.ttft_p90_ms), "num speed-col"),
      cell("td", fmt(s.tokens_per_second, 1), "num speed-col"), cell("td", pct(s.failure_rate), "num speed-col"),
    ];
  }

  function tableRow(row) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "leaderboard-row");
    tr.dataset.model = row.model;
    if (row.provisional) tr.dataset.provisional = "true";
    tr.append(cell("td", row.provisional ? "provisional" : fmt(row.rank), "num"));
    tr.append(rankChange(row));
    tr.append(cell("td", row.model));
    const rating = cell("td", fmt(row.rating), "num");
    rating.setAttribute("data-testid", "rating");
    tr.append(rating);
    const plus = row.ci_upper - row.rating, minus = row.rating - row.ci_lower;
    tr.append(cell("td", `+${fmt(plus)} / −${fmt(minus)}`, "num"));
    tr.append(cell("td", String(row.votes), "num"));
    tr.append(cell("td", fmt(row.elo_online), "num"));
    tr.append(...speedCells(row.speed));
    return tr;
  }

  // Ranked models in the main table; provisional ones (too few votes to rank) in their own, below.
  function renderTable(lb) {
    const ranked = lb.models.filter((r) => !r.provisional), provisional = lb.models.filter((r) => r.provisional);
    byTestId("leaderboard-body").replaceChildren(...ranked.map(tableRow));
    byTestId("provisional-body").replaceChildren(...provisional.map(tableRow));
    byTestId("provisional").hidden = !provisional.length;
    byTestId("leaderboard-none-ranked").hidden = ranked.length > 0 || !provisional.length;
    const method = lb.interval_method === "bootstrap" ? `bootstrap, ${lb.bootstrap_rounds} rounds` : "analytic (sandwich), live";
    const scope = [view.category !== "overall" ? `${lb.category_label || view.category}: ${lb.battles} of ${lb.total_votes} counted votes` : `${lb.total_votes} counted votes`];
    if (view.style) scope.push("style-controlled");
    byTestId("leaderboard-summary").textContent =
      `${scope.join(" · ")} · ${lb.models.length} models` +
      (provisional.length ? ` (${provisional.length} provisional)` : "") +
      ` · 95% intervals: ${method}` +
      (lb.weighting === "inverse-probability" ? " · votes weighted by inverse draw probability" : "") +
      (lb.anchor ? ` · anchored on ${lb.anchor}` : "");
  }

  // Drawn at the size it is shown (one SVG unit = one CSS pixel), so its text is as large as the
  // page's at any width; on a narrow screen each model's name goes above its interval.
  function renderIntervals(lb) {
    const svg = byTestId("interval-plot");
    svg.replaceChildren();
    const rows = lb.models.filter((r) => Number.isFinite(r.ci_lower) && Number.isFinite(r.ci_upper));
    if (!rows.length) {
      svg.setAttribute("viewBox", "0 0 520 60");
      return;
    }
    const width = Math.max(Math.round(svg.getBoundingClientRect().width) || 520, 240);
    const narrow = width < 480;
    const left = narrow ? 8 : Math.min(200, Math.round(width * 0.35));
    const right = 16;
    const rowH = narrow ? 40 : 26;
    const top = narrow ? 6 : 16;
    const height = top + rows.length * rowH + 24;
    svg.dataset.layout = narrow ? "stacked" : "side";
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const lo = Math.min(...rows.map((r) => r.ci_lower)), hi = Math.max(...rows.map((r) => r.ci_upper));
    const pad = Math.max((hi - lo) * 0.05, 5);
    const x = (v) => left + ((v - (lo - pad)) / (hi - lo + 2 * pad)) * (width - left - right);
    rows.forEach((r, i) => {
      const rowTop = top + i * rowH;
      const y = narrow ? rowTop + 28 : rowTop;  // the interval's line
      const g = svgEl("g", {});
      g.append(svgEl("title", {}, `${r.model}${r.provisional ? " (provisional)" : ""}: ${fmt(r.rating)} (95% interval ${fmt(r.ci_lower)} to ${fmt(r.ci_upper)})`));
      if (r.provisional) g.setAttribute("class", "provisional");
      const label = narrow
        ? svgEl("text", { x: left, y: rowTop + 12 }, `${r.model} · ${fmt(r.rating)}`)
        : svgEl("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, r.model);
      label.setAttribute("class", "label");
      g.append(label,
        svgEl("line", { x1: x(r.ci_lower), x2: x(r.ci_upper), y1: y, y2: y, class: "ci" }),
        svgEl("circle", { cx: x(r.rating), cy: y, r: 4 }));
      svg.append(g);
      // A name too long for its room is shortened; the full one is in the row's title.
      const room = narrow ? width - left - right : left - 14;
      let text = label.textContent;
      while (label.getComputedTextLength() > room && text.length > 4) {
        text = text.slice(0, -2);
        label.textContent = `${text}…`;
      }
    });
    svg.append(
      svgEl("text", { x: x(lo - pad), y: height - 6, class: "axis" }, fmt(lo - pad)),
      svgEl("text", { x: x(hi + pad), y: height - 6, "text-anchor": "end", class: "axis" }, fmt(hi + pad)),
    );
  }

  // value(i, j) -> {text, title, color} for a pair that met, null for one that never did.
  function renderMatrix(testId, names, value) {
    const table = byTestId(testId);
    table.replaceChildren();
    if (!names.length) return;
    const head = document.createElement("tr");
    head.append(cell("th", ""));
    names.forEach((n) => {
      const th = cell("th", n);
      th.scope = "col";
      head.append(th);
    });
    table.append(head);
    names.forEach((rowName, i) => {
      const tr = document.createElement("tr");
      const th = cell("th", rowName);
      th.scope = "row";
      tr.append(th);
      names.forEach((_, j) => {
        const v = i === j ? null : value(i, j);
        const td = cell("td", v ? v.text : "", "num");
        if (v) {
          if (v.color) td.style.backgroundColor = v.color;
          td.title = v.title;
          td.setAttribute("aria-label", v.text === v.title ? v.title : `${v.text}: ${v.title}`);
        }
        tr.append(td);
      });
      table.append(tr);
    });
  }

  function renderMatrices(lb) {
    if (!lb.battle_counts) {  // a view with too few votes has no charts
      byTestId("win-fraction").replaceChildren();
      byTestId("battle-counts").replaceChildren();
      return;
    }
    // Matrices follow the table's order (by rating).
    const order = lb.models.map((r) => lb.names.indexOf(r.model));
    const names = order.map((i) => lb.names[i]);
    const pick = (m) => (m ? order.map((i) => order.map((j) => m[i][j])) : null);
    const frac = pick(lb.win_fraction), counts = pick(lb.battle_counts), wins = pick(lb.wins);
    const max = Math.max(1, ...counts.flat());
    const record = (i, j) => {
      if (!wins) return "";
      const w = wins[i][j], l = wins[j][i], n = counts[i][j];
      return `${names[i]} vs ${names[j]}: ${w}–${l}–${n - w - l} (wins–losses–ties, ${n} battle${n === 1 ? "" : "s"})`;
    };
    renderMatrix("win-fraction", names, (i, j) => {
      if (!counts[i][j]) return null;
      const v = frac[i][j];
      if (v === null) return { text: "–", title: `${record(i, j)}: only ties so far`, color: "" };
      return { text: v.toFixed(2), title: record(i, j), color: `hsl(${Math.round(v * 120)}, 70%, 80%)` };
    });
    renderMatrix("battle-counts", names, (i, j) => {
      const n = counts[i][j];
      if (!n) return null;
      return { text: String(n), title: record(i, j) || `${n} battles`, color: `rgba(59, 91, 219, ${0.08 + 0.5 * (n / max)})` };
    });
  }

  function renderCoefficients(lb) {
    const section = byTestId("style-coefficients");
    const list = byTestId("style-coefficient-list");
    const coefficients = lb.coefficients || [];
    section.hidden = !view.style || !coefficients.length;
    list.replaceChildren(...coefficients.map((c) => {
      const li = cell("li", c.says);
      li.setAttribute("data-testid", "style-coefficient");
      li.dataset.feature = c.feature;
      return li;
    }));
  }

  function render(lb) {
    current = lb;
    const tooFew = Boolean(lb.too_few_votes);
    const empty = !lb.models.length;
    // No votes: one plain sentence instead of an empty table and empty charts; a category with too
    // few votes says how many it has instead of ranking.
    byTestId("leaderboard-empty").hidden = !empty || tooFew;
    const few = byTestId("too-few-votes");
    few.hidden = !tooFew;
    few.textContent = tooFew
      ? `Only ${lb.battles} counted vote${lb.battles === 1 ? "" : "s"} ${view.category !== "overall" ? `in “${lb.category_label || view.category}”` : "here"}${view.style ? " with known answer styles" : ""} so far: models are ranked from ${lb.min_battles} on.`
      : "";
    byTestId("leaderboard-content").hidden = empty;
    byTestId("leaderboard-summary").hidden = empty;
    for (const table of document.querySelectorAll("table.leaderboard")) table.classList.toggle("with-style", view.style);
    renderCoefficients(lb);
    renderTable(lb);
    renderIntervals(lb);  // after the content is shown: it is drawn at its shown width
    renderMatrices(lb);
  }

  // Redraw the plot when its width changes (a phone turned, a window resized).
  let plotWidth = 0;
  new ResizeObserver((entries) => {
    const width = Math.round(entries[0].contentRect.width);
    if (width && width !== plotWidth && current) {
      plotWidth = width;
      renderIntervals(current);
    }
  }).observe(byTestId("interval-plot"));

  // The view is in the address (?style=1&category=coding): changing it loads that page. A judge
  // model's leaderboard has no such views, nor these controls.
  const controls = byTestId("leaderboard-controls");
  controls?.addEventListener("change", (e) => {
    if (e.target === byTestId("speed-toggle")) return;
    const params = new URLSearchParams(location.search);
    params.delete("style");
    params.delete("category");
    if (byTestId("style-toggle").checked) params.set("style", "1");
    const category = byTestId("category-menu").value;
    if (category !== "overall") params.set("category", category);
    const query = params.toString();
    location.assign(`${location.pathname}${query ? `?${query}` : ""}`);
  });
  const speedToggle = byTestId("speed-toggle");
  const showSpeed = (on) => {
    for (const table of document.querySelectorAll("table.leaderboard")) table.classList.toggle("hide-speed", !on);
  };
  if (speedToggle) {
    speedToggle.checked = localStorage.getItem("leaderboard-speed") !== "hidden";
    showSpeed(speedToggle.checked);
    speedToggle.addEventListener("change", () => {
      localStorage.setItem("leaderboard-speed", speedToggle.checked ? "shown" : "hidden");
      showSpeed(speedToggle.checked);
    });
  }

  // Another view than the live one is asked for again when a vote is pushed (its server side
  // recomputes it at most every half minute), at most every few seconds.
  const variant = view.style || view.category !== "overall";
  let refetch = null;
  function pushed(lb) {
    if (!variant) {
      render(lb);
      return;
    }
    if (refetch) return;
    refetch = setTimeout(async () => {
      refetch = null;
      const response = await fetch(`/api/leaderboard/${location.search}`, { headers: { Accept: "application/json" } });
      if (response.ok) render(await response.json());
    }, 3000);
  }

  let retry = 500;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/leaderboard/`);
    socket.addEventListener("open", () => { retry = 500; });
    socket.addEventListener("message", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "leaderboard") pushed(msg.leaderboard);
    });
    socket.addEventListener("close", () => { setTimeout(connect, retry); retry = Math.min(retry * 2, 8000); });
  }

  render(JSON.parse(document.getElementById("leaderboard-data").textContent));
  // A judge model's leaderboard changes only as its run goes on: reload for news. The live
  // updates are the people's leaderboard's.
  if (!document.getElementById("leaderboard-static")) connect();
})();
