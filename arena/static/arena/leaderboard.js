// The leaderboard page: draws the table and charts from the embedded snapshot, then redraws on
// every update pushed over /ws/leaderboard/. Model names are set with textContent only.
(function () {
  "use strict";
  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
  const SVG = "http://www.w3.org/2000/svg";
  const fmt = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));

  function cell(tag, text, cls) {
    const el = document.createElement(tag);
    el.textContent = text;
    if (cls) el.className = cls;
    return el;
  }

  function renderTable(lb) {
    const body = byTestId("leaderboard-body");
    body.replaceChildren();
    for (const row of lb.models) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-testid", "leaderboard-row");
      tr.dataset.model = row.model;
      tr.append(cell("td", fmt(row.rank), "num"));
      tr.append(cell("td", row.model));
      const rating = cell("td", fmt(row.rating), "num");
      rating.setAttribute("data-testid", "rating");
      tr.append(rating);
      const plus = row.ci_upper - row.rating, minus = row.rating - row.ci_lower;
      tr.append(cell("td", `+${fmt(plus)} / −${fmt(minus)}`, "num"));
      tr.append(cell("td", String(row.votes), "num"));
      tr.append(cell("td", fmt(row.elo_online), "num"));
      body.append(tr);
    }
    byTestId("leaderboard-empty").hidden = lb.models.length > 0;
    const method = lb.interval_method === "bootstrap" ? `bootstrap, ${lb.bootstrap_rounds} rounds` : "analytic (sandwich), live";
    byTestId("leaderboard-summary").textContent =
      `${lb.total_votes} counted votes · ${lb.models.length} models · 95% intervals: ${method}` +
      (lb.anchor ? ` · anchored on ${lb.anchor}` : "");
  }

  function renderIntervals(lb) {
    const svg = byTestId("interval-plot");
    svg.replaceChildren();
    const rows = lb.models.filter((r) => Number.isFinite(r.ci_lower) && Number.isFinite(r.ci_upper));
    const width = 520, rowH = 22, left = 170, right = 20, height = Math.max(rows.length * rowH + 30, 60);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (!rows.length) return;
    const lo = Math.min(...rows.map((r) => r.ci_lower)), hi = Math.max(...rows.map((r) => r.ci_upper));
    const pad = Math.max((hi - lo) * 0.05, 5);
    const x = (v) => left + ((v - (lo - pad)) / (hi - lo + 2 * pad)) * (width - left - right);
    rows.forEach((r, i) => {
      const y = 15 + i * rowH;
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", left - 8); label.setAttribute("y", y + 4); label.setAttribute("text-anchor", "end");
      label.textContent = r.model;
      const line = document.createElementNS(SVG, "line");
      line.setAttribute("x1", x(r.ci_lower)); line.setAttribute("x2", x(r.ci_upper));
      line.setAttribute("y1", y); line.setAttribute("y2", y); line.setAttribute("class", "ci");
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x(r.rating)); dot.setAttribute("cy", y); dot.setAttribute("r", 4);
      svg.append(label, line, dot);
    });
    const axis = document.createElementNS(SVG, "text");
    axis.setAttribute("x", left); axis.setAttribute("y", height - 4);
    axis.textContent = `${fmt(lo - pad)} … ${fmt(hi + pad)}`;
    svg.append(axis);
  }

  function renderMatrix(testId, names, matrix, format, shade) {
    const table = byTestId(testId);
    table.replaceChildren();
    if (!names.length) return;
    const head = document.createElement("tr");
    head.append(cell("th", ""));
    names.forEach((n) => head.append(cell("th", n)));
    table.append(head);
    names.forEach((rowName, i) => {
      const tr = document.createElement("tr");
      tr.append(cell("th", rowName));
      names.forEach((_, j) => {
        const v = matrix[i][j];
        const td = cell("td", v === null || i === j ? "" : format(v), "num");
        if (v !== null && i !== j) td.style.backgroundColor = shade(v);
        tr.append(td);
      });
      table.append(tr);
    });
  }

  function render(lb) {
    renderTable(lb);
    renderIntervals(lb);
    // Matrices follow the table's order (by rating).
    const order = lb.models.map((r) => lb.names.indexOf(r.model));
    const names = order.map((i) => lb.names[i]);
    const pick = (m) => order.map((i) => order.map((j) => m[i][j]));
    renderMatrix("win-fraction", names, pick(lb.win_fraction), (v) => v.toFixed(2),
      (v) => `hsl(${Math.round(v * 120)}, 70%, 80%)`);
    const counts = pick(lb.battle_counts);
    const max = Math.max(1, ...counts.flat());
    renderMatrix("battle-counts", names, counts, (v) => String(v), (v) => `rgba(59, 91, 219, ${0.08 + 0.5 * (v / max)})`);
  }

  let retry = 500;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/leaderboard/`);
    socket.addEventListener("open", () => { retry = 500; });
    socket.addEventListener("message", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "leaderboard") render(msg.leaderboard);
    });
    socket.addEventListener("close", () => { setTimeout(connect, retry); retry = Math.min(retry * 2, 8000); });
  }

  render(JSON.parse(document.getElementById("leaderboard-data").textContent));
  connect();
})();
