// Review grid (a Streamlit components-v2 module, loaded by pages/_review_grid.py): one card per sample; every
// click and key becomes an event with a unique id in a client-side queue. The whole unacknowledged queue is the
// component's state value "queue"; Python records each event once (the decision log ignores an id it has seen)
// and sends the processed ids back as data.acked, which are then dropped here. A card shows its decision at once
// (pending) and as saved when the server's decision arrives. Text from the data (class names, feature values) is
// only ever set with textContent.
// Every event carries its project and the reviewer id this browser keeps for that project (localStorage), so Undo
// still takes back this reviewer's decisions after a refresh. The queue is kept per project (sessionStorage): on a
// project switch the old project's events stay queued under its own key, and an event the server hands back as
// another project's ("foreign") is moved to that project's queue, never recorded here.
// Keyboard and screen readers: one roving tab stop (only the focused card has tabindex 0, so Tab leaves the grid in
// one step), one live region for every announcement (decisions, saves, page turns, notices), and Backspace does
// nothing here (only `r` / Delete or the Remove button removes a sample).

const GRIDS = new WeakMap(); // parentElement -> ReviewGrid: the DOM, queue and focus survive every data update
const NONCE = Math.random().toString(36).slice(2, 7) + Date.now().toString(36).slice(-4);
// Events are numbered per page load, not per grid: a grid mounted again in the same load (another project's and back,
// another page and back) must never reuse an id, or the decision log would ignore its event as already applied.
let eventCount = 0;
const RESEND_MS = 2500; // resend a queue nobody answered (doubling up to 30 s); ids make resending harmless
const DECISIONS = new Set(["keep", "remove", "relabel"]);
const REVIEWER = /^[0-9a-f]{12,32}$/; // the server refuses any other reviewer id

function newReviewer() {
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function queueKey(project) {
  return `influence-review-queue:${project || ""}`;
}

function loadQueue(project) {
  try {
    const saved = JSON.parse(window.sessionStorage.getItem(queueKey(project)) || "[]");
    return Array.isArray(saved) ? saved.filter((ev) => ev && typeof ev.id === "string") : [];
  } catch (err) {
    return [];
  }
}

function saveQueue(project, queue) {
  try {
    if (queue.length) window.sessionStorage.setItem(queueKey(project), JSON.stringify(queue));
    else window.sessionStorage.removeItem(queueKey(project));
  } catch (err) {
    /* storage may be off; the queue still lives in memory */
  }
}

// A text sample on its card (issue 18): shown whole up to TEXT_SHORT characters, else its start with the rest in a
// <details> the reviewer opens (the larger view, key v, shows it whole too).
const TEXT_SHORT = 280;
function textBlock(text) {
  if (text.length <= TEXT_SHORT) return el("div", "rg-text", text);
  const box = el("details", "rg-text rg-text-long");
  const summary = el("summary", null, text.slice(0, TEXT_SHORT) + "…");
  summary.tabIndex = -1; // opened by a click; the card stays the one tab stop (v shows the whole text by keyboard)
  box.append(summary, el("div", null, text.slice(TEXT_SHORT)));
  return box;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function button(label, act, opts = {}) {
  const b = el("button", "rg-btn" + (opts.cls ? " " + opts.cls : ""));
  b.type = "button";
  b.dataset.act = act;
  if (opts.label !== undefined) b.dataset.label = String(opts.label);
  if (opts.title) b.title = opts.title;
  if (opts.name) b.setAttribute("aria-label", opts.name); // a glyph-only button still has a name
  b.tabIndex = -1; // the card is the focus stop; keys work there
  b.append(el("span", "rg-btn-text", label));
  if (opts.key) {
    b.append(el("kbd", null, opts.key)); // shown, not read out: the name stays the label
    b.setAttribute("aria-label", label);
    b.setAttribute("aria-keyshortcuts", opts.key);
  }
  return b;
}

function num(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toPrecision(digits).replace(/\.?0+(e|$)/, "$1");
}

function pct(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let grid = GRIDS.get(parentElement);
  if (!grid) {
    grid = new ReviewGrid(parentElement);
    GRIDS.set(parentElement, grid);
  }
  grid.update(data || {}, setStateValue);
  return () => {}; // the same grid takes the next data update; it goes with its element
}

class ReviewGrid {
  constructor(parent) {
    this.root = el("div", "rg");
    this.root.setAttribute("data-testid", "review-grid");
    this.head = el("div", "rg-head");
    this.cardsEl = el("div", "rg-cards");
    this.dialog = el("dialog", "rg-view");
    this.dialog.setAttribute("data-testid", "review-view");
    this.dialog.tabIndex = -1;
    this.live = el("div", "rg-live"); // the one live region: what just happened, said once
    this.live.setAttribute("role", "status");
    this.live.setAttribute("aria-live", "polite");
    this.live.setAttribute("data-testid", "review-live");
    this.root.append(this.head, this.cardsEl, this.dialog, this.live);
    parent.appendChild(this.root);

    this.data = undefined;
    this.queue = []; // events not yet acknowledged, oldest first
    this.history = []; // {id, row} of this page's decision events, for showing what an undo takes back
    this.errors = new Map(); // row -> message of an event the server refused
    this.saved = new Map(); // row -> time its pending decision was confirmed (a short flash)
    this.cards = new Map(); // row -> {node, data, sig, parts}
    this.order = [];
    this.focusRow = null;
    this.wantFocus = null; // "first" / "last" after a page turn
    this.pageWanted = null;
    this.buffer = []; // keys pressed while a page turns, replayed on the new page
    this.whyOpen = new Set();
    this.viewRow = null;
    this.lastUpdate = 0;
    this.resendDelay = RESEND_MS;
    this.timer = null;
    this.notice = "";

    this.root.addEventListener("keydown", (e) => this.onKey(e));
    this.root.addEventListener("click", (e) => this.onClick(e));
    this.root.addEventListener("focusin", (e) => {
      const card = e.target.closest && e.target.closest(".rg-card");
      if (card) this.rove(Number(card.dataset.row));
    });
    this.dialog.addEventListener("close", () => {
      const row = this.viewRow;
      this.viewRow = null;
      this.focusCard(row ?? this.focusRow);
    });
  }

  // ----------------------------------------------------------------------------------------- data in
  update(data, send) {
    const first = this.data === undefined;
    const switched = !first && (data.project || "") !== this.project;
    this.data = data;
    this.send = send;
    this.lastUpdate = Date.now();
    if (first || switched) this.openProject(data);
    const acked = new Set(data.acked || []);
    const failed = data.failed || {};
    const foreign = data.foreign || {};
    const kept = [];
    for (const ev of this.queue) {
      if (ev.id in foreign) {
        this.requeue(ev);
      } else if (ev.id in failed) {
        this.announce(`not saved: ${failed[ev.id]}`);
        for (const row of ev.rows || []) this.errors.set(row, failed[ev.id]);
        if (ev.target !== null && ev.target !== undefined) this.errors.set(ev.target, failed[ev.id]);
      } else if (acked.has(ev.id)) {
        for (const row of ev.rows || []) this.saved.set(row, Date.now());
        if (DECISIONS.has(ev.action)) this.announce(`${this.describe(ev)} saved`);
      } else {
        kept.push(ev);
      }
    }
    const progressed = kept.length !== this.queue.length;
    if (progressed) this.resendDelay = RESEND_MS;
    this.queue = kept;
    this.persist();
    // the page turn is answered once its event is processed (the page may have been clamped or the list changed)
    if (this.pageWanted !== null && (acked.has(this.pageEvent) || this.pageEvent in failed)) this.pageWanted = null;
    this.render();
    // A new queue, or what is left of one the server took part of (it processes a bounded number per run): send now.
    // After a project switch always, even empty, and the reviewer id too: they replace the old project's values.
    if (switched || ((first || progressed) && this.queue.length)) this.flush();
    if (switched || (first && this.reviewer !== data.session)) this.send("reviewer", this.reviewer);
    this.scheduleResend();
    if (this.pageWanted === null && this.buffer.length) {
      const keys = this.buffer.splice(0);
      for (const key of keys) this.handleKey(key);
    }
  }

  openProject(data) {
    // The old project's queue is already saved under its own key (persist); this project's is read back.
    this.project = data.project || "";
    this.root.dataset.project = this.project; // which project's cards these are (a switch redraws them)
    this.reviewer = this.loadReviewer(data.session);
    this.queue = loadQueue(this.project);
    this.history = [];
    this.errors.clear();
    this.saved.clear();
    this.pageWanted = null;
    this.buffer = [];
  }

  loadReviewer(fallback) {
    // One reviewer id per project in this browser, kept across refreshes; the server's id when there is none yet.
    const key = `influence-reviewer:${this.project}`;
    let id = null;
    try {
      id = window.localStorage.getItem(key);
    } catch (err) {
      /* storage may be off: the id lives as long as the page */
    }
    if (!REVIEWER.test(id || "")) {
      id = REVIEWER.test(fallback || "") ? fallback : newReviewer();
      try {
        window.localStorage.setItem(key, id);
      } catch (err) {
        /* as above */
      }
    }
    return id;
  }

  requeue(ev) {
    // Another project's event: it waits in that project's queue, recorded when its Review page is open.
    const theirs = loadQueue(ev.project);
    if (!theirs.some((other) => other.id === ev.id)) saveQueue(ev.project, [...theirs, ev]);
  }

  persist() {
    saveQueue(this.project, this.queue);
  }

  // ---------------------------------------------------------------------------------------- events out
  emit(event) {
    const ev = { id: `${this.reviewer}-${NONCE}-${++eventCount}`, rows: [], label: null, ...event,
      project: this.project, reviewer: this.reviewer };
    this.queue.push(ev);
    this.persist();
    this.flush();
    this.scheduleResend();
    return ev;
  }

  flush() {
    if (this.send) this.send("queue", this.queue.map((ev) => ({ ...ev })));
  }

  scheduleResend() {
    clearTimeout(this.timer);
    if (!this.queue.length) return;
    this.timer = setTimeout(() => {
      if (!this.root.isConnected) return;
      if (this.queue.length && Date.now() - this.lastUpdate >= this.resendDelay) {
        this.flush();
        this.resendDelay = Math.min(this.resendDelay * 2, 30000);
      }
      this.scheduleResend();
    }, this.resendDelay);
  }

  decide(row, action, label = null) {
    const card = this.cards.get(row);
    if (!card) return;
    if (action === "relabel" && (label === card.data.given || label === null)) {
      action = "keep"; // relabelling to the given class keeps it
      label = null;
    }
    const ev = this.emit({ action, rows: [row], label: action === "relabel" ? label : null });
    this.announce(`sample ${card.data.id}: ${this.describe(ev)}`);
    this.history.push({ id: ev.id, row });
    this.errors.delete(row);
    this.saved.delete(row);
    this.render();
    this.advance(row);
  }

  undo() {
    const last = this.history.pop();
    const target = last ? last.row : null;
    this.emit({ action: "undo", target });
    if (target !== null) this.errors.delete(target);
    this.notice = "Undo sent: it takes back your own last decision in this project.";
    this.render();
    if (target !== null && this.cards.has(target)) {
      if (this.viewRow !== null) this.showView(target);
      else this.focusCard(target);
    }
  }

  turnPage(delta) {
    const page = this.data.page || { number: 1, count: 1 };
    const target = (this.pageWanted ?? page.number) + delta;
    if (target < 1 || target > page.count) {
      this.notice = delta > 0 ? "This is the last page." : "This is the first page.";
      this.render();
      return;
    }
    this.pageWanted = target;
    this.wantFocus = delta > 0 ? "first" : "last";
    this.pageEvent = this.emit({ action: "page", page: target }).id;
    this.notice = `Turning to page ${target}…`;
    this.render();
  }

  askWhy(row) {
    if (this.whyOpen.has(row)) {
      this.whyOpen.delete(row);
    } else {
      this.whyOpen.add(row);
      const card = this.cards.get(row);
      const sim = card ? card.data.similar : null;
      if (card && (!sim || sim.status === "failed")) this.emit({ action: "why", rows: [row] });
    }
    this.render();
  }

  // ----------------------------------------------------------------------------------------- keyboard
  current() {
    if (this.viewRow !== null) return this.viewRow;
    if (this.focusRow !== null && this.cards.has(this.focusRow)) return this.focusRow;
    return this.order.length ? this.order[0] : null;
  }

  onKey(e) {
    const target = e.composedPath ? e.composedPath()[0] : e.target;
    if (target && target.classList && target.classList.contains("rg-find")) {
      this.onFindKey(e, target);
      return;
    }
    if (e.altKey || e.metaKey || (e.ctrlKey && e.key.toLowerCase() !== "z")) return;
    const key = e.ctrlKey ? "undo" : e.key;
    if (this.handleKey(key)) {
      e.preventDefault();
      e.stopPropagation(); // Streamlit's own shortcuts (r: rerun, c: clear cache) must not see review keys
    }
  }

  handleKey(key) {
    const known = "aArRxXpPuUwWmMvVjJkK/[]".includes(key) && key.length === 1;
    const special = ["Delete", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Escape", " ",
      "Enter", "PageUp", "PageDown", "undo"].includes(key);
    const digit = /^[0-9]$/.test(key);
    if (!known && !special && !digit) return false;
    if (this.pageWanted !== null && key !== "Escape") {
      this.buffer.push(key); // the next page is on its way: act on it there
      return true;
    }
    const row = this.current();
    if (row === null) return true;
    const card = this.cards.get(row).data;
    const classes = this.data.classes || [];
    const perRow = this.data.per_row || 6;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    this.notice = "";
    switch (lower) {
      case "a": this.decide(row, "keep"); break;
      case "r": case "x": case "Delete": this.decide(row, "remove"); break;
      case "p": this.decide(row, "relabel", card.pred); break;
      case "u": case "undo": this.undo(); break;
      case "w": this.askWhy(row); break;
      case "m": this.emit({ action: "like", rows: [row] }); break;
      case "v": case " ": case "Enter": this.viewRow === null ? this.showView(row) : this.dialog.close(); break;
      case "Escape": if (this.viewRow !== null) this.dialog.close(); else if (this.whyOpen.delete(row)) this.render(); break;
      case "j": case "ArrowRight": this.move(row, 1); break;
      case "k": case "ArrowLeft": this.move(row, -1); break;
      case "ArrowDown": this.move(row, perRow); break;
      case "ArrowUp": this.move(row, -perRow); break;
      case "]": case "PageDown": this.turnPage(1); break;
      case "[": case "PageUp": this.turnPage(-1); break;
      case "/": this.openFind(row, ""); break;
      default:
        if (/^[0-9]$/.test(key)) {
          if (classes.length > 10) {
            this.openFind(row, key); // more than ten classes: the digits start a type-ahead
          } else if (Number(key) < classes.length) {
            this.decide(row, "relabel", Number(key));
          } else {
            this.notice = `There is no class ${key}.`;
            this.render();
          }
        }
    }
    return true;
  }

  move(row, delta) {
    const i = this.order.indexOf(row);
    const next = i + delta;
    if (next >= this.order.length && delta > 0) {
      if (i === this.order.length - 1) this.turnPage(1);
      else this.go(this.order[this.order.length - 1]);
    } else if (next < 0 && delta < 0) {
      if (i === 0) this.turnPage(-1);
      else this.go(this.order[0]);
    } else {
      this.go(this.order[next]);
    }
  }

  go(row) {
    if (this.viewRow !== null) this.showView(row);
    else this.focusCard(row);
  }

  advance(row) {
    const i = this.order.indexOf(row);
    if (i >= 0 && i < this.order.length - 1) this.go(this.order[i + 1]);
    else {
      this.notice = "Last card on this page: ] or j turns to the next page.";
      this.render();
      this.go(row);
    }
  }

  focusCard(row) {
    const card = row !== null && row !== undefined ? this.cards.get(row) : null;
    if (!card) return;
    this.rove(row);
    card.node.focus({ preventScroll: false });
    card.node.scrollIntoView({ block: "nearest" });
  }

  rove(row) {
    // The one tab stop moves with the focus: the focused card has tabindex 0, every other card -1.
    if (this.focusRow !== row && this.cards.has(this.focusRow)) this.cards.get(this.focusRow).node.tabIndex = -1;
    this.focusRow = row;
    if (this.cards.has(row)) this.cards.get(row).node.tabIndex = 0;
  }

  announce(text) {
    // The grid's one live region; a repeated message is re-set so it is read again.
    this.live.textContent = "";
    this.live.textContent = text;
  }

  hasFocus() {
    const active = this.root.getRootNode().activeElement;
    return !!active && this.root.contains(active);
  }

  // ------------------------------------------------------------------------------- type-ahead classes
  matches(text, given) {
    const classes = this.data.classes || [];
    const t = text.trim().toLowerCase();
    const scored = [];
    classes.forEach((name, i) => {
      const n = String(name).toLowerCase();
      let rank = null;
      if (t === "") rank = 3;
      else if (/^[0-9]+$/.test(t) && Number(t) === i) rank = 0;
      else if (n.startsWith(t)) rank = 1;
      else if (n.includes(t)) rank = 2;
      if (rank !== null && i !== given) scored.push([rank, i]);
    });
    scored.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return scored.slice(0, 8).map((x) => x[1]);
  }

  openFind(row, text) {
    const card = this.cards.get(row);
    if (!card) return;
    const input = card.parts.find;
    if (!input) return;
    if (this.viewRow !== null) this.dialog.close();
    input.value = text;
    input.focus();
    this.fillMatches(card);
  }

  fillMatches(card) {
    const input = card.parts.find;
    const list = card.parts.matches;
    list.replaceChildren();
    const classes = this.data.classes || [];
    for (const i of this.matches(input.value, card.data.given)) {
      list.append(button(`${i} ${classes[i]}`, "class", { label: i, cls: "rg-class", title: `relabel to ${classes[i]}` }));
    }
  }

  onFindKey(e, input) {
    const card = this.cards.get(Number(input.closest(".rg-card").dataset.row));
    e.stopPropagation();
    if (!card) return;
    if (e.key === "Enter") {
      e.preventDefault();
      const found = this.matches(input.value, card.data.given);
      if (found.length) {
        input.value = "";
        this.decide(card.data.row, "relabel", found[0]);
      } else {
        this.notice = "No class matches what you typed.";
        this.render();
      }
    } else if (e.key === "Escape") {
      e.preventDefault();
      input.value = "";
      this.fillMatches(card);
      this.focusCard(card.data.row);
    } else {
      setTimeout(() => this.fillMatches(card), 0);
    }
  }

  // ------------------------------------------------------------------------------------------- clicks
  onClick(e) {
    const path = e.composedPath ? e.composedPath() : [e.target];
    const btn = path.find((n) => n.dataset && n.dataset.act);
    const cardNode = path.find((n) => n.classList && n.classList.contains("rg-card"));
    const row = btn && btn.dataset.row !== undefined ? Number(btn.dataset.row)
      : cardNode ? Number(cardNode.dataset.row) : this.viewRow;
    if (!btn) {
      const typing = path.some((n) => n.tagName === "INPUT");
      if (cardNode && !typing) this.focusCard(row);
      return;
    }
    const act = btn.dataset.act;
    this.notice = "";
    if (act === "page") return this.turnPage(Number(btn.dataset.label));
    if (act === "undo") return this.undo();
    if (act === "close") return this.dialog.close();
    if (row === null || !this.cards.has(row)) return;
    if (this.viewRow === null) this.focusCard(row);
    if (act === "keep" || act === "remove") this.decide(row, act);
    else if (act === "pred") this.decide(row, "relabel", this.cards.get(row).data.pred);
    else if (act === "class") this.decide(row, "relabel", Number(btn.dataset.label));
    else if (act === "why") this.askWhy(row);
    else if (act === "like") this.emit({ action: "like", rows: [row] });
    else if (act === "view") this.showView(row);
  }

  // ------------------------------------------------------------------------------------------ display
  pendingFor(row) {
    let out = null;
    for (const ev of this.queue) {
      if (DECISIONS.has(ev.action) && (ev.rows || []).includes(row)) out = { action: ev.action, label: ev.label };
      else if (ev.action === "undo" && ev.target === row) out = { undo: true };
    }
    return out;
  }

  describe(decision) {
    if (!decision) return "";
    if (decision.undo) return "undo";
    const classes = this.data.classes || [];
    return decision.action === "relabel" ? `relabel → ${classes[decision.label] ?? decision.label}` : decision.action;
  }

  status(card) {
    const row = card.row;
    const pending = this.pendingFor(row);
    if (pending) return { state: "pending", decision: pending, text: `⋯ ${this.describe(pending)} · sending` };
    if (this.errors.has(row)) return { state: "error", decision: card.decision, text: `✗ not saved: ${this.errors.get(row)}` };
    if (card.decision) return { state: "saved", decision: card.decision, text: `✓ ${this.describe(card.decision)} · saved` };
    return { state: "none", decision: null, text: "no decision yet" };
  }

  render() {
    const data = this.data || {};
    const hadFocus = this.hasFocus();
    this.renderHead();
    const cards = data.cards || [];
    const order = cards.map((c) => c.row);
    const samePage = order.length === this.order.length && order.every((r, i) => r === this.order[i]);
    this.cardsEl.style.setProperty("--per-row", String(data.per_row || 6));
    if (!samePage) {
      this.cards.clear();
      this.cardsEl.replaceChildren();
      this.whyOpen = new Set([...this.whyOpen].filter((r) => order.includes(r)));
    }
    this.order = order;
    for (const c of cards) {
      const sig = JSON.stringify({ ...c, decision: null, similar: null });
      let card = this.cards.get(c.row);
      if (!card || card.sig !== sig) {
        const fresh = this.buildCard(c);
        if (card) card.node.replaceWith(fresh.node);
        else this.cardsEl.append(fresh.node);
        card = { ...fresh, sig };
        this.cards.set(c.row, card);
      }
      card.data = c;
      this.updateCard(card);
    }
    if (!cards.length) this.cardsEl.append(el("p", "rg-empty", "Nothing to show on this page."));
    if (order.length) this.rove(this.cards.has(this.focusRow) ? this.focusRow : order[0]);
    if (this.wantFocus && this.pageWanted === null && order.length) {
      const row = this.wantFocus === "last" ? order[order.length - 1] : order[0];
      this.wantFocus = null;
      this.focusCard(row);
    } else if (hadFocus && !this.hasFocus() && this.viewRow === null) {
      this.focusCard(this.cards.has(this.focusRow) ? this.focusRow : order[0]);
    }
    if (this.viewRow !== null) {
      if (this.cards.has(this.viewRow)) this.fillView(this.viewRow);
      else this.dialog.close();
    }
  }

  renderHead() {
    const data = this.data || {};
    const page = data.page || { number: 1, count: 1 };
    this.head.replaceChildren();
    const nav = el("div", "rg-nav");
    const prev = button("◀", "page", { label: -1, title: "previous page ([)", name: "Previous page" });
    const next = button("▶", "page", { label: 1, title: "next page (])", name: "Next page" });
    prev.disabled = page.number <= 1;
    next.disabled = page.number >= page.count;
    nav.append(prev, el("span", "rg-page", `page ${page.number} of ${page.count}`), next);
    const sending = this.queue.filter((ev) => !["page", "why", "like"].includes(ev.action)).length;
    const state = el("span", "rg-sync " + (sending ? "rg-sync-pending" : "rg-sync-ok"),
      sending ? `⋯ sending ${sending} decision${sending === 1 ? "" : "s"}` : "✓ every decision saved");
    state.setAttribute("data-testid", "review-sync");
    state.dataset.pending = String(sending);
    this.head.append(nav, state);
    const classes = data.classes || [];
    if (classes.length <= 10) {
      const legend = el("span", "rg-legend");
      legend.setAttribute("data-testid", "review-legend");
      classes.forEach((name, i) => legend.append(el("kbd", null, String(i)), el("span", null, ` ${name}  `)));
      this.head.append(legend);
    }
    if (this.notice) this.head.append(el("span", "rg-notice", this.notice));
    if (this.notice && this.notice !== this.said) this.announce(this.notice);
    this.said = this.notice;
  }

  buildCard(c) {
    const data = this.data;
    const classes = data.classes || [];
    const node = el("div", "rg-card");
    node.tabIndex = -1; // the roving tab stop (rove) gives one card 0
    node.dataset.row = String(c.row);
    node.dataset.id = String(c.id);
    node.dataset.given = String(c.given);
    node.dataset.pred = String(c.pred);
    node.setAttribute("data-testid", "review-card");
    node.setAttribute("aria-label", `sample ${c.id}: given ${classes[c.given]}, predicted ${classes[c.pred]}`);
    const parts = {};

    if (c.image) {
      const box = el("div", "rg-thumb");
      const img = el("img");
      img.src = c.image;
      img.alt = `sample ${c.id}`;
      img.dataset.act = "view";
      img.title = "larger view (v)";
      box.append(img);
      node.append(box);
    }
    const title = el("div", "rg-title");
    title.append(el("b", null, `#${c.id}`));
    if (c.id !== c.row) title.append(el("span", "rg-sub", ` row ${c.row}`));
    title.append(el("span", "rg-score", ` · score ${num(c.score)} · rank ${c.rank}`));
    node.append(title);
    if (c.file) {  // a long path is cut at its start: the file's own name stays readable; the whole path on hover
      const file = el("div", "rg-sub rg-file");
      file.title = c.file;
      file.append(el("bdi", null, c.file));
      node.append(file);
    }
    if (c.text) node.append(textBlock(c.text));

    const labels = el("div", "rg-labels");
    labels.append(el("span", null, "given "), el("b", null, classes[c.given]));
    labels.append(el("span", null, " · model "), el("b", null, classes[c.pred]), el("span", "rg-sub", ` ${pct(c.prob)}`));
    node.append(labels);
    if (c.annotators) node.append(el("div", "rg-sub rg-annotators", c.annotators));  // issue 20: what each annotator said
    if (c.noisy) {
      const note = c.true !== null && c.true !== undefined ? `known noisy (true: ${classes[c.true]})` : "known noisy";
      node.append(el("div", "rg-noisy", note));
    }
    if (c.features && c.features.length) {
      const table = el("dl", "rg-features");
      for (const [name, value] of c.features) table.append(el("dt", null, name), el("dd", null, value));
      node.append(table);
    }

    parts.status = el("div", "rg-status");
    parts.status.setAttribute("data-testid", "review-status");
    node.append(parts.status);

    const actions = el("div", "rg-actions");
    actions.append(button("Keep", "keep", { key: "a", title: "keep the given label" }));
    actions.append(button("Remove", "remove", { key: "r", title: "remove from the training set" }));
    const predLabel = c.pred === c.given ? "Keep = model" : `→ ${classes[c.pred]}`;
    actions.append(button(predLabel, "pred", { key: "p", cls: "rg-pred", title: "relabel to the model's prediction" }));
    node.append(actions);

    if (classes.length <= 10) {
      const palette = el("div", "rg-palette");
      palette.style.setProperty("--cols", String(Math.min(5, classes.length)));
      const dense = (data.per_row || 6) > 4; // narrow cards: digits only, the names in the legend above the grid
      classes.forEach((name, i) => {
        const b = button(dense ? String(i) : `${i} ${name}`, "class", {
          label: i, cls: "rg-class" + (i === c.given ? " rg-given" : ""),
          title: i === c.given ? `${name}: the given label (keeps it)` : `relabel to ${name} (${i})`,
        });
        palette.append(b);
      });
      node.append(palette);
    } else {
      const find = el("div", "rg-findbox");
      parts.find = el("input", "rg-find");
      parts.find.type = "text";
      parts.find.tabIndex = -1; // reached by / or a digit on the card, not by Tab: the card is the one tab stop
      parts.find.placeholder = "relabel to… (/)";
      parts.find.setAttribute("aria-label", "type a class name, Enter relabels to the first match");
      parts.matches = el("div", "rg-matches");
      find.append(parts.find, parts.matches);
      node.append(find);
    }
    parts.whyBtn = button("Why flagged", "why", { key: "w", cls: "rg-whybtn" });
    node.append(parts.whyBtn);
    node.append(button("More like this", "like", { key: "m", cls: "rg-whybtn",
      title: "Review this sample and its nearest neighbours in the model's embedding" }));
    parts.why = el("div", "rg-why");
    parts.why.setAttribute("data-testid", "review-why");
    node.append(parts.why);
    const card = { node, parts, data: c };
    if (parts.find) this.fillMatches(card);
    return card;
  }

  updateCard(card) {
    const c = card.data;
    const st = this.status(c);
    const node = card.node;
    node.dataset.state = st.state;
    const d = st.decision;
    node.dataset.decision = !d ? "" : d.undo ? "undo" : d.action === "relabel" ? `relabel:${d.label}` : d.action;
    node.classList.toggle("rg-keep", !!d && d.action === "keep");
    node.classList.toggle("rg-remove", !!d && d.action === "remove");
    node.classList.toggle("rg-relabel", !!d && d.action === "relabel");
    node.classList.toggle("rg-pending", st.state === "pending");
    node.classList.toggle("rg-error", st.state === "error");
    const flash = st.state === "saved" && this.saved.has(c.row) && Date.now() - this.saved.get(c.row) < 1500;
    node.classList.toggle("rg-flash", flash);
    if (card.parts.status.textContent !== st.text) card.parts.status.textContent = st.text;
    const open = this.whyOpen.has(c.row);
    card.parts.whyBtn.classList.toggle("rg-on", open);
    const whySig = open ? JSON.stringify(c.similar || null) : "";
    if (card.whySig !== whySig) {
      card.whySig = whySig;
      this.fillWhy(card.parts.why, c, open);
    }
  }

  fillWhy(box, c, open) {
    box.replaceChildren();
    box.hidden = !open;
    if (!open) return;
    const classes = this.data.classes || [];
    box.append(el("div", "rg-why-line", `${this.data.primary || "score"}: ${num(c.score)}, rank ${c.rank} of ${c.n} (1 = most detrimental)`));
    const list = el("ul", "rg-methods");
    for (const m of c.methods || []) list.append(el("li", null, `${m.title}: ${num(m.score)} (rank ${m.rank})`));
    box.append(el("div", "rg-why-head", "every computed ranking"), list);
    box.append(el("div", "rg-why-line",
      `model: ${classes[c.pred]} ${pct(c.prob)} · given ${classes[c.given]} ${pct(c.prob_given)}`));
    const sim = c.similar;
    if (!sim || sim.status === "queued" || sim.status === "running") {
      box.append(el("div", "rg-why-line rg-sub", "finding the training samples that support or oppose it…"));
      return;
    }
    if (sim.status === "failed") {
      box.append(el("div", "rg-why-line rg-bad", `could not compare gradients: ${sim.error || "failed"}`));
      return;
    }
    for (const [title, list] of [["supporting (grad·grad > 0)", sim.support], ["opposing (< 0)", sim.oppose]]) {
      box.append(el("div", "rg-why-head", title));
      const strip = el("div", "rg-strip");
      if (!list || !list.length) strip.append(el("span", "rg-sub", "none"));
      for (const s of list || []) {
        const item = el("div", "rg-mini");
        item.title = `#${s.id} ${classes[s.label]} · ${num(s.sim, 3)}`;
        if (s.image) {
          const img = el("img");
          img.src = s.image;
          img.alt = `sample ${s.id}`;
          item.append(img);
        }
        item.append(el("span", null, `#${s.id} ${classes[s.label]}`));
        strip.append(item);
      }
      box.append(strip);
    }
  }

  // -------------------------------------------------------------------------------------- large view
  showView(row) {
    if (!this.cards.has(row)) return;
    this.viewRow = row;
    this.focusRow = row;
    this.fillView(row);
    if (!this.dialog.open) this.dialog.showModal();
    this.dialog.focus();
  }

  fillView(row) {
    const c = this.cards.get(row).data;
    const classes = this.data.classes || [];
    const st = this.status(c);
    this.dialog.replaceChildren();
    this.dialog.dataset.row = String(row);
    const top = el("div", "rg-view-top");
    top.append(el("b", null, `#${c.id}`), el("span", "rg-sub", c.id !== c.row ? ` row ${c.row}` : ""));
    top.append(el("span", null, ` · given ${classes[c.given]} · model ${classes[c.pred]} ${pct(c.prob)} · score ${num(c.score)}`));
    const close = button("Close", "close", { key: "Esc" });
    top.append(close);
    this.dialog.append(top);
    if (c.image) {
      const img = el("img", "rg-view-img");
      img.src = c.image;
      img.alt = `sample ${c.id}`;
      this.dialog.append(img);
    }
    if (c.annotators) this.dialog.append(el("div", "rg-sub rg-annotators", c.annotators));
    if (c.text) this.dialog.append(el("div", "rg-text rg-view-text", c.text));
    if (c.features && c.features.length) {
      const table = el("dl", "rg-features rg-view-features");
      for (const [name, value] of c.features) table.append(el("dt", null, name), el("dd", null, value));
      this.dialog.append(table);
    }
    const status = el("div", "rg-status rg-view-status", st.text);
    status.dataset.state = st.state;
    this.dialog.append(status);
    const actions = el("div", "rg-actions");
    for (const b of [button("Keep", "keep", { key: "a" }), button("Remove", "remove", { key: "r" }),
      button(c.pred === c.given ? "Keep = model" : `→ ${classes[c.pred]}`, "pred", { key: "p" })]) {
      b.dataset.row = String(row);
      actions.append(b);
    }
    this.dialog.append(actions);
    if (classes.length <= 10) {
      const palette = el("div", "rg-palette rg-view-palette");
      palette.style.setProperty("--cols", String(Math.min(5, classes.length)));
      classes.forEach((name, i) => {
        const b = button(`${i} ${name}`, "class", { label: i, cls: "rg-class" + (i === c.given ? " rg-given" : "") });
        b.dataset.row = String(row);
        palette.append(b);
      });
      this.dialog.append(palette);
    }
    this.dialog.append(el("div", "rg-sub", "j / k: next / previous sample · Esc: back to the grid"));
  }
}
