"""The advice in words: a one-screen report, the per-layer gap table, the recipe's header lines."""

from __future__ import annotations

from detector.tables import format_table

ADAPT_ADVICE = ("unlabelled target images given: use train.adapt (domain adaptation on the "
                "unlabelled images) once this toolkit's config has it; the recipe here does not "
                "set it")


def _classes_line(advice, chosen) -> str:
    counts = chosen.size.boxes_per_class
    listed = ", ".join(f"{name} {count}" for name, count in list(counts.items())[:8])
    more = f" ... ({len(counts) - 8} more)" if len(counts) > 8 else ""
    smallest = chosen.size.smallest_class
    empty = [n for n, c in counts.items() if c == 0]
    line = f"boxes per class: {listed}{more}; smallest: {smallest[0]} {smallest[1]}"
    if empty:
        line += f"; {len(empty)} class(es) without any box"
    return line


def _objects_line(size) -> str:
    px = size.object_px
    if not px:
        return "no boxes"
    return (f"objects at {size.input_size} px input: p10 {px[10]:.1f}, median {px[50]:.1f}, "
            f"p90 {px[90]:.1f} px; {size.small_share:.0%} under 8 px")


def _overlap_line(model_advice, classes: int) -> str:
    candidate = model_advice.candidate
    if candidate.pretrained_classes is None:
        return "class_map: none (an ImageNet backbone: the detection head starts fresh)"
    kept = ", ".join(f"{new}->{old}" for new, old in model_advice.overlap.items()) or "none"
    fresh = [c for c in model_advice.size.boxes_per_class if c not in model_advice.overlap]
    line = f"class_map auto keeps {len(model_advice.overlap)}/{classes}: {kept}"
    if fresh:
        shown = ", ".join(fresh[:6]) + (" ..." if len(fresh) > 6 else "")
        line += f"; fresh: {shown}"
    return line


def plan_line(plan) -> str:
    if plan.stages:
        stages = "; ".join(
            f"{s['epochs']} ep: {', '.join(s['train'])}"
            + (f" (lr x{', x'.join(f'{v:g} {k}' for k, v in s['lr_mult'].items())})"
               if s["lr_mult"] else "") for s in plan.stages)
        return f"stages: {stages}"
    mult = (" (lr x" + ", x".join(f"{v:g} {k}" for k, v in plan.lr_mult.items()) + ")"
            if plan.lr_mult else "")
    return f"preset {plan.preset}, {plan.epochs} epochs{mult}"


def summary_lines(advice, model_advice=None) -> list[str]:
    """The measurements and the decision in a few lines (also the recipe's comment header)."""
    chosen = model_advice or advice.chosen
    size, channels, plan = chosen.size, advice.channels, chosen.plan
    bits = ", ".join(f"{m} {b}-bit" if len(channels.bits) > 1 else f"{b}-bit"
                     for m, b in channels.bits.items())
    lines = [
        f"data: {advice.source}" + (f" split {advice.split}" if advice.split else "")
        + f": {size.images} images, {size.boxes} boxes, {len(advice.class_names)} classes; "
        f"{'+'.join(channels.modalities)} ({channels.channels} ch, {bits})",
        _classes_line(advice, chosen),
        _objects_line(size),
        f"model: {chosen.candidate.spec} ({chosen.candidate.kind}); "
        + _overlap_line(chosen, len(advice.class_names)),
        f"stem: {chosen.stem_init or 'as is'} ({chosen.stem_reason})",
        "gap: " + "; ".join(f"{p.view} {p.score:.3f}" for p in chosen.profiles)
        + f" {advice.distance} (mean over BatchNorm layers, {chosen.profiles[0].images} images)"
        if any(p.has_batchnorm for p in chosen.profiles) else
        "gap: the model has no BatchNorm layer, so no depth profile; measured instead: pixel "
        "statistics vs " + chosen.profiles[0].input_reference + ": "
        + "; ".join(f"{p.view} {p.input_gap:.3f}" for p in chosen.profiles),
        f"quadrant: {chosen.quadrant.name}: {chosen.quadrant.size_reason}; "
        f"{chosen.quadrant.similarity_reason}",
        f"seed matrix: {chosen.quadrant.seed_advice}",
        f"departure depth: {plan.departure or 'none (every measured part is similar)'}; "
        f"frozen: {', '.join(plan.frozen) or 'nothing'}",
        f"train: {plan_line(plan)}; lr 0.01 x multiplier; warmup {plan.warmup_epochs:g} epochs; "
        f"image size {chosen.image_size} ({chosen.image_size_reason})",
    ]
    lines += [f"why: {reason}" for reason in plan.why]
    lines += [f"warning: {warning}" for warning in plan.warnings]
    lines += [f"note: {note}" for note in channels.notes()]
    if advice.unlabelled:
        target = "; ".join(f"{p.view} {p.score:.3f}" for p in chosen.unlabelled)
        lines.append(f"unlabelled: {advice.unlabelled_images} images in {advice.unlabelled}, gap "
                     f"{target} {advice.distance}")
        lines.append(ADAPT_ADVICE)
    return lines


def parts_table(model_advice) -> str:
    """Per part: BatchNorm layers and the gap of each view."""
    profiles = model_advice.profiles
    headers = ["part", "BN layers"] + [f"gap {p.view}" for p in profiles] + ["advice"]
    plan = model_advice.plan
    rows = []
    for part in model_advice.candidate.detector.parts():
        layers = sum(1 for layer in profiles[0].layers if layer.part == part)
        advice = "frozen" if part in plan.frozen else "train"
        if part == plan.departure:
            advice += " (departure)"
        rows.append([part, layers] + [p.parts.get(part) for p in profiles] + [advice])
    rows.append(["input", "-"] + [p.input_gap for p in profiles] + [
        f"vs {profiles[0].input_reference}"])
    return format_table(headers, rows)


def layers_table(model_advice) -> str:
    """Per BatchNorm layer of the first view (and the others side by side)."""
    profiles = model_advice.profiles
    headers = ["layer", "part", "channels"] + [f"gap {p.view}" for p in profiles] + ["max ch"]
    rows = []
    for index, layer in enumerate(profiles[0].layers):
        rows.append([layer.name, layer.part, layer.channels]
                    + [p.layers[index].gap for p in profiles] + [layer.max])
    return format_table(headers, rows)


def models_table(advice) -> str:
    rows = []
    for m in advice.models:
        rows.append([m.candidate.spec, m.candidate.kind, f"{len(m.overlap)}/{len(advice.class_names)}",
                     m.gap_score, m.quadrant.name, m.plan.departure or "-",
                     "chosen" if m is advice.chosen else ""])
    return format_table(["model", "kind", "classes kept", "gap", "quadrant", "departure", ""], rows)


def format_report(advice, recipe_path=None, plot_path=None) -> str:
    """The one-screen report: summary, the parts table, candidates (when several), outputs."""
    chosen = advice.chosen
    out = [f"detector advise: {advice.source} ({advice.seconds:.1f} s)", ""]
    out += summary_lines(advice)[:6]
    out += ["", parts_table(chosen), ""]
    out += summary_lines(advice)[6:]
    if len(advice.models) > 1:
        out += ["", models_table(advice)]
    if recipe_path or plot_path:
        out.append("")
    if recipe_path:
        out.append(f"recipe: {recipe_path} (detector train {recipe_path})")
    if plot_path:
        out.append(f"gap plot: {plot_path}")
    return "\n".join(out)


__all__ = ["ADAPT_ADVICE", "format_report", "layers_table", "models_table", "parts_table",
           "plan_line", "summary_lines"]
