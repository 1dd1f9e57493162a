"""The site builder (mnist_course.tooling.site) against hostile notebooks: a site is built from a
planted run (one notebook per course notebook, each carrying attacks in its title, Markdown, raw
cells and outputs) and no attack may survive: read from the HTML (fast), and run in Debian's
Chromium (slow), where each attack would report itself through `window.__report` and
`window.__pwned`, open a dialog, or load something from outside the site.

The same planted notebooks carry what the course legitimately shows (MathML, tables, folds,
figures, highlighted code, heading anchors, progress bars): it must all still be there.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mnist_course.tooling import site as site_mod
from mnist_course.tooling.runner import course_notebooks

CHROMIUM = Path(os.environ.get("MNIST_COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-dev-shm-usage"]
OUTSIDE = "http://planted.invalid"  # every load an attack tries goes here; the browser test refuses them


def pwn(name: str) -> str:
    """JavaScript (no double quotes) that an attack named `name` runs when it gets through."""
    return f"(window.__pwned=window.__pwned||[]).push('{name}');window.__report&&window.__report('{name}')"


# A 1x1 PNG: a figure inside Markdown, as a data: URL.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5f5a1b80000000049454e44ae426082")).decode()

# Attacks that run script, one per line of a Markdown cell (names: what the browser test reports).
RUNS = {
    "script": f"<script>{pwn('script')}</script>",
    "img-onerror": f'<img src="nothing.png" onerror="{pwn("img-onerror")}">',
    "alert": "<img src=\"nothing-either.png\" onerror=\"alert('planted')\">",  # seen as a dialog
    "iframe-srcdoc": f'<iframe srcdoc="<script>{pwn("iframe-srcdoc")}</script>"></iframe>',
    "iframe-javascript": f'<iframe src="javascript:{pwn("iframe-javascript")}"></iframe>',
    "javascript-link": f'<a id="planted-link" href="javascript:{pwn("javascript-link")}">a link</a>',
    "javascript-link-entity": f'<a id="planted-link-entity" href="&#106;ava&#x09;script:{pwn("javascript-link-entity")}">another</a>',
    "svg-onload": f'<svg onload="{pwn("svg-onload")}"><circle r="4"></circle></svg>',
    "details-ontoggle": f'<details open ontoggle="{pwn("details-ontoggle")}"><summary>s</summary>x</details>',
    "autofocus": f'<input autofocus onfocus="{pwn("autofocus")}">',
    "mathml-href": f'<math><mi id="planted-math-link" href="javascript:{pwn("mathml-href")}">m</mi></math>',
    "form": f'<form action="javascript:{pwn("form")}"><button id="planted-button">go</button></form>',
    "object": f'<object data="data:text/html,<script>{pwn("object")}</script>"></object>',
    # a style trick: an invisible layer over the whole page whose handler fires at the first mouse move
    "style-overlay": f'<div style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:99999" '
                     f'onmouseover="{pwn("style-overlay")}"></div>',
    "style-expression": f'<div style="width: expression({pwn("style-expression")})">old IE</div>',  # HTML check only
}
# Attacks that load from outside the site (a style sheet, a picture, a base for every relative URL).
LOADS = {
    "style-import": f'<style>@import url("{OUTSIDE}/import.css"); body {{ background: url({OUTSIDE}/bg.png) }}</style>',
    "style-url": f'<div style="background-image: url({OUTSIDE}/inline.png)">x</div>',
    "link-stylesheet": f'<link rel="stylesheet" href="{OUTSIDE}/link.css">',
    "base": f'<base href="{OUTSIDE}/">',
    "meta-refresh": f'<meta http-equiv="refresh" content="1;url={OUTSIDE}/refresh">',
}
LEGIT = f"""## A heading with $x^2$

The loss $\\frac{{1}}{{N}}\\sum_i \\ell(y_i, \\hat y_i)$ and a display:

$$\\mathrm{{softmax}}(z)_k = \\frac{{e^{{z_k}}}}{{\\sum_j e^{{z_j}}}}$$

| model | accuracy |
|:--|--:|
| CNN | 99.1 % |

<details><summary>Answer</summary>

Folded **away**.

</details>

![a figure](data:image/png;base64,{PNG}) and [the results](results.html), [a site](https://example.org/).
"""


def planted_notebook(number: str, title: str, attacks: dict[str, str]):
    """A notebook like an executed course notebook, with `attacks` in its Markdown, raw cell and outputs."""
    import nbformat

    v4 = nbformat.v4
    cells = [v4.new_markdown_cell(f"# {title}\n\nThe summary of {number} <img src=x onerror=\"{pwn('summary-' + number)}\"> "
                                  "shows in the course map."),
             v4.new_markdown_cell("\n\n".join(attacks.values())),
             v4.new_markdown_cell(f"## Hover <span id=\"planted-hover\" onmouseover=\"{pwn('heading-onmouseover')}\">here</span>\n\n"
                                  f"### <img src=y onerror=\"{pwn('heading-img')}\">"),
             v4.new_markdown_cell(LEGIT),
             v4.new_raw_cell(f"<script>{pwn('raw-cell')}</script>", metadata={"raw_mimetype": "text/html"})]
    code = v4.new_code_cell("import numpy as np\nprint(np.arange(3))", execution_count=1, outputs=[
        v4.new_output("display_data", data={"text/html": f"<b onclick=\"{pwn('html-output-onclick')}\">bold</b>"
                                                         f"<script>{pwn('html-output')}</script>"
                                                         "<style scoped>.dataframe td { color: red }</style>"
                                                         '<table class="dataframe"><tr style="text-align: right;">'
                                                         "<th>a</th><td>1</td></tr></table>",
                                            "text/plain": "a table"}),
        v4.new_output("display_data", data={"application/javascript": pwn("javascript-output"), "text/plain": "js"}),
        v4.new_output("display_data", data={"text/markdown": f"<img src=z onerror=\"{pwn('markdown-output')}\">",
                                            "text/plain": "md"}),
        v4.new_output("display_data", data={"text/vnd.mermaid": f"graph TD;</pre><img src=w onerror=\"{pwn('mermaid-output')}\">"}),
        v4.new_output("display_data", data={"image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{pwn("svg-output")}"></svg>'}),
        v4.new_output("stream", name="stdout", text="[0 1 2]\n")])
    code.metadata["tags"] = [f'x" onmouseover="{pwn("cell-tag")}']
    # an old run's progress bar (a tqdm widget), whose texts carry HTML
    bar = v4.new_code_cell("train()", execution_count=2, outputs=[v4.new_output(
        "display_data", data={site_mod.WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0},
                              "text/plain": "0%"})])
    nb = v4.new_notebook(cells=cells + [code, bar])
    state = {"box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
             "l": {"model_name": "HTMLModel", "state": {"value": f"epoch &lt;img src=v onerror=&quot;{pwn('widget-state')}&quot;&gt;"}},
             "p": {"model_name": "FloatProgressModel", "state": {"value": 3, "max": 3}},
             "r": {"model_name": "HTMLModel", "state": {"value": "3/3"}}}
    nb.metadata["widgets"] = {site_mod.WIDGET_STATE: {"state": state}}
    nb.metadata["papermill"] = {"duration": 12.0}
    return nb


def planted_title(number: str) -> str:
    return f"Notebook {number} <script>{pwn('title-' + number)}</script> <img src=t onerror=\"{pwn('title-img-' + number)}\">"


def write_planted_run(run: Path) -> Path:
    """A planted run in `run` (notebooks/, figures/, results.json): notebook 01 carries the attacks that
    run script, 02 those that load from outside, every notebook a hostile title, summary and outputs;
    one hostile result. Returns `run`."""
    import nbformat

    (run / "notebooks").mkdir()
    (run / "figures").mkdir()
    for nb_path in course_notebooks():
        number = nb_path.name[:2]
        attacks = RUNS if number == "01" else LOADS if number == "02" else {}
        nbformat.write(planted_notebook(number, planted_title(number), attacks), str(run / "notebooks" / nb_path.name))
    entry = {"dataset": "mnist", "notebook": course_notebooks()[0].stem, "key": "acc", "mode": "full", "seed": 0,
             "date": "2026-01-01", "machine": "m", "unit": "%", "value": 99.0,
             "label": f"accuracy <img src=r onerror=\"{pwn('result-label')}\">"}
    (run / "results.json").write_text(json.dumps({"results": {"mnist/x/acc": entry}}))
    return run


@pytest.fixture(scope="module")
def planted_site(tmp_path_factory) -> Path:
    """The site built from a planted run (write_planted_run)."""
    run = write_planted_run(tmp_path_factory.mktemp("planted"))
    out = run / "site"
    site_mod.build_site(run / "notebooks", out, run / "figures", run / "results.json", benchmark=run / "none.md")
    return out


class Scan(HTMLParser):
    """Everything in a page's <body> that could run or load: tags, handlers, URLs; and the page's title."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.body, self.in_title, self.title = False, False, ""
        self.bad, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.in_title = tag == "title"
        self.body = self.body or tag == "body"
        if not self.body:
            return
        self.tags.append((tag, dict(attrs)))
        if tag in {"script", "iframe", "frame", "object", "embed", "form", "input", "button", "svg", "style",
                   "link", "meta", "base"}:
            self.bad.append(f"<{tag}>")
        for name, value in attrs:
            url = re.sub(r"\s", "", value or "").lower()
            if name.startswith("on"):
                self.bad.append(f"<{tag} {name}>")
            elif url.startswith(("javascript:", "vbscript:")) or (url.startswith("data:") and tag != "img"):
                self.bad.append(f"<{tag} {name}={url[:30]}>")
            elif name == "style" and ("(" in url or "position" in url):
                self.bad.append(f"<{tag} style={url[:40]}>")
            elif OUTSIDE in (value or ""):
                self.bad.append(f"<{tag} {name}={value[:40]}>")

    def handle_endtag(self, tag):
        self.in_title = False

    def handle_data(self, data):
        if self.in_title:
            self.title += data


def scan(path: Path) -> Scan:
    s = Scan()
    s.feed(path.read_text())
    s.close()
    return s


def site_pages(site: Path) -> list[str]:
    return ["index.html", "results.html"] + [f"{nb.stem}.html" for nb in course_notebooks()]


# ----------------------------------------------------------------------------- without a browser


def test_planted_site_holds_no_attack_in_its_html(planted_site):
    problems = []
    for name in site_pages(planted_site):
        s = scan(planted_site / name)
        problems += [f"{name}: {b}" for b in s.bad]
        if name[:2].isdigit():  # the title is the notebook's heading as text
            number = name[:2]
            if s.title != f"{planted_title(number)} · mnist-course":
                problems.append(f"{name}: title {s.title!r}")
    assert not problems, f"{len(problems)} attack(s) left in the planted site:\n" + "\n".join(problems[:60])


def test_planted_site_keeps_what_the_course_shows(planted_site):
    page = (planted_site / "03_mlp_numpy_to_pytorch.html").read_text()
    s = scan(planted_site / "03_mlp_numpy_to_pytorch.html")
    tags = [t for t, _ in s.tags]
    assert tags.count("math") == 3 and {"mfrac", "msup", "msub", "mi", "mo"} <= set(tags)  # MathML, heading too
    assert any(t == "math" and a.get("display") == "block" for t, a in s.tags)
    assert '<th style="text-align:left">model</th>' in page and '<td style="text-align:right">99.1 %</td>' in page
    assert '<tr style="text-align:right">' in page and 'class="dataframe"' in page  # an HTML output's table
    assert "<details><summary>Answer</summary>" in page and "<strong>away</strong>" in page
    assert f'src="data:image/png;base64,{PNG}"' in page
    assert any(t == "h2" and a.get("id", "").startswith("A-heading-with") for t, a in s.tags)
    assert any(t == "a" and a.get("class") == "anchor-link" and a.get("href", "").startswith("#A-heading") for t, a in s.tags)
    assert '<a href="results.html">the results</a>' in page and '<a href="https://example.org/">a site</a>' in page
    assert '<span class="kn">import</span>' in page  # highlighted code keeps its classes
    assert re.search(r'<pre class="progress-bars">epoch &lt;img src=v onerror=.*\|██████████\| 3/3</pre>', page)
    assert "[0 1 2]" in page and "Hover <span" in page and 'id="planted-hover"' in page
    nav = re.search(r'<a class="nav-next" href="04_mlp_vs_cnn.html" rel="next">(.*?)</a>', page, re.S)
    assert nav and nav.group(1).startswith("Notebook 04 &lt;script&gt;")  # a title is text
    index = (planted_site / "index.html").read_text()
    assert 'href="01_exploring_mnist.html">Notebook 01 &lt;script&gt;' in index and "shows in the course map" in index


@pytest.mark.parametrize("fragment, gone", [
    ("<p>a<script>alert(1)</script>b</p>", "<script"),
    ('<img src="x" onerror="alert(1)">', "onerror"),
    ('<iframe src="https://example.org"></iframe>', "<iframe"),
    ('<a href="javascript:alert(1)">x</a>', "javascript:"),
    ('<a href=" JaVaScRiPt:alert(1)">x</a>', "script:"),
    ('<a href="data:text/html,<script>alert(1)</script>">x</a>', "data:"),
    ('<img src="data:image/svg+xml,<svg onload=alert(1)>">', "data:"),
    ('<svg onload="alert(1)"><circle/></svg>', "svg"),
    ('<math><mi href="javascript:alert(1)">x</mi></math>', "href"),
    ('<math><annotation-xml encoding="text/html"><img src=x onerror=alert(1)></annotation-xml></math>', "onerror"),
    ('<div style="width: expression(alert(1))">x</div>', "expression"),
    ('<td style="background: url(http://x/y)">x</td>', "url("),
    ('<div style="position: fixed">x</div>', "position"),
    ("<style>body{background:red}</style>", "background"),
    ('<form action="/"><input autofocus onfocus="alert(1)"></form>', "<input"),
    ('<base href="http://x/">', "<base"),
    ('<meta http-equiv="refresh" content="0;url=http://x/">', "<meta"),
    ('<details open ontoggle="alert(1)"><summary>s</summary></details>', "ontoggle"),
])
def test_sanitise_html_removes(fragment, gone):
    assert gone not in site_mod.sanitise_html(fragment).lower()


def test_sanitise_html_keeps_math_figures_and_code():
    math = site_mod.latex_to_mathml(r"\frac{1}{N}\sum_{i=1}^{N} \hat{y}_i \leq \sqrt[3]{x}", display=True)
    assert html.unescape(site_mod.sanitise_html(math)) == html.unescape(math)  # nh3 writes characters, not entities
    figure = ('<figure class="static-widget"><img src="figures/12_pad_from_code.png" alt="the pad">'
              "<figcaption>run <code>make lab</code></figcaption></figure>")
    assert site_mod.sanitise_html(figure) == figure
    picture = f'<img src="data:image/png;base64,{PNG}" alt="x" width="10">'
    assert site_mod.sanitise_html(picture) == picture
    code = '<div class="highlight hl-ipython3"><pre><span></span><span class="kn">import</span> <span class="nn">numpy</span></pre></div>'
    assert site_mod.sanitise_html(code) == code


def test_check_page_refuses_what_runs():
    head = '<html><head><style>p{}</style><link rel="stylesheet" href="static/site.css"></head>'
    site_mod.check_page(head + "<body><p>fine</p></body></html>", "ok.html")
    for body in ["<script>1</script>", '<img src=x onerror="1">', '<a href=" javascript:1">x</a>', "<iframe></iframe>",
                 '<a href="data:text/html,x">x</a>']:
        with pytest.raises(site_mod.SiteError, match="bad.html would run or load"):
            site_mod.check_page(f"{head}<body>{body}</body></html>", "bad.html")


def test_a_hole_in_the_sanitising_stops_the_build(tmp_path, monkeypatch):
    run = write_planted_run(tmp_path)
    monkeypatch.setattr(site_mod, "sanitise_html", lambda fragment: str(fragment))  # the sanitiser lets all through
    with pytest.raises(site_mod.SiteError, match=r"01_exploring_mnist.html would run or load .*<script>"):
        site_mod.build_site(run / "notebooks", run / "site", run / "figures", run / "results.json", run / "none.md")
    assert not (run / "site" / "01_exploring_mnist.html").exists()  # the page was never written


# ----------------------------------------------------------------------------- in Chromium


@pytest.mark.slow
def test_no_planted_attack_runs_in_chromium(planted_site):
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: install Debian's `chromium` package or set MNIST_COURSE_CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    ran, dialogs, outside, titles = [], [], [], {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 800})
            context.expose_binding("__report", lambda source, name: ran.append(name))  # in every frame

            def only_local(route):
                url = route.request.url
                if url.startswith(("file://", "data:", "about:")):
                    route.continue_()
                else:
                    outside.append(url)
                    route.abort()

            context.route("**/*", only_local)
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            for name in site_pages(planted_site):
                page.goto((planted_site / name).resolve().as_uri(), wait_until="load")
                page.mouse.move(500, 400)
                page.mouse.move(10, 10)
                for target in ["#planted-hover", "#planted-link", "#planted-link-entity", "#planted-math-link",
                               "#planted-button"]:
                    for element in page.query_selector_all(target):  # straight to the element, past any overlay
                        try:
                            element.dispatch_event("mouseover")
                            element.evaluate("e => e.click ? e.click() : e.dispatchEvent(new MouseEvent('click'))")
                        except sync_api.Error:  # detached by a navigation: counted by `outside`
                            pass
                page.wait_for_timeout(1_500)  # a meta refresh (1 s) or a late handler
                for frame in page.frames:
                    try:
                        ran += frame.evaluate("() => window.__pwned || []")
                    except sync_api.Error:  # a frame from elsewhere (it would be an attack: counted by `outside`)
                        pass
                if urlsplit(page.url).scheme == "file":
                    titles[name] = page.title()
        finally:
            browser.close()
    problems = [f"{len(set(ran))} planted attack(s) ran: {sorted(set(ran))}"] if ran else []
    problems += [f"{len(dialogs)} dialog(s) opened: {dialogs}"] if dialogs else []
    problems += [f"requests left the site: {sorted(set(outside))}"] if outside else []
    want = {n: f"{planted_title(n[:2])} · mnist-course" if n[:2].isdigit() else titles.get(n) for n in site_pages(planted_site)}
    problems += [f"titles are not the headings as text (or a page left the site): {titles}"] if titles != want else []
    assert not problems, "\n".join(problems)
