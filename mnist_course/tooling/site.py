"""The course as a static website, built offline from executed notebooks (what `make site` does).

    mnist-course site                 # build/notebooks (the last `make course`) -> build/site/
    mnist-course site --fast          # build/fast/notebooks (`make course-fast`) -> build/site/
    mnist-course site --notebooks DIR --figures DIR --results FILE --output DIR

One page per notebook (every output and figure, previous/next links), an index (the course map:
each notebook's title, what you do in it, its headline results and how long it ran) and a results
page (the README's results table and benchmark report, generated the same way). Open
build/site/index.html in a browser; no server and no network are needed.

It never runs a notebook: the executed copies must exist (`make course` writes them). How each
piece is made static:

- pages: nbconvert's HTMLExporter with the JupyterLab template, minus every script it would load
  from a CDN (require.js, MathJax, Mermaid, the widget manager); its CSS is written once to
  static/lab.css;
- LaTeX: converted to MathML at build time (latex2mathml), which browsers render natively;
- progress bars (tqdm widgets): their final text, rebuilt from the widget state the run saved;
- the drawing pad (or any other widget, which needs a live kernel): a static picture from the
  run's figures and one line on how to run it live;
- exercises: the stub cell without outputs, then its hint and the reference solution folded away.

Everything a notebook brings is untrusted: the HTML of every Markdown cell, raw cell and output
(text/html, text/markdown, highlighted code) goes through `sanitise_html` (nh3, the Rust
sanitiser ammonia, with the allow-list below: text, tables, figures, folds, MathML, code classes;
no script, event handler, frame, form, style sheet or javascript: link), page titles are escaped
text, and `check_page` refuses a built page in which a script, handler or frame survived.
"""

from __future__ import annotations

import argparse
import copy
import functools
import html
import inspect
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from ..settings import repo_root

MARKER = ".mnist-course-site"  # written into every site we build: only such a folder is ever replaced
TEMPLATES = Path(__file__).parent / "site_templates"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# Widgets that need a live kernel, shown as a picture the run saved (figure file, caption) per notebook.
STATIC_WIDGETS = {
    "12": ("12_pad_from_code.png",
           "The drawing pad needs a running Python kernel: this is the pad's state after the notebook "
           "drew a 7 from code. To draw yourself: <code>make lab</code>, open "
           "<code>12_draw_a_digit.ipynb</code> and run all cells."),
}
LIVE_WIDGET_NOTE = ("An interactive widget ran here; it needs a running Python kernel: "
                    "<code>make lab</code> and run the notebook to use it.")


@dataclass
class Page:
    """One course notebook as a page: where it comes from and what the index says about it."""
    source: Path                   # the executed notebook
    number: str                    # "01"
    stem: str                      # "01_exploring_mnist"
    title: str = ""
    summary: str = ""              # Markdown: the first paragraph after the title
    seconds: float | None = None   # how long the run took (papermill's record)
    results: list = field(default_factory=list)  # the notebook's entries in the results file
    stale: bool = False            # executed from an older version of notebooks/NN_*.ipynb

    @property
    def href(self) -> str:
        return f"{self.stem}.html"


class SiteError(Exception):
    """The site cannot be built; the message says why and what to run."""


# ----------------------------------------------------------------------------- sanitising

# The allow-list: what the course's pages contain (checked by building the site from a real run
# before and after sanitising, and diffing what went), nothing that runs or loads on its own.
HTML_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del", "details",
    "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "section", "small", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var", "wbr",
}
# MathML Core (what latex2mathml writes, and more); not annotation-xml (it may hold HTML) nor maction.
MATHML_TAGS = {
    "math", "semantics", "annotation", "menclose", "merror", "mfrac", "mi", "mmultiscripts", "mn", "mo", "mover",
    "mpadded", "mphantom", "mprescripts", "mroot", "mrow", "ms", "mspace", "msqrt", "mstyle", "msub",
    "msubsup", "msup", "mtable", "mtd", "mtext", "mtr", "munder", "munderover", "none",
}
MATHML_ATTRIBUTES = {
    "accent", "accentunder", "columnalign", "columnlines", "columnspacing", "columnspan", "depth", "display",
    "displaystyle", "encoding", "fence", "form", "frame", "framespacing", "height", "largeop", "linethickness",
    "lspace", "mathvariant", "maxsize", "minsize", "movablelimits", "notation", "rowalign", "rowlines",
    "rowspacing", "rowspan", "rspace", "scriptlevel", "separator", "stretchy", "symmetric", "voffset", "width",
}
ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start", "type"},
    "td": {"colspan", "rowspan", "style"}, "th": {"colspan", "rowspan", "style", "scope"},
    "tr": {"style"}, "col": {"span"}, "colgroup": {"span"},
    "math": MATHML_ATTRIBUTES | {"xmlns"},
    **{tag: MATHML_ATTRIBUTES for tag in MATHML_TAGS - {"math"}},
}
STYLE_PROPERTIES = {"text-align", "vertical-align"}  # Markdown and pandas tables align their cells
URL_SCHEMES = {"http", "https", "mailto", "data"}    # data: only for pictures (see _allowed_attribute)
DATA_PICTURE = re.compile(r"data:image/(png|jpeg|gif|webp);", re.I)
# Removed with everything inside them (other tags not allowed lose the tag and keep their text).
DROPPED_WITH_CONTENT = {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript",
                        "noembed", "noframes", "template", "textarea", "select", "svg", "title", "xmp"}


def _allowed_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: data: URLs only as a picture's src; style values without functions
    (url(), expression()) or escapes. Returns the value to keep, or None to drop the attribute."""
    if attribute in ("href", "src") and value.strip().lower().startswith("data:"):
        return value if tag == "img" and attribute == "src" and DATA_PICTURE.match(value.strip()) else None
    if attribute == "style" and re.search(r"[(\\]", value):
        return None
    return value


@functools.cache
def _cleaner():
    try:
        import nh3
    except ImportError:
        raise SiteError("the site needs nh3 (the HTML sanitiser): pip install -e '.[course]' or pip install nh3") from None
    return nh3.Cleaner(tags=HTML_TAGS | MATHML_TAGS, clean_content_tags=DROPPED_WITH_CONTENT, attributes=ATTRIBUTES,
                       attribute_filter=_allowed_attribute, url_schemes=URL_SCHEMES, link_rel=None,
                       filter_style_properties=STYLE_PROPERTIES, strip_comments=True)


def sanitise_html(fragment) -> str:
    """An HTML fragment from a notebook (str, or bytes in UTF-8) -> the same fragment keeping only the
    allow-listed tags and attributes (HTML_TAGS, MATHML_TAGS, ATTRIBUTES): no script, event handler,
    frame, form, style sheet, javascript: or non-picture data: URL."""
    text = fragment.decode() if isinstance(fragment, bytes) else str(fragment)
    return _cleaner().clean(text)


class _PageScan(HTMLParser):
    """Collects what in a built page's <body> could run or load by itself (see check_page)."""

    RUNS = {"script", "iframe", "frame", "object", "embed", "applet", "form", "base", "meta", "link", "style",
            "svg", "annotation-xml"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_body, self.found = False, []

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.in_body = True
        if not self.in_body:
            return
        if tag in self.RUNS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            url = re.sub(r"[\x00-\x20]", "", value or "").lower()
            if name.startswith("on") or url.startswith(("javascript:", "vbscript:")) or (
                    url.startswith("data:") and not (tag == "img" and name == "src")):
                self.found.append(f"<{tag} {name}=...>")


def check_page(text: str, name: str) -> None:
    """SiteError when the body of the built page `text` (named `name` in the message) still holds a
    script, event handler, frame, form, style sheet or javascript:/data: link: a hole in the
    sanitising (in site.py or its template), never something a notebook should be able to cause."""
    scan = _PageScan()
    scan.feed(text)
    scan.close()
    if scan.found:
        raise SiteError(f"{name} would run or load something from its notebook ({', '.join(scan.found[:5])}): "
                        "the site builder let it through its sanitiser; report this as a bug in "
                        "mnist_course/tooling/site.py")


# ----------------------------------------------------------------------------- math and HTML


def latex_to_mathml(latex: str, display: bool) -> str:
    """LaTeX source (without $ delimiters) -> a <math> element; SiteError naming the formula if it fails."""
    from latex2mathml.converter import convert

    try:
        mathml = convert(latex.strip(), display="block" if display else "inline")
    except Exception as e:  # latex2mathml raises its own exception classes, and sometimes IndexError/KeyError
        raise SiteError(f"cannot convert the formula ${latex}$ to MathML ({type(e).__name__}: {e}); "
                        "fix the LaTeX in the notebook") from None
    unknown = re.findall(r">(\\[A-Za-z]+)<", mathml)  # a command latex2mathml does not know, left as text
    if unknown:
        raise SiteError(f"the formula ${latex}$ uses {', '.join(unknown)}, which latex2mathml does not know; "
                        "rewrite it with other commands")
    return mathml


def exporter():
    """nbconvert's HTMLExporter with the site's template: math becomes MathML, no CDN scripts, the
    notebook's HTML sanitised (sanitise_html). SiteError when latex2mathml or nh3 is missing."""
    try:
        import latex2mathml  # noqa: F401
    except ImportError:
        raise SiteError("the site needs latex2mathml (LaTeX -> MathML at build time): "
                        "pip install -e '.[course]' or pip install latex2mathml") from None
    _cleaner()  # SiteError now, not halfway through the first page
    from jinja2 import pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        def block_math(self, body: str) -> str:
            return latex_to_mathml(body, display=True)

        def inline_math(self, body: str) -> str:
            return latex_to_mathml(body, display=False)

        def latex_environment(self, name: str, body: str) -> str:
            return latex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

        def heading(self, text: str, level: int, **attrs) -> str:
            # nbconvert adds the heading's anchor by re-serialising it with ElementTree, which turns
            # <math xmlns="..."> into <ns0:math>: a tag no browser renders. Undo the prefix.
            out = super().heading(text, level, **attrs)
            out = re.sub(r'\s+xmlns:ns0="[^"]*"', "", out)
            return re.sub(r"<(/?)ns0:", r"<\1", out)

    class SiteExporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            renderer = MathMLRenderer(
                escape=False, attachments=cell.get("attachments", {}), embed_images=self.embed_images,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text, exclude_anchor_links=self.exclude_anchor_links,
                **self.lexer_options)
            return MarkdownWithMath(renderer=renderer).render(source)

    # sanitize_html=True routes every Markdown cell, raw cell, HTML/Markdown output and highlighted
    # input through the template's clean_html filter, which is ours (nh3) instead of nbconvert's bleach.
    return SiteExporter(template_name="lab", template_file="page.html.j2", extra_template_paths=[str(TEMPLATES)],
                        sanitize_html=True, filters={"clean_html": sanitise_html},
                        embed_images=False)  # True re-parses HTML blocks and closes an open <details> at once


def lab_css() -> str:
    """The JupyterLab template's stylesheet (index.css + light theme), found in nbconvert's template paths."""
    for base in exporter().template_paths:
        static = Path(base) / "static"
        if (static / "index.css").is_file() and (static / "theme-light.css").is_file():
            return (static / "index.css").read_text() + "\n" + (static / "theme-light.css").read_text()
    raise SiteError("nbconvert's lab template (static/index.css) was not found; reinstall nbconvert")


# ----------------------------------------------------------------------------- widgets


def _widget_state(nb) -> dict:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _child(state: dict, ref: str) -> dict | None:
    model = state.get(ref.removeprefix("IPY_MODEL_"))
    return model if model else None


def progress_text(state: dict, model_id: str) -> str | None:
    """The final text of a tqdm progress bar from the saved widget state, or None if `model_id` is
    not one (tqdm.notebook: an HBox of HTML description, FloatProgress, HTML counts).

    tqdm updates its texts at most every few tenths of a second but sets the bar's value on close,
    so the texts may be older than the value: the percentage and count are rebuilt from the value,
    and the bracket (times, rate) is kept only when its count is the final one.
    """
    box = state.get(model_id)
    if not box or box.get("model_name") != "HBoxModel":
        return None
    kids = [_child(state, ref) for ref in box["state"].get("children", [])]
    names = [k.get("model_name") if k else None for k in kids]
    if names != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    plain = [html.unescape(k["state"].get("value", "")).replace("\u2007", " ") for k in (kids[0], kids[2])]
    left, right = plain
    bar = kids[1]["state"]
    n, total = bar.get("value", 0) or 0, bar.get("max", 0) or 0
    if total <= 0:  # no known total: tqdm shows no bar
        return f"{left}{right}".strip()
    frac = min(max(n / total, 0.0), 1.0)
    left = re.sub(r"\s*\d+%\s*$", "", left)
    left = f"{left} {round(100 * frac):3d}%" if left else f"{round(100 * frac):3d}%"
    count = f"{int(n)}/{int(total)}"
    shown = re.match(r"\s*(\d+)/(\d+)(.*)$", right)
    tail = shown.group(3) if shown and int(shown.group(1)) == int(n) else ""
    cells = round(10 * frac)
    return f"{left.strip()}|{'█' * cells}{' ' * (10 - cells)}| {count}{tail}"


def static_widget_html(number: str, figures: Path, site: Path) -> str:
    """The stand-in for a widget that needs a kernel: the notebook's saved picture (copied into the
    site's figures/) and how to run it live; SiteError when the picture is missing."""
    if number not in STATIC_WIDGETS:
        return f'<div class="static-widget"><p>{LIVE_WIDGET_NOTE}</p></div>'
    name, caption = STATIC_WIDGETS[number]
    picture = figures / name
    if not picture.is_file():
        raise SiteError(f"notebook {number}'s widget is shown as the picture {name}, which is not in {figures}: "
                        "the run that executed the notebook saves it (make course), or pass --figures")
    (site / "figures").mkdir(exist_ok=True)
    shutil.copyfile(picture, site / "figures" / name)
    return (f'<figure class="static-widget"><img src="figures/{name}" alt="the drawing pad, as the notebook left it">'
            f"<figcaption>{caption}</figcaption></figure>")


def replace_widgets(nb, number: str, figures: Path, site: Path) -> None:
    """Replace every widget output by static HTML/text (in place) and drop the widget state."""
    state = _widget_state(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(out)
                continue
            text = progress_text(state, view.get("model_id", ""))
            if text is not None:
                prev = outputs[-1] if outputs else None
                if prev is not None and prev.get("metadata", {}).get("site") == "progress":
                    prev["data"]["text/html"] += "\n" + html.escape(text)  # one block per run of bars
                    continue
                outputs.append({"output_type": "display_data", "metadata": {"site": "progress"},
                                "data": {"text/html": html.escape(text)}})
                continue
            out = copy.deepcopy(out)
            out["data"] = {"text/html": static_widget_html(number, figures, site)}
            outputs.append(out)
        for out in outputs:  # wrap the progress blocks once they are complete
            if out.get("metadata", {}).get("site") == "progress":
                out["data"]["text/html"] = f'<pre class="progress-bars">{out["data"]["text/html"]}</pre>'
                out["metadata"] = {}
        cell.outputs = outputs
    nb.metadata.pop("widgets", None)


# ----------------------------------------------------------------------------- exercises


def exercise_ids(source: str) -> list[str]:
    """The ids of the check("NN.k", name) calls in a code cell (an exercise cell), in order."""
    from ..exercises import cell_check_calls

    return [exercise_id for exercise_id, _ in cell_check_calls(source)]


def fold_exercises(nb) -> int:
    """Clear the outputs of every exercise cell (the stub stays unrun) and add, after it, its hint
    and reference solution folded away. Returns how many exercise cells there were."""
    import nbformat

    from ..exercises import EXERCISES, reference

    cells, found = [], 0
    for cell in nb.cells:
        cells.append(cell)
        ids = exercise_ids(cell.source) if cell.cell_type == "code" else []
        if not ids:
            continue
        found += 1
        cell.outputs, cell.execution_count = [], None
        folds = []
        for exercise_id in ids:
            if exercise_id not in EXERCISES:
                raise SiteError(f"a cell checks exercise {exercise_id!r}, which mnist_course.exercises does not know")
            ex = EXERCISES[exercise_id]
            solution = inspect.getsource(reference(exercise_id)).rstrip()
            folds.append(f"<details class=\"exercise-hint\"><summary>Hint for {exercise_id} ({html.escape(ex.title)})"
                         f"</summary>\n\n{ex.hint}\n\n</details>\n\n"
                         f"<details class=\"exercise-solution\"><summary>Reference solution of {exercise_id} "
                         f"(try it yourself first)</summary>\n\n```python\n{solution}\n```\n\n</details>")
        cells.append(nbformat.v4.new_markdown_cell("\n\n".join(folds)))
    nb.cells = cells
    return found


# ----------------------------------------------------------------------------- reading the run


def _injected(cell) -> bool:
    return "injected-parameters" in cell.get("metadata", {}).get("tags", [])


def describe(path: Path, nb, results: dict) -> Page:
    """A Page for the executed notebook `nb` read from `path`."""
    number, stem = path.name[:2], path.stem
    page = Page(source=path, number=number, stem=stem)
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    heading = re.match(r"\s*#\s+(.+)", first)
    page.title = heading.group(1).strip() if heading else stem
    body = first[heading.end():] if heading else first
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    page.summary = "\n\n".join(paragraphs[:2] if paragraphs and paragraphs[0].endswith(":") else paragraphs[:1])
    page.seconds = nb.metadata.get("papermill", {}).get("duration")
    page.results = [e for e in results.get("results", {}).values() if e.get("notebook") == stem]
    clean = repo_root() / "notebooks" / path.name
    if clean.is_file():
        import nbformat

        ours = [c.source for c in nb.cells if not _injected(c)]
        theirs = [c.source for c in nbformat.read(str(clean), as_version=4).cells]
        page.stale = ours != theirs
    return page


def headline(entries: list, k: int = 4) -> list:
    """Up to k results of a notebook for the course map: accuracies first, MNIST before other datasets."""
    return sorted(entries, key=lambda e: (e.get("dataset") != "mnist", e.get("unit") != "%", e["key"]))[:k]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def check_outputs(nb, path: Path) -> None:
    """SiteError when the run failed in this notebook (an error output): the page would show a traceback."""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise SiteError(f"{path} has an error in cell {i} ({out.get('ename')}: {out.get('evalue')}): "
                                "that run failed; rerun it (make course) before building the site")


# ----------------------------------------------------------------------------- building


def prepare_output(output: Path) -> None:
    """Empty `output` for a new build: only a folder that a previous build made (it holds MARKER) is
    replaced; anything else that exists is refused, so nothing of a user's is overwritten."""
    if output.exists():
        if not output.is_dir() or (any(output.iterdir()) and not (output / MARKER).is_file()):
            raise SiteError(f"{output} exists and was not made by `make site`; move it away or choose --output")
        shutil.rmtree(output)
    output.mkdir(parents=True)
    (output / MARKER).write_text("built by mnist-course site; replaced by the next build\n")


def render(exp, nb, resources: dict, name: str = "the page") -> str:
    """The HTML page of notebook `nb` (SiteError, via check_page, if anything that runs survived)."""
    body, _ = exp.from_notebook_node(nb, resources=resources)
    check_page(body, name)
    return body


def _nav(pages: list[Page], i: int | None) -> dict:
    """Links for the page template: index, results, previous and next notebook."""
    nav = {"index": "index.html", "results": "results.html", "prev": None, "next": None}
    if i is not None:
        if i > 0:
            nav["prev"] = {"href": pages[i - 1].href, "title": pages[i - 1].title}
        if i + 1 < len(pages):
            nav["next"] = {"href": pages[i + 1].href, "title": pages[i + 1].title}
    return nav


def _fast_banner(entries: list) -> str:
    modes = {e.get("mode") for e in entries}
    if "fast" in modes:
        return ("Built from a fast-mode run (tiny subsets, one or two short epochs): the numbers are not the "
                "course's results. <code>make course</code> then <code>make site</code> builds the recorded one.")
    return ""


def index_markdown(pages: list[Page], run_note: str) -> str:
    from ..results import format_value

    total = sum(p.seconds or 0 for p in pages)
    lines = ["# mnist-course", "",
             "A hands-on course on deep learning with MNIST, from reading the raw bytes and writing "
             "backpropagation by hand in NumPy to CNNs and a pad where you draw a digit. These pages are "
             "the notebooks as they ran, outputs and figures included; to run them yourself, "
             "`make lab` (see the README).", ""]
    if run_note:
        lines += [f'<p class="run-banner">{run_note}</p>', ""]
    lines += ["## The course map", "", '<div class="course-map">', ""]
    for p in pages:
        results = "".join(f"<li>{html.escape(e['label'])}: <b>{html.escape(format_value(e))}</b></li>"
                          for e in headline(p.results))
        more = len(p.results) - len(headline(p.results))
        if more > 0:
            results += f'<li><a href="results.html">{more} more on the results page</a></li>'
        stale = (' <span class="stale" title="executed from an older version of the notebook">'
                 "(older version of the notebook)</span>") if p.stale else ""
        lines += [f'<section class="map-entry" id="nb-{p.number}">', "",
                  f'### <a href="{p.href}">{html.escape(p.title)}</a>{stale}', "",
                  p.summary, "",
                  f'<p class="run-time">Ran in {_duration(p.seconds)}.</p>',
                  f'<ul class="headline-results">{results}</ul>' if results else "", "", "</section>", ""]
    lines += ["</div>", "", f"The whole run took {_duration(total)}. "
              "[All results and the benchmark](results.html)."]
    return "\n".join(lines)


def results_markdown(results_file: Path, benchmark: Path | None) -> str:
    from ..results import load_results
    from .readme import benchmark_path, markdown_table

    benchmark = benchmark or benchmark_path()
    report = (benchmark.read_text().strip() if benchmark.is_file()
              else "No benchmark run recorded yet: run `make benchmark`.")
    return "\n".join([
        "# Results and benchmark", "",
        f"Every number recorded by the run, from `{results_file.name}` (the README's table is generated "
        "the same way, by `make readme`).", "",
        markdown_table(load_results(results_file)), "", "## Benchmark", "", report])


def build_site(notebooks: Path, output: Path, figures: Path, results_file: Path,
               benchmark: Path | None = None) -> list[Path]:
    """Build the site from the executed notebooks in `notebooks` (one NN_name.ipynb per course
    notebook) into `output`; returns the pages written. SiteError when something is missing."""
    import nbformat

    from ..results import load_results
    from .runner import course_notebooks

    wanted = [p.name for p in course_notebooks()]
    if not notebooks.is_dir() or not any(notebooks.glob("[0-9][0-9]_*.ipynb")):
        raise SiteError(f"no executed notebooks in {notebooks}: run `make course` first (the recorded run), "
                        "or `make course-fast` and `mnist-course site --fast`. "
                        "The site never runs the notebooks itself.")
    missing = [name for name in wanted if not (notebooks / name).is_file()]
    if missing:
        raise SiteError(f"{notebooks} lacks {', '.join(missing)}: the run was partial; rerun it "
                        "(make course) before building the site")
    try:
        results = load_results(results_file)
    except ValueError as e:
        raise SiteError(str(e)) from None
    prepare_output(output)
    (output / "static").mkdir()
    (output / "static" / "lab.css").write_text(lab_css())
    shutil.copyfile(TEMPLATES / "site.css", output / "static" / "site.css")

    exp = exporter()
    pages, nbs = [], []
    for name in wanted:
        path = notebooks / name
        nb = nbformat.read(str(path), as_version=4)
        check_outputs(nb, path)
        pages.append(describe(path, nb, results))
        nbs.append(nb)
    written = []
    for i, (page, nb) in enumerate(zip(pages, nbs)):
        replace_widgets(nb, page.number, figures, output)
        fold_exercises(nb)
        nb.cells = [c for c in nb.cells if not _injected(c)]
        nb.metadata["title"] = f"{page.title} · mnist-course"
        resources = {"site": {"nav": _nav(pages, i), "banner": _fast_banner(page.results)}}
        target = output / page.href
        target.write_text(render(exp, nb, resources, page.href))
        written.append(target)
    all_entries = [e for p in pages for e in p.results]
    for name, title, text in [
        ("index.html", "mnist-course", index_markdown(pages, _fast_banner(all_entries))),
        ("results.html", "Results and benchmark · mnist-course", results_markdown(results_file, benchmark)),
    ]:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)], metadata={"title": title})
        resources = {"site": {"nav": _nav(pages, None), "banner": ""}}
        target = output / name
        target.write_text(render(exp, nb, resources, name))
        written.append(target)
    stale = [p.source.name for p in pages if p.stale]
    if stale:
        print(f"warning: {', '.join(stale)} in {notebooks} were executed from older versions of notebooks/; "
              "run `make course` (or `make course-fast`) for a site of the current course", file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> int:
    root = repo_root()
    parser = argparse.ArgumentParser(prog="mnist-course site", description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true",
                        help="build from the fast-mode run (make course-fast): build/fast/notebooks, "
                             "build/fast/figures, build/fast/results.json")
    parser.add_argument("--notebooks", type=Path, help="folder of executed notebooks (default: build/notebooks)")
    parser.add_argument("--figures", type=Path, help="that run's figures (default: figures/)")
    parser.add_argument("--results", type=Path, help="that run's results file (default: results/results.json)")
    parser.add_argument("--benchmark", type=Path, help="benchmark report (default: results/benchmark.md)")
    parser.add_argument("--output", type=Path, default=root / "build" / "site", help="site folder (default: build/site)")
    args = parser.parse_args(argv)
    run = root / "build" / "fast" if args.fast else None
    notebooks = args.notebooks or (run / "notebooks" if run else root / "build" / "notebooks")
    figures = args.figures or (run / "figures" if run else root / "figures")
    results = args.results or (run / "results.json" if run else root / "results" / "results.json")
    t0 = time.perf_counter()
    try:
        pages = build_site(notebooks.resolve(), args.output.resolve(), figures.resolve(), results.resolve(),
                           args.benchmark)
    except SiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in args.output.rglob("*") if f.is_file())
    print(f"{len(pages)} pages in {time.perf_counter() - t0:.1f} s, {size / 1e6:.1f} MB: "
          f"open {(args.output / 'index.html').resolve().as_uri()}")
    return 0

