"""Review: the flagged samples, most detrimental first by the ranking you choose; keep, remove or relabel each with
one click or one key (a card grid whose every click and key is recorded exactly once, however fast), or many at once;
undo your own last decision; open "why flagged" inside a card. Decisions go to the project's log as they are made."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import streamlit as st

from influence_core.project import InfluenceError, ReviewView
from app_pages import _review_grid as grid
from app_pages import _review_views as views
from app_pages import review_queue
from app_pages._bulk_fixes import bulk_fixes
from app_pages._common import (guarded, job_outcome, job_panel, job_section, link, plain, run_title, session_id,
                               start_page, use_session_id)

PER_PAGE = (12, 24, 48, 96)
PER_ROW = (3, 6)
SIMILAR = 6  # supporting / opposing training samples shown under "why flagged"
FEATURES = 12  # columns shown on a tabular card (as the source file holds them)
THUMBNAILS = 1000  # encoded card images kept per session

_KEYS_MOVE = ("`u` undo · `j` / `k` or arrows: next / previous card · `]` / `[` next / previous page · `w` why "
              "flagged · `m` more like this · `v` larger view · `Esc` close. After a decision the next card is "
              "focused.")
KEYS_FEW = ("**Keys** (click a card first): `a` keep · `r` remove · `p` relabel to the model's prediction · "
            "`0`–`9` relabel to that class (the given class's digit keeps it) · " + _KEYS_MOVE)
KEYS_MANY = ("**Keys** (click a card first): `a` keep · `r` remove · `p` relabel to the model's prediction · "
             "`/` or a digit: type a class name or number, Enter relabels to the first match · " + _KEYS_MOVE)


# --------------------------------------------------------------------------------------------- the list
def _listed(key: str, rows_of_view) -> np.ndarray:
    """The rows the view lists (`Project.review_rows`), fixed when the view is opened (and on Refresh): a decided
    card stays in place with its decision shown, so the grid never moves under the keyboard."""
    pinned = st.session_state.get("review-list")
    if st.session_state.pop("review-refresh", False) or not pinned or pinned.get("view") != key:
        pinned = {"view": key, "rows": [int(r) for r in rows_of_view()]}
        st.session_state["review-list"] = pinned
        st.session_state["review-page"] = 1
    return np.asarray(pinned["rows"], dtype=np.int64)


# -------------------------------------------------------------------------------------------- the cards
def _ranks(scores: np.ndarray, rows: np.ndarray) -> list[int]:
    """Each row's rank by ``scores`` (1 = lowest = most detrimental)."""
    return [int((scores < scores[r]).sum()) + 1 for r in rows]


def _text(value) -> str:
    """A source cell for the card: numbers short, missing cells said so."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def _values(proj, ds, rows: np.ndarray) -> tuple[list | None, list | None]:
    """Per row: the tabular sample's [column, value] pairs as its source holds them (a text sample's other columns),
    and an uploaded image's file name (None where there is none). Not the label column: the card shows the given
    label (and keeps it current after a relabel), the file's would repeat it and then go stale."""
    frame = proj.sample_values(rows)
    if ds.kind == "image":
        return None, [str(f) for f in frame["file"]] if "file" in frame.columns else None
    shown_elsewhere = {proj.label_column(), *(ds.meta.get("text_columns") or ["text"] if ds.kind == "text" else [])}
    columns = [c for c in frame.columns if c not in shown_elsewhere][:FEATURES]
    table = frame[columns].itertuples(index=False)
    return [[[str(c), _text(v)] for c, v in zip(columns, values)] for values in table], None


def _similar(proj, ds, memo: dict, model: str, rows: np.ndarray, wanted: list[int], src: np.ndarray) -> dict:
    """The "why flagged" supporting / opposing samples of each visible row that has them (or is waiting for them)."""
    out, found = {}, {}
    for r in rows:
        res = memo.get(f"{model}:{int(r)}")
        if res is not None:
            found[int(r)] = res
        elif int(r) in wanted:
            job = proj.job("why")
            out[int(r)] = {"status": "running" if job is not None and job.running else "queued"}
    needed = sorted({j for res in found.values() for j, _ in res.get("support", []) + res.get("oppose", [])})
    pixels = dict(zip(needed, proj.images(needed))) if ds.kind == "image" and needed else {}
    y = ds.train.y
    for r, res in found.items():
        if "failed" in res:
            out[r] = {"status": "failed", "error": res["failed"]}
            continue
        out[r] = {"status": "done", **{side: [{"row": j, "id": int(src[j]), "label": int(y[j]), "sim": grid.number(v),
                                              "image": grid.thumbnail(pixels[j]) if j in pixels else None}
                                             for j, v in res[side]] for side in ("support", "oppose")}}
    return out


def _thumbnails(proj, rows: np.ndarray) -> list[str]:
    """The rows' images as PNG data URLs, encoded once per data set in this session (a key press redraws the grid,
    not its images); at most `THUMBNAILS` kept."""
    memo = st.session_state.setdefault("review-thumbnails", {})
    key = proj.state().dataset_key
    if memo.get("of") != key or len(memo) > THUMBNAILS:
        memo.clear()
        memo["of"] = key
    todo = [int(r) for r in rows if int(r) not in memo]
    if todo:
        memo.update(zip(todo, (grid.thumbnail(px) for px in proj.images(todo))))
    return [memo[int(r)] for r in rows]


def _cards(proj, ds, visible: np.ndarray, primary: str, scores: dict, titles: dict, current: dict,
           similar: dict) -> list[dict]:
    preds, probs = proj.predictions()
    src = proj.source_index()
    s = scores[primary]
    images = _thumbnails(proj, visible) if ds.kind == "image" and len(visible) else None
    features, files = _values(proj, ds, visible) if len(visible) else (None, None)
    ranks = {label: _ranks(sc, visible) for label, sc in scores.items()}
    noise = ds.noise_mask
    clean = ds.clean_labels
    said = proj.annotator_labels(visible)  # issue 20: "random1: cat · random2: dog · random3: cat" per card
    cards = []
    for i, r in enumerate(int(r) for r in visible):
        given, pred = int(ds.train.y[r]), int(preds[r])
        decision = current.get(r)
        noisy = bool(noise[r]) if noise is not None else None
        cards.append({
            "row": r, "id": int(src[r]), "given": given, "pred": pred,
            "prob": grid.number(probs[r, pred]), "prob_given": grid.number(probs[r, given]),
            "score": grid.number(s[r]), "rank": ranks[primary][i], "n": int(len(s)),
            "noisy": noisy, "true": int(clean[r]) if noisy and clean is not None else None,
            "image": images[i] if images else None, "features": features[i] if features else None,
            "file": files[i] if files else None, "annotators": said[i] or None,
            "text": ds.texts["train"][r] if ds.texts is not None else None,
            "decision": None if decision is None else {"action": decision.action, "label": decision.new_label},
            "methods": [{"label": label, "title": titles.get(label, label), "score": grid.number(sc[r]),
                         "rank": ranks[label][i]} for label, sc in scores.items()],
            "similar": similar.get(r),
        })
    return cards


# --------------------------------------------------------------------------------------- why flagged
def _why_jobs(proj, asked: list[int], model: str, params: str, src: np.ndarray) -> tuple[dict, list[int]]:
    """Run the asked-for "why flagged" comparisons one after another as the project's "why" job; returns the
    session's results (by model and row) and the rows still waiting."""
    memo = st.session_state.setdefault("review-similar", {})
    wanted = st.session_state.setdefault("review-why-wanted", [])
    for r in asked:
        if "failed" in memo.get(f"{model}:{r}", {}):
            memo.pop(f"{model}:{r}")  # asked again after a failure: try again

    def ended(job) -> None:
        result = job.result if isinstance(job.result, dict) else {}
        if job.state == "done" and "row" in result:
            memo[f"{result.get('model')}:{result['row']}"] = result
        else:
            job_outcome(proj, "why", job, "Finding the supporting and opposing samples")
            row = st.session_state.get("review-why-row")
            if row is not None:
                memo[f"{model}:{row}"] = {"failed": job.error or job.state}

    running = job_section(proj, "why", "Finding the supporting and opposing samples", on_end=ended)
    wanted[:] = [r for r in wanted if f"{model}:{r}" not in memo]
    if wanted and running is None:
        st.session_state["review-why-row"] = wanted[0]
        _start_why(proj, wanted[0], int(src[wanted[0]]), params, model)
        job_panel(proj, "why")  # the job just started: its progress and Stop
    return memo, wanted


def _start_why(proj, row: int, sample_id: int, params: str, model: str) -> None:
    def run(handle) -> dict:
        handle.report(0.05, f"comparing sample {sample_id} with every training sample")
        sim = np.asarray(proj.similar_samples(row, params), dtype=float)
        sim[row] = np.nan  # itself
        order = np.argsort(np.nan_to_num(sim, nan=0.0), kind="stable")
        support = [int(j) for j in order[::-1][:SIMILAR] if sim[j] > 0]
        oppose = [int(j) for j in order[:SIMILAR] if sim[j] < 0]
        return {"row": row, "model": model, "support": [[j, float(sim[j])] for j in support],
                "oppose": [[j, float(sim[j])] for j in oppose]}

    proj.start_job("why", f"Why flagged: sample {sample_id}", run)


# --------------------------------------------------------------------------------------------- batches
def _batch(proj, action: str) -> None:
    """A batch button's click (a callback: it runs once per click, before the page is drawn again)."""
    rows = list(st.session_state.get("batch-rows") or [])
    label = st.session_state.get("batch-target") if action == "relabel" else None
    try:
        proj.record(rows, action, label, session=session_id())
    except InfluenceError as err:
        st.session_state["review-message"] = ("error", str(err))
        return
    st.session_state["batch-rows"] = []
    st.session_state["review-message"] = ("done", f"{action} · {len(rows)} sample{'s' if len(rows) != 1 else ''}")


def _undo(proj) -> None:
    try:
        n = proj.undo(session=session_id())
    except InfluenceError as err:  # e.g. a viewer: one line, as for a batch
        st.session_state["review-message"] = ("error", str(err))
        return
    st.session_state["review-message"] = ("done", _undo_message(int(n > 0), n))


def _undo_message(batches: int, samples: int) -> str:
    """What undo took back: how many of your decisions (a key, a click or a batch each) and how many samples."""
    if not batches:
        return "Nothing of yours to undo."
    what = "your last decision" if batches == 1 else f"your last {batches} decisions"
    return f"Undid {what} ({samples} sample{'s' if samples != 1 else ''})."


def _map_banner(count: int, order: str | None) -> None:
    """What the grid shows while it shows a selection (Explore's map, a link), and the way back to the flagged
    samples."""
    c = st.columns([4, 1], vertical_alignment="center")
    c[0].info(f"The grid shows the {count} sample{'s' if count != 1 else ''} selected on the Explore map, most "
              "detrimental first — not the flagged list.")
    c[1].button("Back to the flagged samples", key="leave-map-selection", width="stretch",
                on_click=views.show_next, args=(ReviewView(order=order),))


def _batch_bar(proj, ds, rows: np.ndarray, preds: np.ndarray, name) -> None:
    preset = [int(r) for r in st.session_state.get("batch-rows", [])]
    listed = set(rows.tolist())
    options = [int(r) for r in rows] + [r for r in preset if r not in listed]
    chosen = st.multiselect("Batch: samples", options, key="batch-rows", format_func=name)
    c = st.columns([1, 1, 2, 1, 1])
    c[0].button("Keep all", disabled=not chosen, width="stretch", on_click=_batch, args=(proj, "keep"))
    c[1].button("Remove all", disabled=not chosen, width="stretch", on_click=_batch, args=(proj, "remove"))
    majority = int(np.bincount(preds[chosen], minlength=ds.num_classes).argmax()) if chosen else 0
    order = [majority] + [k for k in range(ds.num_classes) if k != majority]  # the batch's majority prediction first
    if st.session_state.get("batch-target") not in order:
        st.session_state.pop("batch-target", None)
    # No class is preset: relabelling a whole batch is one deliberate choice, never a default one click away.
    target = c[2].selectbox("Batch relabel to", order, key="batch-target", index=None, placeholder="relabel to…",
                            format_func=lambda k: f"relabel to {ds.classes[k]}", label_visibility="collapsed")
    c[3].button("Relabel all", disabled=not chosen or target is None, width="stretch", type="primary", on_click=_batch,
                args=(proj, "relabel"))
    can_undo = proj.can_undo(session_id())
    c[4].button("Undo", icon=":material/undo:", disabled=not can_undo, width="stretch", on_click=_undo, args=(proj,),
                help="Takes back your own last decision (a key, a click or a batch) — not other people's.")


# ------------------------------------------------------------------------------------------------ page
def _take_events(proj, ds) -> review_queue.Outcome:
    """The grid's queued events first: every decision reaches the log before anything on the page counts them; what
    they did (a page turn, "why" asked for, undos, refusals) goes into the session and onto the page."""
    sent = review_queue.browser_session(grid.state(proj.name))
    if sent is not None:  # the reviewer id the browser keeps for this project: Undo survives a refresh
        use_session_id(sent)
    events = review_queue.pending_events(grid.state(proj.name))
    outcome = review_queue.process_events(proj, events, session=session_id(),
                                          done=st.session_state.setdefault("review-events", {}),
                                          n_rows=len(ds.train), n_classes=ds.num_classes)
    if outcome.page is not None:
        st.session_state["review-page"] = outcome.page
    if outcome.like is not None:  # "more like this" on a card: that sample and its neighbours become the view
        views.more_like_this(outcome.like)
        st.rerun()
    wanted = st.session_state.setdefault("review-why-wanted", [])
    wanted.extend(r for r in outcome.why if r not in wanted)
    if outcome.undos:
        st.session_state["review-message"] = ("done", _undo_message(outcome.undos, outcome.undone))
    if outcome.foreign:
        st.warning(plain(outcome.foreign_message(proj.name)))
    kind, message = st.session_state.pop("review-message", (None, ""))
    if kind == "error":
        st.error(plain(message))
    elif kind:
        st.toast(message)
    return outcome


def _controls(proj, ds, rankings: dict, titles: dict, view: ReviewView, choices, state) -> tuple[ReviewView, str, int, int]:
    """The ranking and the flagged share (both kept in the project; a ranking named in the URL is the view's), which
    samples and which of them, how many cards per row and page, then the filter bar: the view and its ranking.
    ``state``: the reading ``rankings`` came from."""
    c1, c2, c3, c4, c5, c6 = st.columns([2.4, 2.0, 1.4, 1.1, 0.8, 0.8])
    default = proj.primary_ranking(state)
    shown = view.order if view.order in rankings else default
    labels = list(rankings)
    order = c1.selectbox("Order by", labels, index=labels.index(shown),
                         format_func=lambda label: titles[label],
                         help="Any computed ranking or Datalab issue type (lower = more detrimental first); compute "
                              "more on the Scores page. Until you choose, the one that finds the known wrong labels "
                              "best (the Scores page's leaderboard), else the loss (README: which ranking to trust).")
    shares = sorted({0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, float(state.flag_share)})
    viewer = proj.role == "viewer"  # looks only: the project's ranking and share stay as its reviewers set them
    share = c2.select_slider("Flag the most detrimental share of the training set", shares, float(state.flag_share),
                             format_func=lambda v: f"{v:.0%}", disabled=viewer,
                             help="Your role here is viewer: a reviewer or the owner sets the share." if viewer else None)
    views.scope_and_status(c3, c4, view, choices)
    per_row = c5.selectbox("Cards per row", PER_ROW, index=PER_ROW.index(6 if ds.kind == "image" else 3),
                           key="review-per-row")
    per_page = c6.selectbox("Cards per page", PER_PAGE, index=1, key="review-per-page")
    if order != shown and viewer:  # a viewer's choice orders their own view only (it goes to the URL)
        view = replace(view, order=order)
    elif order != shown:  # the user's choice becomes the project's ranking (a URL's stays the view's)
        proj.set_primary(order)
        view = replace(view, order=None)
    if share != state.flag_share and not viewer:
        proj.set_flag_share(share)
    view = views.filter_bar(proj, ds, view, choices, titles[order])
    return view, order, per_row, per_page


def _grid_section(proj, ds, scores: dict, titles: dict, view: ReviewView, choices, order: str, ranking: np.ndarray,
                  per_row: int, per_page: int) -> None:
    """Everything a decision changes: the queue's events recorded, the counts, the batch bar and the card grid (the
    part of the page that a key press reruns alone: `_grid_fragment`)."""
    outcome = _take_events(proj, ds)
    state = proj.state()
    flagged = proj.flagged(order)
    current = proj.current_decisions()
    src = proj.source_index()
    preds, _ = proj.predictions()
    query = sorted(proj.view_query(view, choices).items())
    key = f"{state.dataset_key}|{state.model_hash}|{order}|{state.flag_share}|{query}"
    try:
        rows = _listed(key, lambda: proj.review_rows(view))
    except InfluenceError as err:
        st.error(plain(err))
        return
    pages = max(1, math.ceil(len(rows) / per_page))
    page_no = min(max(int(st.session_state.get("review-page", 1)), 1), pages)
    st.session_state["review-page"] = page_no

    def name(r: int) -> str:
        return f"{int(src[r])}" if int(src[r]) == r else f"{int(src[r])} (row {r})"

    counts = proj.decision_counts()
    left = sum(1 for r in flagged if int(r) not in current)
    st.markdown(f"**Ordered by:** {plain(titles[order])}")
    st.caption(f"{len(flagged)} flagged (the lowest scores, most detrimental first) · {left} still to review · " +
               f"{len(rows)} listed by this view · decisions so far: " + ", ".join(f"{v} {k}" for k, v in counts.items()) +
               " · samples are named by their index in the original data (the number the exports use).")
    if view.rows:
        _map_banner(len(view.rows), view.order)
    bulk_fixes(proj, ds, order, rows)  # issue 20 §5
    _batch_bar(proj, ds, rows, preds, name)
    if len(rows) == 0 and left and view != ReviewView(order=view.order):  # a filter or scope, not the end of the work
        st.info(f"This view lists no samples; {left} flagged still to review: change or clear the filters "
                "(Filters and saved views) or choose other samples.")
        return
    if len(rows) == 0:
        st.success("Nothing left to review here. Export the decisions when you are done.")
        link("export", "Go to Export")
        return
    top = st.columns([5, 1], vertical_alignment="center")
    top[0].markdown(KEYS_FEW if ds.num_classes <= 10 else KEYS_MANY)
    if top[1].button("Refresh list", icon=":material/refresh:", help="List again without the samples decided since",
                     width="stretch"):
        st.session_state["review-refresh"] = True
        st.rerun()
    run = {r.label: r for r in state.runs}.get(order)
    memo, wanted = _why_jobs(proj, outcome.why, state.model_hash, run.params if run else "all", src)
    visible = rows[(page_no - 1) * per_page : page_no * per_page]
    similar = _similar(proj, ds, memo, state.model_hash, visible, wanted, src)
    grid.show({
        "project": proj.name, "session": session_id(), "classes": [str(c) for c in ds.classes], "per_row": per_row,
        "page": {"number": page_no, "count": pages}, "primary": titles[order],
        "cards": _cards(proj, ds, visible, order, {**scores, order: ranking}, titles, current, similar),
        "acked": outcome.acked, "failed": outcome.failed, "foreign": outcome.foreign,
    })


def page() -> None:
    ctx = start_page("Review", needs="scores")
    proj, ds, scores = ctx.proj, ctx.ds, ctx.scores
    runs = {r.label: r for r in ctx.state.runs}  # one reading: a job adding runs meanwhile changes none of these
    rankings = proj.rankings(ctx.state)  # the runs, then Datalab's issue rankings
    titles = {label: run_title(runs[label]) if label in runs else label for label in rankings}
    choices = proj.view_choices()
    view = views.current_view(proj, choices)
    view, order, per_row, per_page = _controls(proj, ds, rankings, titles, view, choices, ctx.state)
    views.write_url(proj, view, choices)
    views.class_pair_section(proj, view, choices, runs.get(order) or proj.primary_run(ctx.state), titles[order])
    _grid_fragment(proj.name)(proj, ds, scores, titles, view, choices, order, rankings[order], per_row, per_page)


def _grid_fragment(project: str):
    """`_grid_section` as a fragment of project ``project``'s own: a key press or a click in the grid reruns it alone,
    not the app. Its id (Streamlit's: from the function's name) and its component's state are the project's, so a
    rerun the browser asked for in another project's grid is dropped by Streamlit, never run here; and a rerun of
    a project this session has left since records nothing and writes nothing (the address stays as it is)."""

    def grid(proj, *args) -> None:
        if proj.name != st.session_state.get("project") or st.query_params.get("project", proj.name) != proj.name:
            return
        guarded(lambda: _grid_section(proj, *args))

    grid.__qualname__ = f"review_grid_of_{project}"
    return st.fragment(grid)


guarded(page)
