"""Model surgery written once for every family, through the Detector's hooks.

Head remap: a pretrained detector's classifier is rebuilt for new classes; classes whose names
match a pretrained class (case-insensitive, or by a user mapping such as {OtherVehicle: truck})
keep their pretrained rows, so they are detected before any training.

Stem adaptation: the first convolution of an RGB model is rebuilt for `in_channels` inputs
(1 = thermal only, 4 = RGB + thermal), and the per-channel input statistics are extended.
Inits (`C` = in_channels, `W_c` = the RGB filter of input channel c, acting on 0..1 inputs):

- `sum`: a grey image replicated over all C channels gives the RGB model's output on that grey
  image. C < 3: every channel gets (W_R + W_G + W_B) / C. C >= 3: RGB filters kept, extra
  channels start at zero (the same as `zero`).
- `zero`: C >= 3 only. RGB filters kept, extra channels zero: on [R, G, B, T...] the model gives
  exactly the RGB model's output until training moves the new filters.
- `mean`: extra channels get the mean RGB filter; then every filter is scaled by 3 / C so that an
  input with equal values in all channels gives the RGB model's output on the grey image (the
  activation scale is kept). For C < 3 this equals `sum`.
- `random`: C < 3: a freshly initialised conv (nothing kept). C >= 3: RGB filters kept, extra
  channels drawn like a fresh conv's (PyTorch's default kaiming-uniform bound 1/sqrt(fan_in)).

Normalised families (torchvision feeds (x - mean_c) / std_c and zero-pads *after* normalising):
the filters above are defined on 0..1 inputs. With W_c acting on normalised channel c, the
filter on raw input is R_c = W_c / s_c and the constant it adds is -sum_c W_c * m_c / s_c
(summed over the kernel). A new channel j with stats (m'_j, s'_j) gets W'_j = R'_j * s'_j and a
bias b' = raw bias + sum_j R'_j * m'_j, so the new stem equals the RGB stem *in the interior* to
float rounding. At the image border the two cannot agree when the RGB means differ: the RGB
model's zero padding stands for raw value m_c in channel c (three different values) while the
new model's stands for m'_j, and no single filter reproduces three different pad values. The
difference is confined to a band of the stem's receptive-field half-width around the (resized
and batch-padded) image and shrinks downstream; tests/test_surgery.py measures it end to end.
Families that feed 0..1 with no normalisation (YOLO) pad with 0 in raw space too, so `sum` is
exact there everywhere.

A conv that gains a bias where the original had none (Conv + BatchNorm stems) is handed to
`set_stem_conv` as is; the adapter folds the bias into the following norm layer's running mean
so its state_dict keys do not change (rcnn does this).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from detector.errors import ConfigError

STEM_INITS = ("sum", "zero", "mean", "random")


# --- class matching and head remap --------------------------------------------------------------


def match_classes(new_names: list[str], pretrained_names: list[str],
                  user_map: dict[str, str] | None = None) -> dict[int, int]:
    """{new label: pretrained label} (both 0-based) for classes the pretrained head knows.

    Names match case-insensitively; `user_map` ({new name: pretrained name}, also
    case-insensitive) adds or overrides pairs. A `user_map` key that is not a new class, or a
    value that is not a pretrained class, raises ConfigError naming the valid ones.
    """
    pretrained_index = {}
    for index, name in enumerate(pretrained_names):
        pretrained_index.setdefault(name.lower(), index)
    new_index = {name.lower(): index for index, name in enumerate(new_names)}
    mapping = {i: pretrained_index[name.lower()] for i, name in enumerate(new_names)
               if name.lower() in pretrained_index}
    for new_name, old_name in (user_map or {}).items():
        if str(new_name).lower() not in new_index:
            raise ConfigError(
                f"class_map: {new_name!r} is not one of the dataset's classes; valid: "
                f"{', '.join(new_names)}")
        if str(old_name).lower() not in pretrained_index:
            raise ConfigError(
                f"class_map: {new_name!r} -> {old_name!r}: {old_name!r} is not a pretrained "
                f"class; valid: {', '.join(pretrained_names)}")
        mapping[new_index[str(new_name).lower()]] = pretrained_index[str(old_name).lower()]
    return dict(sorted(mapping.items()))


@dataclass
class RemapReport:
    """What a head remap did: new class -> pretrained class it copied, and fresh classes."""

    mapped: dict[str, str] = field(default_factory=dict)
    fresh: list[str] = field(default_factory=list)

    def format(self) -> str:
        from detector.tables import format_table

        rows = [[new, old] for new, old in self.mapped.items()]
        rows += [[new, "- (fresh)"] for new in self.fresh]
        return format_table(["class", "initialised from pretrained"], rows)


def remap_classes(detector, class_names: list[str], class_map=None,
                  verbose: bool = True) -> RemapReport:
    """Rebuild `detector`'s head for `class_names`, copying pretrained rows of matched classes.

    class_map: None (no copying: every class starts fresh), 'auto' (match names), or a dict
    {new name: pretrained name} (names matched as with 'auto', plus these pairs). Prints the
    report to stderr when `verbose`.
    """
    pretrained = list(detector.class_names)
    if class_map is None:
        mapping = {}
    elif class_map == "auto":
        mapping = match_classes(class_names, pretrained)
    elif isinstance(class_map, dict):
        mapping = match_classes(class_names, pretrained, class_map)
    else:
        raise ConfigError(f"class_map: expected 'auto', a mapping {{new: pretrained}} or null, "
                          f"got {class_map!r}")
    detector.remap_head(list(class_names), mapping)
    report = RemapReport(
        mapped={class_names[i]: pretrained[j] for i, j in mapping.items()},
        fresh=[name for i, name in enumerate(class_names) if i not in mapping])
    if verbose:
        print(f"head remapped to {len(class_names)} classes "
              f"({len(report.mapped)} from pretrained, {len(report.fresh)} fresh):\n"
              f"{report.format()}", file=sys.stderr)
    return report


# --- stem adaptation ----------------------------------------------------------------------------


def _check_init(in_channels: int, init: str) -> None:
    if init not in STEM_INITS:
        raise ConfigError(f"stem init {init!r} is not known; valid: {', '.join(STEM_INITS)}")
    if in_channels < 1:
        raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
    if init == "zero" and in_channels < 3:
        raise ConfigError(f"stem init 'zero' keeps the RGB filters and needs in_channels >= 3 "
                          f"(got {in_channels}); use 'sum' for a single channel")


def _random_filters(out_channels: int, in_channels: int, kernel: tuple[int, int],
                    fan_in_channels: int, like: torch.Tensor) -> torch.Tensor:
    # nn.Conv2d's default init (kaiming-uniform, a=sqrt(5)) reduces to U(-1/sqrt(fan_in), ..).
    bound = 1.0 / math.sqrt(fan_in_channels * kernel[0] * kernel[1])
    weight = torch.empty(out_channels, in_channels, *kernel, dtype=like.dtype, device=like.device)
    return weight.uniform_(-bound, bound)


def expand_conv_weight(weight: torch.Tensor, in_channels: int, init: str) -> torch.Tensor:
    """[O,3,k,k] RGB filters -> [O,in_channels,k,k] filters for the same (un-normalised) input
    scale, with `init` as in the module docstring. A pure function: `weight` is not modified."""
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected RGB conv weights [O,3,k,k], got {list(weight.shape)}")
    _check_init(in_channels, init)
    weight = weight.detach()
    out_channels, _, *kernel = weight.shape
    extra = in_channels - 3
    if init == "random":
        if in_channels < 3:
            return _random_filters(out_channels, in_channels, kernel, in_channels, weight)
        new = _random_filters(out_channels, extra, kernel, in_channels, weight)
        return torch.cat([weight.clone(), new], dim=1)
    summed = weight.sum(dim=1, keepdim=True)
    if in_channels < 3:  # `sum` and `mean` agree here
        return (summed / in_channels).repeat(1, in_channels, 1, 1)
    if init in ("sum", "zero"):
        return torch.cat([weight.clone(), weight.new_zeros(out_channels, extra, *kernel)], dim=1)
    mean = (summed / 3).repeat(1, extra, 1, 1)
    return torch.cat([weight, mean], dim=1) * (3 / in_channels)


def extend_input_stats(mean: list[float], std: list[float],
                       in_channels: int) -> tuple[list[float], list[float]]:
    """Per-channel stats for `in_channels` inputs from RGB stats: channels past RGB (and the
    channels of a model with fewer than 3) get the average of the RGB mean and std."""
    grey_mean, grey_std = sum(mean) / len(mean), sum(std) / len(std)
    if in_channels < 3:
        return [grey_mean] * in_channels, [grey_std] * in_channels
    return list(mean) + [grey_mean] * (in_channels - 3), list(std) + [grey_std] * (in_channels - 3)


def _normalised_stem(weight: torch.Tensor, in_channels: int, init: str, mean: list[float],
                     std: list[float], new_mean: list[float], new_std: list[float]
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight [O,C,k,k], bias [O] or None) of a stem fed (x - new_mean) / new_std that matches
    the RGB stem fed (x - mean) / std in the image interior (see the module docstring)."""
    m = torch.tensor(mean, dtype=weight.dtype, device=weight.device)
    s = torch.tensor(std, dtype=weight.dtype, device=weight.device)
    m_new = torch.tensor(new_mean, dtype=weight.dtype, device=weight.device)
    s_new = torch.tensor(new_std, dtype=weight.dtype, device=weight.device)
    raw = weight / s[None, :, None, None]  # filters acting on 0..1 input
    if in_channels >= 3:
        # RGB channels keep their stats, so their filters are kept bit for bit (times the
        # `mean` init's rescale); only the extra channels are converted from raw space.
        expanded_raw = expand_conv_weight(raw, in_channels, init)
        scale = 3 / in_channels if init == "mean" else 1.0
        rgb = weight.detach().clone() if scale == 1.0 else weight.detach() * scale
        if init == "random":  # fresh filters are drawn for normalised input: no conversion
            return torch.cat([rgb, expanded_raw[:, 3:]], dim=1), None
        extra_raw = expanded_raw[:, 3:]
        if extra_raw.shape[1] == 0 or not bool(extra_raw.any()):
            return torch.cat([rgb, extra_raw], dim=1), None
        extra = extra_raw * s_new[None, 3:, None, None]
        bias = (extra_raw * m_new[None, 3:, None, None]).sum(dim=(1, 2, 3))
        if scale != 1.0:  # the rescale must not shrink the RGB filters' constant term too
            bias = bias - (1 - scale) * (raw * m[None, :, None, None]).sum(dim=(1, 2, 3))
        return torch.cat([rgb, extra], dim=1), bias
    if init == "random":
        return expand_conv_weight(weight, in_channels, init), None
    raw_bias = -(raw * m[None, :, None, None]).sum(dim=(1, 2, 3))
    expanded_raw = expand_conv_weight(raw, in_channels, init)
    new_weight = expanded_raw * s_new[None, :, None, None]
    bias = raw_bias + (expanded_raw * m_new[None, :, None, None]).sum(dim=(1, 2, 3))
    return new_weight, bias


def adapt_stem(detector, in_channels: int, init: str = "sum") -> None:
    """Rebuild `detector`'s first conv (3 RGB channels) for `in_channels` inputs, in place.

    Extends the input statistics where the family normalises (`input_stats()` not None).
    See the module docstring for the inits and what each keeps exactly.
    """
    conv = detector.stem_conv()
    _check_init(in_channels, init)
    if conv.in_channels == in_channels:
        return
    if conv.in_channels != 3 or conv.groups != 1:
        raise ConfigError(f"{detector.arch}: stem adaptation starts from a 3-channel RGB stem; "
                          f"this one has {conv.in_channels} input channels")
    weight = conv.weight.detach()
    stats = detector.input_stats()
    bias = None
    if stats is None:
        new_weight = expand_conv_weight(weight, in_channels, init)
    else:
        mean, std = stats
        new_mean, new_std = extend_input_stats(mean, std, in_channels)
        new_weight, bias = _normalised_stem(weight, in_channels, init, mean, std, new_mean, new_std)
    new_conv = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                         conv.padding, conv.dilation, conv.groups,
                         bias=conv.bias is not None or bias is not None,
                         padding_mode=conv.padding_mode, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new_conv.weight.copy_(new_weight)
        if new_conv.bias is not None:
            total = conv.bias.detach().clone() if conv.bias is not None else torch.zeros_like(
                new_conv.bias)
            if bias is not None:
                total += bias
            new_conv.bias.copy_(total)
    new_conv.weight.requires_grad_(conv.weight.requires_grad)
    detector.set_stem_conv(new_conv)
    if stats is not None:
        detector.set_input_stats(new_mean, new_std)
    detector.in_channels = in_channels


__all__ = ["STEM_INITS", "RemapReport", "adapt_stem", "expand_conv_weight", "extend_input_stats",
           "match_classes", "remap_classes"]
