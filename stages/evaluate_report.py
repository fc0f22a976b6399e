"""How an evaluation reads (:mod:`stages.evaluate`'s report): the terminal table in the layout of
the paper's Table 1 with the claims and figures, ``report.md``, and ``per_class_ap.csv``; and the
plain-text table the other stages print their results in. Reports written before a section
existed read without it."""

from __future__ import annotations

import csv
import io
from typing import Any

from pipeline.showcase import SALIENT_G
from pipeline.wording import videos_said


METHOD_HEADER = ("method", "mAP(%)", "top-1(%)", "GFLOPs", "rec. frames", "logits from", "note")


def _paper_cell(method: dict[str, Any], preset: dict[str, Any]) -> str:
    figure = method.get("paper")
    if figure is None:
        return ""
    gflops = "" if figure["gflops"] is None else f" @ {figure['gflops']:.1f}G"
    return f"{preset['metric']} {figure['metric']:.1f}{gflops}"


def _methods_tables(report: dict[str, Any]) -> list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]]:
    """(title, header, rows) of each group of samplers; with a preset, the paper's figures
    beside ours."""
    preset = report.get("preset")
    methods = {m["method"]: m for m in report["methods"]}
    header = METHOD_HEADER if preset is None else (*METHOD_HEADER[:-1], f"paper ({preset['dataset']})", METHOD_HEADER[-1])
    tables = []
    for group in report["groups"]:
        rows = []
        for m in (methods[name] for name in group["methods"]):
            row = (m["method"], f"{m['map']:.1f}", f"{m['top1']:.1f}", f"{m['gflops']:.3f}", f"{m['frames']:.1f}", m["path"], m["note"])
            rows.append(row if preset is None else (*row[:-1], _paper_cell(m, preset), row[-1]))
        tables.append((group["title"], header, rows))
    return tables


def _preset_line(report: dict[str, Any]) -> list[str]:
    preset = report.get("preset")
    return [] if preset is None else [f"preset {preset['name']}: {preset['source']}; the paper's figures are for {preset['dataset']} ({preset['metric']}, GFLOPs per video)"]


def text_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns under a dashed rule."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()

    return [line(header), line(tuple("-" * w for w in widths)), *[line(r) for r in rows]]


def _cost_line(report: dict[str, Any]) -> str:
    g = report["gflops"]
    return (f"GFLOPs per video (multiply-adds, counted with torch.utils.flop_counter; convolutions and matrix products, element-wise ops not counted): "
            f"recognizer {g['rec_per_frame']:.4f}/frame, light {g['light_per_frame']:.4f}/frame x T={g['num_frames']}, FEM {g['fem']:.4f}, VGM {g['vgm']:.5f}, FSM {g['fsm']:.5f}")


def per_class_csv(per_class: dict[str, Any]) -> str:
    """One row a class: its name, positive videos and AP (%) under each sampler compared."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["class", "positives", *per_class["ap"]])
    for c, name in enumerate(per_class["classes"]):
        writer.writerow([name, per_class["positives"][c], *["" if ap[c] is None else f"{ap[c]:.2f}" for ap in per_class["ap"].values()]])
    return out.getvalue()


def _per_class_lines(report: dict[str, Any]) -> list[str]:
    per = report.get("per_class_ap")
    if not per:
        return []
    return [f"per-class AP: {per['nsnet']} above {per['baseline']} in {per['nsnet_above_baseline']} of {per['classes_with_positives']} classes (per_class_ap.csv)"]


def _per_class_section(per: dict[str, Any] | None, shown: int = 5) -> list[str]:
    """The classes where NSNet gains most and least AP over the baseline."""
    if not per:
        return []
    ours, theirs = per["ap"][per["nsnet"]], per["ap"][per["baseline"]]
    gains = sorted((o - b, c) for c, (o, b) in enumerate(zip(ours, theirs)) if o is not None and b is not None)
    picked = list(dict.fromkeys([c for _, c in reversed(gains[-shown:])] + [c for _, c in gains[:shown]]))
    lines = ["## Per-class AP", "", f"{per['nsnet']} is above {per['baseline']} in {per['nsnet_above_baseline']} of {per['classes_with_positives']} classes; its {shown} largest and {shown} smallest differences (every class in `per_class_ap.csv`):", ""]
    lines += [f"| class | positives | {per['nsnet']} | {per['baseline']} | difference |", "|---|---|---|---|---|"]
    lines += [f"| {per['classes'][c]} | {per['positives'][c]} | {ours[c]:.1f} | {theirs[c]:.1f} | {ours[c] - theirs[c]:+.1f} |" for c in picked]
    return [*lines, ""]


def _guidance_lines(report: dict[str, Any]) -> list[str]:
    """How salient the chosen frames are, per sampler of Fig. 4 (reports made before it: none)."""
    guidance = report.get("selected_frames", {}).get("guidance", {})
    if not guidance:
        return []
    return [f"chosen frames' guiding score, mean (salient share, g > {SALIENT_G}): " + ", ".join(f"{name} {v['mean_g']:.2f} ({100 * v['salient_share']:.0f}%)" for name, v in guidance.items())]


def render_table(report: dict[str, Any]) -> str:
    """The terminal report: Table 1 layout, the claims and where the files are."""
    lines = [f"evaluation on {videos_said(report)}, {report['classes']} classes, K={report['config']['k']} of T={report['num_frames']}, fusion {report['config']['fusion']}"]
    lines += _preset_line(report)
    for title, header, rows in _methods_tables(report):
        lines += ["", title, *text_table(header, rows)]
    lines.append(_cost_line(report))
    check = report["real_vs_cached"]
    if check is not None:
        lines.append(f"NSNet decoded vs cached logits: same prediction for {100 * check['same_predictions']:.1f}% of videos, max score difference {check['max_abs_score_difference']:.2e}")
    lines += report.get("skipped", [])
    for claim in report["claims"]:
        lines.append(f"[{'holds' if claim['holds'] else 'FAILS'}] {claim['claim']}: {claim['value']:.2f} vs {claim['bound']:.2f}")
    corr = report["class_saliency"]["correlation_with_guid"]
    lines.append("per-class mean saliency, correlation with the guiding score: " + ", ".join(f"{n} {v:.2f}" for n, v in corr.items()))
    lines += _per_class_lines(report)
    lines += _guidance_lines(report)
    lines.append(f"report {report['output']}/report.md" + (f", figures {', '.join(report['figures'])}" if report["figures"] else " (no figures: matplotlib, the 'plots' extra, is not installed or could not draw them)"))
    return "\n".join(lines)


def _showcase_section(selected: dict[str, Any] | None) -> list[str]:
    """Fig. 4 in words: each sampler's chosen frames over all videos, then the drawn videos'."""
    if not selected:
        return []
    lines = ["## Chosen frames (Fig. 4)", "", f"Drawn: {selected['rule']}.", "", "| sampler | mean g of the chosen frames | salient share |", "|---|---|---|"]
    lines += [f"| {name} | {v['mean_g']:.3f} | {100 * v['salient_share']:.1f}% |" for name, v in selected["guidance"].items()]
    lines += ["", "| video | labels | sampler | frames (g) | prediction |", "|---|---|---|---|---|"]
    for video in selected["videos"]:
        for row in video["rows"]:
            frames = ", ".join(f"{f} ({g:.2f})" for f, g in zip(row["frames"], row["g"]))
            lines.append(f"| {video['video_id']} | {', '.join(video['labels'])} | {row['method']} | {frames} | {row['prediction']} |")
    return [*lines, ""]


def markdown_report(report: dict[str, Any]) -> str:
    def md(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(r) + " |" for r in rows]]

    cfg = report["config"]
    lines = [
        "# NSNet evaluation",
        "",
        f"{videos_said(report)}, {report['classes']} classes; K={cfg['k']} of T={report['num_frames']} observed frames, "
        f"{cfg['fusion']} fusion (alpha {cfg['alpha']}). Recognizer `{report['models']['recognizer']['name']}` at {report['models']['recognizer']['resolution']}px "
        f"(decoded frames through {report.get('backend', 'torch')}), "
        f"light backbone `{report['models']['light']['name']}` at {report['models']['light']['resolution']}px.",
        "",
        "## Samplers (layout of the paper's Table 1)",
        "",
        *_preset_line(report),
        "",
        *[line for title, header, rows in _methods_tables(report) for line in (f"### {title}", "", *md(header, rows), "")],
        _cost_line(report) + ".",
        "",
        *[f"- {line}" for line in report.get("skipped", [])],
        "",
        "## Claims",
        "",
        *[f"- {'holds' if c['holds'] else '**fails**'}: {c['claim']} ({c['value']:.2f} vs {c['bound']:.2f})" for c in report["claims"]],
        "",
        "## GFLOPs-mAP curve (Fig. 3)",
        "",
        *md(("K", *report["budget_curve"]), [(str(p[0]["k"]), *[f"{q['map']:.1f} @ {q['gflops']:.3f}" for q in p]) for p in zip(*report["budget_curve"].values())]),
        "",
        *_per_class_section(report.get("per_class_ap")),
        *_showcase_section(report.get("selected_frames")),
    ]
    lines += [f"![{name}]({name})" for name in report["figures"]]
    return "\n".join(lines) + "\n"
