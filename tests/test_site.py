"""The static website (`make site`, mnist_course.tooling.site): built from a fast-mode run of the course and
read in Debian's Chromium (Playwright, file:// pages, every request outside file:// refused).
Hostile notebooks (scripts, handlers, frames in Markdown and outputs) are tests/test_site_sanitise.py's.

The run: the one tests/test_notebooks.py keeps in build/test/fast-run/ (CI runs that test first);
when it is missing, this test runs the fast course itself into a temporary folder (it never skips
for that). The site is built into a temporary folder; screenshots of the index and one notebook
page go to build/site-shots/. `check_site` is the whole browser check; the test of a deliberately
damaged site shows that each of its assertions can fail.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import mnist_course as mc
from mnist_course.tooling import site as site_mod
from mnist_course.tooling.runner import course_notebooks

CHROMIUM = Path(os.environ.get("MNIST_COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-dev-shm-usage"]
KEPT_RUN = mc.repo_root() / "build" / "test" / "fast-run"  # written by tests/test_notebooks.py
SHOTS = mc.repo_root() / "build" / "site-shots"


# ----------------------------------------------------------------------------- the browser check

PAGE_FACTS = """() => {
  const visible = e => e.checkVisibility ? e.checkVisibility() : !!(e.offsetWidth || e.offsetHeight);
  const attrs = [];
  for (const e of document.querySelectorAll('*')) {
    for (const a of e.attributes) {
      if (!a.value.includes('://')) continue;
      if (e.tagName === 'A' && a.name === 'href') continue;                       // a link, not a load
      if (a.name === 'xmlns' || a.name.startsWith('xmlns:')) continue;             // a namespace, not a load
      attrs.push(`<${e.tagName.toLowerCase()} ${a.name}="${a.value.slice(0, 120)}">`);
    }
  }
  for (const s of document.querySelectorAll('script, style')) {
    const m = s.textContent.match(/(?:import\\(|src=|url\\()\\s*["']?https?:\\/\\/[^"') ]+/);
    if (m) attrs.push(`<${s.tagName.toLowerCase()}> ${m[0]}`);
  }
  const markdownText = [...document.querySelectorAll('.jp-RenderedMarkdown, .jp-MarkdownOutput')].map(e => {
    const c = e.cloneNode(true);
    c.querySelectorAll('code, pre, math').forEach(x => x.remove());
    return c.textContent;
  }).join('\\n');
  const maths = [...document.querySelectorAll('math')];
  const runs = [...document.body.querySelectorAll('script, iframe, frame, object, embed, form')].map(e => `<${e.tagName.toLowerCase()}>`);
  for (const e of document.body.querySelectorAll('*')) {
    for (const a of e.attributes) {
      if (a.name.startsWith('on') || /^\\s*(javascript|vbscript):/i.test(a.value)) runs.push(`<${e.tagName.toLowerCase()} ${a.name}>`);
    }
  }
  return {
    runs,
    title: document.title,
    images: [...document.querySelectorAll('img')].map(i => ({src: i.getAttribute('src').slice(0, 80),
                                                           ok: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    offsite: attrs,
    outputs: [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.textContent),
    markdownText,
    mathCount: maths.length,
    prefixed: [...new Set([...document.querySelectorAll('*')].map(e => e.tagName.toLowerCase())
                            .filter(t => t.includes(':')))],
    mathNotRendered: maths.filter(m => !getComputedStyle(m).display.includes('math')
                                       || m.getBoundingClientRect().width === 0).length,
    folds: [...document.querySelectorAll('details')].map(d => {
      const inside = [...d.children].filter(c => c.tagName !== 'SUMMARY');
      return {summary: (d.querySelector('summary') || {}).textContent || '', open: d.open,
              content: inside.map(c => c.textContent).join('').trim().length,
              shown: inside.some(visible)};
    }),
    exerciseOutputs: [...document.querySelectorAll('.jp-CodeCell')]
      .filter(c => /check\\("\\d\\d\\.\\d+"/.test((c.querySelector('.jp-InputArea') || {}).textContent || ''))
      .map(c => c.querySelectorAll('.jp-OutputArea-output').length),
    staticWidgets: [...document.querySelectorAll('figure.static-widget img')].filter(i => i.naturalWidth > 0).length,
    prev: (document.querySelector('a.nav-prev') || {getAttribute: () => null}).getAttribute('href'),
    next: (document.querySelector('a.nav-next') || {getAttribute: () => null}).getAttribute('href'),
  };
}"""


def notebook_facts(path: Path) -> tuple[bool, int]:
    """(whether its Markdown has $LaTeX$, how many image outputs it has outside exercise cells) of an executed notebook."""
    nb = json.loads(path.read_text())
    math = any(re.search(r"\$[^$\n]+\$", "".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "markdown")
    images = sum(1 for c in nb["cells"] if c["cell_type"] == "code" and not site_mod.exercise_ids("".join(c["source"]))
                 for o in c.get("outputs", []) if {"image/png", "image/jpeg"} & set(o.get("data", {})))
    return math, images


def _link_problem(page: Path, href: str, ids: dict[Path, set[str]]) -> str | None:
    """Why a local link of `page` is broken (None when it is fine, or not local)."""
    parts = urlsplit(href)
    if parts.scheme in ("http", "https", "mailto") or href.startswith("data:"):
        return None
    if parts.scheme not in ("", "file"):
        return f"{href}: unexpected scheme"
    target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    if not target.is_file():
        return f"{href}: no such file {target}"
    if parts.fragment and target.suffix == ".html":
        if target not in ids:
            ids[target] = set(re.findall(r'\bid="([^"]+)"', target.read_text()))
        known = {html.unescape(i) for i in ids[target]}
        if parts.fragment not in known and unquote(parts.fragment) not in known:  # as browsers look it up
            return f"{href}: no element with id {parts.fragment!r} in {target.name}"
    return None


def check_site(site: Path, notebooks: Path, shots: Path | None = None) -> dict:
    """Open every page of `site` in Chromium and assert it reads like the course; `notebooks` is the
    executed run it was built from. Returns a few numbers (pages, images, formulas)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    course = course_notebooks()
    pages = ["index.html", "results.html"] + [f"{nb.stem}.html" for nb in course]
    missing = [p for p in pages if not (site / p).is_file()]
    assert not missing, f"the site lacks {missing}"
    problems, foreign, counts = [], [], {"pages": 0, "images": 0, "formulas": 0}
    ids: dict[Path, set[str]] = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})

            def only_local(route):
                url = route.request.url
                if url.startswith(("file://", "data:")) or urlsplit(url).hostname == "127.0.0.1":
                    route.continue_()
                else:
                    foreign.append(url)
                    route.abort()

            context.route("**/*", only_local)
            page = context.new_page()
            page.set_default_timeout(60_000)
            for name in pages:
                path = (site / name).resolve()
                page.goto(path.as_uri(), wait_until="load")
                facts = page.evaluate(PAGE_FACTS)
                counts["pages"] += 1
                counts["images"] += len(facts["images"])
                counts["formulas"] += facts["mathCount"]
                where = f"{name}:"
                problems += [f"{where} broken image {i['src']}" for i in facts["images"] if not i["ok"]]
                problems += [f"{where} broken link {why}" for href in facts["links"]
                             if (why := _link_problem(path, href, ids))]
                problems += [f"{where} loads from outside the site: {a}" for a in facts["offsite"]]
                problems += [f"{where} could run script: {facts['runs'][:5]}"] if facts["runs"] else []
                for text in facts["outputs"]:
                    # an exception's traceback (an error output, or one printed to stderr); notebook 12
                    # prints error *messages* on purpose, which are fine
                    if "Traceback (most recent call last)" in text:
                        problems.append(f"{where} an error output: {text[-300:]!r}")
                    if "Loading widget" in text or "model_id" in text:
                        problems.append(f"{where} a widget left unrendered: {text[:200]!r}")
                raw = re.findall(r"\$[^$\n]{1,80}\$|\\(?:frac|sum|mathrm|mathbb|partial)\b", facts["markdownText"])
                problems += [f"{where} LaTeX left unrendered: {raw[:5]}"] if raw else []
                if facts["prefixed"]:  # e.g. <ns0:math>, which a browser shows as plain text
                    problems.append(f"{where} LaTeX left unrendered: namespaced tags {facts['prefixed'][:5]}")
                if facts["mathNotRendered"]:
                    problems.append(f"{where} {facts['mathNotRendered']} <math> element(s) not rendered as MathML")
                for fold in facts["folds"]:
                    if fold["open"] or fold["shown"] or not fold["content"]:
                        problems.append(f"{where} the fold {fold['summary']!r} is "
                                        f"{'open' if fold['open'] or fold['shown'] else 'empty (its answer is outside it)'}")
                problems += [f"{where} an exercise stub cell has outputs" for n in facts["exerciseOutputs"] if n]
                if name == "index.html":
                    for nb in course:
                        if f"{nb.stem}.html" not in facts["links"]:
                            problems.append(f"index.html: no link to notebook {nb.stem}")
                    if shots:
                        shots.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(shots / "index.png"), full_page=True)
                nb_index = next((i for i, nb in enumerate(course) if name == f"{nb.stem}.html"), None)
                if nb_index is not None:
                    nb = course[nb_index]
                    want_prev = f"{course[nb_index - 1].stem}.html" if nb_index > 0 else None
                    want_next = f"{course[nb_index + 1].stem}.html" if nb_index + 1 < len(course) else None
                    if (facts["prev"], facts["next"]) != (want_prev, want_next):
                        problems.append(f"{where} previous/next links are {facts['prev']}/{facts['next']}, "
                                        f"not {want_prev}/{want_next}")
                    has_math, images = notebook_facts(notebooks / nb.name)
                    if has_math and not facts["mathCount"]:
                        problems.append(f"{where} the notebook has LaTeX but the page has no <math>")
                    if len(facts["images"]) < images:
                        problems.append(f"{where} {images} figures in the notebook, {len(facts['images'])} on the page")
                    if nb.name[:2] in site_mod.STATIC_WIDGETS and not facts["staticWidgets"]:
                        problems.append(f"{where} no static picture of the notebook's widget")
                    if shots and nb_index == 1:  # a notebook page with math and a figure
                        page.locator("img").first.scroll_into_view_if_needed()
                        page.screenshot(path=str(shots / f"{nb.stem}.png"))
        finally:
            browser.close()
    problems += [f"a request left the site: {url}" for url in foreign]
    assert not problems, f"{len(problems)} problem(s) in {site}:\n" + "\n".join(problems[:40])
    return counts


# ----------------------------------------------------------------------------- fixtures


def _complete(run: Path) -> bool:
    return all((run / "notebooks" / nb.name).is_file() for nb in course_notebooks()) and (run / "results.json").is_file()


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory) -> Path:
    """A folder with notebooks/, figures/ and results.json of a fast-mode course run."""
    if _complete(KEPT_RUN):
        return KEPT_RUN
    run = tmp_path_factory.mktemp("fast-run")
    env = dict(os.environ, MNIST_COURSE_FAST="1", MNIST_COURSE_PROGRESS="0",
               MPLBACKEND="module://matplotlib_inline.backend_inline",  # figures as outputs, as in make course
               MNIST_COURSE_FIGURES=str(run / "figures"), MNIST_COURSE_RESULTS=str(run / "results.json"))
    env.pop("MNIST_COURSE_RECORD", None)
    env.setdefault("MNIST_COURSE_MODELS", str(run / "models"))
    proc = subprocess.run([sys.executable, "-m", "mnist_course", "course", "--fast", "--output", str(run / "notebooks")],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, "the fast course run for the site failed:\n" + proc.stdout[-2000:] + proc.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def built_site(fast_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    site_mod.build_site(fast_run / "notebooks", out, fast_run / "figures", fast_run / "results.json")
    return out


def _need_chromium():
    if not CHROMIUM.exists():
        message = (f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (as .ci/run does) "
                   "or set MNIST_COURSE_CHROMIUM")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# ----------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_site_reads_in_chromium(built_site, fast_run):
    _need_chromium()
    counts = check_site(built_site, fast_run / "notebooks", SHOTS)
    assert counts["pages"] == len(course_notebooks()) + 2
    assert counts["formulas"] > 0 and counts["images"] >= len(course_notebooks())
    assert (SHOTS / "index.png").is_file() and len(list(SHOTS.glob("[0-9][0-9]_*.png"))) == 1


def _damage(site: Path, how: str) -> str:
    """Break a copy of the site in one way; returns the message check_site must give."""
    page = site / "02_softmax_regression_numpy.html"
    text = page.read_text()
    if how == "figure":  # a page that lost one of its figures
        page.write_text(re.sub(r'<img [^>]*src="data:image/png[^>]*>', "", text, count=1))
        return "figures in the notebook"
    if how == "image":
        page.write_text(text.replace("<main>", '<main><img src="figures/nothing-here.png" alt="x">', 1))
        return "broken image"
    if how == "link":
        page.write_text(text.replace("<main>", '<main><a href="03_missing.html">next</a>', 1))
        return "broken link"
    if how == "heading-math":  # what nbconvert's heading anchors did to MathML before site.py undid it
        page.write_text(re.sub(r"<math\b(.*?)</math>", lambda m: re.sub(r"<(/?)(m\w+)", r"<\1ns0:\2", m.group(0)),
                               text, count=1, flags=re.S))
        return "namespaced tags"
    if how == "math":
        page.write_text(re.sub(r"<math\b.*?</math>", "$x$", text, count=1, flags=re.S))
        return "LaTeX left unrendered"
    if how == "notebook":
        index = site / "index.html"
        index.write_text(index.read_text().replace('href="05_pixel_permutation.html"', 'href="results.html"'))
        return "no link to notebook 05_pixel_permutation"
    if how == "error":
        page.write_text(text.replace(
            "<main>", '<main><div class="jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr">'
                      "<pre>Traceback (most recent call last):\nValueError: boom</pre></div>", 1))
        return "an error output"
    if how == "cdn":
        page.write_text(text.replace(
            "</head>", '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script></head>', 1))
        return "loads from outside the site"
    if how == "script":  # what a notebook's HTML did before the site sanitised it
        page.write_text(text.replace("<main>", '<main><img src="figures/x.png" onerror="document.title=1">', 1))
        return "could run script"
    if how == "fold":
        page.write_text(re.sub(r"(<details[^>]*><summary>.*?</summary>)", r"\1</details><div>", text, count=1, flags=re.S))
        return "is empty"
    raise ValueError(how)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["figure", "image", "heading-math", "link", "math", "notebook", "error", "cdn", "fold",
                                 "script"])
def test_check_site_rejects_a_damaged_site(built_site, fast_run, tmp_path, how):
    _need_chromium()
    site = tmp_path / "site"
    shutil.copytree(built_site, site)
    expected = _damage(site, how)
    with pytest.raises(AssertionError, match=re.escape(expected)):
        check_site(site, fast_run / "notebooks")


# ----------------------------------------------------------------------------- without a browser


def _tqdm_state(left: str, value: float, total: float, right: str) -> dict:
    def model(name, **state):
        return {"model_name": name, "state": state}
    return {"box": model("HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]),
            "l": model("HTMLModel", value=left), "p": model("FloatProgressModel", value=value, max=total),
            "r": model("HTMLModel", value=right)}


def test_progress_text_is_the_final_state():
    # tqdm's texts lag behind the bar's value (updated on close): rebuilt from the value
    state = _tqdm_state("epoch\u20071:\u2007\u200755%", 938.0, 938.0, "\u2007518/938\u2007[00:00&lt;00:00,\u20075175.27it/s]")
    assert site_mod.progress_text(state, "box") == "epoch 1: 100%|██████████| 938/938"
    # texts that are current keep their times
    state = _tqdm_state("train:\u200750%", 5.0, 10.0, "\u20075/10\u2007[00:01&lt;00:01,\u20073.00it/s]")
    assert site_mod.progress_text(state, "box") == "train:  50%|█████     | 5/10 [00:01<00:01, 3.00it/s]"
    assert site_mod.progress_text(state, "l") is None  # not a progress bar


def test_widgets_become_static(tmp_path):
    import nbformat

    figures, out = tmp_path / "figures", tmp_path / "site"
    figures.mkdir()
    out.mkdir()
    view = {"model_id": "box", "version_major": 2, "version_minor": 0}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("train()", outputs=[
            nbformat.v4.new_output("display_data", data={site_mod.WIDGET_VIEW: view, "text/plain": "0%"}),
            nbformat.v4.new_output("display_data", data={site_mod.WIDGET_VIEW: view, "text/plain": "0%"})]),
        nbformat.v4.new_code_cell("pad", outputs=[
            nbformat.v4.new_output("execute_result", data={site_mod.WIDGET_VIEW: {"model_id": "pad"}, "text/plain": "Pad()"},
                                   execution_count=1)])])
    nb.metadata["widgets"] = {site_mod.WIDGET_STATE: {"state": _tqdm_state("a:\u2007100%", 3, 3, "\u20073/3")}}
    with pytest.raises(site_mod.SiteError, match="12_pad_from_code.png"):  # the pad's picture is missing
        site_mod.replace_widgets(nbformat.from_dict(json.loads(json.dumps(nb))), "12", figures, out)
    (figures / "12_pad_from_code.png").write_bytes(b"png")
    site_mod.replace_widgets(nb, "12", figures, out)
    bars, pad = nb.cells[0].outputs, nb.cells[1].outputs
    assert len(bars) == 1 and bars[0]["data"] == {"text/html": '<pre class="progress-bars">a: 100%|██████████| 3/3\n'
                                                                 'a: 100%|██████████| 3/3</pre>'}
    assert 'src="figures/12_pad_from_code.png"' in pad[0]["data"]["text/html"] and "make lab" in pad[0]["data"]["text/html"]
    assert (out / "figures" / "12_pad_from_code.png").is_file() and "widgets" not in nb.metadata


def test_exercise_cells_are_unrun_and_answers_folded():
    import nbformat

    stub = 'def softmax(z):\n    raise NotImplementedError\n\n\nif SOLVE:\n    softmax = reference("02.1")\ncheck("02.1", softmax)'
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        nbformat.v4.new_code_cell(stub, execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", text="✓ 02.1 passed\n")])])
    assert site_mod.fold_exercises(nb) == 1
    assert nb.cells[0].outputs and not nb.cells[1].outputs and nb.cells[1].execution_count is None
    folds = nb.cells[2].source
    assert nb.cells[2].cell_type == "markdown" and folds.count("<details") == 2
    solution = "e = np.exp(z - z.max(axis=1, keepdims=True))"  # the reference solution's body
    assert solution not in stub and folds.index(solution) > folds.index("exercise-solution")


def test_site_never_runs_the_course(tmp_path, capsys):
    code = site_mod.main(["--notebooks", str(tmp_path / "none"), "--output", str(tmp_path / "site")])
    assert code == 2 and "make course" in capsys.readouterr().err and not (tmp_path / "site").exists()


def test_partial_run_and_foreign_output_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(course_notebooks()[0], run / course_notebooks()[0].name)
    with pytest.raises(site_mod.SiteError, match=course_notebooks()[1].name):
        site_mod.build_site(run, tmp_path / "site", tmp_path, tmp_path / "results.json")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(site_mod.SiteError, match="not made by `make site`"):
        site_mod.prepare_output(mine)
    assert (mine / "notes.txt").read_text() == "mine"


def test_latex_becomes_mathml():
    assert site_mod.latex_to_mathml(r"\frac{1}{N}", display=False).startswith("<math")
    with pytest.raises(site_mod.SiteError, match=r"\$x\^\$"):
        site_mod.latex_to_mathml("x^", display=True)
    with pytest.raises(site_mod.SiteError, match=r"uses \\undefinedcmd"):  # left as raw text by latex2mathml
        site_mod.latex_to_mathml(r"\undefinedcmd{g} + 1", display=False)


def test_results_page_has_the_docs_blocks():
    from mnist_course import results
    from mnist_course.tooling import readme

    doc = (mc.repo_root() / "docs" / "results.md").read_text()
    page = site_mod.results_markdown(results.tracked_results_path(), None)
    for start, end in [(readme.START, readme.END), (readme.BENCH_START, readme.BENCH_END)]:
        block = doc.split(start, 1)[1].split(end, 1)[0].strip()
        assert block and block in page, f"the results page lacks docs/results.md's block {start[:30]}..."
