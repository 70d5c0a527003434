"""A comparison (lepton_sim.compare) as files: a Markdown table (also printed), the same table as a booktabs
LaTeX tabular, one CSV line per row and input with the raw numbers, and a figure of values and differences.

The Markdown and LaTeX tables show the same cells, so a paper's table and the printed one never disagree; the
CSV keeps full precision and proportions (not percent) for analysis elsewhere."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np

from lepton_sim.compare import RETURN, SUCCESS, Cell, Comparison, Interval
from lepton_sim.errors import LeptonError
from lepton_sim.io import write_atomic, write_text_atomic
from lepton_sim.paired_stats import MIN_WILCOXON_PAIRS, PairedDifference
from lepton_sim.plotting import PLOT_FORMATS
from lepton_sim.report import metric_column, one_line

CSV_FIELDS = (
    "metric",
    "unit",
    "row",
    "episodes",
    "policy",
    "baseline",
    "training_seeds",
    "status",
    "mean",
    "low",
    "high",
    "pairs",
    "diff_mean",
    "diff_low",
    "diff_high",
    "wilcoxon_p",
    "wilcoxon_note",
    "p_improvement",
    "p_improvement_low",
    "p_improvement_high",
)


# ------------------------------------------------------------------------------------------- cells
def metric_label(c: Comparison) -> str:
    """The compared quantity with its unit, as column names and axes show it."""
    if c.metric == SUCCESS:
        return "success rate"
    return metric_column(c.metric, c.unit)


def _diff_unit(c: Comparison) -> str | None:
    return "pp" if c.metric == SUCCESS else c.unit  # success differences in percentage points


def _value(c: Comparison, value: Interval) -> str:
    mean, low, high = value
    if math.isnan(mean):
        return "-"
    if c.metric == SUCCESS:
        return f"{mean:.0%} [{low:.0%}, {high:.0%}]"
    fmt = ".2f" if c.metric == RETURN else ".3g"
    if mean == low == high:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def _difference(c: Comparison, d: PairedDifference | None, episodes: int) -> str:
    if d is None:
        return "-"
    if d.pairs == 0:
        return "- (no pairs)"
    scale, fmt = (100.0, "+.0f") if c.metric == SUCCESS else (1.0, "+.2f" if c.metric == RETURN else "+.3g")
    text = f"{d.mean * scale:{fmt}} [{d.low * scale:{fmt}}, {d.high * scale:{fmt}}]"
    return text + (f" (n={d.pairs})" if d.pairs < episodes else "")


def _p(d: PairedDifference | None) -> str:
    if d is None:
        return "-"
    if d.note:
        return f"n/a: {d.note}"
    return "<0.001" if d.p_value < 0.001 else f"{d.p_value:.3g}"


def _improvement(value: Interval | None) -> str:
    if value is None:
        return "-"
    return f"{value[0]:.2f} [{value[1]:.2f}, {value[2]:.2f}]"


def table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the table both Markdown and LaTeX show: the baseline first, then each other input's
    value, difference, p-value and (two experiments) probability of improvement."""
    base = c.names[c.baseline]
    others = [k for k in range(len(c.inputs)) if k != c.baseline]
    unit = _diff_unit(c)
    head = ["row", "episodes", f"{base} (baseline)"]
    for k in others:
        name = c.names[k]
        head += [name, f"Δ {name}" + (f" [{unit}]" if unit else ""), f"p ({name})"]
        if c.improvement_applies(k):
            head.append(f"P({name} > {base})")
    rows = []
    for row in c.rows:
        cells = [row.label, str(len(row.seeds)), _cell(c, row.cells[c.baseline])]
        for k in others:
            cells += [
                _cell(c, row.cells[k]),
                _difference(c, row.differences[k], len(row.seeds)),
                _p(row.differences[k]),
            ]
            if c.improvement_applies(k):
                cells.append(_improvement(row.improvement[k]))
        rows.append(cells)
    return head, rows


def _cell(c: Comparison, cell: Cell) -> str:
    """The value, or in one word or two why there is none (the notes give the reason in full)."""
    return cell.short_status if cell.status else _value(c, cell.value)


def title(c: Comparison) -> str:
    where = c.target + (f" ({c.split})" if c.split else "")
    return one_line(f"{metric_label(c)} on {where}: {', '.join(c.names)}; baseline {c.names[c.baseline]}")


def notes(c: Comparison) -> list[str]:
    """What the numbers are, and every row that was not compared and why."""
    base = c.names[c.baseline]
    kind = {
        SUCCESS: "share of successful episodes, Wilson interval",
        RETURN: "episode return, Student-t interval",
    }.get(c.metric, "the report's interval for this metric")
    lines = [f"Values: mean [95% CI] ({kind})."]
    for source in c.inputs:
        if source.training_seeds is not None:
            seeds = ", ".join(f"s{s}" for s in source.training_seeds)
            lines.append(
                f"{source.name}: experiment, mean over {len(source.training_seeds)} training seeds ({seeds}), "
                "Student-t 95% interval across them; per episode seed, the mean over training seeds is paired."
            )
    unit = _diff_unit(c)
    lines += [
        f"Δ: mean paired difference (input - {base}) over the shared episode seeds"
        + (f" in {'percentage points' if unit == 'pp' else unit}" if unit else "")
        + f", 95% percentile bootstrap interval ({c.resamples} resamples of the pairs, RNG seed {c.seed}); "
        "(n=k): only k episodes have the metric on both sides.",
        "p: two-sided Wilcoxon signed-rank test of the paired differences (scipy.stats.wilcoxon, zero differences "
        f"dropped); n/a when all are 0 or fewer than {MIN_WILCOXON_PAIRS} are non-zero (the test cannot reach "
        "p < 0.05 then).",
    ]
    applies = [k for k in range(len(c.inputs)) if c.improvement_applies(k)]
    if applies:
        overall = "; ".join(f"{c.names[k]} {_improvement(c.improvement_overall[k])}" for k in applies)
        lines.append(
            f"P(X > {base}): probability of improvement across training seeds (rliable): Mann-Whitney U / (n m) of "
            "the training seeds' row values (ties count 1/2), 95% bootstrap interval resampling each side's seeds; "
            f"for a metric where lower is better, read 1 - P. Mean over the compared rows: {overall}."
        )
    else:
        single = [s.name for s in c.inputs if len(s.training_seeds or []) < 2]
        lines.append(
            "Probability of improvement across training seeds: needs several training seeds on both sides "
            f"(experiments); {', '.join(single)} {'has' if len(single) == 1 else 'have'} one."
        )
    for row in c.rows:
        for k, cell in enumerate(row.cells):
            if cell.status:
                lines.append(one_line(f"Not compared: {row.label}, {c.names[k]}: {cell.status}"))
    return lines


# ------------------------------------------------------------------------------------------- formats
def to_markdown(c: Comparison) -> str:
    head, rows = table(c)
    lines = [f"### {title(c)}", "", _markdown_row(head), "|" + "---|" * len(head)]
    lines += [_markdown_row(cells) for cells in rows]
    return "\n".join([*lines, "", *notes(c)]) + "\n"


def _markdown_row(cells: list[str]) -> str:
    """One table row; a '|' inside a cell (a row label, a reason) would split it, so it becomes '¦'."""
    return "| " + " | ".join(one_line(cell).replace("|", "¦") for cell in cells) + " |"


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"\textbar{}",
    "<": r"$<$",
    ">": r"$>$",
    "Δ": r"$\Delta$",
}


def latex_escape(text: str) -> str:
    """Text as LaTeX typesets it literally (specials escaped, Δ in math mode)."""
    return "".join(_LATEX.get(ch, ch) for ch in one_line(text))


def to_latex(c: Comparison) -> str:
    """A booktabs tabular (\\usepackage{booktabs}); the title and notes come first as comments."""
    head, rows = table(c)
    lines = [f"% lepton-sim compare: {one_line(title(c))}", *(f"% {one_line(n)}" for n in notes(c))]
    lines += [
        r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in head) + r" \\",
        r"\midrule",
        *(" & ".join(latex_escape(cell) for cell in cells) + r" \\" for cells in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def _number(x: float | int | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.10g}" if isinstance(x, float) else str(x)


def to_csv(c: Comparison) -> str:
    """One line per row and input: raw numbers (success as a proportion), empty where there is none."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in c.rows:
        for k, cell in enumerate(row.cells):
            d, p = row.differences[k], row.improvement[k]
            seeds = c.inputs[k].training_seeds
            writer.writerow(
                [
                    c.metric,
                    c.unit or "",
                    row.label,
                    len(row.seeds),
                    c.names[k],
                    str(k == c.baseline).lower(),
                    " ".join(map(str, seeds)) if seeds is not None else "",
                    one_line(cell.status or "ok"),
                    *map(_number, cell.value),
                    *([_number(d.pairs), _number(d.mean), _number(d.low), _number(d.high)] if d else [""] * 4),
                    *([_number(d.p_value), d.note or ""] if d else ["", ""]),
                    *(map(_number, p) if p else [""] * 3),
                ]
            )
    return buf.getvalue()


def axis_labels(c: Comparison) -> tuple[str, str]:
    """The figure's x labels, with units: the values' and the differences' from the baseline."""
    unit = _diff_unit(c)
    value = "success rate [%]" if c.metric == SUCCESS else metric_label(c)
    diff = f"Δ {'success rate' if c.metric == SUCCESS else c.metric} vs {c.names[c.baseline]}"
    diff += f" [{'percentage points' if unit == 'pp' else unit}]" if unit else ""
    return f"{value}\n(mean, 95% CI)", f"{diff}\n(paired, 95% bootstrap CI)"


def plot_comparison(c: Comparison, out: str | Path) -> Path:
    """Per row, each input's value with its interval (left) and each difference from the baseline with its
    bootstrap interval (right); the format follows ``out``'s suffix."""
    out = Path(out)
    fmt = PLOT_FORMATS[out.suffix.lower()]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = 100.0 if c.metric == SUCCESS else 1.0  # success drawn in percent, differences in points
    value_axis, diff_axis = axis_labels(c)
    n, m = len(c.rows), len(c.inputs)
    height = 1.9 + 0.45 * n * max(1.0, m / 2)
    fig, (ax_v, ax_d) = plt.subplots(1, 2, figsize=(12, height), sharey=True)
    try:
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        width = 0.7 / m
        for k in range(m):
            offset = (k - (m - 1) / 2) * width
            colour = colours[k % len(colours)]
            values = [  # (y, mean, low, high) of each row with a value
                (i + offset, *(v * scale for v in row.cells[k].value))
                for i, row in enumerate(c.rows)
                if not row.cells[k].status and not math.isnan(row.cells[k].value[0])
            ]
            diffs = [
                (i + offset, d.mean * scale, d.low * scale, d.high * scale)
                for i, row in enumerate(c.rows)
                if (d := row.differences[k]) is not None and d.pairs
            ]
            label = c.names[k] + (" (baseline)" if k == c.baseline else "")
            for ax, points in ((ax_v, values), (ax_d, diffs)):
                if ax is ax_d and k == c.baseline:
                    continue
                y, mean, low, high = np.array(points, dtype=float).reshape(-1, 4).T
                ax.errorbar(mean, y, xerr=[mean - low, high - mean], fmt="o", color=colour, capsize=3, label=label)
        ax_d.axvline(0.0, color="grey", linewidth=1)
        ax_v.set_yticks(range(n), [row.label for row in c.rows])
        ax_v.invert_yaxis()
        ax_v.set_ylabel("suite row")
        ax_v.set_xlabel(value_axis)
        ax_d.set_xlabel(diff_axis)
        for ax in (ax_v, ax_d):
            ax.grid(alpha=0.3, axis="x")
        fig.legend(*ax_v.get_legend_handles_labels(), loc="lower center", ncol=min(m, 4), fontsize=8)
        fig.suptitle(c.target + (f" ({c.split})" if c.split else ""))
        fig.tight_layout(rect=(0.0, 0.45 / height, 1.0, 1.0))  # room for the legend below the axes
        write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=100, format=fmt))
    finally:
        plt.close(fig)
    return out


def output_stem(metric: str) -> str:
    """The file name the outputs share: the metric, safe as a file name."""
    return re.sub(r"[^\w-]", "_", metric)


def save_comparison(c: Comparison, out_dir: str | Path, figure: str = "png") -> dict[str, Path]:
    """Write ``<metric>.md``, ``.csv``, ``.tex`` and the figure (``png``, ``svg`` or ``pdf``) into ``out_dir``."""
    suffix = "." + figure.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise LeptonError(f"figure format {figure!r}; allowed: {', '.join(s[1:] for s in PLOT_FORMATS)}")
    out = Path(out_dir)
    stem = out / output_stem(c.metric)
    paths = {
        "markdown": write_text_atomic(stem.with_suffix(".md"), to_markdown(c)),
        "csv": write_text_atomic(stem.with_suffix(".csv"), to_csv(c)),
        "latex": write_text_atomic(stem.with_suffix(".tex"), to_latex(c)),
    }
    paths["figure"] = plot_comparison(c, stem.with_suffix(suffix))
    return paths
