// graph.js: the drawing. Rows are layers (tokens at the bottom, the metric at the top), columns
// the roles, labelled with the first prompt's tokens; nodes sized by influence, edges coloured by
// sign. Everything is one SVG, redrawn when the thresholds or groups change; zoom and pan move
// one transform.

const SVG_NS = "http://www.w3.org/2000/svg";
const SLOT = 22;          // width per node within a cell
const MIN_COLUMN = 46;    // a column with features or errors
const TOKEN_COLUMN = 30;  // a column with only its token
const EMPTY_COLUMN = 12;  // a column with nothing visible
const LEFT = 64, TOP = 40, BOTTOM = 110;
const LABELLED = 40;      // the strongest features drawn get their label beside them
const POSITIVE = "#2166ac", NEGATIVE = "#b2182b";

let geometry = null; // {x, y, r: Float32Array, width, height, columns: [{x, w, shown}]}
const view = { k: 1, tx: 0, ty: 0, manual: false }; // manual: zoomed or panned by hand

function rowOf(layer) {
  return D.n_layers - layer; // the target (layer n_layers) on top, tokens (-1) at the bottom
}

function radius(i) {
  const n = D.nodes[i];
  if (n.kind === "token") return 7;
  if (n.kind === "target") return 11;
  return 3.5 + 9 * Math.sqrt(Math.max(n.influence, 0) / maxInfluence);
}

function featureFill(layer) {
  const t = D.n_layers > 1 ? layer / (D.n_layers - 1) : 0;
  const a = [0xff, 0xf1, 0xcc], b = [0xe8, 0x8b, 0x3a];
  return `rgb(${a.map((v, j) => Math.round(v + (b[j] - v) * t)).join(",")})`;
}

// positions of the visible nodes (and of supernodes when groups are collapsed)
function layout() {
  const nCols = D.columns.length, nRows = D.n_layers + 2;
  const cells = new Map();
  for (let i = 0; i < N; i++) {
    if (!visible.nodes[i]) continue;
    const key = rowOf(D.nodes[i].layer) * nCols + D.nodes[i].col;
    if (!cells.has(key)) cells.set(key, []);
    cells.get(key).push(i);
  }
  const widest = new Array(nCols).fill(0), tokens = new Array(nCols).fill(0);
  for (const [key, members] of cells) {
    members.sort((a, b) => D.nodes[b].influence - D.nodes[a].influence || a - b);
    const c = key % nCols;
    if (Math.floor(key / nCols) === nRows - 1) tokens[c] = 1;
    else widest[c] = Math.max(widest[c], members.length);
  }
  const columns = [];
  let x = LEFT;
  for (let c = 0; c < nCols; c++) {
    const w = widest[c] ? Math.max(MIN_COLUMN, widest[c] * SLOT + 10)
      : tokens[c] ? TOKEN_COLUMN : EMPTY_COLUMN;
    columns.push({ x, w, shown: widest[c] > 0 || tokens[c] > 0 });
    x += w;
  }
  // rows as tall as the window's shape allows, so that a fit fills it
  const box = document.getElementById("graph").getBoundingClientRect();
  const aspect = box.width > 0 ? box.height / box.width : 0.6;
  const rowHeight = Math.min(360, Math.max(96, ((x + 24) * aspect - TOP - BOTTOM) / nRows));
  const gx = new Float32Array(N), gy = new Float32Array(N), r = new Float32Array(N);
  for (const [key, members] of cells) {
    const row = Math.floor(key / nCols), col = columns[key % nCols];
    const start = col.x + (col.w - members.length * SLOT) / 2 + SLOT / 2;
    members.forEach((i, j) => {
      gx[i] = start + j * SLOT;
      gy[i] = TOP + row * rowHeight + rowHeight / 2;
      r[i] = radius(i);
    });
  }
  geometry = { x: gx, y: gy, r, columns, rowHeight, width: x + 24,
    height: TOP + nRows * rowHeight + BOTTOM };
  return geometry;
}

// what is drawn: nodes, or supernodes in their place; edges between them, summed
function units() {
  const unitOf = new Int32Array(N).fill(-1);
  const list = [];
  for (let i = 0; i < N; i++) {
    if (!visible.nodes[i]) continue;
    const k = state.collapse ? groupOf(i) : -1;
    if (k < 0) { unitOf[i] = list.length; list.push({ node: i }); }
  }
  if (state.collapse) {
    state.groups.forEach((g, k) => {
      const members = g.members.filter((i) => visible.nodes[i]);
      if (!members.length) return;
      const id = list.length;
      members.forEach((i) => { unitOf[i] = id; });
      const mean = (a) => members.reduce((s, i) => s + a[i], 0) / members.length;
      list.push({ group: k, members, x: mean(geometry.x), y: mean(geometry.y) });
    });
    const placed = list.filter((u) => u.group !== undefined);
    placed.forEach((u, j) => { // step a supernode down until it clears those placed before it
      while (placed.slice(0, j).some((v) => Math.abs(v.x - u.x) < 120 && Math.abs(v.y - u.y) < 30)) {
        u.y += 32;
      }
    });
  }
  const sums = new Map();
  for (let k = 0; k < E; k++) {
    if (!visible.edges[k]) continue;
    const a = unitOf[D.edges.source[k]], b = unitOf[D.edges.target[k]];
    if (a === b) continue;
    const key = a * list.length + b;
    const s = sums.get(key) || { a, b, weight: 0, edges: [] };
    s.weight += D.edges.weight[k];
    s.edges.push(k);
    sums.set(key, s);
  }
  return { list, unitOf, links: [...sums.values()] };
}

function unitXY(u) {
  return u.node === undefined ? [u.x, u.y] : [geometry.x[u.node], geometry.y[u.node]];
}

function unitRadius(u) {
  return u.node === undefined ? 12 : geometry.r[u.node];
}

function edgePath(ax, ay, ar, bx, by, br) {
  if (Math.abs(ay - by) < 1) { // within one row: an arc over the top
    const lift = Math.min(60, 18 + Math.abs(ax - bx) / 4);
    return `M${ax.toFixed(1)},${(ay - ar).toFixed(1)}C${ax.toFixed(1)},${(ay - lift).toFixed(1)} ` +
      `${bx.toFixed(1)},${(by - lift).toFixed(1)} ${bx.toFixed(1)},${(by - br).toFixed(1)}`;
  }
  const down = ay > by; // the source lies below the target
  const y0 = ay + (down ? -ar : ar), y1 = by + (down ? br : -br), m = (y0 + y1) / 2;
  return `M${ax.toFixed(1)},${y0.toFixed(1)}C${ax.toFixed(1)},${m.toFixed(1)} ` +
    `${bx.toFixed(1)},${m.toFixed(1)} ${bx.toFixed(1)},${y1.toFixed(1)}`;
}

function escapeXml(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

function axesSvg() {
  const out = [];
  const { columns, width, rowHeight } = geometry;
  for (let row = 0; row < D.n_layers + 2; row++) {
    const y = TOP + row * rowHeight;
    const layer = D.n_layers - row;
    const name = layer === D.n_layers ? "metric" : layer < 0 ? "tokens" : `L${layer}`;
    if (row % 2 === 1) {
      out.push(`<rect class="band" x="${LEFT}" y="${y}" width="${width - LEFT - 24}" ` +
        `height="${rowHeight}"/>`);
    }
    out.push(`<text class="row" data-name="${name}" x="${LEFT - 10}" ` +
      `y="${y + rowHeight / 2 + 4}" text-anchor="end">${name}</text>`);
  }
  const base = TOP + (D.n_layers + 2) * rowHeight + 14;
  columns.forEach((col, c) => {
    if (!col.shown) return;
    const cx = col.x + col.w / 2;
    const token = columnToken(c);
    const role = D.columns[c].name;
    const text = token === null ? "" : showToken(token).trim() || "␣";
    const rotate = `transform="rotate(-50 ${(cx + 4).toFixed(1)} ${base})"`;
    out.push(`<g class="col" data-name="${escapeXml(role)}" ${rotate}>` +
      `<text x="${(cx + 4).toFixed(1)}" y="${base}" text-anchor="end" xml:space="preserve">` +
      `${escapeXml(text)}${text ? " " : ""}<tspan class="role">${escapeXml(role)}</tspan>` +
      `</text></g>`);
    out.push(`<line class="tick" x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${base - 12}" ` +
      `y2="${base - 6}"/>`);
  });
  return out.join("");
}

function labelsSvg(list) {
  const strongest = list.filter((u) => u.node !== undefined && D.nodes[u.node].kind === "feature")
    .map((u) => u.node).sort((a, b) => D.nodes[b].influence - D.nodes[a].influence)
    .slice(0, LABELLED);
  return strongest.map((i) => {
    const x = geometry.x[i] + 2, y = geometry.y[i] - geometry.r[i] - 3;
    return `<text class="node-label" data-i="${i}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" ` +
      `transform="rotate(-38 ${x.toFixed(1)} ${y.toFixed(1)})">${escapeXml(D.nodes[i].label)}</text>`;
  }).join("");
}

function nodeSvg(i) {
  const n = D.nodes[i];
  const x = geometry.x[i].toFixed(1), y = geometry.y[i].toFixed(1), r = geometry.r[i];
  const k = groupOf(i);
  const ring = k >= 0 ? ` style="--group:${groupColour(k)}"` : "";
  const classes = ["node", n.kind, k >= 0 ? "grouped" : ""].join(" ").trim();
  let shape;
  if (n.kind === "feature") {
    shape = `<circle r="${r.toFixed(1)}" fill="${featureFill(n.layer)}"/>`;
  } else if (n.kind === "error") {
    shape = `<rect x="${-r}" y="${-r}" width="${2 * r}" height="${2 * r}" rx="1"/>`;
  } else if (n.kind === "token") {
    shape = `<rect x="-9" y="-7" width="18" height="14" rx="4"/>`;
  } else {
    shape = `<polygon points="0,-13 13,0 0,13 -13,0"/>` +
      `<text class="metric" y="-19" text-anchor="middle">${escapeXml(D.metric)}</text>`;
  }
  return `<g class="${classes}" data-i="${i}" transform="translate(${x} ${y})"${ring}>` +
    `${shape}<circle class="halo" r="${(r + 4).toFixed(1)}"/></g>`;
}

function supernodeSvg(u, id) {
  const g = state.groups[u.group];
  const w = Math.max(60, 7 * g.label.length + 20);
  return `<g class="node supernode" data-group="${u.group}" data-unit="${id}" ` +
    `transform="translate(${u.x.toFixed(1)} ${u.y.toFixed(1)})" style="--group:${groupColour(u.group)}">` +
    `<rect x="${-w / 2}" y="-13" width="${w}" height="26" rx="13"/>` +
    `<text y="4" text-anchor="middle">${escapeXml(g.label)} (${u.members.length})</text>` +
    `<circle class="halo" r="0"/></g>`;
}

function render() {
  layout();
  const { list, links } = units();
  const strongest = Math.max(1e-12, ...links.map((l) => Math.abs(l.weight)));
  links.sort((p, q) => Math.abs(p.weight) - Math.abs(q.weight)); // strongest drawn last
  const edgeSvg = links.map((l) => {
    const a = list[l.a], b = list[l.b];
    const [ax, ay] = unitXY(a), [bx, by] = unitXY(b);
    const s = Math.sqrt(Math.abs(l.weight) / strongest);
    const ends = l.edges.length === 1 ? `data-k="${l.edges[0]}"` : `data-ks="${l.edges.join(",")}"`;
    return `<path class="edge" ${ends} d="${edgePath(ax, ay, unitRadius(a), bx, by, unitRadius(b))}" ` +
      `stroke="${l.weight >= 0 ? POSITIVE : NEGATIVE}" stroke-width="${(0.5 + 3.5 * s).toFixed(2)}" ` +
      `stroke-opacity="${(0.18 + 0.62 * s).toFixed(2)}"/>`;
  });
  const nodeSvgs = list.map((u, id) => (u.node === undefined ? supernodeSvg(u, id) : nodeSvg(u.node)));
  const svg = document.getElementById("graph");
  svg.setAttribute("data-drawn-nodes", String(list.length));
  svg.setAttribute("data-drawn-edges", String(links.length));
  document.getElementById("viewport").innerHTML =
    `<g class="axes">${axesSvg()}</g><g class="edges">${edgeSvg.join("")}</g>` +
    `<g class="labels">${labelsSvg(list)}</g><g class="nodes">${nodeSvgs.join("")}</g>`;
  indexDrawn();
  highlight();
}

// the selection, the head, the search and the picked nodes, as classes on what is drawn; only
// the elements whose classes change are touched (a redraw of 10,000 edges stays cheap)
let drawn = null; // {edge: Map(edge index -> element), node: Map(node index -> element)}
const lit = { on: new Set(), selected: new Set(), match: new Set(), picked: new Set() };

function indexDrawn() {
  drawn = { edge: new Map(), node: new Map() };
  for (const el of document.querySelectorAll("#graph .edge")) {
    const ks = el.dataset.k !== undefined ? [+el.dataset.k] : el.dataset.ks.split(",").map(Number);
    for (const k of ks) drawn.edge.set(k, el);
  }
  for (const el of document.querySelectorAll("#graph .node")) {
    if (el.dataset.group !== undefined) {
      for (const i of state.groups[+el.dataset.group].members) drawn.node.set(i, el);
    } else {
      drawn.node.set(+el.dataset.i, el);
    }
  }
  for (const set of Object.values(lit)) set.clear();
}

function setClass(name, elements) {
  const want = new Set(elements);
  want.delete(undefined);
  for (const el of lit[name]) if (!want.has(el)) el.classList.remove(name);
  for (const el of want) if (!lit[name].has(el)) el.classList.add(name);
  lit[name] = want;
}

function highlight() {
  const svg = document.getElementById("graph");
  const on = new Set(), onEdges = new Set();
  const sel = state.selected;
  if (typeof sel === "number") {
    on.add(sel);
    for (const k of [...incoming[sel], ...outgoing[sel]]) {
      if (visible.edges[k]) { onEdges.add(k); on.add(D.edges.source[k]); on.add(D.edges.target[k]); }
    }
  } else if (sel !== null) {
    for (const i of state.groups[sel.group].members) on.add(i);
  }
  if (state.head) {
    for (let k = 0; k < E; k++) {
      if (visible.edges[k] && D.edges.heads[k].some((h) => h[0] === state.head)) {
        onEdges.add(k); on.add(D.edges.source[k]); on.add(D.edges.target[k]);
      }
    }
  }
  svg.classList.toggle("focus", sel !== null || state.head !== null);
  const nodeEls = (set) => [...set].map((i) => drawn.node.get(i));
  setClass("on", [...[...onEdges].map((k) => drawn.edge.get(k)), ...nodeEls(on)]);
  setClass("selected", typeof sel === "number" ? nodeEls([sel]) : []);
  setClass("match", state.matches ? nodeEls(state.matches) : []);
  setClass("picked", nodeEls(state.picked));
}

// ------------------------------------------------------------------------------------------
// zoom and pan

function applyView() {
  document.getElementById("viewport").setAttribute("transform",
    `translate(${view.tx.toFixed(1)} ${view.ty.toFixed(1)}) scale(${view.k.toFixed(4)})`);
}

function fit() {
  view.manual = false;
  const box = document.getElementById("graph").getBoundingClientRect();
  const k = Math.min(box.width / geometry.width, box.height / geometry.height, 1.6);
  view.k = Math.max(k, 0.05);
  view.tx = (box.width - geometry.width * view.k) / 2;
  view.ty = Math.max(0, (box.height - geometry.height * view.k) / 2);
  applyView();
}

function installZoom() {
  const svg = document.getElementById("graph");
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const box = svg.getBoundingClientRect();
    const px = ev.clientX - box.left, py = ev.clientY - box.top;
    const factor = Math.exp(-ev.deltaY * 0.0015);
    const k = Math.min(8, Math.max(0.05, view.k * factor));
    view.tx = px - (px - view.tx) * (k / view.k);
    view.ty = py - (py - view.ty) * (k / view.k);
    view.k = k;
    view.manual = true;
    applyView();
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (ev) => {
    if (ev.target.closest(".node")) return;
    drag = { x: ev.clientX, y: ev.clientY, tx: view.tx, ty: view.ty, moved: false };
    svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; view.manual = true; }
    view.tx = drag.tx + dx; view.ty = drag.ty + dy;
    applyView();
  });
  svg.addEventListener("pointerup", (ev) => {
    if (drag && !drag.moved && !ev.target.closest(".node")) onBackgroundClick();
    drag = null;
  });
}
